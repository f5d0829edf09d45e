#!/usr/bin/env python3
"""Benchmark (not a test) of constrained decoding in `jikji serve`.

Measures, against one real server on qwen2.5-0.5b (or -m):
1. Decode tokens/s with a JSON schema vs unconstrained, at 1 and 32 concurrent streams
   (greedy, `ignore_eos`, the same max_tokens; the schema is a long array of integers so
   the grammar never completes before max_tokens). Reports the ratio (goal >= 0.90).
2. Time to first token with each of the schemas of tests/server/test_json_schema.py vs the
   same prompt unconstrained (the server compiles every request's grammar), median of
   --reps; compared with the compile times of the same schemas measured in the engine
   (crates/engine/examples/grammar_stats.rs, built and run by this script), which also
   counts the forced tokens of each schema's greedy answer.
4. Fast-forwarding forced tokens: the schemas' greedy answers (non-streamed, whole
   requests timed) on a server with it (the default) and one started with
   `--no-fast-forward`, one request at a time and all at once; the outputs must be equal,
   and /metrics' jikji_forced_tokens_total says how many tokens were taken unsampled.
3. That the prefix cache still hits for constrained requests (jikji_prefix_cache_hit_tokens_total
   in /metrics rises on a repeated long prompt with a schema).

Prints one JSON object. Numbers on a shared, busy machine are only indicative.

    python3 scripts/bench-structured.py [--bin target/release/jikji] [-m qwen2.5-0.5b]
        [-n 64] [--reps 3] [--skip-engine] [--only-ff]
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))
from conftest import Server  # noqa: E402
from test_json_schema import SCHEMAS, prompt_for  # noqa: E402

LONG_ARRAY = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 999}, "minItems": 200, "maxItems": 200}
DECODE_PROMPT = "List two hundred numbers between 0 and 999, separated by commas."


def stream_one(base, body):
    """Streams one chat request; returns (ttft_s, decode_tokens_per_s, n_tokens, content)."""
    t0 = time.perf_counter()
    first = last = None
    chunks = 0
    text = ""
    usage = None
    with httpx.Client(timeout=600) as c:
        with c.stream("POST", base + "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
            if r.status_code != 200:
                r.read()
                raise RuntimeError(f"HTTP {r.status_code}: {r.text}")
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                ev = json.loads(line[6:])
                if ev.get("usage"):
                    usage = ev["usage"]["completion_tokens"]
                for ch in ev.get("choices", []):
                    piece = ch.get("delta", {}).get("content") or ""
                    if piece:
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        chunks += 1
                        text += piece
    n = usage if usage is not None else chunks
    ttft = (first or time.perf_counter()) - t0
    rate = (n - 1) / (last - first) if first and last and last > first and n > 1 else float("nan")
    return ttft, rate, n, text


def throughput(base, model, conc, n_tokens, schema):
    body = {"model": model, "messages": [{"role": "user", "content": DECODE_PROMPT}], "max_tokens": n_tokens, "temperature": 0, "ignore_eos": True}
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "numbers", "schema": schema}}
    stream_one(base, body)  # warm (prefix cache, allocations)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(conc) as pool:
        results = list(pool.map(lambda _: stream_one(base, body), range(conc)))
    wall = time.perf_counter() - t0
    total = sum(r[2] for r in results)
    return {
        "aggregate_tokens_per_s": total / wall,
        "per_stream_decode_tokens_per_s_median": statistics.median(r[1] for r in results),
        "tokens": total,
        "wall_s": wall,
    }


def ttfts(base, model, reps):
    out = {}
    for name, schema in SCHEMAS.items():
        msgs = [{"role": "user", "content": prompt_for(name)}]
        free = {"model": model, "messages": msgs, "max_tokens": 2, "temperature": 0}
        con = {**free, "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
        stream_one(base, free)  # the prompt enters the prefix cache; both runs reuse it
        f = statistics.median(stream_one(base, free)[0] for _ in range(reps))
        c = statistics.median(stream_one(base, con)[0] for _ in range(reps))
        out[name] = {"ttft_free_ms": f * 1e3, "ttft_schema_ms": c * 1e3, "increase_ms": (c - f) * 1e3}
    return out


def prefix_cache(server, model):
    long_prompt = "Here is a long shared context about Korean cities. " * 40 + "Now describe one city."
    body = {
        "model": model,
        "messages": [{"role": "user", "content": long_prompt}],
        "max_tokens": 24,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMAS["korean_properties"]}},
    }
    key = "jikji_prefix_cache_hit_tokens_total"

    def hits():
        return sum(v for k, v in server.metrics().items() if k.split("{")[0] == key)

    stream_one(server.base, body)
    before = hits()
    stream_one(server.base, body)
    return {"hit_tokens_on_repeat": hits() - before}


def fast_forward(model, reps):
    bodies = [
        {"model": model, "messages": [{"role": "user", "content": prompt_for(name)}], "max_tokens": 256, "temperature": 0,
         "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
        for name, schema in SCHEMAS.items()
    ]

    def post(base, body):
        r = httpx.post(base + "/v1/chat/completions", json=body, timeout=600)
        r.raise_for_status()
        j = r.json()
        return j["choices"][0]["message"]["content"], j["usage"]["completion_tokens"]

    out = {}
    for label, args in (("fast_forward", []), ("no_fast_forward", ["--no-fast-forward"])):
        server = Server(model, ["--ctx", "4096", "--parallel", "16", *args])
        try:
            texts = [post(server.base, b)[0] for b in bodies]  # warm: prompts cached, the same answers
            forced0 = sum(v for k, v in server.metrics().items() if k.split("{")[0] == "jikji_forced_tokens_total")
            seq, par, tokens = [], [], 0
            for _ in range(reps):
                t0 = time.perf_counter()
                tokens = sum(post(server.base, b)[1] for b in bodies)
                seq.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
                    list(pool.map(lambda b: post(server.base, b), bodies))
                par.append(time.perf_counter() - t0)
            forced = sum(v for k, v in server.metrics().items() if k.split("{")[0] == "jikji_forced_tokens_total") - forced0
            out[label] = {"texts": texts, "tokens_per_pass": tokens, "forced_tokens_per_pass": forced / (2 * reps),
                          "one_at_a_time_s_median": statistics.median(seq), f"{len(bodies)}_at_once_s_median": statistics.median(par)}
        finally:
            server.stop()
    on, off = out["fast_forward"], out["no_fast_forward"]
    k = f"{len(bodies)}_at_once_s_median"
    return {
        "same_outputs": on.pop("texts") == off.pop("texts"),
        "speedup_one_at_a_time": off["one_at_a_time_s_median"] / on["one_at_a_time_s_median"],
        f"speedup_{len(bodies)}_at_once": off[k] / on[k],
        **out,
    }


def engine_stats(model_path, reps):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(SCHEMAS, f)
        path = f.name
    try:
        cmd = ["cargo", "run", "-q", "--release", "-p", "jikji-engine", "--example", "grammar_stats", "--", model_path, path, "--reps", str(reps)]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    med = [x["compile_ms_median"] for x in rows]
    forced = sum(x["forced_steps"] for x in rows)
    total = sum(x["output_tokens"] for x in rows)
    return {
        "compile_ms_median_over_schemas": statistics.median(med),
        "compile_ms_max_over_schemas": max(x["compile_ms_max"] for x in rows),
        "forced_tokens": forced,
        "output_tokens": total,
        "forced_fraction": forced / total if total else float("nan"),
        "trie_note": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "",
        "per_schema": {x["schema"]: {k: x[k] for k in ("compile_ms_median", "compile_ms_max", "output_tokens", "forced_steps")} for x in rows},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("JIKJI_BIN", str(ROOT / "target" / "release" / "jikji")))
    ap.add_argument("-m", "--model", default="qwen2.5-0.5b")
    ap.add_argument("-n", type=int, default=64, help="max_tokens of the throughput runs")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--skip-engine", action="store_true", help="skip the engine-side compile/forced-token figures")
    ap.add_argument("--only-ff", action="store_true", help="only the fast-forward comparison")
    a = ap.parse_args()
    os.environ["JIKJI_BIN"] = a.bin
    import conftest

    conftest.BIN = a.bin
    report = {"model": a.model, "note": "indicative: measured on a shared machine"}
    report["fast_forward"] = fast_forward(a.model, a.reps)
    if a.only_ff:
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return
    server = Server(a.model, ["--ctx", "8192", "--parallel", "32"])
    try:
        tp = {}
        for conc in (int(c) for c in a.concurrency.split(",")):
            free = throughput(server.base, a.model, conc, a.n, None)
            con = throughput(server.base, a.model, conc, a.n, LONG_ARRAY)
            tp[str(conc)] = {
                "free": free,
                "schema": con,
                "ratio_aggregate": con["aggregate_tokens_per_s"] / free["aggregate_tokens_per_s"],
                "ratio_per_stream": con["per_stream_decode_tokens_per_s_median"] / free["per_stream_decode_tokens_per_s_median"],
            }
        report["throughput"] = tp
        t = ttfts(server.base, a.model, a.reps)
        inc = [v["increase_ms"] for v in t.values()]
        report["ttft"] = {"increase_ms_median": statistics.median(inc), "increase_ms_max": max(inc), "per_schema": t}
        report["prefix_cache"] = prefix_cache(server, a.model)
    finally:
        server.stop()
    if not a.skip_engine:
        path = subprocess.run([a.bin, "pull", a.model], capture_output=True, text=True, check=True).stdout.strip()
        report["engine"] = engine_stats(path, 5)
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
