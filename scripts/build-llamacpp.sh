#!/usr/bin/env bash
# Builds the peer, llama.cpp, from the source package llama-cpp-python==0.3.36 (fetched with
# pip), with AVX-512/VNNI/VBMI/BF16 on and AMX off, once; cached outside the repository.
# Prints the directory holding the binaries (llama-bench, llama-server, llama-cli).
set -euo pipefail
VER=0.3.36
CACHE="${JIKJI_PEER_CACHE:-$HOME/.cache/jikji/llama.cpp-$VER}"
BIN="$CACHE/build/bin"
if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-server" ]; then echo "$BIN"; exit 0; fi
command -v cmake >/dev/null || python3 -m pip install -q cmake >&2
# The sdist's metadata step needs its build backend; install it (a wheel) and skip isolation so
# that --no-binary does not force building cmake itself from source.
python3 -c "import scikit_build_core" 2>/dev/null || python3 -m pip install -q scikit-build-core >&2
mkdir -p "$CACHE"
if [ ! -d "$CACHE/src/vendor/llama.cpp" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --no-deps --no-binary :all: --no-build-isolation -d "$tmp" "llama-cpp-python==$VER" >&2
  rm -rf "$CACHE/src"; mkdir -p "$CACHE/src"
  tar -xzf "$tmp"/llama_cpp_python-$VER.tar.gz -C "$CACHE/src" --strip-components=1
  rm -rf "$tmp"
fi
cmake -S "$CACHE/src/vendor/llama.cpp" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$CACHE/build" -j "$(nproc)" --target llama-bench llama-server llama-cli >&2
echo "$BIN"
