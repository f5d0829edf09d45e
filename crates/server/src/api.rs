//! The route handlers: chat and text completions (streaming or not), models, tokenize,
//! detokenize, health and metrics.
//!
//! Design choices:
//! - A generation request becomes one engine submission per choice (`n` of them per
//!   prompt, seeds `seed, seed+1, …`); the engine's prefix cache computes the shared prompt
//!   once. All checks (shape, ranges, model name, context) happen before the first
//!   submission, and a failed submission drops the ones already made, which cancels them.
//! - Streaming bodies own the engine streams: when a client disconnects, hyper drops the
//!   body, the [`GenStream`]s are dropped with it, and the engine frees their KV blocks
//!   before its next step. Non-streaming handlers behave the same way, since hyper drops
//!   the handler's future on disconnect.
//! - Stream and non-stream replies are built from the same per-token events through the
//!   same [`Choice`] state (reasoning split included), so the concatenated deltas of a
//!   stream equal the non-streamed text exactly.
//! - Every body is read as bytes under the body limit and parsed here, so a too-large body
//!   is a 413 and bad JSON a 400, both in OpenAI's error shape.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use jikji_engine::reasoning::{Part, ReasoningSplitter};
use jikji_engine::serve::{FinishReason, GenEvent, GenRequest, GenStream, SubmitError, TokenLogprob, Usage};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::request::{self, Fields, GenOptions, PromptInput};
use crate::{sse, ActiveGuard, AppState};

const FINGERPRINT: &str = concat!("jikji-", env!("CARGO_PKG_VERSION"));

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_u64() -> u64 {
    rand::random::<u64>()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{:016x}{:08x}", random_u64(), random_u64() as u32)
}

/// Parses a body (already limited in size) as a JSON value.
fn parse_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Value, ApiError> {
    let bytes = match body {
        Ok(b) => b,
        Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::body_too_large(limit)),
        Err(rej) => return Err(ApiError::bad_json(format!("Could not read the request body: {}", rej.body_text()))),
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_json("The request body is empty; expected a JSON object"));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_json(format!("The request body is not valid JSON: {e}")))
}

fn check_model(st: &AppState, requested: Option<&str>) -> Result<(), ApiError> {
    match requested {
        None => Ok(()),
        Some(m) if st.serves(m) => Ok(()),
        Some(m) => Err(ApiError::unknown_model(m, st.engine.model_id())),
    }
}

fn check_not_draining(st: &AppState) -> Result<(), ApiError> {
    if st.shutdown.draining.load(Ordering::SeqCst) {
        return Err(ApiError::shutting_down());
    }
    Ok(())
}

fn submit_error(e: SubmitError, prompt_param: &str) -> ApiError {
    match e {
        SubmitError::QueueFull { retry_after_secs } => ApiError::queue_full(retry_after_secs),
        SubmitError::ShuttingDown => ApiError::shutting_down(),
        SubmitError::PromptTooLong { prompt, limit } => ApiError::context_length(
            format!("This model's maximum context length is {limit} tokens; the request needs {prompt}"),
            prompt_param,
        ),
        SubmitError::Invalid(msg) => ApiError::invalid(prompt_param, msg),
    }
}

/// The token budget for a prompt of `n_prompt` tokens: the requested `max_tokens` if the
/// two fit the context, otherwise an OpenAI-style `context_length_exceeded`.
fn token_budget(st: &AppState, opts: &GenOptions, n_prompt: usize, prompt_param: &str) -> Result<usize, ApiError> {
    let n_ctx = st.engine.n_ctx();
    if n_prompt == 0 {
        return Err(ApiError::invalid(prompt_param, "The prompt is empty after tokenization"));
    }
    if n_prompt >= n_ctx {
        return Err(ApiError::context_length(
            format!(
                "This model's maximum context length is {n_ctx} tokens. However, your {} resulted in {n_prompt} tokens.",
                if prompt_param == "messages" { "messages" } else { "prompt" }
            ),
            prompt_param,
        ));
    }
    match opts.max_tokens {
        None => Ok(n_ctx - n_prompt),
        Some(m) if n_prompt + m <= n_ctx => Ok(m),
        Some(m) => Err(ApiError::context_length(
            format!(
                "This model's maximum context length is {n_ctx} tokens. However, you requested {} tokens ({n_prompt} in the {}, {m} in the completion). Please reduce the length of the {} or completion.",
                n_prompt + m,
                prompt_param,
                prompt_param
            ),
            opts.max_tokens_param,
        )),
    }
}

