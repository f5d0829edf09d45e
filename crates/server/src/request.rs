//! Parsing and validating OpenAI request bodies.
//!
//! Design choices:
//! - A body is parsed into a `serde_json::Value` first and each field is then read by name
//!   with its own check, so an error names the exact `param` and says what was expected
//!   (serde's derive errors would say "invalid type at line 1 column 93"). Unknown fields
//!   are ignored, as OpenAI's SDKs send extras; `null` counts as absent, as the SDKs send
//!   `null` for unset options.
//! - Ranges are OpenAI's (temperature 0..2, penalties -2..2, logit bias -100..100,
//!   top_logprobs 0..20), plus the server's own [`Limits`] on `n`, stop strings and the
//!   logit-bias map, so no request can make the server do unbounded work.
//! - Sampling defaults are llama.cpp's server defaults (temperature 0.8, top-k 40,
//!   top-p 0.95, min-p 0.05); `temperature: 0` is greedy. llama.cpp's extra fields
//!   (`top_k`, `min_p`, `repeat_penalty`, `ignore_eos`) are accepted too.

use jikji_engine::SamplerConfig;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Server-side limits on what one request may ask for.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest `n` (choices per prompt).
    pub max_n: usize,
    /// Most stop strings.
    pub max_stop: usize,
    /// Longest stop string in bytes.
    pub max_stop_len: usize,
    /// Most `logit_bias` entries.
    pub max_logit_bias: usize,
    /// Most prompts in one `/v1/completions` request (`prompt` as a list).
    pub max_prompts: usize,
    /// Most messages in one chat request.
    pub max_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_n: 16,
            max_stop: 16,
            max_stop_len: 256,
            max_logit_bias: 1024,
            max_prompts: 16,
            max_messages: 1024,
        }
    }
}

/// Largest `top_logprobs` (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// The generation options shared by chat and completions, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    pub model: Option<String>,
    /// `max_tokens` or `max_completion_tokens`; `None` = up to the context.
    pub max_tokens: Option<usize>,
    /// Which of the two names `max_tokens` came from (for error messages).
    pub max_tokens_param: &'static str,
    pub sampling: SamplerConfig,
    /// Whether the client fixed the seed (otherwise one is drawn per request).
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    pub logit_bias: Vec<(u32, f32)>,
    pub ignore_eos: bool,
}

/// A JSON object's fields, read with typed checks that name the field on failure.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The body must be a JSON object.
    pub fn new(v: &'a Value) -> Result<Self, ApiError> {
        match v.as_object() {
            Some(obj) => Ok(Self { obj }),
            None => Err(ApiError::bad_json("The request body must be a JSON object")),
        }
    }

    /// The field, `None` when absent or `null`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    pub fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a string"))),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a boolean"))),
        }
    }

    /// A number in `[lo, hi]`.
    pub fn number(&self, name: &str, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x >= lo && x <= hi => Ok(Some(x as f32)),
                Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be between {lo} and {hi}"))),
                None => Err(ApiError::invalid(name, format!("`{name}` must be a number"))),
            },
        }
    }

    /// A non-negative integer in `[lo, hi]`.
    pub fn integer(&self, name: &str, lo: u64, hi: u64) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match as_integer(v) {
                Some(x) if x >= i128::from(lo) && x <= i128::from(hi) => Ok(Some(x as u64)),
                Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be an integer between {lo} and {hi}"))),
                None => Err(ApiError::invalid(name, format!("`{name}` must be an integer"))),
            },
        }
    }
}

/// An integral JSON number (`3` or `3.0`) as i128.
fn as_integer(v: &Value) -> Option<i128> {
    if let Some(i) = v.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = v.as_u64() {
        return Some(i128::from(u));
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i128),
        _ => None,
    }
}

