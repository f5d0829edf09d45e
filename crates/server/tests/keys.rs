//! Keys with policies through the whole router (`oneshot`, no socket) over the real serving
//! engine on the tiny random-weight llama fixture: scopes per route, per-key 429s with
//! `Retry-After`, tokens charged to the key that generated them, and a body declared too
//! large refused before it is read.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jikji_engine::serve::{Engine, ServeConfig};
use jikji_engine::ChatFormatter;
use jikji_gguf::GgufFile;
use jikji_models::Model;
use jikji_server::keys::{KeyRing, KeysFile, Limits, Scope};
use jikji_server::{router, ApiKeys, AppState, ServerConfig};
use jikji_tokenizer::Tokenizer;
use serde_json::{json, Value};
use tower::ServiceExt;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/llama-1.gguf")
}

struct Keys {
    free: String,
    rpm1: String,
    tpm: String,
    metrics: String,
}

fn app() -> (Router, AppState, Keys) {
    let mut f = KeysFile::default();
    let add = |f: &mut KeysFile, name: &str, scopes: Vec<Scope>, limits: Limits| f.add(name, scopes, limits, "test").expect("add");
    let keys = Keys {
        free: add(&mut f, "free", vec![Scope::Inference], Limits::default()),
        rpm1: add(&mut f, "rpm1", vec![Scope::Inference], Limits { requests_per_minute: Some(1), ..Limits::default() }),
        tpm: add(&mut f, "tpm", vec![Scope::Inference], Limits { tokens_per_minute: Some(10), ..Limits::default() }),
        metrics: add(&mut f, "scraper", vec![Scope::Metrics], Limits::default()),
    };
    let dir = std::env::temp_dir().join(format!("jikji-keys-test-{}-{:x}", std::process::id(), rand_u32()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("keys.toml");
    f.save(&path).expect("save");
    let ring = Arc::new(KeyRing::new(Some(&path), &ApiKeys::none()).expect("ring"));
    let _ = std::fs::remove_dir_all(&dir);

    let file = Arc::new(GgufFile::open(fixture()).expect("tiny fixture"));
    let tokenizer = Tokenizer::from_gguf(&file).expect("tokenizer");
    let chat = ChatFormatter::from_gguf(&file).expect("chat template");
    let model = Model::load(file).expect("model");
    let cfg = ServeConfig { n_ctx: 128, parallel: 4, max_queue: 8, kv_tokens: 512, threads: 1, ..ServeConfig::default() };
    let engine = Engine::start(Arc::new(model), Arc::new(tokenizer), Some(chat), "tiny".into(), cfg).expect("engine");
    let st = AppState::new(engine, ServerConfig { keys: Some(ring), ..ServerConfig::default() });
    (router(st.clone()), st, keys)
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

async fn call(r: &Router, method: Method, path: &str, body: Option<Value>, key: &str) -> (StatusCode, HeaderMap, Value) {
    let b = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {key}"));
    let req = match body {
        Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request");
    let resp = r.clone().oneshot(req).await.expect("infallible");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn completion(max_tokens: usize) -> Value {
    json!({"prompt": "hello world", "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true})
}

#[tokio::test]
async fn a_metrics_key_reads_metrics_and_nothing_else() {
    let (r, _, k) = app();
    let (s, _, b) = call(&r, Method::POST, "/v1/completions", Some(completion(1)), &k.metrics).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["error"]["code"], "insufficient_scope");
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("scraper") && m.contains("inference")));
    assert_eq!(call(&r, Method::GET, "/v1/models", None, &k.metrics).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&r, Method::GET, "/metrics", None, &k.free).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&r, Method::GET, "/metrics", None, &k.metrics).await.0, StatusCode::OK);
    assert_eq!(call(&r, Method::GET, "/v1/models", None, "sk-jikji-wrong").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn requests_per_minute_refuses_only_that_key_with_retry_after() {
    let (r, _, k) = app();
    assert_eq!(call(&r, Method::GET, "/v1/models", None, &k.rpm1).await.0, StatusCode::OK);
    let (s, h, b) = call(&r, Method::GET, "/v1/models", None, &k.rpm1).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = h.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!((b["error"]["type"].as_str(), b["error"]["code"].as_str()), (Some("rate_limit_error"), Some("rate_limit_exceeded")));
    assert_eq!(call(&r, Method::GET, "/v1/models", None, &k.free).await.0, StatusCode::OK);
}

#[tokio::test]
async fn generated_tokens_are_charged_to_the_key_that_asked() {
    let (r, st, k) = app();
    let (s, _, b) = call(&r, Method::POST, "/v1/completions", Some(completion(8)), &k.tpm).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let used = b["usage"]["total_tokens"].as_u64().expect("usage");
    assert!(used > 10);
    let tpm = st.keys.state("tpm");
    assert_eq!(tpm.day_tokens(), used);
    assert_eq!(tpm.completion_tokens_total.load(std::sync::atomic::Ordering::Relaxed), 8);
    assert_eq!(st.keys.state("free").day_tokens(), 0);
    let (s, _, b) = call(&r, Method::POST, "/v1/completions", Some(completion(1)), &k.tpm).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("TPM")));
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_it_is_read() {
    let (r, _, k) = app();
    // The declared length is over the 8 MiB default; the body itself would never end.
    let never = futures_stream_never();
    let req = Request::post("/v1/completions")
        .header("authorization", format!("Bearer {}", k.free))
        .header("content-type", "application/json")
        .header("content-length", (64u64 << 20).to_string())
        .body(never)
        .expect("request");
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), r.clone().oneshot(req))
        .await
        .expect("answered without reading the body")
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
}

/// A body that never yields a byte (reading it would hang the test).
fn futures_stream_never() -> Body {
    Body::from_stream(futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>())
}
