"""A token limit that cuts a Hangul syllable: the server's text ends at the last whole
character, streamed or not, never in U+FFFD (real binary, qwen2.5-0.5b)."""

import json

import httpx

from conftest import QWEN

RARE = "다음 글자를 그대로 따라 쓰세요: 뷁 햏 똠 꿻 쀍"


def body(max_tokens, **kw):
    return {"model": QWEN, "messages": [{"role": "user", "content": RARE}], "max_tokens": max_tokens, "temperature": 0, **kw}


def first_cut(tokens):
    """(n, text): the first token count whose bytes end inside a character, and the text
    complete up to there."""
    acc = b""
    for i, t in enumerate(tokens):
        acc += bytes(t["bytes"])
        try:
            acc.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.reason == "unexpected end of data":
                return i + 1, acc[: e.start].decode("utf-8")
    return None


def test_token_limit_inside_a_hangul_syllable_ends_at_a_whole_character(qwen):
    r = httpx.post(qwen.url("/v1/chat/completions"), json=body(40, logprobs=True), timeout=300)
    r.raise_for_status()
    cut = first_cut(r.json()["choices"][0]["logprobs"]["content"])
    assert cut, "no answer token ends inside a syllable: the test has nothing to check"
    n, complete = cut
    r = httpx.post(qwen.url("/v1/chat/completions"), json=body(n), timeout=300)
    r.raise_for_status()
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == complete
    assert r.json()["usage"]["completion_tokens"] == n
    streamed = ""
    with httpx.stream("POST", qwen.url("/v1/chat/completions"), json=body(n, stream=True), timeout=300) as s:
        for line in s.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for c in json.loads(line[6:])["choices"]:
                    piece = c["delta"].get("content") or ""
                    assert "\ufffd" not in piece, piece
                    streamed += piece
    assert streamed == complete
