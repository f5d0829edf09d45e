"""Hostile grammars against a real `jikji serve` on qwen2.5-0.5b: a 20,000-level nested
schema, a 5 MB schema, regexes that blow up, pathological regexes, left-recursive and
ambiguous Lark grammars, grammars whose language is empty or whose first mask is too
wide, and unsupported JSON Schema keywords. Each is answered promptly (a 400 naming the
problem, or for what the Earley parser and lazy lexer handle fine, a correct answer) while
an unconstrained stream started before them keeps producing tokens; the server is healthy
after.

The 3 s bound is a hang detector (the compile timeout is 2 s), not a performance claim.
"""

import json
import re
import threading
import time

import httpx
import pytest

from conftest import QWEN

BOUND_S = 3.0


class Background:
    """Unconstrained greedy streams (EOS ignored), one after another until stopped,
    recording when each piece arrives."""

    def __init__(self, base):
        self.base = base
        self.times = []
        self.error = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        body = {
            "model": QWEN,
            "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
            "max_tokens": 600,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
        }
        try:
            with httpx.Client(timeout=600) as c:
                while not self.stopping.is_set():
                    with c.stream("POST", self.base + "/v1/chat/completions", json=body) as r:
                        assert r.status_code == 200, r.status_code
                        for line in r.iter_lines():
                            if line.startswith("data: ") and '"content"' in line:
                                self.times.append(time.monotonic())
                            if self.stopping.is_set():
                                break
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 120
        while len(self.times) < 3 and time.monotonic() < deadline and self.error is None:
            time.sleep(0.05)
        assert len(self.times) >= 3, f"the background stream did not start: {self.error}"

    def pieces_between(self, t0, t1):
        return sum(1 for t in self.times if t0 <= t <= t1)


def post(base, body_text):
    """POSTs a raw JSON body; returns (status, json body, seconds)."""
    t0 = time.monotonic()
    r = httpx.post(base + "/v1/chat/completions", content=body_text.encode(), headers={"content-type": "application/json"}, timeout=60)
    dt = time.monotonic() - t0
    try:
        data = r.json()
    except ValueError:
        data = {"raw": r.text}
    return r.status_code, data, dt


def chat_body(extra, max_tokens=16):
    body = {"model": QWEN, "messages": [{"role": "user", "content": "Answer."}], "max_tokens": max_tokens, "temperature": 0}
    body.update(extra)
    return json.dumps(body)


