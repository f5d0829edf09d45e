//! Lark grammars (llguidance's dialect) that make a forced call always parse.
//!
//! - `required`: the reply is one call (or, with `parallel_tool_calls`, up to
//!   [`MAX_PARALLEL`] calls) in the family's syntax, each call's arguments a `%json`
//!   of that function's `parameters` schema, so the call parses and its arguments
//!   validate. A named choice is exactly one call of that function.
//! - `auto`: free text (which may not contain the family's opening) and, optionally, after
//!   the opening, the constrained calls. The free part is a `[lazy]` rule whose text ends
//!   at the first opening (llguidance ends a lazy lexeme at its shortest match), so the
//!   grammar is the "lazy trigger": unconstrained until the model writes the opening, the
//!   call grammar from then on. A reply that *starts* as a call object is a trigger too,
//!   once it names an offered tool (`{"name": "get_weather"`: Llama 3.x's only form, the
//!   bare form of small Qwen models) or opens the generic `{"tool_calls"` object; the
//!   rest of that call is constrained (llama.cpp triggers on the same starts).
//! - Markers the tokenizer holds as special tokens (Mistral's `[TOOL_CALLS]`, DeepSeek's
//!   when so marked) are written as `<[id]>`, since a special token cannot be spelled as
//!   text; the caller says which (`special`).
//! - Reasoning first: for a thinking model a forced call may follow a `<think>` … `</think>`
//!   block ([`Thinking`]), as vLLM applies structured outputs only after the reasoning
//!   ends; without it a forced call would also silence the model's thinking. The thought
//!   is free text up to the first closing tag (a lazy lexeme); when the prompt already
//!   opened the block (EXAONE 4 or R1 with `enable_thinking`), the reply starts inside it;
//!   when the prompt closed it (Qwen3 with `enable_thinking: false`), there is none.
//! - JSON is compact with `", "` and `": "` separators, the layout the templates render
//!   calls in (`tojson`), so a constrained call reads like the model's training data.

use serde_json::Value;

use crate::family::{
    Family, DS_CALLS_BEGIN, DS_CALLS_END, DS_CALL_BEGIN, DS_CALL_END, DS_SEP, MISTRAL_CALLS, TOOL_CALL_CLOSE, TOOL_CALL_OPEN,
};
use crate::{Tool, ToolChoice};

/// The reasoning tags of the thinking templates.
pub const THINK_OPEN: &str = "<think>";
pub const THINK_CLOSE: &str = "</think>";

/// Where a reply stands with respect to a reasoning block (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Thinking {
    /// No reasoning block: the template has none, or the prompt already closed it.
    #[default]
    Off,
    /// The reply may open one before the calls (Qwen3's default).
    May,
    /// The prompt ends inside an opened block: the reply starts with reasoning.
    Open,
}

impl Thinking {
    /// Decides from the template's source and the end of the rendered prompt.
    pub fn for_prompt(template_source: &str, prompt_tail: &str) -> Thinking {
        let tail = prompt_tail.trim_end();
        if tail.ends_with(THINK_OPEN) {
            Thinking::Open
        } else if tail.ends_with(THINK_CLOSE) || !template_source.contains(THINK_OPEN) {
            Thinking::Off
        } else {
            Thinking::May
        }
    }
}

/// Most calls one constrained reply may hold.
pub const MAX_PARALLEL: usize = 16;

fn lit(text: &str, special: &dyn Fn(&str) -> Option<u32>) -> String {
    match special(text) {
        Some(id) => format!("<[{id}]>"),
        // A JSON string literal is a valid Lark string literal.
        None => serde_json::Value::String(text.to_string()).to_string(),
    }
}

fn json_args(schema: &Value) -> String {
    let mut s = schema.clone();
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "x-guidance".into(),
            serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    format!("%json {s}")
}

