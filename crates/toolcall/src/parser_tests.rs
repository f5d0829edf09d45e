//! Parser tests on real template outputs: the assistant turns below are what the
//! templates in `tests/fixtures/chat_templates` (and llama.cpp's
//! `vendor/llama.cpp/models/templates` of llama-cpp-python 0.3.36) render for calls, so
//! they are the text each model family was trained to write.

use super::*;

fn names() -> Vec<String> {
    vec!["get_weather".into(), "get_time".into()]
}

/// Feeds `text` in pieces cut at `cuts` (byte offsets on char boundaries).
fn streamed(family: Family, text: &str, cuts: &[usize]) -> (Parsed, Vec<ToolEvent>) {
    let mut p = StreamParser::new(family, names(), 42);
    let mut events = Vec::new();
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&text.len())) {
        events.extend(p.push(&text[last..c]));
        last = c;
    }
    events.extend(p.finish());
    let mut out = Parsed::default();
    out.absorb(&events);
    (out, events)
}

/// The whole parse, then the same text streamed cut at every char boundary (one cut) and
/// char by char: every assembly equals the whole parse, and deltas come in OpenAI's order.
fn check(family: Family, text: &str, content: &str, calls: &[(&str, &str)]) -> Parsed {
    let whole = parse(family, &names(), 42, text);
    assert_eq!(whole.content, content, "content of {text:?}");
    let got: Vec<(&str, &str)> = whole.calls.iter().map(|c| (c.name.as_str(), c.arguments.as_str())).collect();
    assert_eq!(got, calls, "calls of {text:?}");
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
    for &b in &bounds {
        assert_eq!(streamed(family, text, &[b]).0, whole, "cut at {b} of {text:?}");
    }
    let (by_char, events) = streamed(family, text, &bounds);
    assert_eq!(by_char, whole, "char by char: {text:?}");
    let mut seen = std::collections::HashSet::new();
    for ev in &events {
        if let ToolEvent::Call(d) = ev {
            let first = seen.insert(d.index);
            assert_eq!(d.id.is_some() && d.name.is_some(), first, "only a call's first delta has id and name: {d:?}");
        }
    }
    whole
}

