#!/usr/bin/env bash
# Side-by-side speed of jikji and llama.cpp (the peer) on the same models, threads and
# test sizes: llama-bench and `jikji bench` run alternately, and a table shows pp and tg
# tokens/s (medians over repetitions), the ratios jikji/llama.cpp, both peak RSS values
# and the share of the measured memory bandwidth that generation reaches.
#
# usage: scripts/bench-vs-llamacpp.sh [-t THREADS] [-r REPS] [-p N_PROMPT] [-n N_GEN] [MODEL...]
#   MODEL: catalog name (pulled on first use) or .gguf path
#          [default: smollm2-135m gemma3-270m qwen2.5-0.5b]
#   env:   JIKJI_BENCH_THREADS (2), JIKJI_BENCH_REPS (5), JIKJI_BENCH_ROUNDS (1: how many
#          times each llama-bench / jikji pair runs, alternating; the best median is kept),
#          JIKJI_PEER_CACHE (see scripts/build-llamacpp.sh), JIKJI_BASELINE (path to another
#          jikji binary, e.g. an earlier commit's: it runs in every round too, and the
#          table gains its pp/tg and ratios, all from the same run).
# Peak RSS: llama-bench's from `/usr/bin/time -v`; jikji's is the VmHWM its bench reports for
# itself (its memory-bandwidth probe runs in a child process, kept out of that number).
# No assertions: this is a measurement. The machine's other load shows in the numbers.
set -euo pipefail

THREADS="${JIKJI_BENCH_THREADS:-2}"
REPS="${JIKJI_BENCH_REPS:-5}"
ROUNDS="${JIKJI_BENCH_ROUNDS:-1}"
BASELINE="${JIKJI_BASELINE:-}"
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "JIKJI_BASELINE=$BASELINE is not an executable" >&2; exit 1; }
NP=512
NG=128
while getopts "t:r:p:n:h" opt; do
  case "$opt" in
    t) THREADS="$OPTARG" ;;
    r) REPS="$OPTARG" ;;
    p) NP="$OPTARG" ;;
    n) NG="$OPTARG" ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(smollm2-135m gemma3-270m qwen2.5-0.5b)

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEER_BIN="$("$ROOT/scripts/build-llamacpp.sh")"
LLAMA_BENCH="$PEER_BIN/llama-bench"
[ -x "$LLAMA_BENCH" ] || { echo "llama-bench not found in $PEER_BIN" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time (GNU time) is needed for llama-bench's peak RSS" >&2; exit 1; }

echo "building jikji (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p jikji-cli)
JIKJI="$ROOT/target/release/jikji"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

results=()
for m in "${MODELS[@]}"; do
  if [ -f "$m" ]; then file="$m"; else file="$("$JIKJI" pull "$m" | tail -n 1)"; fi
  [ -f "$file" ] || { echo "cannot resolve model $m" >&2; exit 1; }
  for round in $(seq 1 "$ROUNDS"); do
    echo "[$m round $round] llama-bench -t $THREADS -p $NP -n $NG -r $REPS" >&2
    /usr/bin/time -v -o "$WORK/llama.time" \
      "$LLAMA_BENCH" -m "$file" -t "$THREADS" -p "$NP" -n "$NG" -r "$REPS" -o json \
      >"$WORK/llama.json" 2>"$WORK/llama.err" || { cat "$WORK/llama.err" >&2; exit 1; }
    rss_kb="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/llama.time")"
    jq -c --argjson rss "$rss_kb" '{runs: ., rss_kb: $rss}' "$WORK/llama.json" >"$WORK/llama.$round.json"

    if [ -n "$BASELINE" ]; then
      echo "[$m round $round] baseline jikji bench -t $THREADS -p $NP -n $NG -r $REPS" >&2
      "$BASELINE" bench -m "$file" -t "$THREADS" -p "$NP" -n "$NG" -r "$REPS" --json >"$WORK/base.$round.json"
    fi
    echo "[$m round $round] jikji bench -t $THREADS -p $NP -n $NG -r $REPS" >&2
    "$JIKJI" bench -m "$file" -t "$THREADS" -p "$NP" -n "$NG" -r "$REPS" --json >"$WORK/jikji.$round.json"
  done
  results+=("$(python3 - "$m" "$WORK" "$ROUNDS" "$NP" "$NG" <<'PY'
import json, statistics, sys
name, work, rounds, np_, ng = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
best = lambda xs: max((x for x in xs if x is not None), default=None)
import os
l_pp, l_tg, l_rss, j_pp, j_tg, j_rss, bw, mb = [], [], [], [], [], [], [], None
b_pp, b_tg = [], []
for r in range(1, rounds + 1):
    peer = json.load(open(f"{work}/llama.{r}.json"))
    l_rss.append(peer["rss_kb"] * 1024)
    for t in peer["runs"]:
        med = statistics.median(t["samples_ts"]) if t.get("samples_ts") else t["avg_ts"]
        if t["n_prompt"] == np_ and t["n_gen"] == 0: l_pp.append(med)
        if t["n_gen"] == ng and t["n_prompt"] == 0: l_tg.append(med)
    ours = json.load(open(f"{work}/jikji.{r}.json"))
    j_pp.append(ours["pp_tok_s"]); j_tg.append(ours["tg_tok_s"]); j_rss.append(ours.get("peak_rss_bytes"))
    bw.append(ours.get("bandwidth_gb_s")); mb = ours["model_bytes"]
    if os.path.exists(f"{work}/base.{r}.json"):
        base = json.load(open(f"{work}/base.{r}.json"))
        b_pp.append(base["pp_tok_s"]); b_tg.append(base["tg_tok_s"])
print(json.dumps({"model": name, "l_pp": best(l_pp), "j_pp": best(j_pp), "l_tg": best(l_tg), "j_tg": best(j_tg),
                  "l_rss": max(l_rss), "j_rss": max((x for x in j_rss if x), default=None),
                  "bw": best(bw), "model_bytes": mb, "b_pp": best(b_pp), "b_tg": best(b_tg)}))
PY
)")
done

