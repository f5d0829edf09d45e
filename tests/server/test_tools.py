"""Tool calling through the official `openai` client against a real `jikji serve`.

On qwen2.5-0.5b: `required`, a named function and `auto` (a realistic weather question
produces the call), streamed deltas assembling to exactly the non-streamed calls (greedy),
arguments validated with `jsonschema` against each function's schema, and a round trip
with a tool result whose prompt is the one Hugging Face renders.

On the tiny random-weight models of tests/fixtures/tiny, each served with a family's real
template (`--chat-template`): with random weights only the grammar can make a call parse,
so `required` and named calls parsing and validating there is the grammar's doing.
"""

import json
import pathlib

import httpx
import jsonschema
import pytest

from conftest import QWEN, ROOT, Server

TEMPLATES = ROOT / "tests" / "fixtures" / "chat_templates"
TINY = ROOT / "tests" / "fixtures" / "tiny"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Seoul", "maxLength": 24},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in an IANA time zone",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string", "maxLength": 24}},
            "required": ["tz"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER, TIME]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
WEATHER_Q = [{"role": "user", "content": "What's the weather like in Seoul right now? Please use celsius."}]


def assert_valid_calls(message, names=tuple(SCHEMAS)):
    assert message.tool_calls, f"no tool calls in {message}"
    for call in message.tool_calls:
        assert call.type == "function"
        assert call.id and call.function.name in names, call
        args = json.loads(call.function.arguments)
        jsonschema.validate(args, SCHEMAS[call.function.name])
    return message.tool_calls


@pytest.fixture(scope="module")
def qwen_tools():
    s = Server(QWEN, ["--ctx", "2048", "--parallel", "4"])
    yield s
    s.stop()


def test_required_call_parses_and_validates(qwen_tools):
    r = qwen_tools.client().chat.completions.create(
        model=QWEN, messages=WEATHER_Q, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=200
    )
    choice = r.choices[0]
    calls = assert_valid_calls(choice.message)
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert all(c.id.startswith("call_") for c in calls)


def test_named_choice_calls_that_function(qwen_tools):
    r = qwen_tools.client().chat.completions.create(
        model=QWEN,
        messages=WEATHER_Q,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        temperature=0,
        max_tokens=200,
    )
    calls = assert_valid_calls(r.choices[0].message, names=("get_time",))
    assert [c.function.name for c in calls] == ["get_time"]


def test_auto_realistic_request_produces_the_call(qwen_tools):
    r = qwen_tools.client().chat.completions.create(
        model=QWEN, messages=WEATHER_Q, tools=TOOLS, temperature=0, max_tokens=200
    )
    calls = assert_valid_calls(r.choices[0].message)
    assert calls[0].function.name == "get_weather"
    assert "seoul" in json.loads(calls[0].function.arguments)["city"].lower()
    assert r.choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_answers_in_text(qwen_tools):
    r = qwen_tools.client().chat.completions.create(
        model=QWEN, messages=WEATHER_Q, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=40
    )
    assert not r.choices[0].message.tool_calls
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")


def assemble(chunks):
    """Content and calls as a streaming client assembles them, checking OpenAI's delta order."""
    content, calls = "", {}
    for ch in chunks:
        for c in ch.choices:
            d = c.delta
            content += d.content or ""
            for t in d.tool_calls or []:
                if t.index not in calls:
                    assert t.id and t.type == "function" and t.function.name, f"first delta of a call: {t}"
                    calls[t.index] = {"id": t.id, "name": t.function.name, "arguments": ""}
                else:
                    assert t.id is None and t.function.name is None, f"later delta: {t}"
                calls[t.index]["arguments"] += t.function.arguments or ""
    return content, [calls[i] for i in sorted(calls)]


TWO_CALLS_Q = [{"role": "user", "content": "Weather in Seoul and the local time in Asia/Seoul, please."}]


@pytest.mark.parametrize("tool_choice, messages", [("required", TWO_CALLS_Q), ("auto", WEATHER_Q)], ids=["required", "auto"])
def test_streamed_deltas_assemble_to_exactly_the_non_streamed_calls(qwen_tools, tool_choice, messages):
    client = qwen_tools.client()
    kw = dict(model=QWEN, messages=messages, tools=TOOLS, tool_choice=tool_choice, temperature=0, max_tokens=300)
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, **kw))
    content, streamed = assemble(chunks)
    expected = [(c.function.name, c.function.arguments) for c in assert_valid_calls(whole.choices[0].message)]
    assert [(c["name"], c["arguments"]) for c in streamed] == expected
    assert content == (whole.choices[0].message.content or "")
    finish = [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason]
    assert finish == [whole.choices[0].finish_reason] == ["tool_calls"]


