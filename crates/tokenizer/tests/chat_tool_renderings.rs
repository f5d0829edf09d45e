//! Real chat templates (copied from the llama-cpp-python 0.3.36 source package, plus
//! EXAONE's) rendered with tools, assistant tool calls and tool results, compared byte for
//! byte with transformers' `apply_chat_template` (`scripts/render-tool-templates.py` wrote
//! `tests/fixtures/chat_templates/renderings.json`). Tool-call arguments are sent here as
//! JSON strings, as OpenAI clients send them; transformers got the parsed objects, so the
//! comparison also pins the decoding of arguments. A case transformers refuses (a template
//! that raises) must be refused here too.

use jikji_testkit::fixtures_dir;
use jikji_tokenizer::chat::ChatTemplate;
use serde_json::{Map, Value};

fn renderings() -> Vec<Value> {
    let path = fixtures_dir().join("chat_templates").join("renderings.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&text).expect("renderings.json is JSON").as_array().expect("an array").clone()
}

fn template_source(name: &str) -> String {
    let path = fixtures_dir().join("chat_templates").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The messages as an OpenAI client sends them: tool-call arguments as JSON text.
fn as_openai_wire(messages: &Value) -> Value {
    let mut messages = messages.clone();
    for m in messages.as_array_mut().expect("messages array") {
        let Some(calls) = m.get_mut("tool_calls").and_then(Value::as_array_mut) else { continue };
        for c in calls {
            let args = c["function"]["arguments"].clone();
            c["function"]["arguments"] = Value::String(serde_json::to_string(&args).expect("json"));
        }
    }
    messages
}

fn render(entry: &Value) -> Result<String, String> {
    let source = template_source(entry["template"].as_str().expect("template"));
    let t = ChatTemplate::new(&source, entry["bos_token"].as_str().unwrap_or(""), entry["eos_token"].as_str().unwrap_or(""))
        .map_err(|e| e.to_string())?;
    let mut extra: Map<String, Value> = entry["extra"].as_object().cloned().unwrap_or_default();
    extra.insert("tools".into(), entry["tools"].clone());
    t.render(&as_openai_wire(&entry["messages"]), true, Some(&extra)).map_err(|e| e.to_string())
}

#[test]
fn tool_renderings_match_transformers_byte_for_byte() {
    let all = renderings();
    assert!(all.len() >= 50, "fixture has {} renderings", all.len());
    let mut failures = Vec::new();
    for entry in &all {
        let label = format!("{} / {}", entry["template"], entry["case"]);
        match (entry.get("rendered").and_then(Value::as_str), render(entry)) {
            (Some(expected), Ok(got)) if got == expected => {}
            (Some(expected), Ok(got)) => failures.push(format!("{label}: rendering differs\n--- transformers\n{expected}\n--- jikji\n{got}")),
            (Some(_), Err(e)) => failures.push(format!("{label}: jikji refused: {e}")),
            (None, Ok(got)) => failures.push(format!("{label}: transformers refused ({}) but jikji rendered\n{got}", entry["error"])),
            (None, Err(_)) => {}
        }
    }
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), all.len(), failures.join("\n\n"));
}

#[test]
fn qwen3_coder_and_nemotron_render_without_tools_as_jinja2_does() {
    for name in ["Qwen3-Coder.jinja", "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja"] {
        let t = ChatTemplate::new(&template_source(name), "", "<|im_end|>").expect("compiles");
        let messages = serde_json::json!([{"role": "user", "content": "Hi"}]);
        let out = t.render(&messages, true, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out.contains("Hi") && !out.contains("# Tools"), "{name}: {out}");
    }
}

#[test]
fn is_iterable_answers_as_jinja2_for_none_undefined_and_containers() {
    let t = ChatTemplate::new(
        "{{ none is iterable }}|{{ nope is iterable }}|{{ [1] is iterable }}|{{ 'ab' is iterable }}|{{ {'a': 1} is iterable }}|{{ 3 is iterable }}",
        "",
        "",
    )
    .expect("compiles");
    let out = t.render(&serde_json::json!([]), false, None).expect("renders");
    assert_eq!(out, "False|True|True|True|True|False");
}