/// Reads the options common to chat and completions. `n_vocab` bounds `logit_bias` keys.
pub fn gen_options(f: &Fields<'_>, limits: &Limits, n_vocab: usize) -> Result<GenOptions, ApiError> {
    let model = f.string("model")?.map(str::to_string);

    let max_completion = f.integer("max_completion_tokens", 1, u32::MAX as u64)?;
    let max_legacy = f.integer("max_tokens", 1, u32::MAX as u64)?;
    let (max_tokens, max_tokens_param) = match (max_completion, max_legacy) {
        (Some(m), _) => (Some(m as usize), "max_completion_tokens"),
        (None, Some(m)) => (Some(m as usize), "max_tokens"),
        (None, None) => (None, "max_tokens"),
    };

    let mut sampling = SamplerConfig::default();
    if let Some(t) = f.number("temperature", 0.0, 2.0)? {
        sampling.temperature = t;
    }
    if let Some(p) = f.number("top_p", 0.0, 1.0)? {
        if p == 0.0 {
            // Only the most likely token survives: greedy.
            sampling.temperature = 0.0;
        } else {
            sampling.top_p = p;
        }
    }
    if let Some(k) = f.integer("top_k", 0, u32::MAX as u64)? {
        sampling.top_k = k as usize;
    }
    if let Some(m) = f.number("min_p", 0.0, 1.0)? {
        sampling.min_p = m;
    }
    if let Some(r) = f.number("repeat_penalty", 0.0, 10.0)? {
        if r <= 0.0 {
            return Err(ApiError::invalid("repeat_penalty", "`repeat_penalty` must be greater than 0"));
        }
        sampling.repeat_penalty = r;
    }
    if let Some(p) = f.number("frequency_penalty", -2.0, 2.0)? {
        sampling.frequency_penalty = p;
    }
    if let Some(p) = f.number("presence_penalty", -2.0, 2.0)? {
        sampling.presence_penalty = p;
    }
    let seed = match f.get("seed") {
        None => None,
        Some(v) => match as_integer(v) {
            // Negative seeds (allowed by OpenAI's schema) map onto u64 by two's complement.
            Some(s) if s >= i128::from(i64::MIN) && s <= i128::from(u64::MAX) => Some(s as u64),
            _ => return Err(ApiError::invalid("seed", "`seed` must be an integer")),
        },
    };
    if let Some(s) = seed {
        sampling.seed = s;
    }
    sampling.validate().map_err(|e| ApiError::invalid("sampling", e.to_string()))?;

    let stop = stop_strings(f.get("stop"), limits)?;
    let n = f.integer("n", 1, limits.max_n as u64)?.unwrap_or(1) as usize;
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::invalid(
                    "stream_options.include_usage",
                    "`stream_options.include_usage` must be a boolean",
                ))
            }
        },
        Some(_) => return Err(ApiError::invalid("stream_options", "`stream_options` must be an object")),
    };
    if f.get("stream_options").is_some() && !stream {
        return Err(ApiError::invalid("stream_options", "`stream_options` is only allowed when `stream` is true"));
    }
    let logit_bias = logit_bias(f.get("logit_bias"), limits, n_vocab)?;
    let ignore_eos = f.bool("ignore_eos")?.unwrap_or(false);

    Ok(GenOptions {
        model,
        max_tokens,
        max_tokens_param,
        sampling,
        seed,
        stop,
        n,
        stream,
        include_usage,
        logit_bias,
        ignore_eos,
    })
}

