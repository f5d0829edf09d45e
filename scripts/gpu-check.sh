#!/usr/bin/env bash
# One-call check of the GPU backends on the lent GPU machine (an NVIDIA H200 with the
# driver, CUDA 13's nvcc, CMake, ninja and python3 with the nvidia-* wheels, but no Rust,
# no network and room for only 64 MiB of files from here).
#
# Here (with Rust):   scripts/gpu-check.sh build   -> target/gpu-check/ (≈ 30 MB)
# There (one call):   bash scripts/gpu-check.sh run  (carry target/gpu-check)
#
# `build` puts into target/gpu-check: the CUDA backend's test binaries (stripped), the
# jikji binary built with `--features cuda` (when the CLI has that feature), skeletons of
# qwen2.5-0.5b and qwen2.5-1.5b (scripts/gguf-skeleton.py: header and real blocks, 4-5 MB
# each, unpacked there to files of the real layout and speed: no model file can travel),
# and llama.cpp's source from llama-cpp-python==0.3.36 without its models.
#
# `run` executes, logging to $OUT (or target/gpu-check/out):
#  1. the CUDA tests against the CPU backend: NVRTC compile for the device's architecture,
#     every matmul type at odd shapes (nmse ≤ 5e-4), the tiny fixture models (logits within
#     2e-2, 16 greedy tokens equal);
#  2. `jikji devices`, then `jikji bench --backend cuda|vulkan` pp512/tg128 on both models;
#  3. llama.cpp's llama-bench built there with CUDA for sm_90 only (the one target, so the
#     build fits the lease), -ngl 99, same models, same run; a table of ratios at the end.
# Each stage has its own time limit (JIKJI_GPU_STAGE_S, default 240 s for the llama.cpp
# build) so one hung stage cannot eat the lease.
set -uo pipefail
cd "$(dirname "$0")/.."
B=target/gpu-check
case "${1:-}" in
  build)
    set -e
    rm -rf "$B" && mkdir -p "$B"
    cargo test --release -p jikji-cuda --no-run --message-format=json 2>/dev/null \
      | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]:
        print(m["executable"])' | while read -r exe; do strip -o "$B/$(basename "$exe" | sed 's/-[0-9a-f]*$//')" "$exe"; done
    if grep -q '^cuda' crates/cli/Cargo.toml; then
      cargo build --release -p jikji-cli --features cuda
      strip -o "$B/jikji" target/release/jikji
      cargo build --release -p jikji-cli   # leave the default binary in place here
    else
      echo "gpu-check: the CLI has no cuda feature yet; only the backend tests travel" >&2
    fi
    M="${JIKJI_MODELS:-$HOME/.cache/jikji/models}"
    for f in qwen2.5-coder-0.5b-instruct.gguf qwen2.5-coder-1.5b-instruct-q4_k_m.gguf; do
      [ -f "$M/$f" ] && python3 scripts/gguf-skeleton.py pack "$M/$f" "$B/${f%.gguf}.skel"
    done
    L="${JIKJI_LLAMA_SRC:-$HOME/.cache/jikji/llama.cpp-0.3.36/src/vendor/llama.cpp}"
    if [ -d "$L/ggml" ]; then
      tar -C "$L" --exclude='*.gguf' -cJf "$B/llama-src.tar.xz" CMakeLists.txt cmake ggml src include common tools vendor LICENSE
    else
      echo "gpu-check: no llama.cpp source at $L (pip download llama-cpp-python==0.3.36 --no-binary :all:)" >&2
    fi
    du -sh "$B"; ls -la "$B"
    ;;
  run)
    OUT="${OUT:-$PWD/$B/out}"; mkdir -p "$OUT"
    STAGE_S="${JIKJI_GPU_STAGE_S:-240}"
    exec > >(tee "$OUT/gpu-check.log") 2>&1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    export JIKJI_CUDA_LIBS="$(python3 -c 'import nvidia,os,glob; print(":".join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0],"*","lib")))))' 2>/dev/null || true)"
    export JIKJI_CUDA_CACHE="$PWD/$B/cache"
    status=0
    # 1. Backend tests (they find tests/fixtures relative to the crate).
    for t in nvrtc device; do
      echo "== test $t"
      (cd crates/backend-cuda && timeout 300 "../../$B/$t" --test-threads=1 --nocapture) || status=1
    done
    # 2. Models: unpack the skeletons.
    W=/tmp/gpu-check-models; mkdir -p "$W"
    MODELS=()
    for s in "$B"/*.skel; do
      [ -f "$s" ] || continue
      g="$W/$(basename "${s%.skel}").gguf"
      python3 scripts/gguf-skeleton.py unpack "$s" "$g" && MODELS+=("$g")
    done
    # 3. llama.cpp with CUDA, sm_90 only, in the background while jikji benches.
    LB=""
    if [ -f "$B/llama-src.tar.xz" ]; then
      mkdir -p /tmp/llama && tar -C /tmp/llama -xJf "$B/llama-src.tar.xz"
      ( cd /tmp/llama && timeout "$STAGE_S" cmake -S . -B build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
          -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
          -DCMAKE_BUILD_TYPE=Release >/tmp/llama-cmake.log 2>&1 \
        && timeout "$STAGE_S" cmake --build build --target llama-bench -j"$(nproc)" >/tmp/llama-build.log 2>&1 ) &
      LBPID=$!
    fi
    if [ -x "$B/jikji" ]; then
      echo "== jikji devices"; timeout 60 "$B/jikji" devices || status=1
      for m in "${MODELS[@]}"; do
        for be in cuda vulkan; do
          echo "== jikji bench --backend $be $(basename "$m")"
          timeout 180 "$B/jikji" bench --backend "$be" -m "$m" -r 3 --json >"$OUT/jikji-$be-$(basename "$m").json" \
            || echo "jikji bench --backend $be failed on $m"
          cat "$OUT/jikji-$be-$(basename "$m").json" 2>/dev/null
        done
      done
    fi
    if [ -n "${LBPID:-}" ]; then
      wait "$LBPID" || { echo "llama.cpp build failed or timed out:"; tail -20 /tmp/llama-build.log /tmp/llama-cmake.log; }
      cp /tmp/llama-build.log "$OUT/" 2>/dev/null
      [ -x /tmp/llama/build/bin/llama-bench ] && LB=/tmp/llama/build/bin/llama-bench
    fi
    if [ -n "$LB" ]; then
      for m in "${MODELS[@]}"; do
        echo "== llama-bench (CUDA) $(basename "$m")"
        timeout 180 "$LB" -m "$m" -ngl 99 -r 3 -o json >"$OUT/llama-$(basename "$m").json" || echo "llama-bench failed on $m"
      done
    fi
    # Ratios, same run.
    python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return None
rows = []
for lj in sorted(glob.glob(os.path.join(out, "llama-*.json"))):
    name = os.path.basename(lj)[len("llama-"):-len(".json")]
    peer = {("pp" if r["n_gen"] == 0 else "tg"): r["avg_ts"] for r in (load(lj) or [])}
    for be in ("cuda", "vulkan"):
        ours = load(os.path.join(out, f"jikji-{be}-{name}.json")) or {}
        for t in ("pp", "tg"):
            v = ours.get(f"{t}_tok_s")
            if v and peer.get(t):
                rows.append(f"| {name} | {be} | {t} | {v:.1f} | {peer[t]:.1f} | {v / peer[t]:.2f}x |")
print("| model | backend | test | jikji t/s | llama.cpp CUDA t/s | ratio |\n|---|---|---|---:|---:|---:|")
print("\n".join(rows) or "| (no pairs: see the log) |")
PY
    exit $status
    ;;
  *) sed -n 2,22p "$0"; exit 2 ;;
esac
