//! What the model is told about tools when its template has no tool syntax.
//!
//! Templates that spell tools (Qwen, Llama 3.x, DeepSeek, Mistral, EXAONE 4) get the
//! `tools` variable and render the offer themselves, as transformers does. For the rest
//! ([`crate::Family::Generic`]: EXAONE 3.5, built-in ChatML) the server puts this text in
//! front of the system message, so the model knows the functions and the reply format the
//! generic parser reads (and the grammar enforces for `required` and named choices).

use crate::Tool;

/// The system text offering `tools` in the generic JSON form.
pub fn generic_system_text(tools: &[Tool]) -> String {
    let mut s = String::from(
        "You can call functions. The available functions, as JSON Schema for their arguments:\n",
    );
    for t in tools {
        let entry = serde_json::json!({
            "name": t.name,
            "description": t.description.clone().unwrap_or_default(),
            "parameters": t.parameters,
        });
        s.push_str(&entry.to_string());
        s.push('\n');
    }
    s.push_str(
        "To call functions, reply with only this JSON object and nothing else:\n\
         {\"tool_calls\": [{\"name\": \"<function name>\", \"arguments\": {<arguments>}}]}\n\
         Otherwise answer normally.",
    );
    s
}