/// `stop`: a string or a list of strings, within the limits.
fn stop_strings(v: Option<&Value>, limits: &Limits) -> Result<Vec<String>, ApiError> {
    let list: Vec<&Value> = match v {
        None => return Ok(Vec::new()),
        Some(s @ Value::String(_)) => vec![s],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(_) => return Err(ApiError::invalid("stop", "`stop` must be a string or a list of strings")),
    };
    if list.len() > limits.max_stop {
        return Err(ApiError::invalid("stop", format!("`stop` may hold at most {} strings", limits.max_stop)));
    }
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        let s = s.as_str().ok_or_else(|| ApiError::invalid("stop", "`stop` must be a string or a list of strings"))?;
        if s.is_empty() {
            return Err(ApiError::invalid("stop", "stop strings must not be empty"));
        }
        if s.len() > limits.max_stop_len {
            return Err(ApiError::invalid(
                "stop",
                format!("a stop string may be at most {} bytes long", limits.max_stop_len),
            ));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// `logit_bias`: `{"token id": bias}` with bias in [-100, 100] and ids in the vocabulary.
fn logit_bias(v: Option<&Value>, limits: &Limits, n_vocab: usize) -> Result<Vec<(u32, f32)>, ApiError> {
    let obj = match v {
        None => return Ok(Vec::new()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(ApiError::invalid("logit_bias", "`logit_bias` must be an object of token id → bias")),
    };
    if obj.len() > limits.max_logit_bias {
        return Err(ApiError::invalid(
            "logit_bias",
            format!("`logit_bias` may hold at most {} entries", limits.max_logit_bias),
        ));
    }
    let mut out = Vec::with_capacity(obj.len());
    for (k, b) in obj {
        let id: u32 = k
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid("logit_bias", format!("`logit_bias` key {k:?} is not a token id")))?;
        if id as usize >= n_vocab {
            return Err(ApiError::invalid(
                "logit_bias",
                format!("`logit_bias` token id {id} is outside the vocabulary (size {n_vocab})"),
            ));
        }
        let bias = b
            .as_f64()
            .filter(|x| x.is_finite() && (-100.0..=100.0).contains(x))
            .ok_or_else(|| ApiError::invalid("logit_bias", "`logit_bias` values must be numbers in [-100, 100]"))?;
        out.push((id, bias as f32));
    }
    Ok(out)
}

/// Chat `messages`, checked and normalised for the template: a non-empty list of objects
/// with a known `role`; `content` a string or a list of text parts (joined), `developer`
/// treated as `system`. Other fields of a message (`name`, `tool_calls`, …) are kept.
pub fn chat_messages(f: &Fields<'_>, limits: &Limits) -> Result<Value, ApiError> {
    let list = match f.get("messages") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid("messages", "`messages` must be a list of message objects")),
        None => return Err(ApiError::invalid("messages", "`messages` is required").with_code("missing_required_parameter")),
    };
    if list.is_empty() {
        return Err(ApiError::invalid("messages", "`messages` must not be empty"));
    }
    if list.len() > limits.max_messages {
        return Err(ApiError::invalid("messages", format!("at most {} messages per request", limits.max_messages)));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let obj = m.as_object().ok_or_else(|| ApiError::invalid(&param, format!("`{param}` must be an object")))?;
        let role = obj
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid(format!("{param}.role"), format!("`{param}.role` must be a string")))?;
        let role = match role {
            "system" | "user" | "assistant" | "tool" => role,
            "developer" => "system",
            other => {
                return Err(ApiError::invalid(
                    format!("{param}.role"),
                    format!("unknown role {other:?}: expected system, developer, user, assistant or tool"),
                ))
            }
        };
        let content = match obj.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                    match (kind, p.get("text").and_then(Value::as_str)) {
                        ("text", Some(t)) => text.push_str(t),
                        _ => {
                            return Err(ApiError::invalid(
                                format!("{param}.content[{j}]"),
                                "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                            ))
                        }
                    }
                }
                text
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    format!("{param}.content"),
                    format!("`{param}.content` must be a string or a list of text parts"),
                ))
            }
        };
        let mut norm = obj.clone();
        norm.insert("role".into(), Value::String(role.into()));
        norm.insert("content".into(), Value::String(content));
        if let Some(Value::Array(calls)) = norm.get_mut("tool_calls") {
            // OpenAI sends `arguments` as JSON text; templates index and `tojson` them as
            // objects (transformers users pass dicts), so the text is parsed back.
            for c in calls.iter_mut() {
                if let Some(args) = c.get_mut("function").and_then(|f| f.get_mut("arguments")) {
                    if let Some(v @ Value::Object(_)) = args.as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()) {
                        *args = v;
                    }
                }
            }
        }
        out.push(Value::Object(norm));
    }
    Ok(Value::Array(out))
}