def test_round_trip_renders_as_hugging_face_and_answers(qwen_tools):
    # The conversation of the `call_and_result` rendering that transformers produced for
    # Qwen2.5's template (tests/fixtures/chat_templates/renderings.json), sent the way
    # OpenAI clients send it: arguments as JSON text.
    case = next(
        r for r in json.loads((TEMPLATES / "renderings.json").read_text())
        if r["template"] == "Qwen-Qwen2.5-7B-Instruct.jinja" and r["case"] == "call_and_result"
    )
    messages = json.loads(json.dumps(case["messages"]))
    for m in messages:
        for c in m.get("tool_calls") or []:
            c["function"]["arguments"] = json.dumps(c["function"]["arguments"], ensure_ascii=False)
    r = qwen_tools.client().chat.completions.create(
        model=QWEN, messages=messages, tools=case["tools"], temperature=0, max_tokens=60
    )
    toks = httpx.post(qwen_tools.url("/tokenize"), json={"content": case["rendered"]}, timeout=30).json()["tokens"]
    assert r.usage.prompt_tokens == len(toks), "the prompt is not the one transformers renders"
    choice = r.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls


@pytest.mark.parametrize(
    "body, param",
    [
        ({"tools": {"type": "function"}}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"description": "x"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}, "tools[0].function.parameters"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string", "format": "no-such-format"}}}}}], "tool_choice": "required"},
            "tools",
        ),
    ],
)
def test_bad_tool_definitions_are_400_naming_the_field(qwen_tools, body, param):
    r = httpx.post(qwen_tools.url("/v1/chat/completions"), json={"model": QWEN, "messages": WEATHER_Q, **body}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


# Tiny random-weight models with each family's real template.
FAMILIES = [
    ("qwen3-1", "Qwen-Qwen3-0.6B.jinja"),
    ("llama-1", "meta-llama-Llama-3.1-8B-Instruct.jinja"),
    ("deepseek_v3-1", "deepseek-ai-DeepSeek-V3.1.jinja"),
    ("qwen3-1", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"),
    ("exaone4-1", "LGAI-EXAONE-4.0.jinja"),
    ("llama-1", "mistralai-Mistral-Nemo-Instruct-2407.jinja"),
    ("exaone-1", "LGAI-EXAONE-3.5.jinja"),
]


@pytest.fixture(scope="module", params=FAMILIES, ids=[f"{m}+{t.split('.jinja')[0]}" for m, t in FAMILIES])
def tiny(request):
    model, template = request.param
    s = Server(str(TINY / f"{model}.gguf"), ["--ctx", "4096", "--parallel", "4", "--chat-template", str(TEMPLATES / template)])
    yield s
    s.stop()


# Random weights that open a thought (Qwen3's template lets the model think before a forced
# call) would only end it by chance: these tests turn thinking off where a template has it.
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_random_weights_still_call_when_the_grammar_forces_it(tiny, seed):
    sampling = {"temperature": 0} if seed is None else {"temperature": 1.0, "seed": seed}
    client = tiny.client()
    for choice, names in [("required", tuple(SCHEMAS)), ({"type": "function", "function": {"name": "get_time"}}, ("get_time",))]:
        r = client.chat.completions.create(
            model=tiny.model, messages=WEATHER_Q, tools=TOOLS, tool_choice=choice,
            parallel_tool_calls=False, max_tokens=600, extra_body=NO_THINKING, **sampling,
        )
        calls = assert_valid_calls(r.choices[0].message, names)
        assert len(calls) == 1
        assert r.choices[0].finish_reason == "tool_calls"


def test_random_weights_stream_the_same_forced_call(tiny):
    client = tiny.client()
    # One call: random weights under a parallel-calls grammar may go on calling until
    # max_tokens, which cuts the last call (a real model stops).
    kw = dict(model=tiny.model, messages=WEATHER_Q, tools=TOOLS, tool_choice="required",
              parallel_tool_calls=False, temperature=0, max_tokens=600, extra_body=NO_THINKING)
    whole = client.chat.completions.create(**kw)
    _, streamed = assemble(list(client.chat.completions.create(stream=True, **kw)))
    expected = [(c.function.name, c.function.arguments) for c in assert_valid_calls(whole.choices[0].message)]
    assert [(c["name"], c["arguments"]) for c in streamed] == expected


def test_chat_template_kwargs_reach_the_template_and_an_opened_thought_is_reasoning():
    # EXAONE 4's template opens a thought in the generation prompt only with
    # `enable_thinking: true`; the reply then starts inside it.
    s = Server(str(TINY / "exaone4-1.gguf"), ["--chat-template", str(TEMPLATES / "LGAI-EXAONE-4.0.jinja")])
    try:
        client = s.client()
        kw = dict(model=s.model, messages=WEATHER_Q, temperature=0, max_tokens=12)
        on = client.chat.completions.create(extra_body={"chat_template_kwargs": {"enable_thinking": True}}, **kw).choices[0].message
        off = client.chat.completions.create(**kw).choices[0].message
        assert getattr(on, "reasoning_content", None), on
        assert not getattr(off, "reasoning_content", None), off
        assert off.content
        for bad in [{"messages": []}, "yes"]:
            r = httpx.post(s.url("/v1/chat/completions"), json={"messages": WEATHER_Q, "chat_template_kwargs": bad}, timeout=60)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == "chat_template_kwargs", r.text
    finally:
        s.stop()
