//! Chat templates: a model's `tokenizer.chat_template` rendered the way Hugging Face
//! transformers renders it, inside a sandbox.
//!
//! # What "the way Hugging Face renders it" means here
//!
//! transformers compiles the template in a sandboxed Jinja2 environment with
//! `trim_blocks=True`, `lstrip_blocks=True` and the loop-controls extension, adds the
//! globals `raise_exception(msg)` and `strftime_now(fmt)`, replaces the `tojson` filter by
//! `json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)` (no HTML
//! escaping, non-ASCII kept as is, Python's default separators `", "` / `": "`), and renders
//! with `messages`, `tools` (default `None`), `documents` (default `None`),
//! `add_generation_prompt`, the special-token strings (`bos_token`, `eos_token`) and any
//! extra keyword arguments (`enable_thinking`, …). This module reproduces that with
//! minijinja:
//! - the same whitespace options and loop controls;
//! - Python string/dict/list methods through `minijinja_contrib::pycompat`, plus a few it
//!   lacks (`rsplit`, `partition`, `rpartition`, `removeprefix`, `removesuffix`, `center`,
//!   `ljust`, `rjust`, `list.index`, `copy`);
//! - a Python-compatible `tojson` (key order kept, `ensure_ascii`, `indent`,
//!   `separators`, `sort_keys` honoured, floats printed as Python's `repr`);
//! - a formatter that prints values as Python's `str()` would (`None`, `True`, `False`,
//!   `['a', 1]`, `{'k': 'v'}`), so `{{ x }}` of a non-string matches Jinja2;
//! - `length` of an undefined value is 0, as in Jinja2; non-finite floats print as
//!   Python does (`inf`, and `Infinity` inside `tojson`);
//! - transformers' `{% generation %}…{% endgeneration %}` tags render their body unchanged;
//! - `strftime_now` from the system clock in UTC (no time-zone database; a server's
//!   local time is usually UTC anyway), supporting the common `strftime` directives.
//!
//! # Sandbox
//!
//! A template comes from a downloaded file, so it is untrusted code. minijinja never
//! exposes host objects; in addition every render runs with a fuel budget
//! ([`DEFAULT_FUEL`](crate::chat::DEFAULT_FUEL) instructions), a recursion limit ([`RECURSION_LIMIT`](crate::chat::RECURSION_LIMIT)) and an output
//! cap ([`MAX_OUTPUT_BYTES`](crate::chat::MAX_OUTPUT_BYTES)). `range()` is capped by minijinja at 100 000 items and
//! `str * n` at 100 MB. Known gap: a loop that repeatedly doubles a string
//! (`s = s ~ s`) can allocate a lot of memory before the fuel runs out, because minijinja
//! has no hook on string concatenation; the output cap stops it from being returned.
//!
//! # Differences from Jinja2 that matter in practice
//!
//! transformers uses Jinja2's *immutable* sandbox, where `list.append` raises a security
//! error; minijinja values are immutable too, so `append` is an error here as well (with a
//! message naming the method). Messages are validated and their `content` normalised
//! before rendering: a string, `null`, or an array of `{"type": "text", "text": …}` parts,
//! which are joined with `"\n"` into one string as OpenAI-compatible servers do.
//!
//! # Fallbacks and BOS
//!
//! [`builtin`](crate::chat::builtin) holds templates for GGUF files without `tokenizer.chat_template`;
//! [`fallback_for_arch`](crate::chat::fallback_for_arch) picks one by architecture and [`ChatTemplate::from_gguf`](crate::chat::ChatTemplate::from_gguf) does the
//! whole choice for a model file. Like the official templates, a rendered prompt may start
//! with the BOS text (`gemma`, Llama 3, DeepSeek emit `{{ bos_token }}`): transformers then
//! tokenizes it without adding special tokens, and llama.cpp strips that leading BOS text
//! when its tokenizer adds BOS itself — the caller must do one of the two, not add a second
//! BOS.

use std::fmt::Write as _;
use std::io;

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

/// Instructions a single render may execute before it is stopped.
///
/// Qwen3's template renders 15 000 short messages within this budget (filters such as
/// `tojson` count once however large their input), while a hostile loop stops after about
/// a quarter of a second.
pub const DEFAULT_FUEL: u64 = 3_000_000;

/// Nesting depth (loops, ifs, macro calls) a render may reach.
pub const RECURSION_LIMIT: usize = 200;

