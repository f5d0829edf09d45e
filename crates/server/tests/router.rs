//! The router end to end without a socket (`oneshot`), over the real serving engine running
//! the tiny random-weight llama fixture (`tests/fixtures/tiny/llama-1.gguf`: GPT-2 BPE
//! vocabulary of 463 tokens, no chat template → ChatML fallback).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jikji_engine::serve::{Engine, ServeConfig};
use jikji_engine::ChatFormatter;
use jikji_gguf::GgufFile;
use jikji_models::Model;
use jikji_server::{router, ApiKeys, AppState, Limits, ServerConfig};
use jikji_tokenizer::Tokenizer;
use serde_json::{json, Value};
use tower::ServiceExt;

const N_CTX: usize = 128;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/llama-1.gguf")
}

fn state_with(config: ServerConfig) -> AppState {
    state_with_ctx(config, N_CTX)
}

fn state_with_ctx(config: ServerConfig, n_ctx: usize) -> AppState {
    let file = Arc::new(GgufFile::open(fixture()).expect("tiny fixture"));
    let tokenizer = Tokenizer::from_gguf(&file).expect("tokenizer");
    let chat = ChatFormatter::from_gguf(&file).expect("chat template");
    let model = Model::load(file).expect("model");
    let cfg = ServeConfig { n_ctx, parallel: 4, max_queue: 8, kv_tokens: 4 * n_ctx, threads: 1, ..ServeConfig::default() };
    let engine = Engine::start(Arc::new(model), Arc::new(tokenizer), Some(chat), "tiny".into(), cfg).expect("engine");
    AppState::new(engine, config)
}

fn app() -> (Router, AppState) {
    let st = state_with(ServerConfig::default());
    (router(st.clone()), st)
}

async fn call(r: &Router, method: Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = match body {
        Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request");
    let resp = r.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, headers, bytes)
}

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

/// Splits an SSE body into its JSON events; checks the `data: ...\n\n` framing and the
/// final `data: [DONE]`.
fn sse_events(b: &[u8]) -> Vec<Value> {
    let s = std::str::from_utf8(b).expect("SSE body is UTF-8");
    assert!(s.ends_with("data: [DONE]\n\n"), "stream must end with [DONE]: {s:?}");
    let parts: Vec<&str> = s.split("\n\n").collect();
    assert_eq!(parts.last(), Some(&""));
    parts[..parts.len() - 2]
        .iter()
        .map(|p| {
            let data = p.strip_prefix("data: ").unwrap_or_else(|| panic!("event without data: {p:?}"));
            assert!(!data.contains('\n'));
            json_of(data.as_bytes())
        })
        .collect()
}

fn chat_body(extra: Value) -> Value {
    let mut b = json!({"model": "tiny", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8, "temperature": 0});
    if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    b
}

#[tokio::test]
async fn chat_completion_has_openai_shape_and_usage() {
    let (r, _) = app();
    let (s, _, b) = call(&r, Method::POST, "/v1/chat/completions", Some(chat_body(json!({}))), &[]).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let v = json_of(&b);
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("chatcmpl-")));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "tiny");
    assert!(v["created"].as_u64().is_some());
    assert!(v["system_fingerprint"].as_str().is_some());
    let c = &v["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["message"]["role"], "assistant");
    assert!(c["message"]["content"].is_string());
    assert!(matches!(c["finish_reason"].as_str(), Some("stop" | "length")));
    let u = &v["usage"];
    let (p, g) = (u["prompt_tokens"].as_u64().expect("p"), u["completion_tokens"].as_u64().expect("g"));
    assert!(p > 0 && g <= 8);
    assert_eq!(u["total_tokens"].as_u64(), Some(p + g));
    assert!(u["prompt_tokens_details"]["cached_tokens"].as_u64().is_some());
}

