//! The OpenAI-compatible HTTP server behind `jikji serve`: an axum [`router`] over an
//! engine handle, API-key auth, request limits, Prometheus metrics, SSE streaming, TLS and
//! graceful shutdown.
//!
//! Design choices:
//! - The server owns HTTP only. Generation, batching, the KV cache and its metrics live in
//!   `jikji_engine::serve`; a handler validates a request, turns it into one
//!   [`GenRequest`](jikji_engine::serve::GenRequest) per choice, and turns the engine's
//!   events into OpenAI JSON or SSE chunks ([`api`]).
//! - Secure by default: the CLI binds 127.0.0.1; with keys configured every route but
//!   `/health`, `/ready` and the web page's static files ([`ui`]) needs one, holding the
//!   route's scope, within the key's limits ([`keys`]; plain keys from [`auth`]); one
//!   middleware ([`gate`]) checks keys and limits and writes the [`audit`] line; bodies
//!   are capped (8 MiB default → 413, from `Content-Length` before reading), and each request's `n`, stop strings, logit bias and token
//!   budget are bounded ([`request::Limits`]); CORS is off unless origins are given; a
//!   panic in a handler becomes a 500, never a dead connection task; a client must send
//!   its headers within [`HEADER_READ_TIMEOUT`] (TLS handshakes: 10 s), so stalled
//!   connections do not pile up.
//! - Errors are always OpenAI's `{"error": {...}}` object ([`error::ApiError`]), for
//!   unknown routes and wrong methods too.
//! - Graceful shutdown ([`serve`]): on the signal the server keeps accepting connections
//!   but answers new generation requests with 503, lets in-flight ones finish (up to the
//!   timeout), then closes. Closing the listener at once would turn new requests into
//!   connection errors that clients cannot tell from a crash.
//! - One listener type for plain TCP and TLS (`axum-server`), TLS by rustls with the
//!   `ring` provider passed explicitly (no process-wide default to install).
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod error;
pub mod gate;
pub mod keys;
pub mod metrics;
pub mod models;
pub mod ops;
pub mod request;
pub mod sse;
pub mod structured;
pub mod ui;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jikji_engine::serve::EngineHandle;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::ApiKeys;
pub use error::ApiError;
pub use models::{ModelKind, Models, ModelsError, Served, ServedModel};
pub use request::Limits;

/// What the server enforces besides the engine's own limits.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    pub api_keys: ApiKeys,
    pub limits: Limits,
    /// Origins allowed by CORS; empty = CORS off (no headers sent), `"*"` = any origin.
    pub cors_origins: Vec<String>,
    /// Other names accepted in a request's `model` besides the engine's model id, for
    /// the one model of [`AppState::new`] (with several models each [`ServedModel`]
    /// carries its own).
    pub model_aliases: Vec<String>,
    /// Serve the web chat page at `/` ([`ui`]); `jikji serve` turns it on unless `--no-ui`.
    pub web_ui: bool,
    /// Keys with policies (`--keys-file` and the plain keys); `None` = the plain
    /// `api_keys` only ([`keys`]).
    pub keys: Option<Arc<keys::KeyRing>>,
    /// The audit log (`--audit-log`, [`audit`]).
    pub audit: Option<Arc<audit::AuditLog>>,
}

/// Shutdown bookkeeping shared by the handlers and [`serve`].
#[derive(Debug, Default)]
pub struct Shutdown {
    /// Set on the shutdown signal: new generation requests get 503.
    pub draining: AtomicBool,
    /// Generation requests whose reply is still being produced (streams included).
    active: AtomicUsize,
    changed: Notify,
}

impl Shutdown {
    /// Marks one generation request as in flight until the guard is dropped.
    /// The guard also carries the request's [`gate::Tally`], through which the reply
    /// reports its tokens.
    pub fn guard(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.clone(), gate::Tally::current())
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// Counts a generation request as in flight while alive (moved into streaming bodies).
#[derive(Debug)]
pub struct ActiveGuard(Arc<Shutdown>, Option<Arc<gate::Tally>>);

impl ActiveGuard {
    /// The request's token tally (absent outside the router, e.g. in unit tests).
    pub fn tally(&self) -> Option<&gate::Tally> {
        self.1.as_deref()
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The served models; requests are routed among them by `model` ([`models`]).
    pub models: Arc<Models>,
    pub config: Arc<ServerConfig>,
    pub http_metrics: Arc<metrics::HttpMetrics>,
    pub shutdown: Arc<Shutdown>,
    /// The keys in force (from `config.keys`, else built from `config.api_keys`).
    pub keys: Arc<keys::KeyRing>,
    /// Unix time the server started (the model's `created`).
    pub started: u64,
}

impl AppState {
    /// One generating model, answering to its id and `config.model_aliases`.
    pub fn new(engine: EngineHandle, config: ServerConfig) -> Self {
        let one = ServedModel::generate(engine, config.model_aliases.clone());
        Self::with_models(Models::one(one), config)
    }