/// The grammar for a request, or `None` for `none` (or a named choice naming no tool). `thinking` matters only where a call is forced: the
/// free text of `auto` may hold a reasoning block anyway.
pub fn call_grammar(
    family: Family,
    tools: &[Tool],
    choice: &ToolChoice,
    parallel: bool,
    thinking: Thinking,
    special: &dyn Fn(&str) -> Option<u32>,
) -> Option<String> {
    let chosen: Vec<&Tool> = match choice {
        ToolChoice::None => return None,
        ToolChoice::Auto | ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Named(n) => tools.iter().filter(|t| &t.name == n).collect(),
    };
    if chosen.is_empty() {
        return None;
    }
    let l = |t: &str| lit(t, special);
    let mut g = String::new();
    // Per function: its arguments, and one call of it in the family's syntax without the
    // call's opening (Hermes / EXAONE calls each start with `<tool_call>`).
    let mut alts = Vec::new();
    for (i, t) in chosen.iter().enumerate() {
        g.push_str(&format!("args_{i}: {}\n", json_args(&t.parameters)));
        let name = serde_json::Value::String(t.name.clone()).to_string();
        let obj = |key: &str| format!("{} args_{i} \"}}\"", l(&format!("{{\"name\": {name}, \"{key}\": ")));
        let body = match family {
            Family::Hermes => format!("{} {} {}", l("\n"), obj("arguments"), l(&format!("\n{TOOL_CALL_CLOSE}"))),
            Family::Exaone4 => format!("{} {}", obj("arguments"), l(TOOL_CALL_CLOSE)),
            Family::Llama3 => obj("parameters"),
            Family::Mistral | Family::Generic => obj("arguments"),
            Family::DeepSeekV3 => format!("{} {} {} args_{i} {}", l(DS_CALL_BEGIN), l(&t.name), l(DS_SEP), l(DS_CALL_END)),
            Family::DeepSeekR1 => format!(
                "{} {} {} {} args_{i} {} {}",
                l(DS_CALL_BEGIN),
                l("function"),
                l(DS_SEP),
                l(&format!("{}\n```json\n", t.name)),
                l("\n```"),
                l(DS_CALL_END)
            ),
        };
        g.push_str(&format!("body_{i}: {body}\n"));
        alts.push(format!("body_{i}"));
    }
    g.push_str(&format!("body: {}\n", alts.join(" | ")));
    let per_call_open = matches!(family, Family::Hermes | Family::Exaone4);
    if per_call_open {
        g.push_str(&format!("call: {} body\n", l(TOOL_CALL_OPEN)));
    } else {
        g.push_str("call: body\n");
    }
    // Llama 3.x templates render exactly one call per message; a named choice is one
    // call of that function (small models otherwise repeat it until `max_tokens`).
    let many = parallel && family != Family::Llama3 && !matches!(choice, ToolChoice::Named(_));
    let more = |sep: &str| if many { format!(" ({sep} call){{0,{}}}", MAX_PARALLEL - 1) } else { String::new() };
    // The calls after the family's opening (`opening` + `after_open` = all the calls).
    let (opening, after_open) = match family {
        Family::Hermes | Family::Exaone4 => (Some(TOOL_CALL_OPEN), format!("body{}", more(&l("\n")))),
        Family::Llama3 => (None, "call".to_string()),
        Family::DeepSeekV3 | Family::DeepSeekR1 => (Some(DS_CALLS_BEGIN), format!("call{} {}", more(""), l(DS_CALLS_END))),
        Family::Mistral => (Some(MISTRAL_CALLS), format!("\"[\" call{} \"]\"", more(&l(", ")))),
        Family::Generic => (None, format!("{} call{} \"]}}\"", l("{\"tool_calls\": ["), more(&l(", ")))),
    };
    g.push_str(&format!("after_open: {after_open}\n"));
    match (choice, opening) {
        (ToolChoice::Auto, Some(open)) if special(open).is_some() => {
            // A special-token opening cannot occur in free text: text, then maybe it.
            g.push_str(&format!("start: TEXT | TEXT {} after_open\nTEXT: /(.|\\n)*/\n", l(open)));
        }
        (ToolChoice::Auto, open) => {
            // Free text may contain no trigger; each trigger is a lazy lexeme that ends
            // where the trigger does, the constrained rest follows it.
            let mut starts = vec!["FREE".to_string()];
            let mut banned = Vec::new();
            if let Some(open) = open {
                let rx = regex_escape(open);
                banned.push(format!("(.|\\n)*{rx}(.|\\n)*"));
                g.push_str(&format!("prefix[lazy]: /(.|\\n)*{rx}/\n"));
                starts.push("prefix after_open".into());
            }
            // A reply that starts as a call object: Llama 3.x's only form, and the bare
            // form small Qwen models write without the tags (see `Family::anchored_json`).
            let bare_key = match family {
                Family::Hermes | Family::Exaone4 => Some("arguments"),
                Family::Llama3 => Some("parameters"),
                _ => None,
            };
            const OBJ: &str = "[ \\n]*\\{[ \\n]*";
            if let Some(key) = bare_key {
                let names: Vec<String> = chosen.iter().map(|t| regex_escape(&t.name)).collect();
                banned.push(format!("{OBJ}\"name\"[ \\n]*:[ \\n]*\"({})\"(.|\\n)*", names.join("|")));
                for (i, name) in names.iter().enumerate() {
                    g.push_str(&format!("bare_prefix_{i}[lazy]: /{OBJ}\"name\"[ \\n]*:[ \\n]*\"{name}\"/\n"));
                    g.push_str(&format!("bare_{i}: {} args_{i} \"}}\"\n", l(&format!(", \"{key}\": "))));
                    starts.push(format!("bare_prefix_{i} bare_{i}"));
                }
            }
            if family == Family::Generic {
                banned.push(format!("{OBJ}\"tool_calls\"(.|\\n)*"));
                g.push_str(&format!("calls_prefix[lazy]: /{OBJ}\"tool_calls\"/\n"));
                g.push_str(&format!("calls_rest: {} call{} \"]}}\"\n", l(": ["), more(&l(", "))));
                starts.push("calls_prefix calls_rest".into());
            }
            let not: String = banned.iter().map(|b| format!(" & ~/{b}/")).collect();
            g.push_str(&format!("start: {}\nFREE: /(.|\\n)*/{not}\n", starts.join(" | ")));
        }
        (_, open) => {
            let lead = match thinking {
                Thinking::Off => "",
                Thinking::May => "think? ",
                Thinking::Open => "thought ",
            };
            if thinking != Thinking::Off {
                // The thought: text up to the first closing tag, then the layout the
                // templates put between it and the answer.
                match special(THINK_CLOSE) {
                    Some(id) => g.push_str(&format!("thought: THOUGHT <[{id}]> GAP?\nTHOUGHT: /(.|\\n)*/\n")),
                    None => g.push_str("thought: thought_text GAP?\nthought_text[lazy]: /(.|\\n)*<\\/think>/\n"),
                }
                g.push_str("GAP: /[ \\n]+/\n");
                if thinking == Thinking::May {
                    g.push_str(&format!("think: {} thought\n", l(THINK_OPEN)));
                }
            }
            match open {
                Some(open) => g.push_str(&format!("start: {lead}{} after_open\n", l(open))),
                None => g.push_str(&format!("start: {lead}after_open\n")),
            }
        }
    }
    Some(g)
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$/-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
