"""Many clients at once, disconnects, a full queue, Korean streaming and SIGTERM draining."""

import concurrent.futures as cf
import json
import signal
import threading
import time

import httpx

from conftest import QWEN, SMOL, Server

PROMPTS = [
    "Write one sentence about the sea.",
    "List three fruits.",
    "서울에 대해 한 문장으로 말해 주세요.",
    "What is 12 times 12?",
]


def stream_text(base, model, prompt, max_tokens, verify=True):
    """Streams a greedy chat reply over raw HTTP; returns (text, finish_reason)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    text, finish = [], None
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=600, verify=verify) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            data = line[len("data: "):]
            if data == "[DONE]":
                break
            ev = json.loads(data)
            ch = ev["choices"][0]
            text.append(ch["delta"].get("content") or "")
            finish = ch["finish_reason"] or finish
    return "".join(text), finish


def test_32_concurrent_streams_give_the_same_greedy_text_as_alone(smol):
    alone = {p: stream_text(smol.base, SMOL, p, 24) for p in PROMPTS}
    jobs = [PROMPTS[i % len(PROMPTS)] for i in range(32)]
    with cf.ThreadPoolExecutor(max_workers=32) as ex:
        results = list(ex.map(lambda p: (p, stream_text(smol.base, SMOL, p, 24)), jobs))
    assert len(results) == 32
    for p, got in results:
        assert got == alone[p], (p, got, alone[p])


def wait_for(pred, timeout=30.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def test_disconnect_cancels_the_generation_and_frees_its_slot(smol):
    assert wait_for(lambda: smol.metrics()["jikji_running_sequences"] == 0)
    base_kv = smol.metrics()["jikji_kv_cache_blocks_used"]
    cancelled_before = smol.metrics()["jikji_requests_cancelled_total"]
    body = {"model": SMOL, "prompt": "Count forever: 1, 2, 3,", "max_tokens": 900, "temperature": 0, "stream": True,
            "ignore_eos": True}
    with httpx.stream("POST", smol.url("/v1/completions"), json=body, timeout=120) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        got = 0
        for line in lines:
            if line.startswith("data: "):
                got += 1
            if got >= 3:
                break
        assert smol.metrics()["jikji_running_sequences"] >= 1
    # The client is gone: the sequence must stop and give back its KV blocks.
    assert wait_for(lambda: smol.metrics()["jikji_running_sequences"] == 0, timeout=10)
    assert wait_for(lambda: smol.metrics()["jikji_kv_cache_blocks_used"] <= base_kv, timeout=10)
    assert smol.metrics()["jikji_requests_cancelled_total"] >= cancelled_before + 1


def test_non_streaming_client_that_gives_up_cancels_its_generation(smol):
    assert wait_for(lambda: smol.metrics()["jikji_running_sequences"] == 0)
    cancelled_before = smol.metrics()["jikji_requests_cancelled_total"]
    body = {"model": SMOL, "prompt": "Count: 1, 2,", "max_tokens": 1000, "temperature": 0, "ignore_eos": True}
    try:
        httpx.post(smol.url("/v1/completions"), json=body, timeout=httpx.Timeout(30, read=1.5))
        raise AssertionError("1000 tokens should take longer than 1.5 s")
    except httpx.ReadTimeout:
        pass
    assert wait_for(lambda: smol.metrics()["jikji_requests_cancelled_total"] >= cancelled_before + 1, timeout=10)
    assert wait_for(lambda: smol.metrics()["jikji_running_sequences"] == 0, timeout=10)


def test_full_queue_answers_429_with_retry_after():
    s = Server(SMOL, ["--ctx", "512", "--parallel", "1", "--max-queue", "1"])
    try:
        body = {"model": SMOL, "prompt": "Tell a long story.", "max_tokens": 200, "temperature": 0, "ignore_eos": True}

        def post():
            return httpx.post(s.url("/v1/completions"), json=body, timeout=600)

        with cf.ThreadPoolExecutor(max_workers=6) as ex:
            rs = list(ex.map(lambda _: post(), range(6)))
        codes = sorted(r.status_code for r in rs)
        assert codes.count(200) >= 2, codes
        limited = [r for r in rs if r.status_code == 429]
        assert limited, codes
        for r in limited:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] == "rate_limit_error"
        assert set(codes) <= {200, 429}
    finally:
        s.stop()


def test_korean_stream_has_no_replacement_character_and_equals_non_stream(qwen):
    prompt = "한국의 전통 음식 세 가지를 설명해 주세요."
    text, finish = stream_text(qwen.base, QWEN, prompt, 64)
    assert "\ufffd" not in text
    assert any("\uac00" <= ch <= "\ud7a3" for ch in text), text
    r = httpx.post(
        qwen.url("/v1/chat/completions"),
        json={"model": QWEN, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64, "temperature": 0},
        timeout=600,
    )
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == text
    assert r.json()["choices"][0]["finish_reason"] == finish


def test_sigterm_drains_in_flight_refuses_new_and_exits_zero():
    s = Server(SMOL, ["--ctx", "512", "--parallel", "4", "--shutdown-timeout", "60"])
    result = {}
    first_chunk = threading.Event()

    def long_stream():
        body = {"model": SMOL, "prompt": "Count: 1, 2, 3,", "max_tokens": 120, "temperature": 0, "stream": True,
                "ignore_eos": True}
        parts, finish, done = [], None, False
        with httpx.stream("POST", s.url("/v1/completions"), json=body, timeout=300) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                first_chunk.set()
                data = line[len("data: "):]
                if data == "[DONE]":
                    done = True
                    break
                ch = json.loads(data)["choices"][0]
                parts.append(ch["text"])
                finish = ch["finish_reason"] or finish
        result.update(text="".join(parts), finish=finish, done=done)

    try:
        t = threading.Thread(target=long_stream)
        t.start()
        assert first_chunk.wait(120)
        s.signal(signal.SIGTERM)
        time.sleep(0.3)
        r = httpx.post(s.url("/v1/completions"), json={"model": SMOL, "prompt": "Hi", "max_tokens": 2}, timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "shutting_down"
        t.join(300)
        assert result.get("done"), result
        assert result["finish"] == "length"
        assert s.proc.wait(timeout=60) == 0, s.output()
    finally:
        s.stop()
