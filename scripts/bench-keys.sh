#!/usr/bin/env bash
# What the per-key checks cost: the serving benchmark's closed-loop load
# (scripts/bench_serve.py: streaming chat, greedy, fixed prompts) at CONC clients against
# `jikji serve` without keys and with a --keys-file (every request authenticated, its
# scope checked, admitted under requests/tokens-per-minute, tokens-per-day and
# max_concurrent limits high enough never to refuse, and charged per generated token),
# and with the keys file plus --audit-log. The configurations alternate, ROUNDS times, in
# the same run; prints the median aggregate tokens/s of each and the ratios. With PEER=1
# llama-server is measured once in the same run under the same load, for reference.
#
#   scripts/bench-keys.sh                     # smollm2-135m, 32 clients, 3 rounds
#   MODEL=qwen2.5-0.5b ROUNDS=5 scripts/bench-keys.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-smollm2-135m}"
CONC="${CONC:-32}"
ROUNDS="${ROUNDS:-3}"
MAX_TOKENS="${MAX_TOKENS:-128}"
REQUESTS_PER_CLIENT="${REQUESTS_PER_CLIENT:-2}"
THREADS="${THREADS:-2}"
TOTAL_CTX="${TOTAL_CTX:-16384}"
PEER="${PEER:-0}"

python3 -c "import httpx" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check httpx
[ -x target/release/jikji ] || cargo build --release -p jikji-cli >&2
JIKJI="$PWD/target/release/jikji"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
KEYS="$WORK/keys.toml"
# Other teams' keys in the file too, so the lookup is not over a table of one.
for i in $(seq 1 50); do "$JIKJI" keys add "team-$i" --file "$KEYS" >/dev/null; done
KEY=$("$JIKJI" keys add bench --file "$KEYS" --requests-per-minute 1000000 --tokens-per-minute 1000000000 \
        --tokens-per-day 1000000000000 --max-concurrent 1000 | tail -1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_healthy() { # url pid
  for _ in $(seq 1 600); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}
stop() { kill -TERM "$1" 2>/dev/null || true; for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done; kill -KILL "$1" 2>/dev/null || true; }

total=$(( CONC * REQUESTS_PER_CLIENT ))
per_slot=$(( TOTAL_CTX / CONC )); [ "$per_slot" -le 4096 ] || per_slot=4096
RESULTS="$WORK/results"
run_one() { # label extra-args... ; uses KEY when the label is not "nokeys"
  local label=$1; shift
  local port; port=$(free_port)
  "$JIKJI" serve -m "$MODEL" --port "$port" --parallel "$CONC" --ctx "$per_slot" --kv-tokens "$TOTAL_CTX" \
    -t "$THREADS" --no-ui "$@" >"$WORK/$label.log" 2>&1 &
  local pid=$!
  if ! wait_healthy "http://127.0.0.1:$port" "$pid"; then echo "jikji serve failed:" >&2; tail "$WORK/$label.log" >&2; exit 1; fi
  local keyarg=(); [ "$label" = nokeys ] || keyarg=(--api-key "$KEY")
  r=$(python3 scripts/bench_serve.py --base "http://127.0.0.1:$port" --model "$MODEL" --concurrency "$CONC" \
        --requests "$total" --max-tokens "$MAX_TOKENS" "${keyarg[@]}")
  echo "$label $r" >>"$RESULTS"
  stop "$pid"
}

# The order rotates each round, so a drift of the shared machine does not favour one.
for round in $(seq 1 "$ROUNDS"); do
  case $(( round % 3 )) in
    1) order="nokeys keys audit" ;;
    2) order="keys audit nokeys" ;;
    0) order="audit nokeys keys" ;;
  esac
  for what in $order; do
    case $what in
      nokeys) run_one nokeys ;;
      keys) run_one keys --keys-file "$KEYS" ;;
      audit) run_one keys+audit --keys-file "$KEYS" --audit-log "$WORK/audit.jsonl" ;;
    esac
  done
done
if [ "$PEER" = 1 ]; then
  file=$("$JIKJI" pull "$MODEL")
  PEER_BIN="$(bash scripts/build-llamacpp.sh)"
  port=$(free_port)
  "$PEER_BIN/llama-server" -m "$file" --host 127.0.0.1 --port "$port" -t "$THREADS" -np "$CONC" -c "$TOTAL_CTX" -cb >"$WORK/llama.log" 2>&1 &
  pid=$!
  if wait_healthy "http://127.0.0.1:$port" "$pid"; then
    r=$(python3 scripts/bench_serve.py --base "http://127.0.0.1:$port" --model "$MODEL" --concurrency "$CONC" --requests "$total" --max-tokens "$MAX_TOKENS")
    echo "llama-server $r" >>"$RESULTS"
  fi
  stop "$pid"
fi

python3 - "$RESULTS" "$MODEL" "$CONC" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, js = line.split(" ", 1)
    runs.setdefault(label, []).append(json.loads(js))
print(f"model {sys.argv[2]}, {sys.argv[3]} clients; aggregate generated tokens/s per run, median")
med = {}
for label, rs in runs.items():
    tps = [r["tok_per_s"] for r in rs]
    med[label] = statistics.median(tps)
    errs = sum(r["errors"] for r in rs)
    print(f"{label:<13} median {med[label]:8.1f}   runs {' '.join(f'{t:.1f}' for t in tps)}   errors {errs}")
base = med.get("nokeys")
for label in ("keys", "keys+audit", "llama-server"):
    if base and label in med:
        print(f"{label} / nokeys = {med[label] / base:.4f}  ({(1 - med[label] / base) * 100:+.2f} % cost)")
rs = runs.get("nokeys", [])
if rs:
    r = sorted(rs, key=lambda r: r["tok_per_s"])[len(rs) // 2]
    with open(sys.argv[1] + ".load", "w") as f:
        f.write(f"{r['tok_per_s']} {r['requests'] / r['wall_s']:.3f}\n")
PY
# The same checks timed alone, scaled to the measured load (the end-to-end ratio above is
# within the run-to-run noise of a shared machine; this bounds the checks' own cost).
if [ -f "$RESULTS.load" ]; then
  read -r tps rps <"$RESULTS.load"
  cargo run -q --release -p jikji-server --example keys_cost -- "$tps" "$rps"
fi