/// Largest rendered prompt accepted (16 MiB).
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// Deepest value nesting `tojson` and the Python-style printer walk.
const MAX_VALUE_DEPTH: usize = 128;

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
    /// A [`builtin`] template, by name (the file has none, or names a built-in one).
    Builtin(&'static str),
}

/// A compiled chat template bound to a model's BOS/EOS token strings.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    origin: TemplateOrigin,
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
        let messages = normalize_messages(messages)?;
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

/// Built-in templates for models whose GGUF has no `tokenizer.chat_template`.
///
/// - `chatml`: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
///   `<|im_start|>assistant\n` when a generation prompt is asked for.
/// - `gemma`: Gemma's turn format. `{{ bos_token }}` first; a leading system message is
///   folded into the first user turn followed by a blank line; roles must alternate
///   user/assistant; `assistant` is written `model`; content is trimmed; each turn is
///   `<start_of_turn>{role}\n{content}<end_of_turn>\n`; the generation prompt is
///   `<start_of_turn>model\n`.
pub fn builtin(name: &str) -> Option<&'static str> {
    builtin_entry(name).map(|(_, source)| source)
}

fn builtin_entry(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "chatml" => Some(("chatml", CHATML)),
        "gemma" => Some(("gemma", GEMMA)),
        _ => None,
    }
}

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

/// The built-in template to use for architecture `arch` (`general.architecture`) when the
/// file carries no template: `gemma` for every `gemma*` architecture (Gemma models are
/// trained only on their own turn markers), `chatml` otherwise — the most widespread
/// format among instruction-tuned models and the one llama.cpp also falls back to.
pub fn fallback_for_arch(arch: &str) -> &'static str {
    if arch.starts_with("gemma") {
        GEMMA
    } else {
        CHATML
    }
}

const CHATML: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' }}\
{%- if message['content'] is string %}{{- message['content'] }}{%- endif %}\
{{- '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const GEMMA: &str = "{{- bos_token }}\
{%- if messages and messages[0]['role'] == 'system' %}\
{%- set first_user_prefix = (messages[0]['content'] or '') | trim ~ '\\n\\n' %}\
{%- set loop_messages = messages[1:] %}\
{%- else %}\
{%- set first_user_prefix = '' %}\
{%- set loop_messages = messages %}\
{%- endif %}\
{%- for message in loop_messages %}\
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\
{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\
{%- endif %}\
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}\
{{- '<start_of_turn>' ~ role ~ '\\n' ~ (first_user_prefix if loop.first else '') }}\
{{- (message['content'] or '') | trim }}\
{{- '<end_of_turn>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}";

// ---------------------------------------------------------------------------------------
// Environment

fn sandboxed_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(DEFAULT_FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_formatter(python_formatter);
    env.set_unknown_method_callback(unknown_method);
    env.add_filter("tojson", tojson_filter);
    env.add_filter("string", string_filter);
    env.add_filter("length", length_filter);
    env.add_filter("count", length_filter);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env
}

/// The payload of an error produced by `raise_exception`, found again in [`classify`].
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: Rest<Value>) -> Result<Value, Error> {
    let text = message.iter().map(py_str).collect::<Vec<_>>().join(" ");
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {text}"),
    )
    .with_source(Raised(text)))
}

fn strftime_now(format: &str) -> Result<Value, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime_utc(secs, format)))
}

/// Maps a minijinja error to the public error type.
fn classify(err: &Error) -> ChatTemplateError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(raised) = e.downcast_ref::<Raised>() {
            return ChatTemplateError::Raised(raised.0.clone());
        }
        source = e.source();
    }
    match err.kind() {
        ErrorKind::SyntaxError => ChatTemplateError::Syntax(describe(err)),
        ErrorKind::OutOfFuel => ChatTemplateError::LimitExceeded(format!(
            "ran out of fuel after {DEFAULT_FUEL} instructions ({})",
            describe(err)
        )),
        _ if err.to_string().contains("recursion limit") => {
            ChatTemplateError::LimitExceeded(describe(err))
        }
        _ => ChatTemplateError::Render(describe(err)),
    }
}

/// One line: what went wrong and on which template line, then any underlying causes.
fn describe(err: &Error) -> String {
    let mut text = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line() {
        let _ = write!(text, " (template line {line})");
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        let _ = write!(text, ": {e}");
        source = e.source();
    }
    text
}

