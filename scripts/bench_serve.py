#!/usr/bin/env python3
"""Closed-loop load client for OpenAI-compatible servers (jikji serve, llama-server).

N clients each send streaming chat requests back to back (greedy, fixed mixed
Korean/English prompts, max_tokens as given) until the request budget is used. Prints one
JSON object: aggregate generated tokens/s over the wall time, time-to-first-token p50/p99,
request and error counts. Generated tokens come from the final `usage` chunk
(`stream_options.include_usage`), or from the number of content chunks when a server sends
none.
"""

import argparse
import asyncio
import json
import time

import httpx

PROMPTS = [
    "Explain in a few sentences why the sky is blue.",
    "서울의 봄 날씨를 자세히 설명해 주세요.",
    "Write a short story about a robot who learns to paint.",
    "한국어와 영어의 문법 차이를 세 가지 설명해 주세요.",
    "List five tips for writing clean code, with one sentence each.",
    "직지심체요절이 왜 중요한 문화유산인지 설명해 주세요.",
    "Describe how a bicycle works to a ten-year-old.",
    "김치를 만드는 방법을 단계별로 알려 주세요.",
]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def one_request(client, url, model, prompt, max_tokens, stats):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = None
    chunks = 0
    usage_tokens = None
    try:
        async with client.stream("POST", url, json=body) as r:
            if r.status_code != 200:
                await r.aread()
                stats["errors"] += 1
                stats["error_codes"].append(r.status_code)
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                ev = json.loads(data)
                if ev.get("usage"):
                    usage_tokens = ev["usage"].get("completion_tokens")
                for ch in ev.get("choices") or []:
                    delta = ch.get("delta") or {}
                    if delta.get("content") or delta.get("reasoning_content"):
                        chunks += 1
                        if first is None:
                            first = time.perf_counter() - t0
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        stats["errors"] += 1
        stats["error_codes"].append(type(e).__name__)
        return
    stats["requests"] += 1
    stats["tokens"] += usage_tokens if usage_tokens is not None else chunks
    if first is not None:
        stats["ttft"].append(first)


async def run(base, model, concurrency, total, max_tokens, api_key):
    url = base.rstrip("/") + "/v1/chat/completions"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    stats = {"requests": 0, "errors": 0, "error_codes": [], "tokens": 0, "ttft": []}
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(900.0), limits=limits, headers=headers) as client:

        async def worker(wid):
            for i in counter:
                await one_request(client, url, model, PROMPTS[i % len(PROMPTS)], max_tokens, stats)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": stats["requests"],
        "errors": stats["errors"],
        "error_codes": stats["error_codes"][:10],
        "generated_tokens": stats["tokens"],
        "wall_s": round(wall, 3),
        "tok_per_s": round(stats["tokens"] / wall, 2) if wall > 0 else 0.0,
        "ttft_p50_s": round(percentile(stats["ttft"], 50), 4),
        "ttft_p99_s": round(percentile(stats["ttft"], 99), 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--requests", type=int, help="total requests [default: max(4, 2 × concurrency)]")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--api-key", default=None)
    a = ap.parse_args()
    total = a.requests or max(4, 2 * a.concurrency)
    res = asyncio.run(run(a.base, a.model, a.concurrency, total, a.max_tokens, a.api_key))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
