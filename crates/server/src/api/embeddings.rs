//! `POST /v1/embeddings` in OpenAI's shape, over an encoder's [`EmbedQueue`].
//!
//! Request: `input` is a string, a list of strings, a list of token ids, or a list of
//! token-id lists; `encoding_format` is `float` (default) or `base64` (the vector's
//! little-endian f32 bytes, as OpenAI sends them); `dimensions` keeps the first N values
//! and renormalises (Matryoshka models only, see [`EmbedModel::matryoshka`]; any other
//! model accepts only its own width); `truncate_prompt_tokens` (vLLM's name: an integer
//! ≥ 1, or -1 for the model's context) cuts over-long inputs instead of refusing them.
//!
//! Design choices:
//! - Text is tokenized with the encoder's WordPiece as `[CLS] text [SEP]`; token-id inputs
//!   are used exactly as given (send the specials yourself), so a client that tokenized
//!   with `jikji embed --tokens` gets the same vector as for the text.
//! - Truncation keeps the start of the text and its closing `[SEP]` (what
//!   sentence-transformers does), so a truncated text is still a well-formed sequence.
//! - Every check happens before the request joins a batch, and a request is bounded:
//!   at most [`MAX_INPUTS`] inputs (OpenAI's limit) and [`MAX_TOTAL_TOKENS`] tokens in all,
//!   no empty strings or empty token lists, ids inside the vocabulary. A bad request is a
//!   400 naming the input; the queue never sees it, so other requests are not delayed.
//! - Tokenizing and the wait for the vectors happen off the async threads
//!   (`spawn_blocking` for the tokenizer; the queue's worker thread for the forward
//!   passes), and concurrent requests share forward batches in the queue.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use jikji_engine::embed::{matryoshka, EmbedError};
use serde::Serialize;
use serde_json::Value;

use super::handlers::{check_not_draining, parse_body};
use crate::error::ApiError;
use crate::models::{EmbedModel, ModelKind};
use crate::request::Fields;
use crate::AppState;

/// Most inputs in one request (OpenAI's limit for `input` as a list).
pub const MAX_INPUTS: usize = 2048;

/// Most tokens in one request, all inputs together (OpenAI's limit).
pub const MAX_TOTAL_TOKENS: usize = 300_000;

/// One input as sent.
#[derive(Debug, Clone, PartialEq)]
enum Input {
    Text(String),
    Tokens(Vec<u32>),
}

/// How the vectors are written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Float,
    Base64,
}

/// `truncate_prompt_tokens`: absent (refuse over-long inputs), a length, or the context.
fn truncation(f: &Fields<'_>, n_ctx: usize) -> Result<Option<usize>, ApiError> {
    const P: &str = "truncate_prompt_tokens";
    match f.get(P) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(-1) => Ok(Some(n_ctx)),
            Some(k) if k >= 1 => Ok(Some((k as usize).min(n_ctx))),
            _ => Err(ApiError::invalid(P, format!("`{P}` must be -1 (the model's context) or an integer ≥ 1"))),
        },
    }
}

fn token_list(v: &[Value], n_vocab: usize, param: &str) -> Result<Vec<u32>, ApiError> {
    let mut ids = Vec::with_capacity(v.len());
    for t in v {
        match t.as_u64() {
            Some(id) if (id as usize) < n_vocab => ids.push(id as u32),
            Some(id) => {
                return Err(ApiError::invalid(param, format!("token id {id} is outside the vocabulary of {n_vocab}")))
            }
            None => return Err(ApiError::invalid(param, "token ids must be non-negative integers")),
        }
    }
    if ids.is_empty() {
        return Err(ApiError::invalid(param, "a token list must not be empty"));
    }
    Ok(ids)
}