/// Collects the rendered text and refuses to grow past `limit` bytes.
struct CappedWriter {
    buf: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("chat template output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Messages

/// Checks the messages' shape and flattens text-part arrays into strings.
fn normalize_messages(
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

// ---------------------------------------------------------------------------------------
// Python methods missing from pycompat

fn unknown_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    match (value.kind(), method) {
        (ValueKind::String, "rsplit") => {
            let s = value.as_str().unwrap_or_default();
            let (sep, maxsplit): (Option<Value>, Option<i64>) = minijinja::value::from_args(args)?;
            let sep = sep.filter(|v| !v.is_none());
            let maxsplit = maxsplit.filter(|&m| m >= 0).map(|m| m as usize);
            let mut parts: Vec<Value> = match (sep.as_ref().and_then(|v| v.as_str()), maxsplit) {
                (Some(""), _) => {
                    return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"))
                }
                (Some(sep), Some(n)) => s.rsplitn(n + 1, sep).map(Value::from).collect(),
                (Some(sep), None) => s.rsplit(sep).map(Value::from).collect(),
                (None, _) => rsplit_whitespace(s, maxsplit)
                    .into_iter()
                    .rev()
                    .map(Value::from)
                    .collect(),
            };
            parts.reverse();
            Ok(Value::from(parts))
        }
        (ValueKind::String, "removeprefix" | "removesuffix") => {
            let s = value.as_str().unwrap_or_default();
            let (affix,): (&str,) = minijinja::value::from_args(args)?;
            let out = if method == "removeprefix" {
                s.strip_prefix(affix)
            } else {
                s.strip_suffix(affix)
            };
            Ok(Value::from(out.unwrap_or(s)))
        }
        (ValueKind::String, "partition" | "rpartition") => {
            let s = value.as_str().unwrap_or_default();
            let (sep,): (&str,) = minijinja::value::from_args(args)?;
            if sep.is_empty() {
                return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
            }
            let found = if method == "partition" {
                s.split_once(sep)
            } else {
                s.rsplit_once(sep)
            };
            let parts = match (found, method) {
                (Some((a, b)), _) => [a, sep, b],
                (None, "partition") => [s, "", ""],
                (None, _) => ["", "", s],
            };
            Ok(Value::from(
                parts.iter().map(|p| Value::from(*p)).collect::<Vec<_>>(),
            ))
        }
        (ValueKind::String, "center" | "ljust" | "rjust") => {
            let s = value.as_str().unwrap_or_default();
            let (width, fill): (usize, Option<&str>) = minijinja::value::from_args(args)?;
            let fill = match fill.map(|f| {
                let mut chars = f.chars();
                (chars.next(), chars.next())
            }) {
                None => ' ',
                Some((Some(c), None)) => c,
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "the fill character must be exactly one character long",
                    ))
                }
            };
            let len = s.chars().count();
            let width = width.min(MAX_OUTPUT_BYTES);
            if width <= len {
                return Ok(value.clone());
            }
            let pad = width - len;
            // Python's center puts the extra character on the left when `width` is odd.
            let left = match method {
                "ljust" => 0,
                "rjust" => pad,
                _ => pad / 2 + (pad & width & 1),
            };
            let mut out = String::with_capacity(width);
            for _ in 0..left {
                out.push(fill);
            }
            out.push_str(s);
            for _ in left..pad {
                out.push(fill);
            }
            Ok(Value::from(out))
        }
        (ValueKind::Seq, "index") => {
            let (needle,): (Value,) = minijinja::value::from_args(args)?;
            let iter = value.try_iter()?;
            for (i, item) in iter.enumerate() {
                if item == needle {
                    return Ok(Value::from(i));
                }
            }
            Err(Error::new(
                ErrorKind::InvalidOperation,
                "list.index(x): x not in list",
            ))
        }
        (ValueKind::Map | ValueKind::Seq, "copy") => {
            let () = minijinja::value::from_args(args)?;
            Ok(value.clone())
        }
        (
            ValueKind::Seq,
            "append" | "extend" | "insert" | "pop" | "remove" | "clear" | "sort" | "reverse",
        )
        | (ValueKind::Map, "update" | "pop" | "setdefault" | "clear" | "popitem") => {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "`{method}` would modify a value in place, which the immutable sandbox \
                     (as in Hugging Face transformers) does not allow"
                ),
            ))
        }
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

