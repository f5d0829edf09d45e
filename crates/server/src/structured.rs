//! Structured output requests: which grammar a request asks for, in OpenAI's and its
//! peers' shapes, and its compilation under a time bound.
//!
//! Accepted shapes (at most one per request; two are a 400 naming both):
//! - OpenAI `response_format`: `{"type": "text"}` (no constraint), `{"type":
//!   "json_object"}` (any JSON object; llama.cpp's extra `schema` field narrows it),
//!   `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
//! - vLLM `structured_outputs`: `{"json": schema}`, `{"regex": "..."}`, `{"choice":
//!   [...]}`, `{"grammar": "lark"}` (one key), and vLLM's older top-level `guided_json`,
//!   `guided_regex`, `guided_choice`, `guided_grammar`.
//! - llama.cpp top-level `json_schema` (an object) and `grammar` (a string in llguidance's
//!   Lark dialect; GBNF-only syntax is refused with the compiler's message).
//!
//! Design choices:
//! - Compiling is CPU work that can take milliseconds to (bounded) seconds for hostile
//!   inputs, so it runs on tokio's blocking pool, never on an async worker and never on
//!   the engine thread; a compile still running after [`COMPILE_TIMEOUT`] is answered
//!   with 400 (llguidance's fuel limits end it soon after). Other requests are not slowed.
//! - Every refusal is a 400 whose `param` is the field that carried the grammar and whose
//!   message is the compiler's (an unsupported JSON Schema keyword is named there).
//!
//! Limits (docs/structured-output.md has the full table; the engine's `GrammarLimits`
//! and llguidance's `ParserLimits` hold the numbers): a JSON schema of at most 256 KiB
//! serialized and 64 levels of document nesting; a regex or Lark grammar of at most
//! 64 KiB; at most 256 choices of 1 to 1024 bytes; lexer build fuel 1,000,000, grammar
//! size 200,000 symbols; per-token masks bounded by 200,000 lexer fuel and 50,000 Earley
//! items (the first mask is part of the compile). A compile past [`COMPILE_TIMEOUT`]
//! (2 s) is a 400; a mask past its fuel mid-generation ends that sequence with
//! `grammar_too_complex`.

use std::time::Duration;

use jikji_engine::grammar::{Constraint, GrammarSpec};
use jikji_engine::serve::EngineHandle;
use serde_json::Value;

use crate::error::ApiError;
use crate::request::Fields;

/// Longest a grammar compile may take before the request is refused.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(2);

/// The grammar a request asks for, and the request field that carried it.
#[derive(Clone, Debug, PartialEq)]
pub struct Requested {
    pub spec: GrammarSpec,
    pub param: String,
}

/// Reads every structured-output field of a chat or completions body.
pub fn requested(f: &Fields<'_>) -> Result<Option<Requested>, ApiError> {
    let mut found: Vec<Requested> = Vec::new();
    if let Some(r) = response_format(f.get("response_format"))? {
        found.push(r);
    }
    if let Some(v) = f.get("structured_outputs") {
        found.push(structured_outputs(v)?);
    }
    for (name, kind) in [("guided_json", "json"), ("guided_regex", "regex"), ("guided_choice", "choice"), ("guided_grammar", "grammar")] {
        if let Some(v) = f.get(name) {
            found.push(Requested { spec: vllm_spec(kind, v, name)?, param: name.into() });
        }
    }
    if let Some(v) = f.get("json_schema") {
        found.push(Requested { spec: schema_value(v, "json_schema")?, param: "json_schema".into() });
    }
    if let Some(v) = f.get("grammar") {
        let g = v.as_str().ok_or_else(|| ApiError::invalid("grammar", "`grammar` must be a string"))?;
        found.push(Requested { spec: GrammarSpec::Lark(g.to_string()), param: "grammar".into() });
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(ApiError::invalid(
            found[1].param.clone(),
            format!("`{}` and `{}` both ask for structured output; send only one", found[0].param, found[1].param),
        )),
    }
}