#[tokio::test]
async fn streamed_chat_deltas_equal_the_non_streamed_text() {
    let (r, _) = app();
    let (_, _, b) = call(&r, Method::POST, "/v1/chat/completions", Some(chat_body(json!({"max_tokens": 12}))), &[]).await;
    let full = json_of(&b);
    let body = chat_body(json!({"max_tokens": 12, "stream": true, "stream_options": {"include_usage": true}}));
    let (s, h, b) = call(&r, Method::POST, "/v1/chat/completions", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h.get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    let ev = sse_events(&b);
    assert_eq!(ev[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert!(ev.iter().all(|e| e["object"] == "chat.completion.chunk"));
    let usage_chunk = ev.last().expect("usage chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], full["usage"]["completion_tokens"]);
    let text: String = ev.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, full["choices"][0]["message"]["content"].as_str().expect("content"));
    let finish: Vec<&Value> = ev.iter().map(|e| &e["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
    assert_eq!(finish, vec![&full["choices"][0]["finish_reason"]]);
}

#[tokio::test]
async fn completion_accepts_token_ids_and_counts_them() {
    let (r, _) = app();
    let body = json!({"model": "tiny", "prompt": [5, 6, 7, 8], "max_tokens": 3, "temperature": 0, "ignore_eos": true});
    let (s, _, b) = call(&r, Method::POST, "/v1/completions", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let v = json_of(&b);
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("cmpl-")));
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn same_seed_same_choices_and_n_gives_n_choices() {
    let (r, _) = app();
    let body = chat_body(json!({"temperature": 1.0, "seed": 99, "n": 3, "ignore_eos": true}));
    let (_, _, a) = call(&r, Method::POST, "/v1/chat/completions", Some(body.clone()), &[]).await;
    let (_, _, b) = call(&r, Method::POST, "/v1/chat/completions", Some(body), &[]).await;
    let (a, b) = (json_of(&a), json_of(&b));
    let idx: Vec<u64> = a["choices"].as_array().expect("choices").iter().filter_map(|c| c["index"].as_u64()).collect();
    assert_eq!(idx, vec![0, 1, 2]);
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(a["usage"]["completion_tokens"], 24);
}

#[tokio::test]
async fn logprobs_have_one_entry_per_token_with_top_alternatives() {
    let (r, _) = app();
    let body = chat_body(json!({"logprobs": true, "top_logprobs": 2, "ignore_eos": true, "max_tokens": 4}));
    let (s, _, b) = call(&r, Method::POST, "/v1/chat/completions", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let v = json_of(&b);
    let lp = v["choices"][0]["logprobs"]["content"].as_array().expect("logprobs.content");
    assert_eq!(lp.len(), 4);
    for e in lp {
        assert!(e["logprob"].as_f64().is_some_and(|x| x <= 0.0));
        assert!(e["bytes"].is_array() && e["token"].is_string());
        assert_eq!(e["top_logprobs"].as_array().map(Vec::len), Some(2));
    }
}

#[tokio::test]
async fn keys_guard_every_route_but_health() {
    let mut keys = ApiKeys::none();
    keys.add_from_text("k1,k2", "test").expect("keys");
    let st = state_with(ServerConfig { api_keys: keys, ..ServerConfig::default() });
    let r = router(st);
    let (s, h, b) = call(&r, Method::POST, "/v1/chat/completions", Some(chat_body(json!({}))), &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key("www-authenticate"));
    assert_eq!(json_of(&b)["error"]["type"], "authentication_error");
    let (s, _, _) = call(&r, Method::GET, "/v1/models", None, &[("authorization", "Bearer k3")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&r, Method::GET, "/metrics", None, &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&r, Method::GET, "/health", None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&r, Method::GET, "/v1/models", None, &[("authorization", "Bearer k2")]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&r, Method::GET, "/v1/models", None, &[("x-api-key", "k1")]).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn errors_use_openai_shape_and_status() {
    let (r, _) = app();
    let check = |s: StatusCode, b: &[u8], want: StatusCode| {
        assert_eq!(s, want, "{}", String::from_utf8_lossy(b));
        let v = json_of(b);
        for k in ["message", "type", "param", "code"] {
            assert!(v["error"].get(k).is_some(), "missing {k}: {v}");
        }
        v
    };
    let (s, _, b) = call(&r, Method::POST, "/v1/chat/completions", Some(chat_body(json!({"model": "gpt-4"}))), &[]).await;
    assert_eq!(check(s, &b, StatusCode::NOT_FOUND)["error"]["code"], "model_not_found");
    let (s, _, b) = call(&r, Method::GET, "/v2/nothing", None, &[]).await;
    check(s, &b, StatusCode::NOT_FOUND);
    let (s, _, b) = call(&r, Method::DELETE, "/v1/chat/completions", None, &[]).await;
    check(s, &b, StatusCode::METHOD_NOT_ALLOWED);
    let req = Request::post("/v1/chat/completions").body(Body::from("{\"messages\": [")).expect("req");
    let resp = r.clone().oneshot(req).await.expect("infallible");
    let s = resp.status();
    let b = resp.into_body().collect().await.expect("body").to_bytes();
    check(s, &b, StatusCode::BAD_REQUEST);
    let (s, _, b) = call(&r, Method::POST, "/v1/chat/completions", Some(chat_body(json!({"temperature": 9}))), &[]).await;
    assert_eq!(check(s, &b, StatusCode::BAD_REQUEST)["error"]["param"], "temperature");
    let long = "hello ".repeat(200);
    let (s, _, b) = call(&r, Method::POST, "/v1/completions", Some(json!({"prompt": long, "max_tokens": 2})), &[]).await;
    assert_eq!(check(s, &b, StatusCode::BAD_REQUEST)["error"]["code"], "context_length_exceeded");
    let (s, _, b) = call(&r, Method::POST, "/v1/completions", Some(json!({"prompt": "hi", "max_tokens": 10_000})), &[]).await;
    assert_eq!(check(s, &b, StatusCode::BAD_REQUEST)["error"]["param"], "max_tokens");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let st = state_with(ServerConfig { limits: Limits { max_body_bytes: 1024, ..Limits::default() }, ..ServerConfig::default() });
    let r = router(st);
    let body = json!({"prompt": "x".repeat(4096)});
    let (s, _, b) = call(&r, Method::POST, "/v1/completions", Some(body), &[]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&b)["error"]["code"], "request_too_large");
}

#[tokio::test]
async fn draining_server_answers_503_to_new_work() {
    let (r, st) = app();
    st.shutdown.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    let (s, _, b) = call(&r, Method::POST, "/v1/chat/completions", Some(chat_body(json!({}))), &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(&b)["error"]["code"], "shutting_down");
    // Alive while draining (a liveness probe must not kill it), but no longer ready.
    let (s, _, b) = call(&r, Method::GET, "/health", None, &[]).await;
    assert_eq!((s, json_of(&b)["status"].clone()), (StatusCode::OK, json!("shutting_down")));
    let (s, _, b) = call(&r, Method::GET, "/ready", None, &[]).await;
    assert_eq!((s, json_of(&b)["status"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("draining")));
}

#[tokio::test]
async fn dropping_a_stream_cancels_its_sequence() {
    // The request must still be generating when the drop is seen: with the full 4096-token
    // training context and ignore_eos it runs for seconds (attention grows with every token),
    // while the drop follows its first frame at once.
    let st = state_with_ctx(ServerConfig::default(), 4096);
    let r = router(st.clone());
    let body = json!({"prompt": "hello", "max_tokens": 4000, "temperature": 0, "stream": true, "ignore_eos": true});
    let req = Request::post("/v1/completions").header("content-type", "application/json").body(Body::from(body.to_string())).expect("req");
    let resp = r.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a first frame").expect("frame ok");
    assert!(first.data_ref().is_some());
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = st.models.engines().next().expect("one engine").metrics();
        if m.running == 0 && m.queue_depth == 0 && m.kv_blocks_used == 0 {
            assert!(m.requests_cancelled_total >= 1);
            assert!(m.generated_tokens_total < 4000, "the stream ran to its end: {}", m.generated_tokens_total);
            break;
        }
        assert!(Instant::now() < deadline, "the dropped stream was not cancelled: running {}, kv {}", m.running, m.kv_blocks_used);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(st.shutdown.active(), 0);
}

#[tokio::test]
async fn metrics_page_has_the_prometheus_series() {
    let (r, _) = app();
    let _ = call(&r, Method::POST, "/v1/chat/completions", Some(chat_body(json!({}))), &[]).await;
    let (s, h, b) = call(&r, Method::GET, "/metrics", None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/plain")));
    let text = String::from_utf8(b).expect("utf-8");
    for series in [
        "jikji_requests_total{status=\"200\"} ",
        "jikji_prompt_tokens_total ",
        "jikji_generated_tokens_total ",
        "jikji_forced_tokens_total ",
        "jikji_queue_depth ",
        "jikji_running_sequences ",
        "jikji_kv_cache_usage_ratio ",
        "jikji_time_to_first_token_seconds_bucket{le=\"+Inf\"} ",
        "jikji_inter_token_seconds_count ",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
}

#[tokio::test]
async fn tokenize_and_detokenize_round_trip() {
    let (r, _) = app();
    let (s, _, b) = call(&r, Method::POST, "/tokenize", Some(json!({"content": "hello world"})), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let ids = json_of(&b)["tokens"].clone();
    assert!(ids.as_array().is_some_and(|a| !a.is_empty()));
    let (s, _, b) = call(&r, Method::POST, "/detokenize", Some(json!({"tokens": ids})), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json_of(&b)["content"], "hello world");
    let (s, _, _) = call(&r, Method::POST, "/detokenize", Some(json!({"tokens": [100000]})), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cors_is_off_by_default_and_on_for_listed_origins() {
    let (r, _) = app();
    let (_, h, _) = call(&r, Method::GET, "/v1/models", None, &[("origin", "https://app.example")]).await;
    assert!(!h.contains_key("access-control-allow-origin"), "CORS must be off unless enabled");

    let mut keys = ApiKeys::none();
    keys.add_from_text("k", "test").expect("keys");
    let st = state_with(ServerConfig { api_keys: keys, cors_origins: vec!["https://app.example".into()], ..ServerConfig::default() });
    let r = router(st);
    // The preflight carries no key and must still succeed.
    let (s, h, _) = call(
        &r,
        Method::OPTIONS,
        "/v1/chat/completions",
        None,
        &[("origin", "https://app.example"), ("access-control-request-method", "POST"), ("access-control-request-headers", "authorization,content-type")],
    )
    .await;
    assert!(s.is_success(), "preflight status {s}");
    assert_eq!(h.get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("https://app.example"));
    let (_, h, _) = call(&r, Method::GET, "/v1/models", None, &[("origin", "https://evil.example"), ("authorization", "Bearer k")]).await;
    assert!(!h.contains_key("access-control-allow-origin"));
}