python3 - "$THREADS" "$REPS" "$NP" "$NG" "${results[@]}" <<'PY'
import json, sys
threads, reps, np_, ng = sys.argv[1:5]
rows = [json.loads(a) for a in sys.argv[5:]]
f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
ratio = lambda a, b: "-" if a is None or not b else f"{a / b:.2f}"
mib = lambda b: "-" if b is None else f"{b / 2**20:.0f}"
share = lambda tg, r: "-" if tg is None or not r["bw"] else f"{100 * r['model_bytes'] * tg / (r['bw'] * 1e9):.0f} %"
print(f"\n{threads} threads, {reps} repetitions, medians in tokens/s\n")
print(f"| model | pp{np_} llama.cpp | pp{np_} jikji | ratio | tg{ng} llama.cpp | tg{ng} jikji | ratio "
      f"| peak RSS MiB llama.cpp | peak RSS MiB jikji | tg bandwidth share llama.cpp / jikji |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['model']} | {f(r['l_pp'])} | {f(r['j_pp'])} | {ratio(r['j_pp'], r['l_pp'])} "
          f"| {f(r['l_tg'])} | {f(r['j_tg'])} | {ratio(r['j_tg'], r['l_tg'])} "
          f"| {mib(r['l_rss'])} | {mib(r['j_rss'])} | {share(r['l_tg'], r)} / {share(r['j_tg'], r)} |")
if any(r.get("b_pp") for r in rows):
    print(f"\nbaseline (JIKJI_BASELINE) against this build, same run:\n")
    print(f"| model | pp{np_} baseline | pp{np_} now | now/baseline | baseline/llama.cpp | now/llama.cpp "
          f"| tg{ng} baseline | tg{ng} now | now/baseline | baseline/llama.cpp | now/llama.cpp |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {f(r['b_pp'])} | {f(r['j_pp'])} | {ratio(r['j_pp'], r['b_pp'])} | {ratio(r['b_pp'], r['l_pp'])} "
              f"| {ratio(r['j_pp'], r['l_pp'])} | {f(r['b_tg'])} | {f(r['j_tg'])} | {ratio(r['j_tg'], r['b_tg'])} "
              f"| {ratio(r['b_tg'], r['l_tg'])} | {ratio(r['j_tg'], r['l_tg'])} |")
bws = [r["bw"] for r in rows if r["bw"]]
if bws:
    print(f"\nmeasured read bandwidth ({threads} threads): {max(bws):.1f} GB/s; "
          "share = weight bytes read per token x tg tokens/s / bandwidth")
PY
