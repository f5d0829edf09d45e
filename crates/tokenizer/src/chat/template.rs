//! The chat template itself: [`ChatTemplate`] compiles a template source into the sandboxed
//! environment and renders OpenAI-style messages with the variables transformers passes
//! (`messages`, `tools`, `documents`, `add_generation_prompt`, `bos_token`, `eos_token`,
//! extra keyword arguments); it also owns where a model's template comes from
//! ([`ChatTemplate::from_gguf`], [`TemplateOrigin`]), the public error type, and the
//! rewriting of transformers' `{% generation %}` tags.

use minijinja::{Environment, Value};

use super::fallback::{builtin_entry, fallback_for_arch, GEMMA};
use super::messages::{normalize_messages, MessageStyle};
use super::sandbox::{classify, describe, sandboxed_environment, CappedWriter, MAX_OUTPUT_BYTES};

/// Name the compiled template is stored under (shows in error locations).
const TEMPLATE_NAME: &str = "chat_template";

/// Errors from compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    /// The template does not parse.
    #[error("chat template syntax error: {0}")]
    Syntax(String),
    /// The template called `raise_exception(message)`.
    #[error("chat template raised an exception: {0}")]
    Raised(String),
    /// The template ran past a sandbox limit (fuel, recursion, output size).
    #[error("chat template exceeded a sandbox limit: {0}")]
    LimitExceeded(String),
    /// Any other failure while rendering (undefined operations, bad filter arguments, …).
    #[error("chat template render error: {0}")]
    Render(String),
    /// The GGUF metadata a template needs is malformed (wrong types, token id out of range).
    #[error("chat template metadata: {0}")]
    Metadata(String),
    /// The messages (or extra arguments) are not in the accepted shape.
    #[error("invalid chat messages: {0}")]
    InvalidMessages(String),
}

/// Where a [`ChatTemplate`]'s source came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// Given to [`ChatTemplate::new`] by the caller.
    Provided,
    /// The model's `tokenizer.chat_template` metadata.
    Gguf,
    /// A [`builtin`](super::builtin) template, by name (the file has none, or names a
    /// built-in one).
    Builtin(&'static str),
}

