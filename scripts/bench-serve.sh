#!/usr/bin/env bash
# Serving benchmark: the same closed-loop load (streaming chat, greedy, max_tokens 128,
# fixed mixed Korean/English prompts; scripts/bench_serve.py) against `jikji serve` and
# llama.cpp's `llama-server` (continuous batching, -np equal to the concurrency, -c 16384,
# -t 2), at each concurrency, on each model. Prints aggregate generated tokens/s,
# time-to-first-token p50/p99, errors, and jikji/llama.cpp ratios.
#
#   scripts/bench-serve.sh                       # smollm2-135m and qwen2.5-0.5b at 1, 8, 32
#   MODELS=smollm2-135m CONC="1 32" scripts/bench-serve.sh
#   MAX_TOKENS=64 REQUESTS_PER_CLIENT=1 scripts/bench-serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="${MODELS:-smollm2-135m qwen2.5-0.5b}"
CONC="${CONC:-1 8 32}"
MAX_TOKENS="${MAX_TOKENS:-128}"
REQUESTS_PER_CLIENT="${REQUESTS_PER_CLIENT:-2}"
THREADS="${THREADS:-2}"
TOTAL_CTX="${TOTAL_CTX:-16384}"

python3 -c "import httpx" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check httpx
[ -x target/release/jikji ] || cargo build --release -p jikji-cli >&2
JIKJI="$PWD/target/release/jikji"
PEER_BIN="$(bash scripts/build-llamacpp.sh)"
LLAMA_SERVER="$PEER_BIN/llama-server"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_healthy() { # url pid
  for _ in $(seq 1 600); do
    if ! kill -0 "$2" 2>/dev/null; then return 1; fi
    if curl -sf "$1/health" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  return 1
}

stop() { # pid
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$1" 2>/dev/null || true
}

RESULTS=$(mktemp)
LOGDIR=$(mktemp -d)
trap 'rm -f "$RESULTS"' EXIT

for model in $MODELS; do
  file=$("$JIKJI" pull "$model")
  for c in $CONC; do
    total=$(( c * REQUESTS_PER_CLIENT )); [ "$total" -ge 4 ] || total=4
    per_slot=$(( TOTAL_CTX / c )); [ "$per_slot" -le 4096 ] || per_slot=4096

    port=$(free_port)
    "$JIKJI" serve -m "$model" --port "$port" --parallel "$c" --ctx "$per_slot" --kv-tokens "$TOTAL_CTX" \
      -t "$THREADS" >"$LOGDIR/jikji-$model-$c.log" 2>&1 &
    pid=$!
    if wait_healthy "http://127.0.0.1:$port" "$pid"; then
      r=$(python3 scripts/bench_serve.py --base "http://127.0.0.1:$port" --model "$model" --concurrency "$c" \
            --requests "$total" --max-tokens "$MAX_TOKENS")
      echo "jikji $model $c $r" >>"$RESULTS"
    else
      echo "jikji serve failed to start; log:" >&2; tail -20 "$LOGDIR/jikji-$model-$c.log" >&2
      echo "jikji $model $c {\"tok_per_s\": 0, \"errors\": -1, \"ttft_p50_s\": 0, \"ttft_p99_s\": 0}" >>"$RESULTS"
    fi
    stop "$pid"

    port=$(free_port)
    "$LLAMA_SERVER" -m "$file" --host 127.0.0.1 --port "$port" -t "$THREADS" -np "$c" -c "$TOTAL_CTX" -cb \
      >"$LOGDIR/llama-$model-$c.log" 2>&1 &
    pid=$!
    if wait_healthy "http://127.0.0.1:$port" "$pid"; then
      r=$(python3 scripts/bench_serve.py --base "http://127.0.0.1:$port" --model "$model" --concurrency "$c" \
            --requests "$total" --max-tokens "$MAX_TOKENS")
      echo "llama $model $c $r" >>"$RESULTS"
    else
      echo "llama-server failed to start; log:" >&2; tail -20 "$LOGDIR/llama-$model-$c.log" >&2
      echo "llama $model $c {\"tok_per_s\": 0, \"errors\": -1, \"ttft_p50_s\": 0, \"ttft_p99_s\": 0}" >>"$RESULTS"
    fi
    stop "$pid"
  done
done

python3 - "$RESULTS" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    who, model, c, js = line.split(" ", 3)
    rows[(model, int(c), who)] = json.loads(js)
print(f"{'model':<14} {'clients':>7} | {'jikji tok/s':>11} {'llama tok/s':>11} {'ratio':>6} | "
      f"{'jikji TTFT p50/p99 s':>21} {'llama TTFT p50/p99 s':>21} | {'errors j/l':>10}")
for (model, c) in sorted({(m, c) for (m, c, _) in rows}):
    j = rows.get((model, c, "jikji"), {}); l = rows.get((model, c, "llama"), {})
    jt, lt = j.get("tok_per_s", 0), l.get("tok_per_s", 0)
    ratio = f"{jt / lt:.2f}" if lt else "-"
    print(f"{model:<14} {c:>7} | {jt:>11.1f} {lt:>11.1f} {ratio:>6} | "
          f"{j.get('ttft_p50_s', 0):>10.3f}/{j.get('ttft_p99_s', 0):<10.3f} {l.get('ttft_p50_s', 0):>10.3f}/{l.get('ttft_p99_s', 0):<10.3f} | "
          f"{j.get('errors', '-')!s:>4}/{l.get('errors', '-')!s:<5}")
EOF
echo "raw results:" >&2; cat "$RESULTS" >&2
echo "logs: $LOGDIR" >&2
