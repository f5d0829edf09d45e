#!/usr/bin/env bash
# One-call check of the CUDA backend on a GPU machine that has the NVIDIA driver and
# python3 with the nvidia-* pip wheels, but no Rust and no network (the lent H200).
#
# Here (with Rust):   scripts/gpu-check.sh build    -> target/gpu-check/ (test binaries + fixtures)
# There (one call):   bash scripts/gpu-check.sh run  -> runs them, prints a summary
#
# `run` executes the CUDA backend's tests against the CPU backend on device 0: the NVRTC
# compile for the device's own architecture, every matmul type at odd shapes (nmse ≤ 5e-4),
# and the tiny fixture models (logits within 2e-2, 16 greedy tokens equal).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/gpu-check
case "${1:-}" in
  build)
    rm -rf "$OUT" && mkdir -p "$OUT"
    cargo test -p jikji-cuda --no-run --message-format=json 2>/dev/null \
      | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]:
        print(m["executable"])' | while read -r exe; do cp "$exe" "$OUT/$(basename "$exe" | sed 's/-[0-9a-f]*$//')"; done
    ls "$OUT"
    ;;
  run)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    # The wheels' libraries (jikji also finds them itself through python3).
    export JIKJI_CUDA_LIBS="$(python3 -c 'import nvidia,os,glob; print(":".join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0],"*","lib")))))' 2>/dev/null || true)"
    export JIKJI_CUDA_CACHE="$PWD/$OUT/cache"
    cd crates/backend-cuda   # the tests find tests/fixtures relative to the crate
    status=0
    for t in nvrtc device; do
      echo "== $t"
      "../../$OUT/$t" --test-threads=1 --nocapture || status=1
    done
    exit $status
    ;;
  *) sed -n 2,11p "$0"; exit 2 ;;
esac
