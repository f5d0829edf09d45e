"""The OpenAI API of `jikji serve`, driven by the official `openai` package and raw HTTP."""

import json

import httpx
import openai
import pytest

from conftest import SMOL

MSG = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def sse_events(resp: httpx.Response):
    """Parses a raw SSE body into JSON events, asserting OpenAI's exact framing."""
    body = resp.read().decode("utf-8")
    assert body.endswith("data: [DONE]\n\n"), body[-200:]
    events = body.split("\n\n")
    assert events[-1] == ""
    out = []
    for ev in events[:-2]:
        assert ev.startswith("data: "), ev
        assert "\n" not in ev, ev
        out.append(json.loads(ev[len("data: "):]))
    assert events[-2] == "data: [DONE]"
    return out


def test_chat_completion_has_openai_shape_and_usage(smol):
    c = smol.client()
    r = c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=16, temperature=0)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == SMOL
    assert r.system_fingerprint
    assert len(r.choices) == 1
    ch = r.choices[0]
    assert ch.index == 0
    assert ch.message.role == "assistant"
    assert ch.message.content
    assert ch.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= 16
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens >= 0


def test_completion_has_openai_shape(smol):
    c = smol.client()
    r = c.completions.create(model=SMOL, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.id.startswith("cmpl-")
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 8


def test_max_tokens_ends_with_length(smol):
    c = smol.client()
    r = c.completions.create(model=SMOL, prompt="1, 2, 3, 4,", max_tokens=5, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    r = c.chat.completions.create(model=SMOL, messages=MSG, max_completion_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_chat_stream_deltas_equal_the_non_streamed_text(smol):
    c = smol.client()
    full = c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=24, temperature=0)
    chunks = list(c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=24, temperature=0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == full.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason
    assert all(ch.choices[0].finish_reason is None for ch in chunks[:-1])


def test_raw_stream_is_framed_like_openai(smol):
    body = {"model": SMOL, "messages": MSG, "max_tokens": 8, "temperature": 0, "stream": True}
    with httpx.stream("POST", smol.url("/v1/chat/completions"), json=body, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_stream_include_usage_sends_a_final_usage_chunk(smol):
    c = smol.client()
    chunks = list(
        c.chat.completions.create(
            model=SMOL, messages=MSG, max_tokens=6, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert 0 < last.usage.completion_tokens <= 6
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(ch.usage is None for ch in chunks[:-1])


def test_completion_stream_matches_non_stream(smol):
    c = smol.client()
    full = c.completions.create(model=SMOL, prompt="Once upon a time", max_tokens=16, temperature=0)
    chunks = list(c.completions.create(model=SMOL, prompt="Once upon a time", max_tokens=16, temperature=0, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == full.choices[0].text
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason


def test_n_choices_have_distinct_indices_and_prompt_counted_once(smol):
    c = smol.client()
    one = c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=8, temperature=0)
    r = c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=8, temperature=0.9, n=3, seed=7, logprobs=True)
    assert sorted(ch.index for ch in r.choices) == [0, 1, 2]
    assert r.usage.prompt_tokens == one.usage.prompt_tokens
    assert r.usage.completion_tokens == sum(len(ch.logprobs.content) for ch in r.choices)


def test_seed_makes_sampling_reproducible(smol):
    c = smol.client()
    a = c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=16, temperature=1.0, seed=1234)
    b = c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=16, temperature=1.0, seed=1234)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_stop_string_is_not_in_the_output(smol):
    c = smol.client()
    free = c.completions.create(model=SMOL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0).choices[0].text
    assert "6" in free, free
    r = c.completions.create(model=SMOL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=["6"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == free[: free.index("6")]


def test_chat_logprobs_cover_every_token(smol):
    c = smol.client()
    r = c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    lp = r.choices[0].logprobs.content
    assert len(lp) == r.usage.completion_tokens
    for e in lp:
        assert e.logprob <= 0.0
        assert bytes(e.bytes).decode("utf-8", errors="replace") is not None
        assert len(e.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert e.logprob >= max(t.logprob for t in e.top_logprobs) - 1e-4


def test_completion_legacy_logprobs(smol):
    c = smol.client()
    r = c.completions.create(model=SMOL, prompt="Hello", max_tokens=4, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert all(len(t) <= 2 for t in lp.top_logprobs)


def test_models_lists_the_served_model(smol):
    c = smol.client()
    ids = [m.id for m in c.models.list().data]
    assert ids == [SMOL]
    assert c.models.retrieve(SMOL).id == SMOL


def test_unknown_model_is_404_model_not_found(smol):
    c = smol.client()
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=4)
    assert e.value.body["code"] == "model_not_found"


def test_bad_json_is_400_with_openai_error(smol):
    r = httpx.post(
        smol.url("/v1/chat/completions"), content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body,param",
    [
        ({"messages": MSG, "temperature": "hot"}, "temperature"),
        ({"messages": MSG, "n": 0}, "n"),
        ({"messages": MSG, "max_tokens": -3}, "max_tokens"),
        ({"messages": MSG, "stop": [""]}, "stop"),
        ({"messages": MSG, "stop": [str(i) for i in range(100)]}, "stop"),
        ({"messages": MSG, "logit_bias": {str(i): 1 for i in range(5000)}}, "logit_bias"),
        ({"messages": MSG, "logit_bias": {"99999999": 1}}, "logit_bias"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({}, "messages"),
    ],
)
def test_invalid_fields_are_400_naming_the_param(smol, body, param):
    r = httpx.post(smol.url("/v1/chat/completions"), json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_prompt_longer_than_context_is_400(smol):
    c = smol.client()
    long = "word " * 3000  # far beyond --ctx 1024
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model=SMOL, prompt=long, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": long}], max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"


def test_max_tokens_beyond_context_is_400(smol):
    c = smol.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=SMOL, messages=MSG, max_tokens=5000)
    assert e.value.body["code"] == "context_length_exceeded"
    assert e.value.body["param"] == "max_tokens"


def test_oversized_body_is_413(smol):
    body = b'{"model": "x", "prompt": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    r = httpx.post(smol.url("/v1/completions"), content=body, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_unknown_route_is_404_and_wrong_method_405(smol):
    r = httpx.get(smol.url("/v1/nothing"))
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(smol.url("/v1/chat/completions"))
    assert r.status_code == 405 and "error" in r.json()


def test_tokenize_detokenize_round_trip(smol):
    text = "Hello, 세계! 직지 means 'direct pointing'."
    r = httpx.post(smol.url("/tokenize"), json={"content": text})
    assert r.status_code == 200
    ids = r.json()["tokens"]
    assert ids and all(isinstance(i, int) for i in ids)
    r = httpx.post(smol.url("/detokenize"), json={"tokens": ids})
    assert r.status_code == 200
    assert r.json()["content"] == text
    r = httpx.post(smol.url("/tokenize"), json={"content": "Hi", "with_pieces": True})
    assert all(set(t) == {"id", "piece"} for t in r.json()["tokens"])
    r = httpx.post(smol.url("/detokenize"), json={"tokens": [10**9]})
    assert r.status_code == 400


def test_health_and_metrics(smol):
    r = httpx.get(smol.url("/health"))
    assert r.status_code == 200 and r.json()["status"] == "ok"
    m = smol.metrics()
    for name in (
        "jikji_prompt_tokens_total",
        "jikji_generated_tokens_total",
        "jikji_queue_depth",
        "jikji_running_sequences",
        "jikji_kv_cache_usage_ratio",
        "jikji_time_to_first_token_seconds_count",
        "jikji_inter_token_seconds_count",
    ):
        assert name in m, name
    assert any(k.startswith('jikji_requests_total{status="200"}') for k in m)
    assert 0.0 <= m["jikji_kv_cache_usage_ratio"] <= 1.0