fn response_format(v: Option<&Value>) -> Result<Option<Requested>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let p = "response_format";
    let obj = v.as_object().ok_or_else(|| ApiError::invalid(p, "`response_format` must be an object"))?;
    let kind = obj.get("type").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid("response_format.type", "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\"")
    })?;
    let spec = match kind {
        "text" => return Ok(None),
        "json_object" => match obj.get("schema").filter(|s| !s.is_null()) {
            None => GrammarSpec::JsonObject,
            Some(s) => schema_value(s, "response_format.schema")?,
        },
        "json_schema" => {
            let js = obj.get("json_schema").and_then(Value::as_object).ok_or_else(|| {
                ApiError::invalid("response_format.json_schema", "`response_format.json_schema` must be an object with `name` and `schema`")
            })?;
            match js.get("name") {
                None | Some(Value::Null) => {}
                Some(Value::String(n))
                    if !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {}
                Some(_) => {
                    return Err(ApiError::invalid(
                        "response_format.json_schema.name",
                        "`name` must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -",
                    ))
                }
            }
            if js.get("strict").is_some_and(|s| !s.is_null() && !s.is_boolean()) {
                return Err(ApiError::invalid("response_format.json_schema.strict", "`strict` must be a boolean"));
            }
            match js.get("schema").filter(|s| !s.is_null()) {
                // OpenAI's default: any JSON value.
                None => GrammarSpec::JsonSchema(serde_json::json!({})),
                Some(s) => schema_value(s, "response_format.json_schema.schema")?,
            }
        }
        other => {
            return Err(ApiError::invalid(
                "response_format.type",
                format!("unknown `response_format.type` {other:?}: expected \"text\", \"json_object\" or \"json_schema\""),
            ))
        }
    };
    Ok(Some(Requested { spec, param: p.into() }))
}

fn structured_outputs(v: &Value) -> Result<Requested, ApiError> {
    let p = "structured_outputs";
    let obj = v.as_object().ok_or_else(|| ApiError::invalid(p, "`structured_outputs` must be an object"))?;
    let set: Vec<(&String, &Value)> = obj
        .iter()
        .filter(|(k, v)| !v.is_null() && ["json", "regex", "choice", "grammar", "json_object"].contains(&k.as_str()))
        .collect();
    match set.as_slice() {
        [(k, v)] => {
            let param = format!("{p}.{k}");
            let spec = if k.as_str() == "json_object" {
                GrammarSpec::JsonObject
            } else {
                vllm_spec(k, v, &param)?
            };
            Ok(Requested { spec, param })
        }
        [] => Err(ApiError::invalid(p, "`structured_outputs` needs one of `json`, `regex`, `choice` or `grammar`")),
        _ => Err(ApiError::invalid(p, "`structured_outputs` may set only one of `json`, `regex`, `choice` and `grammar`")),
    }
}

fn vllm_spec(kind: &str, v: &Value, param: &str) -> Result<GrammarSpec, ApiError> {
    match kind {
        "json" => schema_value(v, param),
        "regex" => Ok(GrammarSpec::Regex(
            v.as_str().ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be a string")))?.to_string(),
        )),
        "grammar" => Ok(GrammarSpec::Lark(
            v.as_str().ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be a string")))?.to_string(),
        )),
        _ => {
            let bad = || ApiError::invalid(param, format!("`{param}` must be a list of strings"));
            let list = v.as_array().ok_or_else(bad)?;
            let choices: Option<Vec<String>> = list.iter().map(|c| c.as_str().map(str::to_string)).collect();
            Ok(GrammarSpec::Choice(choices.ok_or_else(bad)?))
        }
    }
}

/// A schema given as an object/boolean, or as a string holding one (vLLM accepts both).
fn schema_value(v: &Value, param: &str) -> Result<GrammarSpec, ApiError> {
    match v {
        Value::Object(_) | Value::Bool(_) => Ok(GrammarSpec::JsonSchema(v.clone())),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Object(_) | Value::Bool(_))) => Ok(GrammarSpec::JsonSchema(inner)),
            _ => Err(ApiError::invalid(param, format!("`{param}` must be a JSON schema (an object)"))),
        },
        _ => Err(ApiError::invalid(param, format!("`{param}` must be a JSON schema (an object)"))),
    }
}