#[test]
fn qwen_and_hermes_tool_call_tags() {
    // Qwen2.5 / Qwen3 / Hermes 3 render this for one call and for two.
    let one = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}\n</tool_call>";
    let p = check(Family::Hermes, one, "", &[("get_weather", r#"{"city": "Seoul", "unit": "celsius"}"#)]);
    assert!(p.calls[0].id.starts_with("call_"));
    let two = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Asia/Seoul\"}}\n</tool_call>";
    let p = check(Family::Hermes, two, "", &[("get_weather", r#"{"city": "Seoul"}"#), ("get_time", r#"{"tz": "Asia/Seoul"}"#)]);
    assert_ne!(p.calls[0].id, p.calls[1].id);
    // Text before a call stays content; a missing closing tag still ends the call.
    check(
        Family::Hermes,
        "Let me check.\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}",
        "Let me check.",
        &[("get_time", r#"{"tz": "UTC"}"#)],
    );
    // Arguments before the name (Hermes 2's pydantic order) are held until it comes.
    check(
        Family::Hermes,
        "<tool_call>\n{\"arguments\": {\"tz\": \"UTC\"}, \"name\": \"get_time\"}\n</tool_call>",
        "",
        &[("get_time", r#"{"tz": "UTC"}"#)],
    );
}

#[test]
fn hermes_bare_call_object_without_tags_is_a_call() {
    // Qwen2.5-Coder-0.5B answers a tool request so, without `<tool_call>`.
    let bare = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}";
    check(Family::Hermes, bare, "", &[("get_weather", r#"{"city": "Seoul", "unit": "celsius"}"#)]);
    check(Family::Exaone4, &format!("\n{bare}\n"), "", &[("get_weather", r#"{"city": "Seoul", "unit": "celsius"}"#)]);
    // A JSON answer that names no offered tool stays the answer, byte for byte.
    for text in ["{\"name\": \"Alice\", \"age\": 3}", "{\"name\": \"unknown\", \"arguments\": {}}", "{\"city\": \"Seoul\"}"] {
        check(Family::Hermes, text, text, &[]);
    }
}

#[test]
fn plain_replies_and_near_misses_stay_content_exactly() {
    for text in [
        "서울은 지금 맑고 21도입니다.\n",
        "Use <tool to do it",
        "a <tool_call> b",
        "<tool_call>\nnot json\n</tool_call> done",
        "  spaced  ",
    ] {
        check(Family::Hermes, text, text, &[]);
    }
    check(Family::Llama3, "{\"name\": \"Alice\", \"age\": 3}", "{\"name\": \"Alice\", \"age\": 3}", &[]);
    check(Family::Generic, "{\"answer\": 42}", "{\"answer\": 42}", &[]);
}

#[test]
fn exaone4_tags_without_newlines_after_its_empty_thought() {
    // EXAONE 4.0 renders `<tool_call>{...}</tool_call>` (its `<think>` block is split off
    // before the parser by the reasoning splitter).
    let text = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}</tool_call>";
    check(Family::Exaone4, text, "", &[("get_weather", r#"{"city": "Seoul", "unit": "celsius"}"#)]);
    let two = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"서울\"}}</tool_call>\n<tool_call>{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Asia/Seoul\"}}</tool_call>";
    check(Family::Exaone4, two, "", &[("get_weather", r#"{"city": "서울"}"#), ("get_time", r#"{"tz": "Asia/Seoul"}"#)]);
}

#[test]
fn llama3_bare_json_and_python_tag() {
    // Llama 3.1 / 3.2 / 3.3: `{"name": "...", "parameters": ...}` as the whole reply.
    check(
        Family::Llama3,
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}",
        "",
        &[("get_weather", r#"{"city": "Seoul", "unit": "celsius"}"#)],
    );
    // Built-in tools: `<|python_tag|>brave_search.call(query="...")`.
    check(
        Family::Llama3,
        "<|python_tag|>brave_search.call(query=\"weather in Seoul\")",
        "",
        &[("brave_search", r#"{"query":"weather in Seoul"}"#)],
    );
    check(Family::Llama3, "<|python_tag|>print(2 + 2)", "", &[("python", r#"{"code":"print(2 + 2)"}"#)]);
    check(
        Family::Llama3,
        "<|python_tag|>{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}",
        "",
        &[("get_time", r#"{"tz": "UTC"}"#)],
    );
    // A name that is not an offered tool is an answer, not a call.
    check(Family::Llama3, "{\"name\": \"unknown\", \"parameters\": {}}", "{\"name\": \"unknown\", \"parameters\": {}}", &[]);
}

#[test]
fn deepseek_v3_and_r1_tool_tokens() {
    // DeepSeek-V3.1's template.
    let v3 = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Seoul\", \"unit\": \"celsius\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"tz\": \"Asia/Seoul\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
    check(
        Family::DeepSeekV3,
        v3,
        "",
        &[("get_weather", r#"{"city": "Seoul", "unit": "celsius"}"#), ("get_time", r#"{"tz": "Asia/Seoul"}"#)],
    );
    // DeepSeek-R1 (distill) and llama.cpp's deepseek-r1 template.
    let r1 = "I will look it up.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Seoul\", \"unit\": \"celsius\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
    check(Family::DeepSeekR1, r1, "I will look it up.", &[("get_weather", r#"{"city": "Seoul", "unit": "celsius"}"#)]);
    // Models that skip the outer token.
    check(
        Family::DeepSeekV3,
        "<｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"tz\": \"UTC\"}<｜tool▁call▁end｜>",
        "",
        &[("get_time", r#"{"tz": "UTC"}"#)],
    );
}

#[test]
fn mistral_lists_and_name_args_forms_with_nine_char_ids() {
    // Mistral Nemo's template writes arguments as a JSON string inside the list.
    let nemo = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\":\\\"Seoul\\\",\\\"unit\\\":\\\"celsius\\\"}\", \"id\": \"call0abcd\"}]";
    let p = check(Family::Mistral, nemo, "", &[("get_weather", r#"{"city":"Seoul","unit":"celsius"}"#)]);
    assert!(p.calls[0].id.len() == 9 && p.calls[0].id.chars().all(|c| c.is_ascii_alphanumeric()));
    // Models also write objects there.
    check(
        Family::Mistral,
        "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}, {\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}]",
        "",
        &[("get_weather", r#"{"city": "Seoul"}"#), ("get_time", r#"{"tz": "UTC"}"#)],
    );
    // Mistral Small 3.2 / Devstral: `[TOOL_CALLS]name[CALL_ID]id[ARGS]{...}`.
    check(
        Family::Mistral,
        "[TOOL_CALLS]get_weather[CALL_ID]call0abcd[ARGS]{\"city\": \"Seoul\"}[TOOL_CALLS]get_time[ARGS]{\"tz\": \"UTC\"}",
        "",
        &[("get_weather", r#"{"city": "Seoul"}"#), ("get_time", r#"{"tz": "UTC"}"#)],
    );
}

#[test]
fn generic_json_object_form() {
    check(
        Family::Generic,
        "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}, {\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}]}",
        "",
        &[("get_weather", r#"{"city": "Seoul"}"#), ("get_time", r#"{"tz": "UTC"}"#)],
    );
    check(
        Family::Generic,
        "\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n",
        "",
        &[("get_time", r#"{"tz": "UTC"}"#)],
    );
}

#[test]
fn a_reply_cut_inside_a_call_keeps_what_was_streamed() {
    // max_tokens ran out inside the arguments: the call and its partial arguments stay
    // (finish_reason says `length`), and streaming and whole agree.
    let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Se";
    check(Family::Hermes, text, "", &[("get_weather", "{\"city\": \"Se")]);
    // Cut before the name is complete: no call, the text is content.
    check(Family::Hermes, "<tool_call>\n{\"name\": \"get_w", "<tool_call>\n{\"name\": \"get_w", &[]);
}