/// Python's `s.rsplit(None, maxsplit)`: split on runs of whitespace from the right; the
/// unsplit head keeps its leading whitespace.
fn rsplit_whitespace(s: &str, maxsplit: Option<usize>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s.trim_end();
    while !rest.is_empty() {
        if maxsplit == Some(parts.len()) {
            parts.push(rest);
            break;
        }
        match rest.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
            Some((pos, c)) => {
                parts.push(&rest[pos + c.len_utf8()..]);
                rest = rest[..pos].trim_end();
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    parts.reverse();
    parts
}

// ---------------------------------------------------------------------------------------
// Python-style printing

fn python_formatter(
    out: &mut minijinja::Output,
    _state: &State,
    value: &Value,
) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::String => {
            return out
                .write_str(value.as_str().unwrap_or_default())
                .map_err(write_err)
        }
        ValueKind::Undefined => return Ok(()),
        _ => py_str(value),
    };
    out.write_str(&text).map_err(write_err)
}

fn write_err(_: std::fmt::Error) -> Error {
    Error::new(ErrorKind::WriteFailure, "failed to write output")
}

/// `length`/`count` as Jinja2 computes them: an undefined value has length 0.
fn length_filter(value: &Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Ok(Value::from(0));
    }
    value.len().map(Value::from).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "cannot calculate the length of a value of kind {}",
                value.kind()
            ),
        )
    })
}

/// `{{ x | string }}` as Python's `str(x)`.
fn string_filter(value: &Value) -> Value {
    if value.kind() == ValueKind::String {
        return value.clone();
    }
    if value.is_undefined() {
        return Value::from("");
    }
    Value::from(py_str(value))
}

/// Python's `str(value)`.
fn py_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        _ => {
            let mut s = String::new();
            py_repr(value, &mut s, 0);
            s
        }
    }
}

/// Python's `repr(value)`, the form containers print their items in.
fn py_repr(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_VALUE_DEPTH {
        out.push_str("...");
        return;
    }
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&py_number(value)),
        ValueKind::String => py_repr_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = value.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&item, out, depth + 1);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Some(pairs) = value.as_object().and_then(|o| o.try_iter_pairs()) {
                for (i, (k, v)) in pairs.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&k, out, depth + 1);
                    out.push_str(": ");
                    py_repr(&v, out, depth + 1);
                }
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
}

fn py_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// An integer as digits, a float as Python's `repr(float)`.
fn py_number(value: &Value) -> String {
    number_text(value, false)
}

/// A number as `json.dumps` writes it (non-finite floats as `NaN` / `Infinity`).
fn json_number(value: &Value) -> String {
    number_text(value, true)
}

fn number_text(value: &Value, json: bool) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) if f.is_nan() => if json { "NaN" } else { "nan" }.to_owned(),
        Ok(f) if f.is_infinite() => match (json, f > 0.0) {
            (true, true) => "Infinity".to_owned(),
            (true, false) => "-Infinity".to_owned(),
            (false, true) => "inf".to_owned(),
            (false, false) => "-inf".to_owned(),
        },
        Ok(f) => py_float(f),
        Err(_) => value.to_string(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents in
/// `-4..16`, otherwise `d.ddde±XX`.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{f:e}"); // e.g. "-1.2345e-5", shortest round-trip digits
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.abs())
    }
}

// ---------------------------------------------------------------------------------------
// tojson as transformers defines it: json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False)

