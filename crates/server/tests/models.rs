//! Several models behind one router (`oneshot`, no socket): two real engines over the tiny
//! random-weight llama and qwen3 fixtures, routed by `model`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jikji_engine::serve::{Engine, EngineHandle, ServeConfig};
use jikji_engine::ChatFormatter;
use jikji_gguf::GgufFile;
use jikji_models::Model;
use jikji_server::{router, AppState, Models, ModelsError, ServedModel, ServerConfig};
use jikji_tokenizer::Tokenizer;
use serde_json::{json, Value};
use tower::ServiceExt;

fn engine(file: &str, id: &str, n_ctx: usize) -> EngineHandle {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny").join(file);
    let file = Arc::new(GgufFile::open(path).expect("tiny fixture"));
    let tokenizer = Tokenizer::from_gguf(&file).expect("tokenizer");
    let chat = ChatFormatter::from_gguf(&file).expect("chat template");
    let model = Model::load(file).expect("model");
    let cfg = ServeConfig { n_ctx, parallel: 2, max_queue: 8, kv_tokens: 2 * n_ctx, threads: 1, ..ServeConfig::default() };
    Engine::start(Arc::new(model), Arc::new(tokenizer), Some(chat), id.into(), cfg).expect("engine")
}

fn two() -> Models {
    Models::new(vec![
        ServedModel::generate(engine("llama-1.gguf", "a", 64), vec!["llama".into()]),
        ServedModel::generate(engine("qwen3-1.gguf", "b", 32), vec!["qwen".into(), "b".into()]),
    ])
    .expect("distinct names")
}

async fn call(r: &Router, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let b = Request::builder().method(method).uri(path);
    let req = match body {
        Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request");
    let resp = r.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_go_to_the_model_they_name_by_id_or_alias() {
    let r = router(AppState::with_models(two(), ServerConfig::default()));
    let (s, v) = call(&r, Method::GET, "/v1/models", None).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = v["data"].as_array().expect("list").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    for (asked, served) in [("a", "a"), ("llama", "a"), ("b", "b"), ("qwen", "b")] {
        let body = json!({"model": asked, "prompt": "hello", "max_tokens": 3, "temperature": 0});
        let (s, v) = call(&r, Method::POST, "/v1/completions", Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["model"], served);
        let (s, v) = call(&r, Method::GET, &format!("/v1/models/{asked}"), None).await;
        assert_eq!((s, v["id"].as_str()), (StatusCode::OK, Some(served)));
    }
    // No `model`: the first one.
    let (s, v) = call(&r, Method::POST, "/v1/completions", Some(json!({"prompt": "hi", "max_tokens": 2}))).await;
    assert_eq!((s, v["model"].as_str()), (StatusCode::OK, Some("a")));
}

#[tokio::test]
async fn each_model_keeps_its_own_context_limit() {
    let r = router(AppState::with_models(two(), ServerConfig::default()));
    let prompt: Vec<u32> = vec![5; 40];
    let (s, _) = call(&r, Method::POST, "/v1/completions", Some(json!({"model": "a", "prompt": prompt, "max_tokens": 2}))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&r, Method::POST, "/v1/completions", Some(json!({"model": "b", "prompt": prompt, "max_tokens": 2}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn an_unknown_model_is_a_404_listing_the_served_ones() {
    let r = router(AppState::with_models(two(), ServerConfig::default()));
    let body = json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let (s, v) = call(&r, Method::POST, "/v1/chat/completions", Some(body)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["param"], "model");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("`a`") && msg.contains("`b`"), "{msg}");
    let (s, _) = call(&r, Method::POST, "/tokenize", Some(json!({"model": "nope", "content": "x"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_sum_the_engines_and_label_each_model() {
    let r = router(AppState::with_models(two(), ServerConfig::default()));
    for m in ["a", "b", "b"] {
        let body = json!({"model": m, "prompt": "hello", "max_tokens": 2, "temperature": 0, "ignore_eos": true});
        assert_eq!(call(&r, Method::POST, "/v1/completions", Some(body)).await.0, StatusCode::OK);
    }
    let req = Request::builder().uri("/metrics").body(Body::empty()).expect("request");
    let resp = r.clone().oneshot(req).await.expect("infallible");
    let text = String::from_utf8(resp.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    assert!(text.contains("\njikji_generated_tokens_total 6\n"), "{text}");
    assert!(text.contains("jikji_model_generated_tokens_total{model=\"a\"} 2\n"), "{text}");
    assert!(text.contains("jikji_model_generated_tokens_total{model=\"b\"} 4\n"), "{text}");
    assert_eq!(text.matches("jikji_cache_config_info{").count(), 2);
}

#[test]
fn a_name_shared_by_two_models_is_refused() {
    let e = Models::new(vec![
        ServedModel::generate(engine("llama-1.gguf", "a", 16), vec!["x".into()]),
        ServedModel::generate(engine("qwen3-1.gguf", "b", 16), vec!["x".into()]),
    ])
    .expect_err("duplicate alias");
    assert_eq!(e, ModelsError::DuplicateName("x".into()));
    assert!(matches!(Models::new(Vec::new()), Err(ModelsError::Empty)));
}