/// A compiled chat template bound to a model's BOS/EOS token strings.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    origin: TemplateOrigin,
    style: MessageStyle,
    source: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` once. A syntax error is returned as [`ChatTemplateError::Syntax`]
    /// with the line it was found on.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatTemplateError> {
        let mut env = sandboxed_environment();
        env.add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(source))
            .map_err(|e| ChatTemplateError::Syntax(describe(&e)))?;
        Ok(Self {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
            origin: TemplateOrigin::Provided,
            style: MessageStyle::for_template(source),
            source: source.to_owned(),
        })
    }

    /// The template of a model file: `tokenizer.chat_template` if present (a value that is
    /// just the name of a built-in template, such as `chatml`, selects that template, as
    /// llama.cpp does), otherwise [`fallback_for_arch`] of `general.architecture`. The
    /// BOS/EOS strings are the texts of `tokenizer.ggml.bos_token_id` /
    /// `eos_token_id` in `tokenizer.ggml.tokens` (empty when the file names no such token).
    pub fn from_gguf(file: &jikji_gguf::GgufFile) -> Result<Self, ChatTemplateError> {
        let meta = |e: jikji_gguf::GgufError| ChatTemplateError::Metadata(e.to_string());
        let bos = special_token_text(file, "tokenizer.ggml.bos_token_id")?;
        let eos = special_token_text(file, "tokenizer.ggml.eos_token_id")?;
        let (source, origin) = match file.get_str("tokenizer.chat_template").map_err(meta)? {
            Some(source) => match builtin_entry(source.trim()) {
                Some((name, builtin)) => (builtin, TemplateOrigin::Builtin(name)),
                None => (source, TemplateOrigin::Gguf),
            },
            None => {
                let arch = file
                    .get_str("general.architecture")
                    .map_err(meta)?
                    .unwrap_or("");
                let source = fallback_for_arch(arch);
                let name = if source == GEMMA { "gemma" } else { "chatml" };
                (source, TemplateOrigin::Builtin(name))
            }
        };
        let mut template = Self::new(source, &bos, &eos)?;
        template.origin = origin;
        Ok(template)
    }

    /// Where the template source came from.
    pub fn origin(&self) -> TemplateOrigin {
        self.origin
    }

    /// Renders `messages` (an OpenAI-style array of `{role, content, …}` objects).
    ///
    /// `extra` supplies further template variables (`tools`, `documents`,
    /// `enable_thinking`, …); it may not redefine `messages`, `add_generation_prompt`,
    /// `bos_token` or `eos_token`. `tools` and `documents` default to `None` as in
    /// transformers.
    pub fn render(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<String, ChatTemplateError> {
        let messages = normalize_messages(messages, self.style)?;
        let mut ctx = serde_json::Map::new();
        ctx.insert("tools".into(), serde_json::Value::Null);
        ctx.insert("documents".into(), serde_json::Value::Null);
        if let Some(extra) = extra {
            for (key, value) in extra {
                if RESERVED_KEYS.contains(&key.as_str()) {
                    return Err(ChatTemplateError::InvalidMessages(format!(
                        "extra template argument `{key}` would override a built-in variable"
                    )));
                }
                ctx.insert(key.clone(), value.clone());
            }
        }
        ctx.insert("messages".into(), serde_json::Value::Array(messages));
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        ctx.insert("bos_token".into(), self.bos_token.clone().into());
        ctx.insert("eos_token".into(), self.eos_token.clone().into());

        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatTemplateError::Render(describe(&e)))?;
        let mut out = CappedWriter {
            buf: Vec::new(),
            limit: MAX_OUTPUT_BYTES,
            overflowed: false,
        };
        match template.render_captured_to(Value::from_serialize(&ctx), &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => {
                return Err(ChatTemplateError::LimitExceeded(format!(
                    "rendered prompt is larger than {MAX_OUTPUT_BYTES} bytes"
                )))
            }
            Err(e) => return Err(classify(&e)),
        }
        // Every piece written is a Rust `&str`, so the bytes are valid UTF-8.
        String::from_utf8(out.buf)
            .map_err(|e| ChatTemplateError::Render(format!("rendered text is not UTF-8: {e}")))
    }

    /// The template's source text (tool-call parsers pick their family from it).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The BOS token string the template sees as `bos_token`.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The EOS token string the template sees as `eos_token`.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }
}

/// transformers registers an extension for `{% generation %}…{% endgeneration %}` (it marks
/// assistant spans for training masks and renders its body unchanged). minijinja has no
/// such tag, so each one becomes the equivalent no-op block tag (`if true` / `endif`),
/// keeping its `-`/`+` whitespace modifiers so trimming is unchanged.
fn rewrite_generation_tags(source: &str) -> String {
    if !source.contains("generation") {
        return source.to_owned();
    }
    static TAG: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let tag =
        TAG.get_or_init(|| regex::Regex::new(r"\{%([-+]?)\s*(end)?generation\s*([-+]?)%\}").ok());
    let Some(tag) = tag else {
        return source.to_owned();
    };
    tag.replace_all(source, |caps: &regex::Captures<'_>| {
        let open = caps.get(1).map_or("", |m| m.as_str());
        let close = caps.get(3).map_or("", |m| m.as_str());
        let body = if caps.get(2).is_some() {
            "endif"
        } else {
            "if true"
        };
        format!("{{%{open} {body} {close}%}}")
    })
    .into_owned()
}

const RESERVED_KEYS: [&str; 4] = [
    "messages",
    "add_generation_prompt",
    "bos_token",
    "eos_token",
];

/// The text of the special token whose id is stored under `key`.
fn special_token_text(file: &jikji_gguf::GgufFile, key: &str) -> Result<String, ChatTemplateError> {
    let bad = |msg: String| ChatTemplateError::Metadata(msg);
    let Some(id) = file.get_u32(key).map_err(|e| bad(e.to_string()))? else {
        return Ok(String::new());
    };
    let tokens = match file.get("tokenizer.ggml.tokens") {
        Some(jikji_gguf::Value::Array(tokens)) => tokens,
        Some(_) => return Err(bad("tokenizer.ggml.tokens is not an array".into())),
        None => {
            return Err(bad(format!(
                "{key} is set but tokenizer.ggml.tokens is missing"
            )))
        }
    };
    match tokens.get(id as usize) {
        Some(jikji_gguf::Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(bad("tokenizer.ggml.tokens holds a non-string entry".into())),
        None => Err(bad(format!(
            "{key} = {id} is out of range for {} tokens",
            tokens.len()
        ))),
    }
}