struct JsonOptions {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn tojson_filter(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_owned()),
        Some(v) => {
            let n = v.as_i64().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer or a string",
                )
            })?;
            Some(" ".repeat(n.clamp(0, 64) as usize))
        }
    };
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let (item_sep, key_sep) = match kwargs.get::<Option<Value>>("separators")? {
        Some(seps) if !seps.is_none() => {
            let items: Vec<Value> = seps.try_iter()?.collect();
            match items.as_slice() {
                [a, b] if a.as_str().is_some() && b.as_str().is_some() => (
                    a.as_str().unwrap_or_default().to_owned(),
                    b.as_str().unwrap_or_default().to_owned(),
                ),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be a pair of strings",
                    ))
                }
            }
        }
        // Python's defaults: ", " without indent, "," with it (no trailing blanks).
        _ => (
            if indent.is_some() { "," } else { ", " }.to_owned(),
            ": ".to_owned(),
        ),
    };
    kwargs.assert_all_used()?;
    let opts = JsonOptions {
        ensure_ascii,
        indent,
        item_sep,
        key_sep,
        sort_keys,
    };
    let mut out = String::new();
    write_json(value, &opts, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(
    value: &Value,
    opts: &JsonOptions,
    depth: usize,
    out: &mut String,
) -> Result<(), Error> {
    if depth > MAX_VALUE_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&json_number(value)),
        ValueKind::String => {
            write_json_str(value.as_str().unwrap_or_default(), opts.ensure_ascii, out)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, opts, depth, '[', ']', items.len(), |i, out| {
                write_json(&items[i], opts, depth + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut pairs: Vec<(String, Value)> = Vec::new();
            if let Some(iter) = value.as_object().and_then(|o| o.try_iter_pairs()) {
                for (k, v) in iter {
                    pairs.push((json_key(&k)?, v));
                }
            }
            if opts.sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(out, opts, depth, '{', '}', pairs.len(), |i, out| {
                let (k, v) = &pairs[i];
                write_json_str(k, opts.ensure_ascii, out);
                out.push_str(&opts.key_sep);
                write_json(v, opts, depth + 1, out)
            })?;
        }
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: Object of type Undefined is not JSON serializable",
            ))
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "tojson: a value of kind {} is not JSON serializable",
                    value.kind()
                ),
            ))
        }
    }
    Ok(())
}

fn write_container(
    out: &mut String,
    opts: &JsonOptions,
    depth: usize,
    open: char,
    close: char,
    len: usize,
    mut item: impl FnMut(usize, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        if i > 0 {
            out.push_str(&opts.item_sep);
        }
        if let Some(indent) = &opts.indent {
            out.push('\n');
            for _ in 0..=depth {
                out.push_str(indent);
            }
        }
        item(i, out)?;
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: output too large",
            ));
        }
    }
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
    out.push(close);
    Ok(())
}

/// A dict key as `json.dumps` writes it: strings as is, numbers/bools/None converted.
fn json_key(key: &Value) -> Result<String, Error> {
    Ok(match key.kind() {
        ValueKind::String => key.as_str().unwrap_or_default().to_owned(),
        ValueKind::Number => json_number(key),
        ValueKind::Bool => if key.is_true() { "true" } else { "false" }.to_owned(),
        ValueKind::None => "null".to_owned(),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "tojson: keys must be str, int, float, bool or None, not {}",
                    key.kind()
                ),
            ))
        }
    })
}

fn write_json_str(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------
// strftime

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats a Unix time (seconds, UTC) with C `strftime` directives, as templates call
/// `strftime_now("%d %b %Y")`. Supported: `%a %A %b %B %h %d %e %m %y %Y %H %I %M %S %p
/// %j %u %w %F %T %D %R %%`, and glibc's `%-d`-style no-padding flag. Unknown directives
/// are copied through unchanged, as glibc does.
pub fn strftime_utc(unix_secs: i64, format: &str) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let hour = secs_of_day / 3600;
    let minute = secs_of_day % 3600 / 60;
    let second = secs_of_day % 60;
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday; 0 = Monday
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let month_idx = (month - 1).clamp(0, 11) as usize;

    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let num = |v: i64, width: usize| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        match chars.next() {
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('b') | Some('h') => out.push_str(&MONTHS[month_idx][..3]),
            Some('B') => out.push_str(MONTHS[month_idx]),
            Some('d') => out.push_str(&num(day, 2)),
            Some('e') => out.push_str(&if no_pad {
                day.to_string()
            } else {
                format!("{day:2}")
            }),
            Some('m') => out.push_str(&num(month, 2)),
            Some('y') => out.push_str(&num(year.rem_euclid(100), 2)),
            Some('Y') => out.push_str(&year.to_string()),
            Some('H') => out.push_str(&num(hour, 2)),
            Some('I') => out.push_str(&num((hour + 11) % 12 + 1, 2)),
            Some('M') => out.push_str(&num(minute, 2)),
            Some('S') => out.push_str(&num(second, 2)),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&num(yday, 3)),
            Some('u') => out.push_str(&(weekday + 1).to_string()),
            Some('w') => out.push_str(&((weekday + 1) % 7).to_string()),
            Some('F') => out.push_str(&format!("{year}-{month:02}-{day:02}")),
            Some('T') => out.push_str(&format!("{hour:02}:{minute:02}:{second:02}")),
            Some('R') => out.push_str(&format!("{hour:02}:{minute:02}")),
            Some('D') => out.push_str(&format!("{month:02}/{day:02}/{:02}", year.rem_euclid(100))),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
