"""Structured output end to end: the official `openai` client against a real `jikji serve`
on qwen2.5-0.5b. Every output of 20+ JSON schemas validates with Python's `jsonschema`
(formats checked), greedy and seeded-sampled, streamed and not, alone and inside 16
concurrent requests of which half are unconstrained, with n > 1, on /v1/chat/completions
and /v1/completions; regex and choice outputs match.

The schemas bound every string, array and number so each answer is short (CI time): a
request whose answer hit `max_tokens` would be cut, so every constrained answer must also
end with finish_reason "stop".
"""

import concurrent.futures
import json
import re

import jsonschema
import pytest

from conftest import QWEN, Server

MAX_TOKENS = 160

SCHEMAS = {
    "flat_object": {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    "nested_objects": {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 16},
                    "address": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "maxLength": 16}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                        "required": ["city", "zip"],
                        "additionalProperties": False,
                    },
                },
                "required": ["name", "address"],
                "additionalProperties": False,
            }
        },
        "required": ["person"],
        "additionalProperties": False,
    },
    "array_min_max": {
        "type": "object",
        "properties": {"fruits": {"type": "array", "items": {"type": "string", "maxLength": 10}, "minItems": 2, "maxItems": 4}},
        "required": ["fruits"],
        "additionalProperties": False,
    },
    "array_of_objects": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 99}, "done": {"type": "boolean"}},
            "required": ["id", "done"],
            "additionalProperties": False,
        },
        "minItems": 1,
        "maxItems": 3,
    },
    "enum_strings": {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}, "size": {"enum": ["S", "M", "L", "XL"]}},
        "required": ["color", "size"],
        "additionalProperties": False,
    },
    "enum_mixed_and_const": {
        "type": "object",
        "properties": {"level": {"enum": [1, 2, 3, "max", None]}, "version": {"const": "v2"}},
        "required": ["level", "version"],
        "additionalProperties": False,
    },
    "integer_range": {
        "type": "object",
        "properties": {"year": {"type": "integer", "minimum": 1900, "maximum": 2100}, "month": {"type": "integer", "minimum": 1, "maximum": 12}},
        "required": ["year", "month"],
        "additionalProperties": False,
    },
    "number_exclusive_range": {
        "type": "object",
        "properties": {
            "temperature": {"type": "number", "exclusiveMinimum": -50, "exclusiveMaximum": 60},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["temperature", "ratio"],
        "additionalProperties": False,
    },
    "string_pattern": {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"}, "phone": {"type": "string", "pattern": "^010-[0-9]{4}-[0-9]{4}$"}},
        "required": ["code", "phone"],
        "additionalProperties": False,
    },
    "string_length": {
        "type": "object",
        "properties": {"word": {"type": "string", "minLength": 3, "maxLength": 8}},
        "required": ["word"],
        "additionalProperties": False,
    },
    "format_date": {
        "type": "object",
        "properties": {"birthday": {"type": "string", "format": "date"}},
        "required": ["birthday"],
        "additionalProperties": False,
    },
    "format_email": {
        "type": "object",
        "properties": {"email": {"type": "string", "format": "email"}},
        "required": ["email"],
        "additionalProperties": False,
    },
    "format_ipv4_uuid": {
        "type": "object",
        "properties": {"ip": {"type": "string", "format": "ipv4"}, "id": {"type": "string", "format": "uuid"}},
        "required": ["ip", "id"],
        "additionalProperties": False,
    },
    "any_of": {
        "type": "object",
        "properties": {
            "value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 999}, {"type": "string", "maxLength": 8}, {"type": "null"}]}
        },
        "required": ["value"],
        "additionalProperties": False,
    },
    "any_of_objects": {
        "anyOf": [
            {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer", "minimum": 1, "maximum": 9}}, "required": ["kind", "lives"], "additionalProperties": False},
            {"type": "object", "properties": {"kind": {"const": "dog"}, "breed": {"type": "string", "maxLength": 12}}, "required": ["kind", "breed"], "additionalProperties": False},
        ]
    },
    "ref_defs": {
        "$defs": {
            "point": {
                "type": "object",
                "properties": {"x": {"type": "integer", "minimum": -9, "maximum": 9}, "y": {"type": "integer", "minimum": -9, "maximum": 9}},
                "required": ["x", "y"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}},
        "required": ["start", "end"],
        "additionalProperties": False,
    },
    "ref_in_array": {
        "$defs": {"tag": {"type": "string", "enum": ["urgent", "later", "done"]}},
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 1, "maxItems": 3}},
        "required": ["tags"],
        "additionalProperties": False,
    },
    "korean_properties": {
        "type": "object",
        "properties": {
            "이름": {"type": "string", "maxLength": 10},
            "나이": {"type": "integer", "minimum": 0, "maximum": 120},
            "도시": {"enum": ["서울", "부산", "대구"]},
        },
        "required": ["이름", "나이", "도시"],
        "additionalProperties": False,
    },
    "korean_nested": {
        "type": "object",
        "properties": {
            "주문": {
                "type": "object",
                "properties": {"상품": {"type": "string", "maxLength": 12}, "수량": {"type": "integer", "minimum": 1, "maximum": 10}},
                "required": ["상품", "수량"],
                "additionalProperties": False,
            },
            "배송": {"type": "boolean"},
        },
        "required": ["주문", "배송"],
        "additionalProperties": False,
    },
    "optional_properties": {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 20}, "subtitle": {"type": "string", "maxLength": 20}},
        "required": ["title"],
        "additionalProperties": False,
    },
    "boolean_and_null": {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "error": {"type": "null"}},
        "required": ["ok", "error"],
        "additionalProperties": False,
    },
    "tuple_prefix_items": {
        "type": "array",
        "prefixItems": [{"type": "string", "maxLength": 8}, {"type": "integer", "minimum": 0, "maximum": 100}],
        "items": False,
        "minItems": 2,
    },
}