/// Compiles the request's grammar on the blocking pool within [`COMPILE_TIMEOUT`].
pub async fn compile(engine: &EngineHandle, req: Requested) -> Result<Constraint, ApiError> {
    let Requested { spec, param } = req;
    let compiler = engine
        .grammar_compiler()
        .map_err(|e| ApiError::invalid(param.clone(), e.to_string()))?;
    let task = tokio::task::spawn_blocking(move || compiler.compile(&spec));
    match tokio::time::timeout(COMPILE_TIMEOUT, task).await {
        Ok(Ok(Ok(c))) => Ok(c),
        Ok(Ok(Err(e))) => Err(ApiError::invalid(param, e.to_string())),
        Ok(Err(_)) => Err(ApiError::invalid(param, "the grammar compiler failed on this input")),
        Err(_) => Err(ApiError::invalid(
            param,
            format!("the grammar did not compile within {} s; simplify it", COMPILE_TIMEOUT.as_secs()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Result<Option<Requested>, ApiError> {
        requested(&Fields::new(&v).expect("object"))
    }

    #[test]
    fn the_documented_compile_timeout_is_the_one_in_code() {
        let doc = include_str!("../../../docs/structured-output.md");
        let line = format!("`COMPILE_TIMEOUT` = {} s", COMPILE_TIMEOUT.as_secs());
        assert!(doc.contains(&line), "docs/structured-output.md lacks {line:?}");
        assert_eq!(COMPILE_TIMEOUT.subsec_nanos(), 0, "the docs write whole seconds");
    }

    #[test]
    fn every_peer_shape_maps_to_its_grammar() {
        let s = json!({"type": "object"});
        for (body, spec, param) in [
            (json!({"response_format": {"type": "json_object"}}), GrammarSpec::JsonObject, "response_format"),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": s, "strict": true}}}),
                GrammarSpec::JsonSchema(s.clone()),
                "response_format",
            ),
            (json!({"response_format": {"type": "json_object", "schema": s}}), GrammarSpec::JsonSchema(s.clone()), "response_format"),
            (json!({"structured_outputs": {"json": s}}), GrammarSpec::JsonSchema(s.clone()), "structured_outputs.json"),
            (json!({"structured_outputs": {"json": "{\"type\": \"object\"}"}}), GrammarSpec::JsonSchema(s.clone()), "structured_outputs.json"),
            (json!({"structured_outputs": {"regex": "a+"}}), GrammarSpec::Regex("a+".into()), "structured_outputs.regex"),
            (json!({"structured_outputs": {"choice": ["a", "b"]}}), GrammarSpec::Choice(vec!["a".into(), "b".into()]), "structured_outputs.choice"),
            (json!({"structured_outputs": {"grammar": "start: \"a\""}}), GrammarSpec::Lark("start: \"a\"".into()), "structured_outputs.grammar"),
            (json!({"guided_regex": "b+"}), GrammarSpec::Regex("b+".into()), "guided_regex"),
            (json!({"json_schema": s}), GrammarSpec::JsonSchema(s.clone()), "json_schema"),
            (json!({"grammar": "start: \"a\""}), GrammarSpec::Lark("start: \"a\"".into()), "grammar"),
        ] {
            let r = req(body.clone()).expect("valid").expect("a grammar");
            assert_eq!((r.spec, r.param.as_str()), (spec, param), "{body}");
        }
        assert_eq!(req(json!({"response_format": {"type": "text"}})).expect("valid"), None);
        assert_eq!(req(json!({"response_format": null})).expect("valid"), None);
    }

    #[test]
    fn malformed_or_conflicting_requests_name_their_param() {
        for (body, param) in [
            (json!({"response_format": {"type": "yaml"}}), "response_format.type"),
            (json!({"response_format": "json"}), "response_format"),
            (json!({"response_format": {"type": "json_schema"}}), "response_format.json_schema"),
            (json!({"response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}}), "response_format.json_schema.name"),
            (json!({"response_format": {"type": "json_schema", "json_schema": {"schema": 5}}}), "response_format.json_schema.schema"),
            (json!({"structured_outputs": {"regex": "a", "choice": ["b"]}}), "structured_outputs"),
            (json!({"structured_outputs": {"choice": [1]}}), "structured_outputs.choice"),
            (json!({"structured_outputs": {}}), "structured_outputs"),
            (json!({"grammar": 5}), "grammar"),
            (json!({"response_format": {"type": "json_object"}, "grammar": "start: \"a\""}), "grammar"),
        ] {
            let e = req(body.clone()).expect_err(&body.to_string());
            assert_eq!(e.status.as_u16(), 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
    }
}
