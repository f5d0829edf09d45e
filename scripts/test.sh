#!/usr/bin/env bash
# The test command of README.md: fetch the three real models (once; cached under
# $JIKJI_MODELS or ~/.cache/jikji/models), then run every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p jikji-cli
for m in smollm2-135m gemma3-270m qwen2.5-0.5b; do
  ./target/release/jikji pull "$m"
done
cargo test --workspace --no-fail-fast "$@"
# The HTTP server end to end (real binary, real models, official openai client).
bash scripts/serve-test.sh