/// Reads `input` in any of its four shapes (checked for size and type only).
fn inputs(f: &Fields<'_>, n_vocab: usize) -> Result<Vec<Input>, ApiError> {
    const P: &str = "input";
    let shape = "`input` must be a string, a list of strings, a list of token ids or a list of token-id lists";
    let v = f.get(P).ok_or_else(|| ApiError::invalid(P, "`input` is required"))?;
    let text = |s: &str, i: usize| {
        if s.is_empty() {
            Err(ApiError::invalid(P, format!("input {i} is an empty string")))
        } else {
            Ok(Input::Text(s.to_string()))
        }
    };
    match v {
        Value::String(s) => Ok(vec![text(s, 0)?]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::invalid(P, "`input` must not be an empty list"));
            }
            if items.len() > MAX_INPUTS {
                return Err(ApiError::invalid(
                    P,
                    format!("`input` holds {} items; at most {MAX_INPUTS} are accepted per request", items.len()),
                ));
            }
            if items.iter().all(Value::is_number) {
                return Ok(vec![Input::Tokens(token_list(items, n_vocab, P)?)]);
            }
            items
                .iter()
                .enumerate()
                .map(|(i, it)| match it {
                    Value::String(s) => text(s, i),
                    Value::Array(ids) => Ok(Input::Tokens(token_list(ids, n_vocab, P)?)),
                    _ => Err(ApiError::invalid(P, shape)),
                })
                .collect()
        }
        _ => Err(ApiError::invalid(P, shape)),
    }
}

fn encoding_format(f: &Fields<'_>) -> Result<Format, ApiError> {
    match f.string("encoding_format")? {
        None | Some("float") => Ok(Format::Float),
        Some("base64") => Ok(Format::Base64),
        Some(_) => Err(ApiError::invalid("encoding_format", "`encoding_format` must be `float` or `base64`")),
    }
}

fn dimensions(f: &Fields<'_>, m: &EmbedModel, id: &str) -> Result<Option<usize>, ApiError> {
    let n_embd = m.queue.embedder().n_embd();
    let Some(d) = f.integer("dimensions", 1, n_embd as u64)? else {
        return Ok(None);
    };
    let d = d as usize;
    if d != n_embd && !m.matryoshka {
        return Err(ApiError::invalid(
            "dimensions",
            format!("The model `{id}` is not a Matryoshka model: `dimensions` can only be its width {n_embd}"),
        ));
    }
    Ok(Some(d))
}

/// Token sequences of `inputs`, truncated or checked against the context.
fn sequences(m: &EmbedModel, inputs: Vec<Input>, truncate: Option<usize>) -> Result<Vec<Vec<u32>>, ApiError> {
    let e = m.queue.embedder();
    let n_ctx = e.n_ctx();
    let mut total = 0usize;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, inp) in inputs.into_iter().enumerate() {
        let (mut seq, is_text) = match inp {
            Input::Text(t) => (e.tokenize(&t), true),
            Input::Tokens(ids) => (ids, false),
        };
        match truncate {
            Some(k) if seq.len() > k => {
                // Keep the start, and a text's closing `[SEP]`.
                let sep = seq[seq.len() - 1];
                if is_text && k >= 2 {
                    seq.truncate(k - 1);
                    seq.push(sep);
                } else {
                    seq.truncate(k);
                }
            }
            None if seq.len() > n_ctx => {
                return Err(ApiError::context_length(
                    format!(
                        "input {i} has {} tokens; this model's maximum context length is {n_ctx} tokens (set `truncate_prompt_tokens` to cut it)",
                        seq.len()
                    ),
                    "input",
                ))
            }
            _ => {}
        }
        total += seq.len();
        if total > MAX_TOTAL_TOKENS {
            return Err(ApiError::invalid(
                "input",
                format!("the inputs hold more than {MAX_TOTAL_TOKENS} tokens in all; split the request"),
            ));
        }
        out.push(seq);
    }
    Ok(out)
}

/// Standard base64 (RFC 4648, padded) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= c.len() {
                s.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A vector as base64 of its little-endian f32 values.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes)
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: Usage,
}

fn embed_error(e: EmbedError) -> ApiError {
    match e {
        EmbedError::Input { index, reason } => ApiError::invalid("input", format!("input {index}: {reason}")),
        EmbedError::Closed => ApiError::internal("the embedding worker has stopped"),
        other => ApiError::internal(format!("embedding failed: {other}")),
    }
}