/// Chat `logprobs` (bool) + `top_logprobs` (0..20) → the engine's `Some(k)`.
pub fn chat_logprobs(f: &Fields<'_>) -> Result<Option<usize>, ApiError> {
    let on = f.bool("logprobs")?.unwrap_or(false);
    let top = f.integer("top_logprobs", 0, MAX_TOP_LOGPROBS as u64)?;
    match (on, top) {
        (false, Some(_)) => Err(ApiError::invalid("top_logprobs", "`top_logprobs` needs `logprobs: true`")),
        (false, None) => Ok(None),
        (true, k) => Ok(Some(k.unwrap_or(0) as usize)),
    }
}

/// Completions `logprobs` (an integer 0..20) → the engine's `Some(k)`.
pub fn completion_logprobs(f: &Fields<'_>) -> Result<Option<usize>, ApiError> {
    Ok(f.integer("logprobs", 0, MAX_TOP_LOGPROBS as u64)?.map(|k| k as usize))
}

/// Variables the template may read, OpenAI's shape extended as vLLM and llama.cpp do
/// (`chat_template_kwargs: {"enable_thinking": false}` for Qwen3, `true` for EXAONE 4 and
/// the R1 distills). Names the server sets itself are refused, not overridden.
pub fn chat_template_kwargs(f: &Fields<'_>) -> Result<Map<String, Value>, ApiError> {
    const OWN: [&str; 6] = ["messages", "tools", "add_generation_prompt", "bos_token", "eos_token", "documents"];
    match f.get("chat_template_kwargs") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            if let Some(k) = m.keys().find(|k| OWN.contains(&k.as_str())) {
                return Err(ApiError::invalid(
                    "chat_template_kwargs",
                    format!("`chat_template_kwargs` cannot set `{k}`: the request's own fields do"),
                ));
            }
            Ok(m.clone())
        }
        Some(_) => Err(ApiError::invalid("chat_template_kwargs", "`chat_template_kwargs` must be an object")),
    }
}

/// Whether chat replies split `<think>` reasoning into `reasoning_content` (llama.cpp's
/// `reasoning_format`: `"none"` turns the split off; anything else keeps it on).
pub fn reasoning_split(f: &Fields<'_>) -> Result<bool, ApiError> {
    match f.string("reasoning_format")? {
        None => Ok(true),
        Some("none") => Ok(false),
        Some("auto" | "deepseek" | "deepseek-legacy" | "parsed") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            "reasoning_format",
            format!("unknown `reasoning_format` {other:?}: expected \"none\", \"auto\" or \"deepseek\""),
        )),
    }
}

