#!/usr/bin/env bash
# Embedding throughput: `jikji serve` against llama.cpp's `llama-server --embedding` on the
# same GGUF (nomic-embed-text-v1.5 F16), same run, same threads. N closed-loop clients each
# POST /v1/embeddings with one sentence (fixed mixed Korean/English texts, ~20-40 tokens)
# back to back; embeddings/s = vectors returned / wall time. Each (server, concurrency)
# is measured ROUNDS times on a warm server; the medians and the jikji/llama.cpp ratio are
# printed.
#
#   scripts/bench-embed.sh                       # concurrency 1 and 32, 3 rounds
#   CONC="1 8 32" ROUNDS=5 REQUESTS=256 scripts/bench-embed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-nomic-embed-text-v1.5}"
CONC="${CONC:-1 32}"
ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-128}"
THREADS="${THREADS:-2}"

python3 -c "import httpx" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check httpx
[ -x target/release/jikji ] || cargo build --release -p jikji-cli >&2
JIKJI="$PWD/target/release/jikji"
PEER_BIN="${PEER_BIN:-$(bash scripts/build-llamacpp.sh)}"
LLAMA_SERVER="$PEER_BIN/llama-server"
file=$("$JIKJI" pull "$MODEL")

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

LOAD=$(mktemp --suffix .py)
RESULTS=$(mktemp)
LOGDIR=$(mktemp -d)
trap 'rm -f "$LOAD" "$RESULTS"' EXIT
cat >"$LOAD" <<'EOF'
import asyncio, json, sys, time
import httpx

TEXTS = [
    "search_document: 직지심체요절은 1377년 청주 흥덕사에서 금속활자로 인쇄된 불교 문헌이다.",
    "search_document: The sky looks blue because air scatters short wavelengths of sunlight more.",
    "search_query: 훈민정음은 누가 언제 만들었나요?",
    "search_document: A bicycle turns the rider's pedalling into forward motion through a chain.",
    "search_document: 김치는 배추를 소금에 절여 양념으로 버무린 뒤 발효시킨 음식이다.",
    "search_query: How do metal movable types differ from woodblock printing?",
    "search_document: 한라산은 제주도에 있는 남한에서 가장 높은 화산이다.",
    "search_document: Clean code reads like well-written prose and says what it means.",
]

async def main(base, model, conc, total, warmup):
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=conc + 4)) as c:
        async def one(i):
            r = await c.post(base + "/v1/embeddings", json={"model": model, "input": TEXTS[i % len(TEXTS)]})
            ok = r.status_code == 200 and len(r.json()["data"]) == 1
            return 1 if ok else 0
        for i in range(warmup):
            await one(i)
        queue = list(range(total))
        done = errors = 0
        async def client():
            nonlocal done, errors
            while queue:
                i = queue.pop()
                if await one(i):
                    done += 1
                else:
                    errors += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(conc)))
        dt = time.perf_counter() - t0
    print(json.dumps({"emb_per_s": done / dt, "errors": errors}))

base, model, conc, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
asyncio.run(main(base, model, conc, total, warmup=4))
EOF

measure() { # name url model conc
  for r in $(seq 1 "$ROUNDS"); do
    res=$(python3 "$LOAD" "$2" "$3" "$4" "$REQUESTS")
    echo "$1 $4 $r $res" >>"$RESULTS"
    echo "$1 c=$4 round $r: $res" >&2
  done
}

for c in $CONC; do
  port=$(free_port)
  "$JIKJI" serve -m "$MODEL" --port "$port" -t "$THREADS" --no-ui >"$LOGDIR/jikji-$c.log" 2>&1 &
  pid=$!
  if wait_healthy "http://127.0.0.1:$port" "$pid"; then
    measure jikji "http://127.0.0.1:$port" "$MODEL" "$c"
  else
    echo "jikji serve failed to start; log:" >&2; tail -20 "$LOGDIR/jikji-$c.log" >&2
  fi
  stop "$pid"

  # llama-server: one slot per client, each slot's context the model's 2048 (the texts
  # are short), unified KV so slots share one pool; batch sizes at least the context.
  port=$(free_port)
  "$LLAMA_SERVER" -m "$file" --embedding --pooling mean --host 127.0.0.1 --port "$port" -t "$THREADS" \
    -np "$c" -c $(( 2048 * c )) -b 8192 -ub 8192 --kv-unified >"$LOGDIR/llama-$c.log" 2>&1 &
  pid=$!
  if wait_healthy "http://127.0.0.1:$port" "$pid"; then
    measure llama "http://127.0.0.1:$port" "$MODEL" "$c"
  else
    echo "llama-server failed to start; log:" >&2; tail -20 "$LOGDIR/llama-$c.log" >&2
  fi
  stop "$pid"
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, conc, _round, res = line.split(" ", 3)
    rows.setdefault((name, int(conc)), []).append(json.loads(res))
print(f"{'clients':>7} {'jikji emb/s':>12} {'llama emb/s':>12} {'ratio':>7} {'errors j/l':>11}")
for conc in sorted({c for _, c in rows}):
    j = rows.get(("jikji", conc), [])
    l = rows.get(("llama", conc), [])
    jm = statistics.median(r["emb_per_s"] for r in j) if j else 0.0
    lm = statistics.median(r["emb_per_s"] for r in l) if l else 0.0
    ratio = jm / lm if lm else float("nan")
    errs = f"{sum(r['errors'] for r in j)}/{sum(r['errors'] for r in l)}"
    print(f"{conc:>7} {jm:>12.1f} {lm:>12.1f} {ratio:>6.2f}x {errs:>11}")
EOF