/// One choice being generated.
struct Choice {
    index: usize,
    splitter: Option<ReasoningSplitter>,
    content: String,
    reasoning: String,
    logprobs: Vec<TokenLogprob>,
    /// Byte offset in `content` of each token (legacy completions `text_offset`).
    offsets: Vec<usize>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl Choice {
    fn new(index: usize, splitter: Option<ReasoningSplitter>) -> Self {
        Self {
            index,
            splitter,
            content: String::new(),
            reasoning: String::new(),
            logprobs: Vec::new(),
            offsets: Vec::new(),
            finish: None,
            usage: None,
        }
    }

    /// Feeds a piece of generated text; returns the (reasoning, content) deltas it makes.
    fn push_text(&mut self, text: &str) -> (String, String) {
        let parts = match &mut self.splitter {
            Some(s) => s.push(text),
            None => vec![Part::Content(text.to_string())],
        };
        self.absorb(parts)
    }

    fn finish_text(&mut self) -> (String, String) {
        let parts = match &mut self.splitter {
            Some(s) => s.finish(),
            None => Vec::new(),
        };
        self.absorb(parts)
    }

    fn absorb(&mut self, parts: Vec<Part>) -> (String, String) {
        let (mut r, mut c) = (String::new(), String::new());
        for p in parts {
            match p {
                Part::Reasoning(s) => r.push_str(&s),
                Part::Content(s) => c.push_str(&s),
            }
        }
        self.reasoning.push_str(&r);
        self.content.push_str(&c);
        (r, c)
    }
}

fn finish_str(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn chat_logprob_entry(lp: &TokenLogprob) -> Value {
    json!({
        "token": lp.token,
        "logprob": lp.logprob,
        "bytes": lp.bytes,
        "top_logprobs": lp.top.iter().map(|(t, b, l)| json!({"token": t, "logprob": l, "bytes": b})).collect::<Vec<_>>(),
    })
}

fn legacy_logprobs(lps: &[TokenLogprob], offsets: &[usize]) -> Value {
    json!({
        "tokens": lps.iter().map(|l| l.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
        "top_logprobs": lps.iter().map(|l| {
            let m: serde_json::Map<String, Value> = l.top.iter().map(|(t, _, p)| (t.clone(), json!(p))).collect();
            Value::Object(m)
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

fn usage_json(prompt_tokens: usize, completion_tokens: usize, cached: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// Which API a generation answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

/// What a generation reply needs besides the engine streams.
struct Reply {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    logprobs: bool,
    include_usage: bool,
    /// Prompt length of each choice (index order), for `usage`.
    prompt_lens: Vec<usize>,
    /// Which prompt each choice belongs to (completions may send several prompts).
    prompt_of: Vec<usize>,
    /// End-of-generation ids: such a token only carries the last held-back text (it is
    /// not part of the completion), so its logprob is not reported.
    eog_ids: Vec<u32>,
}

impl Reply {
    /// `usage`: prompts counted once each (not once per choice), completions summed.
    fn usage(&self, choices: &[Choice]) -> Value {
        let mut seen = std::collections::BTreeMap::new();
        for (i, c) in choices.iter().enumerate() {
            let p = self.prompt_of[i];
            let u = c.usage.as_ref();
            let cached = u.map_or(0, |u| u.cached_prompt_tokens);
            let len = u.map_or(self.prompt_lens[i], |u| u.prompt_tokens);
            // Keep the first choice's numbers for each prompt.
            seen.entry(p).or_insert((len, cached));
        }
        let prompt: usize = seen.values().map(|v| v.0).sum();
        let cached: usize = seen.values().map(|v| v.1).sum();
        let completion: usize = choices.iter().map(|c| c.usage.as_ref().map_or(0, |u| u.completion_tokens)).sum();
        usage_json(prompt, completion, cached)
    }

    fn object(&self, stream: bool) -> &'static str {
        match (self.kind, stream) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn envelope(&self, stream: bool, choices: Vec<Value>) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": self.object(stream),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        });
        if stream && self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    fn final_json(&self, choices: &[Choice]) -> Value {
        let out: Vec<Value> = choices
            .iter()
            .map(|c| {
                let finish = c.finish.as_ref().map(finish_str);
                match self.kind {
                    Kind::Chat => {
                        let mut msg = json!({"role": "assistant", "content": c.content});
                        if !c.reasoning.is_empty() {
                            msg["reasoning_content"] = json!(c.reasoning);
                        }
                        let logprobs = if self.logprobs {
                            json!({"content": c.logprobs.iter().map(chat_logprob_entry).collect::<Vec<_>>()})
                        } else {
                            Value::Null
                        };
                        json!({"index": c.index, "message": msg, "logprobs": logprobs, "finish_reason": finish})
                    }
                    Kind::Completion => {
                        let logprobs =
                            if self.logprobs { legacy_logprobs(&c.logprobs, &c.offsets) } else { Value::Null };
                        json!({"index": c.index, "text": c.content, "logprobs": logprobs, "finish_reason": finish})
                    }
                }
            })
            .collect();
        let mut v = self.envelope(false, out);
        v["usage"] = self.usage(choices);
        v
    }

    /// A stream chunk for one choice.
    fn delta_chunk(&self, c: &Choice, reasoning: &str, content: &str, lp: Option<&TokenLogprob>, offset: usize, finish: Option<&FinishReason>) -> Value {
        let choice = match self.kind {
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if !reasoning.is_empty() {
                    delta.insert("reasoning_content".into(), json!(reasoning));
                }
                if !content.is_empty() || (lp.is_some() && reasoning.is_empty()) {
                    delta.insert("content".into(), json!(content));
                }
                let logprobs = match (self.logprobs, lp) {
                    (true, Some(l)) => json!({"content": [chat_logprob_entry(l)]}),
                    _ => Value::Null,
                };
                json!({"index": c.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish.map(finish_str)})
            }
            Kind::Completion => {
                let logprobs = match (self.logprobs, lp) {
                    (true, Some(l)) => legacy_logprobs(std::slice::from_ref(l), &[offset]),
                    _ => Value::Null,
                };
                json!({"index": c.index, "text": content, "logprobs": logprobs, "finish_reason": finish.map(finish_str)})
            }
        };
        self.envelope(true, vec![choice])
    }

    fn role_chunk(&self, index: usize) -> Value {
        self.envelope(
            true,
            vec![json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})],
        )
    }
}

/// Applies one engine event to a choice; returns the stream chunk it makes, if any, and
/// an error message for `GenEvent::Error`.
fn apply_event(reply: &Reply, c: &mut Choice, ev: GenEvent) -> Result<Vec<Value>, String> {
    let mut chunks = Vec::new();
    match ev {
        GenEvent::Token { id, text, logprob } => {
            let logprob = if reply.eog_ids.contains(&id) { None } else { logprob };
            let offset = c.content.len();
            let (r, t) = c.push_text(&text);
            if let Some(lp) = &logprob {
                c.offsets.push(offset);
                c.logprobs.push(lp.clone());
            }
            let lp = if reply.logprobs { logprob.as_ref() } else { None };
            if !r.is_empty() || !t.is_empty() || lp.is_some() {
                chunks.push(reply.delta_chunk(c, &r, &t, lp, offset, None));
            }
        }
        GenEvent::Done { finish, usage } => {
            let offset = c.content.len();
            let (r, t) = c.finish_text();
            if !r.is_empty() || !t.is_empty() {
                chunks.push(reply.delta_chunk(c, &r, &t, None, offset, None));
            }
            chunks.push(reply.delta_chunk(c, "", "", None, offset, Some(&finish)));
            c.finish = Some(finish);
            c.usage = Some(usage);
        }
        GenEvent::Error(msg) => return Err(msg),
    }
    Ok(chunks)
}

fn gen_events(gs: GenStream) -> BoxStream<'static, GenEvent> {
    stream::unfold(gs, |mut gs| async move { gs.next().await.map(|ev| (ev, gs)) }).boxed()
}

/// Submits one request per choice. Dropping the returned streams cancels them.
fn submit_all(st: &AppState, reqs: Vec<GenRequest>, prompt_param: &str) -> Result<Vec<GenStream>, ApiError> {
    let mut out = Vec::with_capacity(reqs.len());
    for r in reqs {
        out.push(st.engine.submit(r).map_err(|e| submit_error(e, prompt_param))?);
    }
    Ok(out)
}

/// Runs the generations to the end and builds the one JSON reply.
async fn collect(reply: Reply, mut choices: Vec<Choice>, streams: Vec<GenStream>, _guard: ActiveGuard) -> Response {
    let mut merged: SelectAll<BoxStream<'static, (usize, GenEvent)>> = stream::select_all(
        streams.into_iter().enumerate().map(|(i, gs)| gen_events(gs).map(move |ev| (i, ev)).boxed()),
    );
    while let Some((i, ev)) = merged.next().await {
        if let Err(msg) = apply_event(&reply, &mut choices[i], ev) {
            return ApiError::internal(format!("generation failed: {msg}")).into_response();
        }
    }
    if choices.iter().any(|c| c.finish.is_none()) {
        return ApiError::internal("the engine ended a generation without finishing it").into_response();
    }
    axum::Json(reply.final_json(&choices)).into_response()
}

/// The state of a streaming reply, owned by the response body.
struct StreamState {
    reply: Reply,
    choices: Vec<Choice>,
    merged: SelectAll<BoxStream<'static, (usize, GenEvent)>>,
    pending: VecDeque<Bytes>,
    done: bool,
    _guard: ActiveGuard,
}

fn sse_response(reply: Reply, choices: Vec<Choice>, streams: Vec<GenStream>, guard: ActiveGuard) -> Response {
    let mut pending = VecDeque::new();
    if reply.kind == Kind::Chat {
        for c in &choices {
            pending.push_back(sse::event(&reply.role_chunk(c.index)));
        }
    }
    let merged = stream::select_all(
        streams.into_iter().enumerate().map(|(i, gs)| gen_events(gs).map(move |ev| (i, ev)).boxed()),
    );
    let state = StreamState { reply, choices, merged, pending, done: false, _guard: guard };
    let body = stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.pending.pop_front() {
                return Some((Ok::<Bytes, std::convert::Infallible>(b), s));
            }
            if s.done {
                return None;
            }
            match s.merged.next().await {
                Some((i, ev)) => match apply_event(&s.reply, &mut s.choices[i], ev) {
                    Ok(chunks) => s.pending.extend(chunks.iter().map(sse::event)),
                    Err(msg) => {
                        let e = ApiError::internal(format!("generation failed: {msg}"));
                        s.pending.push_back(sse::event(&e.body()));
                        s.pending.push_back(sse::done());
                        s.done = true;
                    }
                },
                None => {
                    if s.reply.include_usage {
                        let mut v = s.reply.envelope(true, Vec::new());
                        v["usage"] = s.reply.usage(&s.choices);
                        s.pending.push_back(sse::event(&v));
                    }
                    s.pending.push_back(sse::done());
                    s.done = true;
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

fn gen_request(opts: &GenOptions, prompt: Vec<u32>, max_tokens: usize, seed: u64, logprobs: Option<usize>) -> GenRequest {
    let mut sampling = opts.sampling.clone();
    sampling.seed = seed;
    GenRequest {
        prompt,
        max_tokens,
        sampling,
        logit_bias: opts.logit_bias.clone(),
        stop: opts.stop.clone(),
        logprobs,
        ignore_eos: opts.ignore_eos,
    }
}

/// `POST /v1/chat/completions`
pub async fn chat_completions(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    check_not_draining(&st)?;
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    let n_vocab = st.engine.tokenizer().n_vocab();
    let opts = request::gen_options(&f, &st.config.limits, n_vocab)?;
    check_model(&st, opts.model.as_deref())?;
    let messages = request::chat_messages(&f, &st.config.limits)?;
    let logprobs = request::chat_logprobs(&f)?;
    let split = request::reasoning_split(&f)?;
    let add_generation_prompt = f.bool("add_generation_prompt")?.unwrap_or(true);

    let prompt = st
        .engine
        .chat_prompt(&messages, add_generation_prompt)
        .map_err(|e| ApiError::invalid("messages", format!("cannot apply the chat template: {e}")))?;
    let max_tokens = token_budget(&st, &opts, prompt.len(), "messages")?;

    let splitter = if split {
        // Start inside a thought when the rendered prompt ends with `<think>`.
        let tail_from = prompt.len().saturating_sub(8);
        let tail = st.engine.tokenizer().decode(&prompt[tail_from..], true).unwrap_or_default();
        Some(ReasoningSplitter::for_prompt(&tail))
    } else {
        None
    };
    let seed = opts.seed.unwrap_or_else(random_u64);
    let reqs: Vec<GenRequest> = (0..opts.n)
        .map(|j| gen_request(&opts, prompt.clone(), max_tokens, seed.wrapping_add(j as u64), logprobs))
        .collect();
    let guard = st.shutdown.guard();
    let streams = submit_all(&st, reqs, "messages")?;
    let reply = Reply {
        kind: Kind::Chat,
        id: new_id("chatcmpl-"),
        created: now_secs(),
        model: st.engine.model_id().to_string(),
        logprobs: logprobs.is_some(),
        include_usage: opts.include_usage,
        prompt_lens: vec![prompt.len(); opts.n],
        prompt_of: vec![0; opts.n],
        eog_ids: st.engine.tokenizer().eog_ids(),
    };
    let choices: Vec<Choice> = (0..opts.n).map(|i| Choice::new(i, splitter.clone())).collect();
    if opts.stream {
        Ok(sse_response(reply, choices, streams, guard))
    } else {
        Ok(collect(reply, choices, streams, guard).await)
    }
}

/// `POST /v1/completions`
pub async fn completions(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    check_not_draining(&st)?;
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    let n_vocab = st.engine.tokenizer().n_vocab();
    let opts = request::gen_options(&f, &st.config.limits, n_vocab)?;
    check_model(&st, opts.model.as_deref())?;
    let inputs = request::completion_prompts(&f, &st.config.limits, n_vocab)?;
    let logprobs = request::completion_logprobs(&f)?;
    if f.bool("echo")?.unwrap_or(false) {
        return Err(ApiError::invalid("echo", "`echo` is not supported"));
    }
    if f.string("suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid("suffix", "`suffix` is not supported"));
    }

    let mut prompts = Vec::with_capacity(inputs.len());
    for p in inputs {
        let ids = match p {
            PromptInput::Text(t) => st
                .engine
                .completion_prompt(&t)
                .map_err(|e| ApiError::invalid("prompt", format!("cannot tokenize the prompt: {e}")))?,
            PromptInput::Tokens(ids) => ids,
        };
        let budget = token_budget(&st, &opts, ids.len(), "prompt")?;
        prompts.push((ids, budget));
    }
    let seed = opts.seed.unwrap_or_else(random_u64);
    let mut reqs = Vec::new();
    let (mut prompt_lens, mut prompt_of) = (Vec::new(), Vec::new());
    for (pi, (ids, budget)) in prompts.iter().enumerate() {
        for j in 0..opts.n {
            reqs.push(gen_request(&opts, ids.clone(), *budget, seed.wrapping_add(j as u64), logprobs));
            prompt_lens.push(ids.len());
            prompt_of.push(pi);
        }
    }
    let guard = st.shutdown.guard();
    let streams = submit_all(&st, reqs, "prompt")?;
    let n_choices = streams.len();
    let reply = Reply {
        kind: Kind::Completion,
        id: new_id("cmpl-"),
        created: now_secs(),
        model: st.engine.model_id().to_string(),
        logprobs: logprobs.is_some(),
        include_usage: opts.include_usage,
        prompt_lens,
        prompt_of,
        eog_ids: st.engine.tokenizer().eog_ids(),
    };
    let choices: Vec<Choice> = (0..n_choices).map(|i| Choice::new(i, None)).collect();
    if opts.stream {
        Ok(sse_response(reply, choices, streams, guard))
    } else {
        Ok(collect(reply, choices, streams, guard).await)
    }
}

fn model_object(id: &str, created: u64) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "jikji"})
}

/// `GET /v1/models`
pub async fn list_models(State(st): State<AppState>) -> Response {
    axum::Json(json!({"object": "list", "data": [model_object(st.engine.model_id(), st.started)]})).into_response()
}

/// `GET /v1/models/{model}`
pub async fn get_model(State(st): State<AppState>, Path(model): Path<String>) -> Result<Response, ApiError> {
    check_model(&st, Some(&model))?;
    Ok(axum::Json(model_object(st.engine.model_id(), st.started)).into_response())
}

/// `GET /health`: 200 while serving, 503 while draining.
pub async fn health(State(st): State<AppState>) -> Response {
    if st.shutdown.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "shutting_down"}))).into_response();
    }
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `GET /metrics`
pub async fn metrics(State(st): State<AppState>) -> Response {
    let text = crate::metrics::render(&st.http_metrics, &st.engine.metrics());
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], text)
        .into_response()
}