def deep_schema_body(levels):
    """A chat body whose json_schema nests `levels` deep (built as text: no recursion)."""
    schema = '{"type": "array", "items": ' * levels + '{"type": "string"}' + "}" * levels
    return json.dumps({"model": QWEN, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).rstrip("}") + ', "json_schema": ' + schema + "}"


def message(data):
    return json.dumps(data.get("error", data), ensure_ascii=False)


@pytest.fixture(scope="module")
def background(qwen):
    bg = Background(qwen.base)
    bg.start()
    yield bg
    bg.stopping.set()
    bg.thread.join(timeout=120)
    assert bg.error is None, f"the background stream failed: {bg.error}"


def refused(qwen, background, body_text, needle, what):
    t0 = time.monotonic()
    status, data, dt = post(qwen.base, body_text)
    assert status == 400, f"{what}: HTTP {status}: {message(data)[:500]}"
    assert dt < BOUND_S, f"{what}: answered after {dt:.2f} s"
    assert re.search(needle, message(data), re.I), f"{what}: message lacks {needle!r}: {message(data)[:500]}"
    t1 = time.monotonic()
    if t1 - t0 > 0.5:
        assert background.pieces_between(t0, t1) > 0, f"{what}: the free stream produced nothing in {t1 - t0:.2f} s"
    assert background.error is None, background.error


def test_a_20000_level_schema_is_refused_promptly(qwen, background):
    refused(qwen, background, deep_schema_body(20_000), r"deep|nest|recursion", "20,000-level schema")
    # Deep but parseable (under JSON's own nesting limit): refused by the depth cap.
    refused(qwen, background, deep_schema_body(100), r"nests deeper than 64", "100-level schema")


def test_a_5_mb_schema_is_refused_promptly(qwen, background):
    props = {f"field_{i:06d}": {"type": "string", "description": "x" * 60} for i in range(60_000)}
    body = chat_body({"response_format": {"type": "json_schema", "json_schema": {"name": "big", "schema": {"type": "object", "properties": props}}}})
    assert len(body) > 5_000_000
    refused(qwen, background, body, r"at most 262144", "5 MB schema")


@pytest.mark.parametrize("rx", [r"[a-z]{1000}{1000}", r"((a{100}){100}){100}", r"(" * 200 + "a" + ")" * 200])
def test_regexes_that_blow_up_are_refused(qwen, background, rx):
    refused(qwen, background, chat_body({"structured_outputs": {"regex": rx}}), r"regex", f"regex {rx[:30]}")


@pytest.mark.parametrize("rx", [r"(a|aa)*b", r"(a*)*b", r"(x+x+)+y", r"(.*a){20}"])
def test_pathological_backtracking_regexes_answer_promptly_and_match(qwen, background, rx):
    status, data, dt = post(qwen.base, chat_body({"structured_outputs": {"regex": rx}}, max_tokens=48))
    assert dt < BOUND_S + 8, f"{rx}: answered after {dt:.2f} s"
    if status == 200:
        ch = data["choices"][0]
        if ch["finish_reason"] == "stop":
            assert re.fullmatch(rx, ch["message"]["content"]), ch
    else:
        assert status == 400, f"{rx}: HTTP {status}: {message(data)}"


def test_left_recursive_and_ambiguous_lark_grammars_answer_inside_their_language(qwen, background):
    ambiguous = 'start: e\ne: e "+" e | e "*" e | NUMBER\nNUMBER: /[0-9]{1,3}/'
    left = 'start: a\na: a "x" | "x"'
    for g, rx in [(ambiguous, r"[0-9]{1,3}([+*][0-9]{1,3})*"), (left, r"x+")]:
        status, data, dt = post(qwen.base, chat_body({"grammar": g}, max_tokens=12))
        assert status == 200, f"{g!r}: HTTP {status}: {message(data)}"
        out = data["choices"][0]["message"]["content"]
        assert re.fullmatch(rx, out), f"{g!r}: {out!r}"


def test_grammars_with_no_language_or_too_wide_a_first_mask_are_refused(qwen, background):
    refused(qwen, background, chat_body({"grammar": 'start: a\na: a "x"'}), r"matches no output", "left recursion without a base case")
    refused(qwen, background, chat_body({"grammar": "start: nope"}), r"nope", "an undefined rule")
    wide = "start: " + " ".join(f"r{i}" for i in range(3000)) + "\n" + "\n".join(f'r{i}: "a"?' for i in range(3000))
    refused(qwen, background, chat_body({"structured_outputs": {"grammar": wide}}), r"compile", "a first mask past the Earley budget")


@pytest.mark.parametrize(
    "keyword,schema",
    [
        ("if", {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}),
        ("unevaluatedProperties", {"type": "object", "unevaluatedProperties": False}),
        ("dependentSchemas", {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}}),
    ],
)
def test_unsupported_schema_keywords_are_400s_naming_the_keyword(qwen, background, keyword, schema):
    body = chat_body({"response_format": {"type": "json_schema", "json_schema": {"name": "k", "schema": schema}}})
    refused(qwen, background, body, re.escape(keyword), f"keyword {keyword}")


def test_the_background_stream_kept_producing_and_the_server_is_healthy(qwen, background):
    # Runs last in this module: every hostile request above was answered while the
    # background stream was running; it must have produced tokens throughout.
    gaps = [b - a for a, b in zip(background.times, background.times[1:])]
    assert gaps and max(gaps) < BOUND_S, f"the background stream stalled for {max(gaps):.2f} s"
    assert httpx.get(qwen.url("/health"), timeout=10).status_code == 200
    r = httpx.post(qwen.url("/v1/chat/completions"), json={"model": QWEN, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}, timeout=120)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
