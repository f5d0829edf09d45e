//! The web page's routes through the real router (`oneshot`, no socket) over the tiny
//! random-weight fixture engine: served at `/` with strict headers, public even with API
//! keys while the API stays guarded, and gone when the page is turned off.

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
use jikji_server::{router, ApiKeys, AppState, ServerConfig};
use jikji_tokenizer::Tokenizer;
use tower::ServiceExt;

const N_CTX: usize = 128;

fn state_with(config: ServerConfig) -> AppState {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/llama-1.gguf");
    let file = Arc::new(GgufFile::open(path).expect("tiny fixture"));
    let tokenizer = Tokenizer::from_gguf(&file).expect("tokenizer");
    let chat = ChatFormatter::from_gguf(&file).expect("chat template");
    let model = Model::load(file).expect("model");
    let cfg = ServeConfig { n_ctx: N_CTX, parallel: 2, max_queue: 4, kv_tokens: 2 * N_CTX, threads: 1, ..ServeConfig::default() };
    let engine = Engine::start(Arc::new(model), Arc::new(tokenizer), Some(chat), "tiny".into(), cfg).expect("engine");
    AppState::new(engine, config)
}

async fn get(r: &Router, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut b = Request::builder().method(Method::GET).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = r.clone().oneshot(b.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, headers, bytes)
}

fn keyed() -> ServerConfig {
    let mut keys = ApiKeys::none();
    keys.add_from_text("k1", "test").expect("keys");
    ServerConfig { api_keys: keys, web_ui: true, ..ServerConfig::default() }
}

#[tokio::test]
async fn page_is_served_at_root_with_a_same_origin_only_policy() {
    let r = router(state_with(ServerConfig { web_ui: true, ..ServerConfig::default() }));
    let (s, h, body) = get(&r, "/", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = String::from_utf8(body).expect("utf-8");
    for hook in ["data-testid=\"composer\"", "data-testid=\"send\"", "data-testid=\"stop\"", "data-testid=\"api-key\""] {
        assert!(html.contains(hook), "index.html lacks {hook}");
    }
    let (s, h, _) = get(&r, "/ui/app.js", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
}

#[tokio::test]
async fn unchanged_asset_answers_304_to_its_etag() {
    let r = router(state_with(ServerConfig { web_ui: true, ..ServerConfig::default() }));
    let (_, h, _) = get(&r, "/ui/style.css", &[]).await;
    let tag = h["etag"].to_str().expect("etag").to_string();
    let (s, _, body) = get(&r, "/ui/style.css", &[("if-none-match", &tag)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let (s, _, _) = get(&r, "/ui/style.css", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn page_is_public_with_keys_but_the_api_and_props_are_not() {
    let r = router(state_with(keyed()));
    for path in ["/", "/ui/index.html", "/ui/app.js", "/ui/markdown.js", "/ui/style.css", "/ui/icon.svg"] {
        assert_eq!(get(&r, path, &[]).await.0, StatusCode::OK, "{path}");
    }
    for path in ["/props", "/v1/models", "/metrics", "/ui/nope.js"] {
        assert_eq!(get(&r, path, &[]).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (s, _, body) = get(&r, "/props", &[("authorization", "Bearer k1")]).await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["model"], "tiny");
    assert_eq!(v["n_ctx"], N_CTX);
    assert_eq!(v["total_slots"], 2);
}

#[tokio::test]
async fn without_the_page_root_is_an_unknown_route() {
    let r = router(state_with(ServerConfig::default()));
    assert_eq!(get(&r, "/", &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&r, "/ui/app.js", &[]).await.0, StatusCode::NOT_FOUND);
    // Turning the page off must not open the API: with keys, its asset paths need one.
    let mut cfg = keyed();
    cfg.web_ui = false;
    let r = router(state_with(cfg));
    assert_eq!(get(&r, "/ui/app.js", &[]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&r, "/", &[]).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_asset_is_a_404_in_openai_shape() {
    let r = router(state_with(ServerConfig { web_ui: true, ..ServerConfig::default() }));
    let (s, _, body) = get(&r, "/ui/..%2Fmetrics", &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "not_found_error");
}