/// `POST /tokenize` (llama.cpp's shape): `{"content", "add_special"?, "with_pieces"?}` →
/// `{"tokens": [ids]}` or, with pieces, `{"tokens": [{"id", "piece"}]}`.
pub async fn tokenize(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    check_model(&st, f.string("model")?)?;
    let content = f
        .string("content")?
        .ok_or_else(|| ApiError::invalid("content", "`content` (a string) is required"))?;
    let add_special = f.bool("add_special")?.unwrap_or(false);
    let parse_special = f.bool("parse_special")?.unwrap_or(true);
    let with_pieces = f.bool("with_pieces")?.unwrap_or(false);
    let tok = st.engine.tokenizer();
    let ids = tok
        .encode(content, add_special, parse_special)
        .map_err(|e| ApiError::invalid("content", format!("cannot tokenize: {e}")))?;
    let tokens: Vec<Value> = if with_pieces {
        ids.iter()
            .map(|&id| {
                let bytes = tok.token_bytes(id, true).unwrap_or_default();
                match String::from_utf8(bytes) {
                    Ok(s) => json!({"id": id, "piece": s}),
                    Err(e) => json!({"id": id, "piece": e.into_bytes()}),
                }
            })
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect()
    };
    Ok(axum::Json(json!({"tokens": tokens})).into_response())
}

