//! Validation and normalisation of the messages before rendering: each message must be an
//! object with a string `role`; a `content` that is an array of text parts is joined with
//! `"\n"` into one string, as OpenAI-compatible servers do.

use super::ChatTemplateError;

/// Checks the messages' shape and flattens text-part arrays into strings.
pub(super) fn normalize_messages(
    messages: &serde_json::Value,
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
        if let Some(content) = object.get_mut("content") {
            match content {
                serde_json::Value::String(_) | serde_json::Value::Null => {}
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
