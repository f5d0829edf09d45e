//! Tool calling on `/v1/chat/completions`: `tools`, `tool_choice` and
//! `parallel_tool_calls` read and checked, the prompt built with the tools, the call
//! grammar compiled, and a parser per choice (the `jikji-toolcall` crate does the
//! syntax work; this module wires it to the request).
//!
//! Design choices:
//! - The family comes from the model's chat template and architecture
//!   ([`Family::detect`]). Templates with a tool syntax get `tools` as a template variable,
//!   as transformers' `apply_chat_template(tools=...)` passes them; templates without one
//!   ([`Family::Generic`]) get the offer as system text ([`prompt::generic_system_text`]).
//! - `tool_choice: "none"` renders no tools at all (the model is not told about them) and
//!   parses nothing. `auto` parses calls and constrains a call once the model writes the
//!   family's opening or starts its reply as a call object (the grammar's lazy triggers,
//!   see `jikji_toolcall::grammar`). `required` and a named function are
//!   constrained from the first token, so the call always parses and its arguments
//!   validate against the function's schema.
//! - A tool grammar and a `response_format` grammar cannot both apply: `required` or a
//!   named choice with a structured-output field is a 400; with `auto`, the
//!   structured-output grammar wins and calls are only parsed.
//! - Where the family's markers are control tokens of the vocabulary (Mistral's
//!   `[TOOL_CALLS]`), the engine writes special tokens into the text so the parser sees
//!   them, and the grammar names them by id.

use jikji_engine::grammar::GrammarSpec;
use jikji_engine::serve::EngineHandle;
use jikji_engine::EngineError;
use jikji_tokenizer::Tokenizer;
use jikji_toolcall::grammar::Thinking;
use jikji_toolcall::{grammar, parse_tool_choice, parse_tools, prompt, Family, StreamParser, Tool, ToolChoice, ToolError};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::request::Fields;

/// What a request's tools ask of this reply.
#[derive(Clone, Debug)]
pub struct ToolPlan {
    pub family: Family,
    pub tools: Vec<Tool>,
    pub choice: ToolChoice,
    pub parallel: bool,
    /// The engine must write control tokens as text (see the module docs).
    pub special_text: bool,
}

fn api(e: ToolError) -> ApiError {
    ApiError::invalid(e.param, e.message)
}

/// The id of `text` when it is one control token of the vocabulary.
fn control_token(tok: &Tokenizer, text: &str) -> Option<u32> {
    tok.token_id(text).filter(|&id| tok.token_attr(id).is_some_and(|a| a.is_control()))
}

/// Reads the tool fields; `None` when no tools are offered or `tool_choice` is `none`.
pub fn requested(f: &Fields<'_>, eng: &EngineHandle) -> Result<Option<ToolPlan>, ApiError> {
    let tools = parse_tools(f.get("tools")).map_err(api)?;
    let choice = parse_tool_choice(f.get("tool_choice"), &tools).map_err(api)?;
    let parallel = f.bool("parallel_tool_calls")?.unwrap_or(true);
    if choice == ToolChoice::None {
        return Ok(None);
    }
    let family = Family::detect(eng.chat_template_source().unwrap_or(""), eng.architecture());
    let tok = eng.tokenizer();
    let special_text = family.marker_texts().iter().any(|m| control_token(tok, m).is_some());
    Ok(Some(ToolPlan { family, tools, choice, parallel, special_text }))
}

impl ToolPlan {
    /// Whether the grammar applies from the first token (a call is forced).
    pub fn forces_call(&self) -> bool {
        matches!(self.choice, ToolChoice::Required | ToolChoice::Named(_))
    }

    /// The prompt with the tools offered (see the module docs).
    /// `kwargs` are the request's further template variables.
    pub fn prompt(
        &self,
        eng: &EngineHandle,
        messages: &Value,
        add_generation_prompt: bool,
        kwargs: &Map<String, Value>,
    ) -> Result<Vec<u32>, EngineError> {
        if self.family == Family::Generic {
            let text = prompt::generic_system_text(&self.tools);
            return eng.chat_prompt_with(&with_system_text(messages, &text), add_generation_prompt, kwargs);
        }
        let mut extra = kwargs.clone();
        extra.insert("tools".into(), Value::Array(self.tools.iter().map(|t| t.raw.clone()).collect()));
        eng.chat_prompt_with(messages, add_generation_prompt, &extra)
    }

    /// The call grammar, if this choice constrains anything; `thinking` says whether a
    /// forced call may (or must) come after a reasoning block.
    pub fn grammar(&self, tok: &Tokenizer, thinking: Thinking) -> Option<GrammarSpec> {
        let special = |t: &str| control_token(tok, t);
        grammar::call_grammar(self.family, &self.tools, &self.choice, self.parallel, thinking, &special).map(GrammarSpec::Lark)
    }

    /// A parser for one choice; `seed` derives its call ids.
    pub fn parser(&self, seed: u64) -> StreamParser {
        StreamParser::new(self.family, self.tools.iter().map(|t| t.name.clone()).collect(), seed)
    }
}

/// `messages` with `text` in front of the system message (a new one when there is none).
fn with_system_text(messages: &Value, text: &str) -> Value {
    let mut list = messages.as_array().cloned().unwrap_or_default();
    match list.first_mut() {
        Some(Value::Object(m)) if m.get("role").and_then(Value::as_str) == Some("system") => {
            let old = m.get("content").and_then(Value::as_str).unwrap_or("").to_string();
            let joined = if old.is_empty() { text.to_string() } else { format!("{text}\n\n{old}") };
            m.insert("content".into(), Value::String(joined));
        }
        _ => list.insert(0, serde_json::json!({"role": "system", "content": text})),
    }
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generic_offer_goes_in_front_of_the_system_message() {
        let m = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]);
        let out = with_system_text(&m, "TOOLS");
        assert_eq!(out[0]["content"], "TOOLS\n\nBe brief.");
        let out = with_system_text(&json!([{"role": "user", "content": "hi"}]), "TOOLS");
        assert_eq!(out[0], json!({"role": "system", "content": "TOOLS"}));
        assert_eq!(out[1]["role"], "user");
    }
}