PROMPTS = {
    "format_email": "Give the contact email of a Korean company as JSON.",
    "format_date": "When was King Sejong born? Answer as JSON.",
    "korean_properties": "서울에 사는 사람 한 명을 JSON으로 소개해 주세요.",
    "korean_nested": "온라인 주문 하나를 JSON으로 만들어 주세요.",
}


def prompt_for(name):
    return PROMPTS.get(name, f"Produce a short JSON example for the '{name.replace('_', ' ')}' case.")


def validate(schema, text, what):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise AssertionError(f"{what}: not JSON ({e}): {text!r}") from e
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(value)]
    assert not errors, f"{what}: {text!r} does not validate: {errors}"


def response_format(name):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name], "strict": True}}


@pytest.fixture(scope="module")
def server():
    s = Server(QWEN, ["--ctx", "2048", "--parallel", "16"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def chat(client, name, stream=False, **kw):
    messages = [{"role": "user", "content": prompt_for(name)}]
    args = dict(model=QWEN, messages=messages, max_tokens=MAX_TOKENS, response_format=response_format(name), **kw)
    if not stream:
        r = client.chat.completions.create(**args)
        return r.choices[0].message.content, r.choices[0].finish_reason
    text, finish = "", None
    for chunk in client.chat.completions.create(stream=True, **args):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def test_there_are_at_least_20_schemas_and_each_is_a_valid_schema():
    assert len(SCHEMAS) >= 20
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_greedy_output_validates_streamed_or_not(client, name):
    text, finish = chat(client, name, temperature=0)
    assert finish == "stop", f"{name}: finish {finish}: {text!r}"
    validate(SCHEMAS[name], text, f"{name} greedy")
    streamed, finish = chat(client, name, stream=True, temperature=0)
    assert finish == "stop"
    assert streamed == text, f"{name}: the stream assembles to {streamed!r}, not {text!r}"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_seeded_sampled_output_validates(client, name):
    stream = sorted(SCHEMAS).index(name) % 2 == 0
    text, finish = chat(client, name, stream=stream, temperature=1.0, top_p=0.95, seed=11)
    assert finish == "stop", f"{name}: finish {finish}: {text!r}"
    validate(SCHEMAS[name], text, f"{name} sampled")


def test_the_same_seed_gives_the_same_constrained_output(client):
    a, _ = chat(client, "korean_properties", temperature=1.0, seed=5)
    b, _ = chat(client, "korean_properties", stream=True, temperature=1.0, seed=5)
    assert a == b
    validate(SCHEMAS["korean_properties"], a, "seeded")


def test_n_choices_each_validate(client):
    name = "nested_objects"
    r = client.chat.completions.create(
        model=QWEN,
        messages=[{"role": "user", "content": prompt_for(name)}],
        max_tokens=MAX_TOKENS,
        response_format=response_format(name),
        n=3,
        temperature=1.0,
        seed=3,
    )
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    for c in r.choices:
        assert c.finish_reason == "stop"
        validate(SCHEMAS[name], c.message.content, f"n=3 choice {c.index}")


def test_16_concurrent_requests_half_unconstrained_all_correct(client):
    names = sorted(SCHEMAS)[::3][:8]
    assert len(names) == 8

    def constrained(i, name):
        return ("schema", name, *chat(client, name, stream=i % 2 == 0, temperature=0 if i % 4 < 2 else 0.8, seed=i))

    def free(i):
        args = dict(model=QWEN, messages=[{"role": "user", "content": f"Tell me one fact about the number {i}."}], max_tokens=24, temperature=0.8, seed=i)
        if i % 2:
            r = client.chat.completions.create(**args)
            return ("free", i, r.choices[0].message.content, r.choices[0].finish_reason)
        text, finish = "", None
        for chunk in client.chat.completions.create(stream=True, **args):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return ("free", i, text, finish)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(constrained, i, n) for i, n in enumerate(names)]
        futures += [pool.submit(free, i) for i in range(8)]
        results = [f.result(timeout=300) for f in futures]
    for kind, key, text, finish in results:
        if kind == "schema":
            assert finish == "stop", f"{key}: finish {finish}: {text!r}"
            validate(SCHEMAS[key], text, f"{key} in a batch of 16")
        else:
            assert finish in ("stop", "length") and text.strip(), f"free request {key}: {finish} {text!r}"


def test_regex_outputs_match_whole(client):
    for rx in [r"010-[0-9]{4}-[0-9]{4}", r"(yes|no), because [a-z ]{5,30}\.", r"[가-힣]{2,4}"]:
        for extra in ({"structured_outputs": {"regex": rx}}, {"guided_regex": rx}):
            r = client.chat.completions.create(
                model=QWEN,
                messages=[{"role": "user", "content": "Answer briefly."}],
                max_tokens=48,
                temperature=0.7,
                seed=2,
                extra_body=extra,
            )
            out = r.choices[0].message.content
            assert re.fullmatch(rx, out), f"{rx} via {list(extra)}: {out!r}"
            assert r.choices[0].finish_reason == "stop"


def test_choice_outputs_are_members(client):
    options = ["positive", "negative", "neutral", "긍정", "부정"]
    for seed in range(3):
        r = client.chat.completions.create(
            model=QWEN,
            messages=[{"role": "user", "content": "Classify the sentiment: 'I love this phone.'"}],
            max_tokens=8,
            temperature=1.0,
            seed=seed,
            extra_body={"structured_outputs": {"choice": options}},
        )
        assert r.choices[0].message.content in options


@pytest.mark.parametrize("name", ["flat_object", "ref_defs", "korean_properties", "any_of_objects", "array_of_objects"])
def test_completions_outputs_validate_streamed_or_not(client, name):
    prompt = f"Here is a JSON value for the '{name}' example:\n"
    args = dict(model=QWEN, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0, extra_body={"response_format": response_format(name)})
    r = client.completions.create(**args)
    assert r.choices[0].finish_reason == "stop"
    validate(SCHEMAS[name], r.choices[0].text, f"{name} completions")
    text = "".join(c.choices[0].text for c in client.completions.create(stream=True, **args) if c.choices)
    assert text == r.choices[0].text
    # llama.cpp's top-level `json_schema`, seeded-sampled.
    args["extra_body"] = {"json_schema": SCHEMAS[name]}
    args["temperature"] = 0.9
    args["seed"] = 4
    r = client.completions.create(**args)
    assert r.choices[0].finish_reason == "stop"
    validate(SCHEMAS[name], r.choices[0].text, f"{name} completions json_schema")


def test_completions_regex_and_choice(client):
    r = client.completions.create(
        model=QWEN, prompt="The code is ", max_tokens=16, temperature=0.8, seed=1, extra_body={"structured_outputs": {"regex": r"[A-Z]{3}-[0-9]{3}"}}
    )
    assert re.fullmatch(r"[A-Z]{3}-[0-9]{3}", r.choices[0].text), r.choices[0].text
    r = client.completions.create(model=QWEN, prompt="Seoul is in", max_tokens=8, temperature=0, extra_body={"guided_choice": [" Korea", " Japan"]})
    assert r.choices[0].text in (" Korea", " Japan")
