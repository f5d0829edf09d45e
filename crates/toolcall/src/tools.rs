//! The tools a request offers and which of them it wants called, validated: every
//! refusal names the request field at fault.

use serde_json::Value;

/// Most tools one request may offer (OpenAI's limit).
pub const MAX_TOOLS: usize = 128;

/// One offered function.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema of the arguments (an empty object schema when absent).
    pub parameters: Value,
    /// The tool as the client sent it, for the chat template (`tools` as transformers
    /// passes them: `{"type": "function", "function": {...}}`).
    pub raw: Value,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// No calls: the tools are not even shown to the model.
    None,
    /// The model decides.
    Auto,
    /// At least one call, to any of the tools.
    Required,
    /// A call to this function.
    Named(String),
}

/// A bad `tools` / `tool_choice` field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// The request field at fault (`tools[1].function.name`).
    pub param: String,
    pub message: String,
}

fn err(param: impl Into<String>, message: impl Into<String>) -> ToolError {
    ToolError { param: param.into(), message: message.into() }
}

/// OpenAI's rule for function names: 1 to 64 of a-z, A-Z, 0-9, `_` and `-`.
fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reads `tools` (absent or `null`: none).
pub fn parse_tools(v: Option<&Value>) -> Result<Vec<Tool>, ToolError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(err("tools", "`tools` must be a list of {\"type\": \"function\", \"function\": {...}} objects")),
    };
    if list.len() > MAX_TOOLS {
        return Err(err("tools", format!("`tools` may hold at most {MAX_TOOLS} functions")));
    }
    let mut out: Vec<Tool> = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        let obj = t.as_object().ok_or_else(|| err(&p, format!("`{p}` must be an object")))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => return Err(err(format!("{p}.type"), format!("unsupported tool type {other:?}: only \"function\" is supported"))),
            None => return Err(err(format!("{p}.type"), format!("`{p}.type` must be \"function\""))),
        }
        let f = obj
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| err(format!("{p}.function"), format!("`{p}.function` must be an object with a `name`")))?;
        let name = match f.get("name") {
            Some(Value::String(n)) if valid_name(n) => n.clone(),
            Some(Value::String(_)) => {
                return Err(err(
                    format!("{p}.function.name"),
                    "a function name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -",
                ))
            }
            _ => return Err(err(format!("{p}.function.name"), format!("`{p}.function.name` must be a string"))),
        };
        if out.iter().any(|o| o.name == name) {
            return Err(err(format!("{p}.function.name"), format!("the function name {name:?} appears twice in `tools`")));
        }
        let description = match f.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => return Err(err(format!("{p}.function.description"), "`description` must be a string")),
        };
        let parameters = match f.get("parameters") {
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(s @ Value::Object(o)) => {
                if let Some(ty) = o.get("type") {
                    if ty != "object" {
                        return Err(err(
                            format!("{p}.function.parameters.type"),
                            "function parameters must be a JSON Schema of type \"object\"",
                        ));
                    }
                }
                s.clone()
            }
            Some(_) => {
                return Err(err(format!("{p}.function.parameters"), "`parameters` must be a JSON Schema (an object)"))
            }
        };
        if f.get("strict").is_some_and(|s| !s.is_null() && !s.is_boolean()) {
            return Err(err(format!("{p}.function.strict"), "`strict` must be a boolean"));
        }
        out.push(Tool { name, description, parameters, raw: t.clone() });
    }
    Ok(out)
}

/// Reads `tool_choice` against the offered tools (absent: `auto` with tools, else `none`).
pub fn parse_tool_choice(v: Option<&Value>, tools: &[Tool]) -> Result<ToolChoice, ToolError> {
    let p = "tool_choice";
    let choice = match v {
        None | Some(Value::Null) => return Ok(if tools.is_empty() { ToolChoice::None } else { ToolChoice::Auto }),
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(err(p, format!("unknown `tool_choice` {other:?}: expected \"none\", \"auto\", \"required\" or a function")))
            }
        },
        Some(Value::Object(o)) => {
            if o.get("type").and_then(Value::as_str) != Some("function") {
                return Err(err("tool_choice.type", "`tool_choice.type` must be \"function\""));
            }
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| err("tool_choice.function.name", "`tool_choice.function.name` must be a string"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(err("tool_choice.function.name", format!("`tool_choice` names {name:?}, which is not in `tools`")));
            }
            ToolChoice::Named(name.to_string())
        }
        Some(_) => return Err(err(p, "`tool_choice` must be a string or {\"type\": \"function\", \"function\": {\"name\": ...}}")),
    };
    if tools.is_empty() && choice != ToolChoice::None {
        return Err(err(p, "`tool_choice` is only allowed when `tools` are given"));
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weather() -> Value {
        json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    }

    #[test]
    fn valid_tools_and_choices_are_read() {
        let tools = parse_tools(Some(&json!([weather(), {"type": "function", "function": {"name": "now"}}]))).expect("valid");
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[1].parameters, json!({"type": "object", "properties": {}}));
        assert_eq!(tools[0].raw, weather());
        assert_eq!(parse_tool_choice(None, &tools), Ok(ToolChoice::Auto));
        assert_eq!(parse_tool_choice(None, &[]), Ok(ToolChoice::None));
        assert_eq!(parse_tool_choice(Some(&json!("required")), &tools), Ok(ToolChoice::Required));
        assert_eq!(
            parse_tool_choice(Some(&json!({"type": "function", "function": {"name": "now"}})), &tools),
            Ok(ToolChoice::Named("now".into()))
        );
        assert_eq!(parse_tool_choice(Some(&json!("none")), &[]), Ok(ToolChoice::None));
    }

    #[test]
    fn bad_definitions_name_their_field() {
        for (tools, param) in [
            (json!({"a": 1}), "tools"),
            (json!([5]), "tools[0]"),
            (json!([{"type": "retrieval"}]), "tools[0].type"),
            (json!([{"function": {"name": "x"}}]), "tools[0].type"),
            (json!([{"type": "function"}]), "tools[0].function"),
            (json!([{"type": "function", "function": {"name": "a b"}}]), "tools[0].function.name"),
            (json!([{"type": "function", "function": {"name": 3}}]), "tools[0].function.name"),
            (json!([weather(), weather()]), "tools[1].function.name"),
            (json!([{"type": "function", "function": {"name": "x", "parameters": "{}"}}]), "tools[0].function.parameters"),
            (json!([{"type": "function", "function": {"name": "x", "parameters": {"type": "string"}}}]), "tools[0].function.parameters.type"),
            (json!([{"type": "function", "function": {"name": "x", "description": 1}}]), "tools[0].function.description"),
        ] {
            let e = parse_tools(Some(&tools)).expect_err(&tools.to_string());
            assert_eq!(e.param, param, "{tools}");
        }
        let t = parse_tools(Some(&json!([weather()]))).expect("valid");
        for (choice, param) in [
            (json!("sometimes"), "tool_choice"),
            (json!({"type": "function", "function": {"name": "nope"}}), "tool_choice.function.name"),
            (json!({"type": "function"}), "tool_choice.function.name"),
            (json!({"type": "tool"}), "tool_choice.type"),
            (json!(7), "tool_choice"),
        ] {
            assert_eq!(parse_tool_choice(Some(&choice), &t).expect_err(&choice.to_string()).param, param);
        }
        assert_eq!(parse_tool_choice(Some(&json!("required")), &[]).expect_err("no tools").param, "tool_choice");
    }
}