/// One prompt of `/v1/completions`: text to tokenize, or token ids given by the client.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// Completions `prompt`: a string, a list of strings, a list of token ids, or a list of
/// token-id lists. Token ids must be in the vocabulary.
pub fn completion_prompts(f: &Fields<'_>, limits: &Limits, n_vocab: usize) -> Result<Vec<PromptInput>, ApiError> {
    let bad = || ApiError::invalid("prompt", "`prompt` must be a string, a list of strings, or token ids");
    let tokens = |a: &[Value]| -> Result<Vec<u32>, ApiError> {
        a.iter()
            .map(|t| match t.as_u64() {
                Some(id) if (id as usize) < n_vocab => Ok(id as u32),
                Some(id) => Err(ApiError::invalid("prompt", format!("token id {id} is outside the vocabulary"))),
                None => Err(bad()),
            })
            .collect()
    };
    let prompts = match f.get("prompt") {
        None => return Err(ApiError::invalid("prompt", "`prompt` is required").with_code("missing_required_parameter")),
        Some(Value::String(s)) => vec![PromptInput::Text(s.clone())],
        Some(Value::Array(a)) if a.is_empty() => return Err(ApiError::invalid("prompt", "`prompt` must not be empty")),
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => vec![PromptInput::Tokens(tokens(a)?)],
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for p in a {
                match p {
                    Value::String(s) => out.push(PromptInput::Text(s.clone())),
                    Value::Array(t) if !t.is_empty() => out.push(PromptInput::Tokens(tokens(t)?)),
                    _ => return Err(bad()),
                }
            }
            out
        }
        Some(_) => return Err(bad()),
    };
    if prompts.len() > limits.max_prompts {
        return Err(ApiError::invalid("prompt", format!("at most {} prompts per request", limits.max_prompts)));
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: Value) -> Result<GenOptions, ApiError> {
        gen_options(&Fields::new(&v)?, &Limits::default(), 1000)
    }

    #[test]
    fn defaults_are_llama_cpp_sampling_one_choice_no_stream() {
        let o = opts(json!({"model": "m"})).expect("valid");
        assert_eq!(o.sampling, SamplerConfig::default());
        assert_eq!((o.n, o.stream, o.include_usage, o.max_tokens), (1, false, false, None));
        assert_eq!(o.model.as_deref(), Some("m"));
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let o = opts(json!({"max_tokens": 5, "max_completion_tokens": 7})).expect("valid");
        assert_eq!(o.max_tokens, Some(7));
        assert_eq!(o.max_tokens_param, "max_completion_tokens");
        assert!(opts(json!({"max_tokens": 0})).is_err());
        assert!(opts(json!({"max_tokens": -1})).is_err());
        assert!(opts(json!({"max_tokens": "12"})).is_err());
    }

    #[test]
    fn out_of_range_values_name_their_param() {
        for (body, param) in [
            (json!({"temperature": 3}), "temperature"),
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"presence_penalty": -2.5}), "presence_penalty"),
            (json!({"n": 0}), "n"),
            (json!({"n": 17}), "n"),
            (json!({"stop": 5}), "stop"),
            (json!({"stop": [""]}), "stop"),
            (json!({"logit_bias": {"5": 101}}), "logit_bias"),
            (json!({"logit_bias": {"abc": 1}}), "logit_bias"),
            (json!({"logit_bias": {"1000": 1}}), "logit_bias"),
            (json!({"stream": "yes"}), "stream"),
            (json!({"stream_options": {"include_usage": true}}), "stream_options"),
            (json!({"seed": 1.5}), "seed"),
        ] {
            let e = opts(body.clone()).expect_err(&body.to_string());
            assert_eq!(e.status.as_u16(), 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn stop_accepts_a_string_or_a_list_within_limits() {
        assert_eq!(opts(json!({"stop": "\n"})).expect("valid").stop, vec!["\n"]);
        assert_eq!(opts(json!({"stop": ["a", "b"]})).expect("valid").stop, vec!["a", "b"]);
        let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
        assert!(opts(json!({ "stop": many })).is_err());
        assert!(opts(json!({ "stop": "x".repeat(257) })).is_err());
    }

    #[test]
    fn logit_bias_map_size_is_limited() {
        let big: Map<String, Value> = (0..1025).map(|i| (i.to_string(), json!(1))).collect();
        let v = json!({ "logit_bias": big });
        let e = gen_options(&Fields::new(&v).expect("object"), &Limits::default(), 5000).expect_err("too many");
        assert_eq!(e.param.as_deref(), Some("logit_bias"));
        let o = opts(json!({"logit_bias": {"7": -100, "9": 2.5}})).expect("valid");
        let mut lb = o.logit_bias;
        lb.sort_by_key(|x| x.0);
        assert_eq!(lb, vec![(7, -100.0), (9, 2.5)]);
    }

    #[test]
    fn seed_temperature_and_nulls() {
        let o = opts(json!({"seed": 42, "temperature": 0, "top_p": null, "user": "x", "unknown_extra": [1]}))
            .expect("valid");
        assert_eq!(o.seed, Some(42));
        assert_eq!(o.sampling.seed, 42);
        assert_eq!(o.sampling.temperature, 0.0);
        assert_eq!(opts(json!({"seed": -1})).expect("valid").seed, Some(u64::MAX));
    }

    #[test]
    fn include_usage_needs_stream() {
        let o = opts(json!({"stream": true, "stream_options": {"include_usage": true}})).expect("valid");
        assert!(o.stream && o.include_usage);
    }

    #[test]
    fn body_must_be_an_object() {
        assert_eq!(opts(json!([1, 2])).expect_err("array").status.as_u16(), 400);
    }

    #[test]
    fn messages_are_normalised_and_checked() {
        let v = json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "안녕"}, {"type": "text", "text": "하세요"}]}
        ]});
        let m = chat_messages(&Fields::new(&v).expect("object"), &Limits::default()).expect("valid");
        assert_eq!(m, json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "안녕하세요"}]));
        for bad in [
            json!({"messages": []}),
            json!({"messages": "hi"}),
            json!({}),
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            json!({"messages": [{"content": "x"}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            json!({"messages": [{"role": "user", "content": 5}]}),
        ] {
            let e = chat_messages(&Fields::new(&bad).expect("object"), &Limits::default()).expect_err(&bad.to_string());
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.param.as_deref().is_some_and(|p| p.starts_with("messages")), "{bad}");
        }
    }

    #[test]
    fn chat_logprobs_and_top_logprobs() {
        let f = |v: Value| chat_logprobs(&Fields::new(&v).expect("object"));
        assert_eq!(f(json!({})).expect("ok"), None);
        assert_eq!(f(json!({"logprobs": true})).expect("ok"), Some(0));
        assert_eq!(f(json!({"logprobs": true, "top_logprobs": 3})).expect("ok"), Some(3));
        assert!(f(json!({"logprobs": true, "top_logprobs": 21})).is_err());
        assert!(f(json!({"top_logprobs": 2})).is_err());
    }

    #[test]
    fn chat_template_kwargs_must_be_an_object_that_leaves_the_servers_variables_alone() {
        let f = |v: Value| chat_template_kwargs(&Fields::new(&v).expect("object"));
        assert!(f(json!({})).expect("ok").is_empty());
        let m = f(json!({"chat_template_kwargs": {"enable_thinking": false}})).expect("ok");
        assert_eq!(m.get("enable_thinking"), Some(&json!(false)));
        for bad in [json!({"chat_template_kwargs": "x"}), json!({"chat_template_kwargs": {"tools": []}}), json!({"chat_template_kwargs": {"messages": []}})] {
            let e = f(bad).expect_err("refused");
            assert_eq!(e.param.as_deref(), Some("chat_template_kwargs"));
        }
    }

    #[test]
    fn reasoning_format_none_turns_the_split_off() {
        let f = |v: Value| reasoning_split(&Fields::new(&v).expect("object"));
        assert!(f(json!({})).expect("ok"));
        assert!(!f(json!({"reasoning_format": "none"})).expect("ok"));
        assert!(f(json!({"reasoning_format": "deepseek"})).expect("ok"));
        assert!(f(json!({"reasoning_format": "bogus"})).is_err());
    }

    #[test]
    fn completion_prompt_forms() {
        let f = |v: Value| completion_prompts(&Fields::new(&v).expect("object"), &Limits::default(), 100);
        assert_eq!(f(json!({"prompt": "hi"})).expect("ok"), vec![PromptInput::Text("hi".into())]);
        assert_eq!(f(json!({"prompt": [1, 2]})).expect("ok"), vec![PromptInput::Tokens(vec![1, 2])]);
        assert_eq!(
            f(json!({"prompt": ["a", [3]]})).expect("ok"),
            vec![PromptInput::Text("a".into()), PromptInput::Tokens(vec![3])]
        );
        assert!(f(json!({"prompt": [100]})).is_err(), "id outside the vocabulary");
        assert!(f(json!({"prompt": []})).is_err());
        assert!(f(json!({"prompt": {"a": 1}})).is_err());
        assert!(f(json!({})).is_err());
        let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
        assert!(f(json!({ "prompt": many })).is_err());
    }
}
