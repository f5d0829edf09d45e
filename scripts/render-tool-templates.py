#!/usr/bin/env python3
"""Expected renderings of real chat templates with tools, tool calls and tool results.

Renders every case of CASES through every template in tests/fixtures/chat_templates/ the
way transformers' `apply_chat_template` does (`_normalize_chat_messages`, which drops
keys whose value is None, then `render_jinja_template` with the special-token strings as
keyword arguments), and writes tests/fixtures/chat_templates/renderings.json, which
crates/tokenizer/tests/chat_tool_renderings.rs compares with jikji byte for byte.

Assistant tool-call messages carry `"content": None`, as OpenAI clients send them. jikji
keeps that `None` for the template (transformers 4.x did; 5.x's normalisation drops it, and
Qwen3's and DeepSeek's templates then fail or lose the calls), so `normalize` below is
transformers' `_normalize_chat_messages` with `content` kept. Tool-call `arguments` are given as JSON objects, as transformers expects them; the server
turns OpenAI's JSON-string arguments into objects before rendering (the Rust test sends
strings to check exactly that). Needs `pip install transformers jinja2` (no torch).

    python3 scripts/render-tool-templates.py
"""

import json
import pathlib
import re

from transformers.utils.chat_template_utils import _normalize_chat_messages, render_jinja_template

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIR = ROOT / "tests" / "fixtures" / "chat_templates"

# template file -> (bos_token, eos_token, extra keyword arguments)
TEMPLATES = {
    "Qwen-Qwen2.5-7B-Instruct.jinja": ("", "<|im_end|>", {}),
    "Qwen-Qwen3-0.6B.jinja": ("", "<|im_end|>", {}),
    "Qwen3-Coder.jinja": ("", "<|im_end|>", {}),
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja": ("<s>", "<|im_end|>", {}),
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": ("<|begin_of_text|>", "<|im_end|>", {}),
    "meta-llama-Llama-3.1-8B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>", {"date_string": "03 Dec 2026"}),
    "meta-llama-Llama-3.2-3B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>", {"date_string": "03 Dec 2026"}),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", {}),
    "deepseek-ai-DeepSeek-V3.1.jinja": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", {}),
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": ("<s>", "</s>", {}),
    "LGAI-EXAONE-4.0.jinja": ("[BOS]", "[|endofturn|]", {}),
    "LGAI-EXAONE-3.5.jinja": ("", "[|endofturn|]", {}),
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "현재 날씨를 알려 줍니다 (current weather)",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "도시 이름"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a time zone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}


def call(cid, name, args):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


CASES = {
    "no_tools": {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}],
        "tools": None,
    },
    "tools_offered": {
        "messages": [{"role": "user", "content": "What is the weather in Seoul?"}],
        "tools": [WEATHER, TIME],
    },
    "tools_with_system": {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "서울 날씨 어때?"},
        ],
        "tools": [WEATHER],
    },
    "call_and_result": {
        "messages": [
            {"role": "user", "content": "What is the weather in Seoul?"},
            {"role": "assistant", "content": None,
             "tool_calls": [call("call0abcd", "get_weather", {"city": "Seoul", "unit": "celsius"})]},
            {"role": "tool", "tool_call_id": "call0abcd", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
        ],
        "tools": [WEATHER, TIME],
    },
    "parallel_calls_and_results": {
        "messages": [
            {"role": "user", "content": "Weather in Seoul and the time in Busan?"},
            {"role": "assistant", "content": None,
             "tool_calls": [call("call1abcd", "get_weather", {"city": "Seoul"}),
                            call("call2abcd", "get_time", {"tz": "Asia/Seoul"})]},
            {"role": "tool", "tool_call_id": "call1abcd", "content": "21 C"},
            {"role": "tool", "tool_call_id": "call2abcd", "content": "09:30"},
            {"role": "assistant", "content": "It is 21 C in Seoul and 09:30 in Busan."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": [WEATHER, TIME],
    },
}


ARGS_RULE = re.compile(r"""arguments['"]?\]?\s*(\|\s*(tojson|items)|is\s+(not\s+)?(string|mapping))""")
NONE_RULE = re.compile(r"""\bcontent['"]?\]?\s+is\s+(not\s+)?none""")


def adapt(source, messages):
    """transformers' normalisation (None-valued keys dropped) plus jikji's content/arguments rules."""
    decode = bool(ARGS_RULE.search(source))
    empty = not NONE_RULE.search(source)
    out = []
    for m, norm in zip(messages, _normalize_chat_messages(messages)):
        if "content" in m and m["content"] is None:
            norm = {**norm, "content": "" if empty else None}
        for c in norm.get("tool_calls", []):
            if not decode:
                c["function"]["arguments"] = json.dumps(c["function"]["arguments"], ensure_ascii=False, separators=(",", ":"))
        out.append(norm)
    return out


def main():
    out = []
    for name, (bos, eos, extra) in TEMPLATES.items():
        source = (DIR / name).read_text()
        for case, spec in CASES.items():
            if name.endswith("tool_use.jinja") and spec["tools"] is None:
                # transformers picks a `tool_use` template only for requests with tools.
                continue
            messages = adapt(source, json.loads(json.dumps(spec["messages"])))
            entry = {"template": name, "case": case, "bos_token": bos, "eos_token": eos, "extra": extra,
                     "tools": spec["tools"], "messages": spec["messages"]}
            try:
                (text,), _ = render_jinja_template(
                    conversations=[messages], tools=spec["tools"], chat_template=source,
                    add_generation_prompt=True, bos_token=bos, eos_token=eos, **extra)
                entry["rendered"] = text
            except Exception as e:  # a template that refuses the case (e.g. Mistral's id rules)
                entry["error"] = f"{type(e).__name__}: {e}"
            out.append(entry)
    path = DIR / "renderings.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"{path}: {len(out)} renderings, {sum('error' in e for e in out)} refused")


if __name__ == "__main__":
    main()
