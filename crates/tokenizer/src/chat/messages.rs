//! Validation and normalisation of the messages before rendering: each message must be an
//! object with a string `role`; a `content` that is an array of text parts is joined with
//! `"\n"` into one string, as OpenAI-compatible servers do.
//!
//! Tool calling follows what transformers hands a template:
//! - keys whose value is `null` are dropped (transformers' `_normalize_chat_messages`), except
//!   `content`: OpenAI clients send `"content": null` on assistant messages that only call
//!   tools. Templates that test `content is none` (DeepSeek's render the calls only then)
//!   get `None`; the others (Qwen3's concatenates `message.content`) get `""`, what they
//!   can render ([`MessageStyle::for_template`] reads which from the source);
//! - `tool_calls[].function.arguments` sent as a JSON string (OpenAI's wire form) is parsed
//!   into the object transformers documents, when the template prints it with `tojson` /
//!   `items` or checks its type; templates that concatenate it as text keep the string. A
//!   string that is not a JSON object always stays a string.

use super::ChatTemplateError;

/// How one template wants tool-calling fields, read once from its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MessageStyle {
    /// `tool_calls[].function.arguments` strings become objects.
    pub(super) decode_arguments: bool,
    /// `content: null` becomes `""` (the template never tests `content is none`).
    pub(super) null_content_as_empty: bool,
}

impl MessageStyle {
    pub(super) fn for_template(source: &str) -> Self {
        static RULES: std::sync::OnceLock<Option<(regex::Regex, regex::Regex)>> = std::sync::OnceLock::new();
        let rules = RULES.get_or_init(|| {
            let args = regex::Regex::new(
                r#"arguments['"]?\]?\s*(\|\s*(tojson|items)|is\s+(not\s+)?(string|mapping))"#,
            )
            .ok()?;
            let none = regex::Regex::new(r#"\bcontent['"]?\]?\s+is\s+(not\s+)?none"#).ok()?;
            Some((args, none))
        });
        match rules {
            Some((args, none)) => Self {
                decode_arguments: args.is_match(source),
                null_content_as_empty: !none.is_match(source),
            },
            None => Self { decode_arguments: true, null_content_as_empty: false },
        }
    }
}

/// Checks the messages' shape and flattens text-part arrays into strings.
pub(super) fn normalize_messages(
    messages: &serde_json::Value,
    style: MessageStyle,
) -> Result<Vec<serde_json::Value>, ChatTemplateError> {
    let bad = |msg: String| ChatTemplateError::InvalidMessages(msg);
    let list = messages.as_array().ok_or_else(|| {
        bad(format!(
            "expected an array of messages, got {}",
            json_kind(messages)
        ))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for (i, message) in list.iter().enumerate() {
        let object = message.as_object().ok_or_else(|| {
            bad(format!(
                "message {i} must be an object, got {}",
                json_kind(message)
            ))
        })?;
        match object.get("role") {
            Some(serde_json::Value::String(_)) => {}
            Some(other) => {
                return Err(bad(format!(
                    "message {i}: `role` must be a string, got {}",
                    json_kind(other)
                )))
            }
            None => return Err(bad(format!("message {i} has no `role`"))),
        }
        let mut object = object.clone();
        object.retain(|key, value| key == "content" || !value.is_null());
        if let Some(calls) = object.get_mut("tool_calls") {
            decode_arguments(i, calls, style.decode_arguments)?;
        }
        if let Some(content) = object.get_mut("content") {
            match content {
                serde_json::Value::String(_) => {}
                serde_json::Value::Null if style.null_content_as_empty => {
                    *content = serde_json::Value::String(String::new())
                }
                serde_json::Value::Null => {}
                serde_json::Value::Array(parts) => {
                    let text = flatten_parts(i, parts)?;
                    *content = serde_json::Value::String(text);
                }
                other => {
                    return Err(bad(format!(
                        "message {i}: `content` must be a string, null or an array of text \
                         parts, got {}",
                        json_kind(other)
                    )))
                }
            }
        }
        out.push(serde_json::Value::Object(object));
    }
    Ok(out)
}

/// Parses JSON-string `arguments` of each tool call into objects, in place.
fn decode_arguments(i: usize, calls: &mut serde_json::Value, decode: bool) -> Result<(), ChatTemplateError> {
    let bad = |msg: String| ChatTemplateError::InvalidMessages(msg);
    let list = calls.as_array_mut().ok_or_else(|| {
        bad(format!("message {i}: `tool_calls` must be an array"))
    })?;
    for (j, call) in list.iter_mut().enumerate() {
        let object = call.as_object_mut().ok_or_else(|| {
            bad(format!("message {i}: tool call {j} must be an object"))
        })?;
        let Some(function) = object.get_mut("function").and_then(|f| f.as_object_mut()) else {
            continue;
        };
        if !decode {
            continue;
        }
        if let Some(serde_json::Value::String(text)) = function.get("arguments") {
            if let Ok(parsed @ serde_json::Value::Object(_)) = serde_json::from_str(text) {
                function.insert("arguments".into(), parsed);
            }
        }
    }
    Ok(())
}

fn flatten_parts(i: usize, parts: &[serde_json::Value]) -> Result<String, ChatTemplateError> {
    let bad = |msg: String| ChatTemplateError::InvalidMessages(msg);
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        let object = part.as_object().ok_or_else(|| {
            bad(format!(
                "message {i}: content part {j} must be an object, got {}",
                json_kind(part)
            ))
        })?;
        match object.get("type").and_then(|t| t.as_str()) {
            Some("text") => {}
            Some(other) => {
                return Err(bad(format!(
                    "message {i}: content part {j} has type `{other}`; only `text` parts are \
                     supported"
                )))
            }
            None => {
                return Err(bad(format!(
                    "message {i}: content part {j} has no string `type`"
                )))
            }
        }
        let part_text = object
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad(format!("message {i}: text part {j} has no string `text`")))?;
        if j > 0 {
            text.push('\n');
        }
        text.push_str(part_text);
    }
    Ok(text)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
