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
//!   call grammar from then on. Families whose calls have no opening (Llama 3.x bare JSON,
//!   generic) get no grammar for `auto`; their calls are parsed, not forced.
//! - Markers the tokenizer holds as special tokens (Mistral's `[TOOL_CALLS]`, DeepSeek's
//!   when so marked) are written as `<[id]>`, since a special token cannot be spelled as
//!   text; the caller says which (`special`).
//! - JSON is compact with `", "` and `": "` separators, the layout the templates render
//!   calls in (`tojson`), so a constrained call reads like the model's training data.

use serde_json::Value;

use crate::family::{
    Family, DS_CALLS_BEGIN, DS_CALLS_END, DS_CALL_BEGIN, DS_CALL_END, DS_SEP, MISTRAL_CALLS, TOOL_CALL_CLOSE, TOOL_CALL_OPEN,
};
use crate::{Tool, ToolChoice};

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

/// The grammar for a request, or `None` when the choice forces nothing (`none`, or `auto`
/// for a family without an opening).
pub fn call_grammar(
    family: Family,
    tools: &[Tool],
    choice: &ToolChoice,
    parallel: bool,
    special: &dyn Fn(&str) -> Option<u32>,
) -> Option<String> {
    let chosen: Vec<&Tool> = match choice {
        ToolChoice::None => return None,
        ToolChoice::Auto if family.opening().is_none() => return None,
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
        (ToolChoice::Auto, Some(open)) => match special(open) {
            // A special-token opening cannot occur in free text: text, then maybe it.
            Some(_) => g.push_str(&format!("start: TEXT | TEXT {} after_open\nTEXT: /(.|\\n)*/\n", l(open))),
            None => {
                let rx = regex_escape(open);
                g.push_str(&format!(
                    "start: FREE | prefix after_open\nFREE: /(.|\\n)*/ & ~/(.|\\n)*{rx}(.|\\n)*/\nprefix[lazy]: /(.|\\n)*{rx}/\n"
                ));
            }
        },
        (_, Some(open)) => g.push_str(&format!("start: {} after_open\n", l(open))),
        (_, None) => g.push_str("start: after_open\n"),
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