/// `POST /v1/embeddings`
pub async fn embeddings(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    check_not_draining(&st)?;
    let v = parse_body(body, st.config.limits.max_body_bytes)?;
    let f = Fields::new(&v)?;
    let served = st.models.route(f.string("model")?, ModelKind::Embed)?;
    let id = served.id.clone();
    let m = served.embedder().ok_or_else(|| ApiError::internal("an embedding model without an encoder"))?.clone();
    let e = m.queue.embedder();
    let (n_vocab, n_ctx) = (e.n_vocab(), e.n_ctx());
    let format = encoding_format(&f)?;
    let dims = dimensions(&f, &m, &id)?;
    let truncate = truncation(&f, n_ctx)?;
    if let Some(u) = f.get("user") {
        if !u.is_string() {
            return Err(ApiError::invalid("user", "`user` must be a string"));
        }
    }
    let inputs = inputs(&f, n_vocab)?;

    let guard = st.shutdown.guard();
    let mm = m.clone();
    let seqs = tokio::task::spawn_blocking(move || sequences(&mm, inputs, truncate))
        .await
        .map_err(|_| ApiError::internal("tokenizing the inputs failed"))??;
    let n_tokens: usize = seqs.iter().map(Vec::len).sum();
    if let Some(t) = guard.tally() {
        t.begin(n_tokens as u64, &id);
    }
    let vecs = m.queue.embed(seqs).await.map_err(embed_error)?;
    if let Some(t) = guard.tally() {
        t.finish(n_tokens as u64, 0, Vec::new);
    }
    let data = vecs
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let v = match dims {
                Some(d) if d < v.len() => matryoshka(&v, d),
                _ => v,
            };
            let embedding = match format {
                Format::Float => Vector::Float(v),
                Format::Base64 => Vector::Base64(base64_f32(&v)),
            };
            Embedding { object: "embedding", index, embedding }
        })
        .collect();
    let body = EmbeddingList {
        object: "list",
        data,
        model: &id,
        usage: Usage { prompt_tokens: n_tokens, total_tokens: n_tokens },
    };
    Ok(axum::Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")];
        for (plain, enc) in cases {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain}");
        }
    }

    #[test]
    fn base64_vectors_are_little_endian_f32() {
        // 1.0f32 = 0x3f800000 → bytes 00 00 80 3f.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }

    fn fields_of(v: &Value) -> Fields<'_> {
        Fields::new(v).expect("object")
    }

    #[test]
    fn input_takes_every_openai_shape() {
        let v = serde_json::json!({"input": "hi"});
        assert_eq!(inputs(&fields_of(&v), 10).unwrap(), vec![Input::Text("hi".into())]);
        let v = serde_json::json!({"input": ["a", "b"]});
        assert_eq!(inputs(&fields_of(&v), 10).unwrap().len(), 2);
        let v = serde_json::json!({"input": [1, 2, 3]});
        assert_eq!(inputs(&fields_of(&v), 10).unwrap(), vec![Input::Tokens(vec![1, 2, 3])]);
        let v = serde_json::json!({"input": [[1, 2], [3]]});
        assert_eq!(inputs(&fields_of(&v), 10).unwrap(), vec![Input::Tokens(vec![1, 2]), Input::Tokens(vec![3])]);
    }

    #[test]
    fn hostile_inputs_are_400s_naming_input() {
        let too_many: Vec<&str> = vec!["x"; MAX_INPUTS + 1];
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"input": ""}),
            serde_json::json!({"input": ["a", ""]}),
            serde_json::json!({"input": []}),
            serde_json::json!({"input": [[]]}),
            serde_json::json!({"input": [5, 10]}),
            serde_json::json!({"input": [-1]}),
            serde_json::json!({"input": 3}),
            serde_json::json!({"input": [{"a": 1}]}),
            serde_json::json!({"input": too_many}),
        ] {
            let e = inputs(&fields_of(&bad), 10).expect_err(&bad.to_string());
            assert_eq!(e.status.as_u16(), 400, "{bad}");
            assert_eq!(e.param.as_deref(), Some("input"), "{bad}");
        }
    }

    #[test]
    fn truncate_prompt_tokens_is_minus_one_or_positive() {
        let v = serde_json::json!({"truncate_prompt_tokens": -1});
        assert_eq!(truncation(&fields_of(&v), 512).unwrap(), Some(512));
        let v = serde_json::json!({"truncate_prompt_tokens": 8});
        assert_eq!(truncation(&fields_of(&v), 512).unwrap(), Some(8));
        for bad in [serde_json::json!({"truncate_prompt_tokens": 0}), serde_json::json!({"truncate_prompt_tokens": "x"})] {
            assert!(truncation(&fields_of(&bad), 512).is_err());
        }
    }
}