    /// Several models (see [`models`]); `config.model_aliases` is not used.
    pub fn with_models(models: Models, config: ServerConfig) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let keys = match &config.keys {
            Some(k) => k.clone(),
            None => Arc::new(keys::KeyRing::from_plain(&config.api_keys)),
        };
        Self {
            models: Arc::new(models),
            keys,
            config: Arc::new(config),
            http_metrics: Arc::default(),
            shutdown: Arc::default(),
            started,
        }
    }

    /// True when `model` names a served model (an id or an alias).
    pub fn serves(&self, model: &str) -> bool {
        self.models.find(model).is_some()
    }
}

async fn count_status(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    st.http_metrics.record(resp.status().as_u16());
    resp
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("internal error while handling the request").into_response()
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::HeaderName::from_static("x-api-key")]),
    )
}

/// The whole HTTP API over `state`.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    let cors = cors_layer(&state.config.cors_origins);
    let r = Router::new()
        .route("/v1/chat/completions", post(api::chat_completions))
        .route("/chat/completions", post(api::chat_completions))
        .route("/v1/completions", post(api::completions))
        .route("/completions", post(api::completions))
        .route("/v1/models", get(api::list_models))
        .route("/models", get(api::list_models))
        .route("/v1/models/{model}", get(api::get_model))
        .route("/health", get(api::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(api::metrics))
        .route("/tokenize", post(api::tokenize))
        .route("/detokenize", post(api::detokenize))
        .route("/props", get(ui::props));
    let r = if state.config.web_ui { r.merge(ui::routes()) } else { r };
    let r = r
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), gate::gate))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state);
    match cors {
        Some(c) => r.layer(c),
        None => r,
    }
}

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read TLS file {path}: {message}")]
    TlsFile { path: String, message: String },
    #[error("invalid TLS certificate or key: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// How long in-flight requests may run after the shutdown signal.
    pub shutdown_timeout: Duration,
}

/// How a shutdown went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// In-flight requests all finished before the timeout.
    pub drained: bool,
    /// Requests still running when the server closed.
    pub abandoned: usize,
}

/// Builds the rustls configuration from PEM files (certificate chain + private key).
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_err = |p: &PathBuf, e: &dyn std::fmt::Display| ServerError::TlsFile {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert, &e))?;
    if certs.is_empty() {
        return Err(file_err(&files.cert, &"no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err(&files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// How long a client may take to send a request's headers before its connection is
/// closed (a slow or stalled client must not hold a connection for ever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

fn limit_slow_clients(b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    b.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
}

/// Serves `router(state)` until `signal` resolves, then drains: new generation requests
/// get 503 while in-flight ones finish (at most `shutdown_timeout`), then the listener
/// closes. `on_listening` gets the bound address (useful with port 0).
pub async fn serve(
    state: AppState,
    opts: ServeOptions,
    signal: impl Future<Output = ()>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<ShutdownReport, ServerError> {
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let server = match &opts.tls {
        Some(files) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config(files)?));
            let mut s = axum_server::bind_rustls(opts.addr, cfg).handle(handle.clone());
            limit_slow_clients(s.http_builder());
            tokio::spawn(async move { s.serve(app).await })
        }
        None => {
            let mut s = axum_server::bind(opts.addr).handle(handle.clone());
            limit_slow_clients(s.http_builder());
            tokio::spawn(async move { s.serve(app).await })
        }
    };
    let addr = match handle.listening().await {
        Some(a) => a,
        None => {
            let source = match server.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => std::io::Error::other("the listener stopped before it started"),
                Err(e) => std::io::Error::other(e.to_string()),
            };
            return Err(ServerError::Bind { addr: opts.addr, source });
        }
    };
    on_listening(addr);

    tokio::pin!(signal);
    let mut server = server;
    tokio::select! {
        _ = &mut signal => {}
        res = &mut server => {
            // The server stopped by itself: an I/O error on the listener.
            return match res {
                Ok(Ok(())) => Ok(ShutdownReport { drained: true, abandoned: 0 }),
                Ok(Err(e)) => Err(ServerError::Io(e)),
                Err(e) => Err(ServerError::Io(std::io::Error::other(e.to_string()))),
            };
        }
    }

    // Drain: refuse new work, wait for in-flight requests.
    state.shutdown.draining.store(true, Ordering::SeqCst);
    for e in state.models.engines() {
        e.begin_shutdown();
    }
    let deadline = Instant::now() + opts.shutdown_timeout;
    let report = loop {
        let in_engines: usize = state.models.engines().map(EngineHandle::in_flight).sum();
        let busy = state.shutdown.active().max(in_engines);
        if busy == 0 {
            break ShutdownReport { drained: true, abandoned: 0 };
        }
        let now = Instant::now();
        if now >= deadline {
            break ShutdownReport { drained: false, abandoned: busy };
        }
        let wait = (deadline - now).min(Duration::from_millis(50));
        let _ = tokio::time::timeout(wait, state.shutdown.changed.notified()).await;
    };
    // Finished streams may still be flushing their last bytes: give connections a moment.
    handle.graceful_shutdown(Some(Duration::from_millis(if report.drained { 500 } else { 0 })));
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(report)
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