/// `POST /detokenize`: `{"tokens": [ids]}` → `{"content": text}`.
pub async fn detokenize(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    check_model(&st, f.string("model")?)?;
    let n_vocab = st.engine.tokenizer().n_vocab();
    let list = match f.get("tokens") {
        Some(Value::Array(a)) => a,
        _ => return Err(ApiError::invalid("tokens", "`tokens` (a list of token ids) is required")),
    };
    let mut ids = Vec::with_capacity(list.len());
    for t in list {
        match t.as_u64() {
            Some(id) if (id as usize) < n_vocab => ids.push(id as u32),
            _ => {
                return Err(ApiError::invalid(
                    "tokens",
                    format!("`tokens` must hold token ids below the vocabulary size {n_vocab}"),
                ))
            }
        }
    }
    let text = st
        .engine
        .tokenizer()
        .decode(&ids, false)
        .map_err(|e| ApiError::invalid("tokens", format!("cannot detokenize: {e}")))?;
    Ok(axum::Json(json!({"content": text})).into_response())
}

/// Any other URL: 404 in OpenAI's shape.
pub async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}

/// A known URL with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: Kind, logprobs: bool) -> Reply {
        Reply {
            kind,
            id: "chatcmpl-test".into(),
            created: 0,
            model: "m".into(),
            logprobs,
            include_usage: false,
            prompt_lens: vec![5],
            prompt_of: vec![0],
            eog_ids: vec![2],
        }
    }

    fn tok(id: u32, text: &str) -> GenEvent {
        GenEvent::Token { id, text: text.into(), logprob: None }
    }

    fn done() -> GenEvent {
        GenEvent::Done { finish: FinishReason::Stop, usage: Usage { prompt_tokens: 5, completion_tokens: 4, cached_prompt_tokens: 0 } }
    }

    /// Feeds events; returns the (reasoning, content) deltas of the stream chunks.
    fn run(reply: &Reply, c: &mut Choice, events: Vec<GenEvent>) -> (String, String, Vec<Value>) {
        let mut chunks = Vec::new();
        for ev in events {
            chunks.extend(apply_event(reply, c, ev).expect("no error"));
        }
        let r = chunks.iter().filter_map(|v| v["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
        let t = chunks.iter().filter_map(|v| v["choices"][0]["delta"]["content"].as_str()).collect();
        (r, t, chunks)
    }

    #[test]
    fn think_block_goes_to_reasoning_content_in_stream_and_reply() {
        let rp = reply(Kind::Chat, false);
        let mut c = Choice::new(0, Some(ReasoningSplitter::new()));
        let ev = vec![tok(10, "<th"), tok(11, "ink>Paris is"), tok(12, " in France.</think>\n\n"), tok(13, "Paris."), done()];
        let (r, t, chunks) = run(&rp, &mut c, ev);
        assert_eq!(r, "Paris is in France.");
        assert_eq!(t, "Paris.");
        assert!(chunks.iter().all(|v| !v.to_string().contains("think>")));
        let fin = rp.final_json(std::slice::from_ref(&c));
        assert_eq!(fin["choices"][0]["message"]["reasoning_content"], "Paris is in France.");
        assert_eq!(fin["choices"][0]["message"]["content"], "Paris.");
        assert_eq!(chunks.last().expect("finish chunk")["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn prompt_ending_in_think_starts_inside_the_thought() {
        let rp = reply(Kind::Chat, false);
        let mut c = Choice::new(0, Some(ReasoningSplitter::for_prompt("<|Assistant|><think>\n")));
        let (r, t, _) = run(&rp, &mut c, vec![tok(10, "Hmm, 2+2"), tok(11, "=4.</think>"), tok(12, "4"), done()]);
        assert_eq!((r.as_str(), t.as_str()), ("Hmm, 2+2=4.", "4"));
    }

    #[test]
    fn without_the_split_tags_stay_in_content() {
        let rp = reply(Kind::Chat, false);
        let mut c = Choice::new(0, None);
        let (r, t, _) = run(&rp, &mut c, vec![tok(10, "<think>x</think>"), tok(11, "y"), done()]);
        assert_eq!((r.as_str(), t.as_str()), ("", "<think>x</think>y"));
        let fin = rp.final_json(std::slice::from_ref(&c));
        assert!(fin["choices"][0]["message"].get("reasoning_content").is_none());
    }

    #[test]
    fn eog_carrier_token_adds_text_but_no_logprob() {
        let rp = reply(Kind::Completion, true);
        let mut c = Choice::new(0, None);
        let lp = |t: &str| Some(TokenLogprob { token: t.into(), bytes: t.as_bytes().to_vec(), logprob: -0.5, top: vec![(t.into(), t.as_bytes().to_vec(), -0.5)] });
        let events = vec![
            GenEvent::Token { id: 10, text: "ab".into(), logprob: lp("ab") },
            GenEvent::Token { id: 11, text: "".into(), logprob: lp("\u{e9}") },
            GenEvent::Token { id: 2, text: "c".into(), logprob: lp("</s>") },
            done(),
        ];
        let (_, _, chunks) = run(&rp, &mut c, events);
        let streamed: String = chunks.iter().filter_map(|v| v["choices"][0]["text"].as_str()).collect();
        assert_eq!(streamed, "abc");
        let fin = rp.final_json(std::slice::from_ref(&c));
        assert_eq!(fin["choices"][0]["text"], "abc");
        let lps = &fin["choices"][0]["logprobs"];
        assert_eq!(lps["tokens"], json!(["ab", "\u{e9}"]));
        assert_eq!(lps["text_offset"], json!([0, 2]));
        assert_eq!(lps["top_logprobs"][0], json!({"ab": -0.5}));
    }

    #[test]
    fn usage_counts_a_shared_prompt_once() {
        let mut rp = reply(Kind::Chat, false);
        rp.prompt_lens = vec![5, 5, 7];
        rp.prompt_of = vec![0, 0, 1];
        let mut cs: Vec<Choice> = (0..3).map(|i| Choice::new(i, None)).collect();
        for (i, c) in cs.iter_mut().enumerate() {
            c.usage = Some(Usage { prompt_tokens: rp.prompt_lens[i], completion_tokens: 3, cached_prompt_tokens: if i == 1 { 5 } else { 0 } });
        }
        let u = rp.usage(&cs);
        assert_eq!(u["prompt_tokens"], 12);
        assert_eq!(u["completion_tokens"], 9);
        assert_eq!(u["total_tokens"], 21);
    }
}
