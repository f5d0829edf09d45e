//! The route handlers: chat and text completions (streaming or not), models, tokenize,
//! detokenize, health and metrics. A handler reads and checks the request, turns it into
//! engine submissions, and hands the streams to `reply` for the response.
//!
//! - A generation request becomes one engine submission per choice (`n` of them per
//!   prompt, seeds `seed, seed+1, …`); the engine's prefix cache computes the shared prompt
//!   once. All checks (shape, ranges, model name, context) happen before the first
//!   submission, and a failed submission drops the ones already made, which cancels them.
//! - Every body is read as bytes under the body limit and parsed here, so a too-large body
//!   is a 413 and bad JSON a 400, both in OpenAI's error shape.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jikji_engine::grammar::Constraint;
use jikji_engine::reasoning::ReasoningSplitter;
use jikji_engine::serve::{EngineHandle, GenRequest, GenStream, SubmitError};
use jikji_toolcall::grammar::Thinking;
use serde_json::Value;

use super::reply::{collect, sse_response, Choice, Kind, Reply};
use crate::error::ApiError;
use crate::request::{self, Fields, GenOptions, PromptInput};
use crate::structured;
use crate::tools;
use crate::wire::{
    DetokenizeResponse, HealthStatus, ModelList, ModelObject, Piece, TokenList, TokenPiece, TokenizeResponse,
};
use crate::AppState;

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
pub(crate) fn parse_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Value, ApiError> {
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

/// The engine of the generating model the body's `model` names (the first one when
/// absent); 404 for an unknown name.
fn generator(st: &AppState, f: &Fields<'_>) -> Result<EngineHandle, ApiError> {
    Ok(st.models.generator(f.string("model")?)?.clone())
}

pub(crate) fn check_not_draining(st: &AppState) -> Result<(), ApiError> {
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
fn token_budget(eng: &EngineHandle, opts: &GenOptions, n_prompt: usize, prompt_param: &str) -> Result<usize, ApiError> {
    let n_ctx = eng.n_ctx();
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
/// Submits one request per choice. Dropping the returned streams cancels them.
fn submit_all(eng: &EngineHandle, reqs: Vec<GenRequest>, prompt_param: &str) -> Result<Vec<GenStream>, ApiError> {
    let mut out = Vec::with_capacity(reqs.len());
    for r in reqs {
        out.push(eng.submit(r).map_err(|e| submit_error(e, prompt_param))?);
    }
    Ok(out)
}

fn gen_request(
    opts: &GenOptions,
    prompt: Vec<u32>,
    max_tokens: usize,
    seed: u64,
    logprobs: Option<usize>,
    grammar: Option<&Constraint>,
    special_text: bool,
) -> GenRequest {
    let mut sampling = opts.sampling.clone();
    sampling.seed = seed;
    GenRequest {
        grammar: grammar.cloned(),
        prompt,
        max_tokens,
        sampling,
        logit_bias: opts.logit_bias.clone(),
        stop: opts.stop.clone(),
        logprobs,
        ignore_eos: opts.ignore_eos,
        special_text,
    }
}

/// `POST /v1/chat/completions`
pub async fn chat_completions(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    check_not_draining(&st)?;
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    let eng = generator(&st, &f)?;
    let n_vocab = eng.tokenizer().n_vocab();
    let opts = request::gen_options(&f, &st.config.limits, n_vocab)?;
    let messages = request::chat_messages(&f, &st.config.limits)?;
    let logprobs = request::chat_logprobs(&f)?;
    let split = request::reasoning_split(&f)?;
    let add_generation_prompt = f.bool("add_generation_prompt")?.unwrap_or(true);
    let template_kwargs = request::chat_template_kwargs(&f)?;
    let mut wanted = structured::requested(&f)?;
    let plan = tools::requested(&f, &eng)?;
    if let (Some(p), Some(w)) = (&plan, &wanted) {
        if p.forces_call() {
            return Err(ApiError::invalid(
                w.param.clone(),
                format!("`{}` cannot be combined with a `tool_choice` that forces a call", w.param),
            ));
        }
    }

    let prompt = match &plan {
        Some(p) => p.prompt(&eng, &messages, add_generation_prompt, &template_kwargs),
        None => eng.chat_prompt_with(&messages, add_generation_prompt, &template_kwargs),
    }
    .map_err(|e| ApiError::invalid("messages", format!("cannot apply the chat template: {e}")))?;
    let max_tokens = token_budget(&eng, &opts, prompt.len(), "messages")?;
    // The end of the rendered prompt says whether the reply starts inside a thought
    // (`… <think>\n`), may open one, or has it closed already (`… </think>\n\n`).
    let tail_from = prompt.len().saturating_sub(16);
    let tail = eng.tokenizer().decode(&prompt[tail_from..], true).unwrap_or_default();
    if let (Some(p), None) = (&plan, &wanted) {
        let thinking = Thinking::for_prompt(eng.chat_template_source().unwrap_or(""), &tail);
        wanted = p.grammar(eng.tokenizer(), thinking).map(|spec| structured::Requested { spec, param: "tools".into() });
    }
    let grammar = match wanted {
        Some(w) => Some(structured::compile(&eng, w).await?),
        None => None,
    };
    let special_text = plan.as_ref().is_some_and(|p| p.special_text);

    let splitter = split.then(|| ReasoningSplitter::for_prompt(&tail));
    let seed = opts.seed.unwrap_or_else(random_u64);
    let reqs: Vec<GenRequest> = (0..opts.n)
        .map(|j| {
            let seed = seed.wrapping_add(j as u64);
            gen_request(&opts, prompt.clone(), max_tokens, seed, logprobs, grammar.as_ref(), special_text)
        })
        .collect();
    let guard = st.shutdown.guard();
    let streams = submit_all(&eng, reqs, "messages")?;
    let reply = Reply {
        kind: Kind::Chat,
        id: new_id("chatcmpl-"),
        created: now_secs(),
        model: eng.model_id().to_string(),
        logprobs: logprobs.is_some(),
        include_usage: opts.include_usage,
        prompt_lens: vec![prompt.len(); opts.n],
        prompt_of: vec![0; opts.n],
        eog_ids: eng.tokenizer().eog_ids(),
    };
    let id_seed = random_u64();
    let choices: Vec<Choice> = (0..opts.n)
        .map(|i| {
            let c = Choice::new(i, splitter.clone());
            match &plan {
                Some(p) => c.with_tools(p.parser(id_seed.wrapping_add(i as u64))),
                None => c,
            }
        })
        .collect();
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
    let eng = generator(&st, &f)?;
    let n_vocab = eng.tokenizer().n_vocab();
    let opts = request::gen_options(&f, &st.config.limits, n_vocab)?;
    let inputs = request::completion_prompts(&f, &st.config.limits, n_vocab)?;
    let logprobs = request::completion_logprobs(&f)?;
    if f.bool("echo")?.unwrap_or(false) {
        return Err(ApiError::invalid("echo", "`echo` is not supported"));
    }
    if f.string("suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid("suffix", "`suffix` is not supported"));
    }

    let wanted = structured::requested(&f)?;
    let mut prompts = Vec::with_capacity(inputs.len());
    for p in inputs {
        let ids = match p {
            PromptInput::Text(t) => eng
                .completion_prompt(&t)
                .map_err(|e| ApiError::invalid("prompt", format!("cannot tokenize the prompt: {e}")))?,
            PromptInput::Tokens(ids) => ids,
        };
        let budget = token_budget(&eng, &opts, ids.len(), "prompt")?;
        prompts.push((ids, budget));
    }
    let grammar = match wanted {
        Some(w) => Some(structured::compile(&eng, w).await?),
        None => None,
    };
    let seed = opts.seed.unwrap_or_else(random_u64);
    let mut reqs = Vec::new();
    let (mut prompt_lens, mut prompt_of) = (Vec::new(), Vec::new());
    for (pi, (ids, budget)) in prompts.iter().enumerate() {
        for j in 0..opts.n {
            reqs.push(gen_request(&opts, ids.clone(), *budget, seed.wrapping_add(j as u64), logprobs, grammar.as_ref(), false));
            prompt_lens.push(ids.len());
            prompt_of.push(pi);
        }
    }
    let guard = st.shutdown.guard();
    let streams = submit_all(&eng, reqs, "prompt")?;
    let n_choices = streams.len();
    let reply = Reply {
        kind: Kind::Completion,
        id: new_id("cmpl-"),
        created: now_secs(),
        model: eng.model_id().to_string(),
        logprobs: logprobs.is_some(),
        include_usage: opts.include_usage,
        prompt_lens,
        prompt_of,
        eog_ids: eng.tokenizer().eog_ids(),
    };
    let choices: Vec<Choice> = (0..n_choices).map(|i| Choice::new(i, None)).collect();
    if opts.stream {
        Ok(sse_response(reply, choices, streams, guard))
    } else {
        Ok(collect(reply, choices, streams, guard).await)
    }
}

/// `GET /v1/models`
pub async fn list_models(State(st): State<AppState>) -> Response {
    let data = st.models.iter().map(|m| ModelObject::new(&m.id, st.started)).collect();
    axum::Json(ModelList { object: "list", data }).into_response()
}

/// `GET /v1/models/{model}`
pub async fn get_model(State(st): State<AppState>, Path(model): Path<String>) -> Result<Response, ApiError> {
    let m = st.models.pick(Some(&model))?;
    Ok(axum::Json(ModelObject::new(&m.id, st.started)).into_response())
}

/// `GET /health`: the process is alive: 200, `ok` while serving and `shutting_down` while
/// draining (`/ready` is the probe that turns 503 then, see `crate::ops`).
pub async fn health(State(st): State<AppState>) -> Response {
    let status = if st.shutdown.draining.load(Ordering::SeqCst) { "shutting_down" } else { "ok" };
    axum::Json(HealthStatus { status }).into_response()
}

/// `GET /metrics`
pub async fn metrics(State(st): State<AppState>) -> Response {
    let mut text = crate::metrics::render(&st.http_metrics, &st.models);
    text.push_str(&crate::ops::render(&st));
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], text)
        .into_response()
}

/// `POST /tokenize` (llama.cpp's shape): `{"content", "add_special"?, "with_pieces"?}` →
/// `{"tokens": [ids]}` or, with pieces, `{"tokens": [{"id", "piece"}]}`.
pub async fn tokenize(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    let served = st.models.pick(f.string("model")?)?;
    let content = f
        .string("content")?
        .ok_or_else(|| ApiError::invalid("content", "`content` (a string) is required"))?;
    let add_special = f.bool("add_special")?.unwrap_or(false);
    let parse_special = f.bool("parse_special")?.unwrap_or(true);
    let with_pieces = f.bool("with_pieces")?.unwrap_or(false);
    let tok = served.tokenizer()?;
    let ids = tok
        .encode(content, add_special, parse_special)
        .map_err(|e| ApiError::invalid("content", format!("cannot tokenize: {e}")))?;
    let tokens = if with_pieces {
        TokenList::WithPieces(
            ids.iter()
                .map(|&id| {
                    let bytes = tok.token_bytes(id, true).unwrap_or_default();
                    let piece = match String::from_utf8(bytes) {
                        Ok(s) => Piece::Text(s),
                        Err(e) => Piece::Bytes(e.into_bytes()),
                    };
                    TokenPiece { id, piece }
                })
                .collect(),
        )
    } else {
        TokenList::Ids(ids)
    };
    Ok(axum::Json(TokenizeResponse { tokens }).into_response())
}

/// `POST /detokenize`: `{"tokens": [ids]}` → `{"content": text}`.
pub async fn detokenize(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    let tok = st.models.pick(f.string("model")?)?.tokenizer()?;
    let n_vocab = tok.n_vocab();
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
    let text = tok
        .decode(&ids, false)
        .map_err(|e| ApiError::invalid("tokens", format!("cannot detokenize: {e}")))?;
    Ok(axum::Json(DetokenizeResponse { content: text }).into_response())
}

/// Any other URL: 404 in OpenAI's shape.
pub async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}

/// A known URL with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
