//! The one middleware every request passes ([`gate`]): body size from `Content-Length`,
//! the key and its scope, the key's limits, and the audit line; plus the per-request
//! [`Tally`] through which the reply code reports tokens.
//!
//! Design choices:
//! - A body declared larger than the limit is answered 413 from its `Content-Length`
//!   before a byte of it is read. Reading first (and failing at the limit) made hyper send
//!   `100 Continue`, so curl started uploading, and the connection was closed under it:
//!   curl saw a reset, not the 413. Bodies without a length are still cut at the limit
//!   where they are read.
//! - The reply's tokens are known only to the reply code (`api::reply`), which may run in
//!   a streaming body long after this middleware returned. The middleware puts the
//!   request's [`Tally`] in a task-local for the handler's run; `Shutdown::guard` (which
//!   every generation takes) picks it up, and the reply reports prompt tokens, each
//!   generated token and the final usage through the guard. Tokens are charged to the
//!   key as they are generated, so a long stream counts against the per-minute limit
//!   while it runs.
//! - The audit line and the concurrency slot belong to the response body: they end when
//!   its last byte is sent or when it is dropped (the client went away), so streams are
//!   logged with their whole duration and hold their slot until they end.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;

use crate::audit::{self, AuditLog, Record};
use crate::error::ApiError;
use crate::keys::{self, route_scopes, Access, Caller, Permit};
use crate::AppState;

tokio::task_local! {
    static TALLY: Arc<Tally>;
}

/// What one request used, reported by the reply code and read by the audit line.
#[derive(Debug, Default)]
pub struct Tally {
    caller: Option<Caller>,
    keep_output: bool,
    prompt: AtomicU64,
    completion: AtomicU64,
    finished: AtomicBool,
    model: Mutex<Option<String>>,
    output: Mutex<Option<Vec<String>>>,
}

impl Tally {
    /// The tally of the request whose handler is running on this task, if any.
    pub fn current() -> Option<Arc<Tally>> {
        TALLY.try_with(Arc::clone).ok()
    }

    fn charge(&self, prompt: u64, completion: u64) {
        if let Some(c) = &self.caller {
            c.state.charge(prompt, completion, &c.policy.limits);
        }
    }

    /// The reply starts: its prompt tokens (each distinct prompt once) and model.
    pub fn begin(&self, prompt_tokens: u64, model: &str) {
        let before = self.prompt.swap(prompt_tokens, Ordering::Relaxed);
        self.charge(prompt_tokens.saturating_sub(before), 0);
        *self.model.lock().unwrap_or_else(|p| p.into_inner()) = Some(model.to_string());
    }

    /// One generated token.
    pub fn token(&self) {
        self.completion.fetch_add(1, Ordering::Relaxed);
        self.charge(0, 1);
    }

    /// The reply ended normally with these totals; `output` (each choice's text) is asked
    /// for only with `--audit-content`.
    pub fn finish(&self, prompt_tokens: u64, completion_tokens: u64, output: impl FnOnce() -> Vec<String>) {
        let p = self.prompt.swap(prompt_tokens, Ordering::Relaxed);
        let c = self.completion.swap(completion_tokens, Ordering::Relaxed);
        self.charge(prompt_tokens.saturating_sub(p), completion_tokens.saturating_sub(c));
        self.finished.store(true, Ordering::Relaxed);
        if self.keep_output {
            *self.output.lock().unwrap_or_else(|p| p.into_inner()) = Some(output());
        }
    }
}

/// The audit line and the concurrency slot of one request, until its reply has ended.
struct Pending {
    audit: Option<Arc<AuditLog>>,
    rec: Record,
    tally: Arc<Tally>,
    start: Instant,
    ended: bool,
    _permit: Option<Permit>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(log) = &self.audit else { return };
        let mut rec = std::mem::take(&mut self.rec);
        rec.duration_ms = (self.start.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        rec.cancelled = !self.ended;
        rec.prompt_tokens = self.tally.prompt.load(Ordering::Relaxed);
        rec.completion_tokens = self.tally.completion.load(Ordering::Relaxed);
        if rec.model.is_none() {
            rec.model = self.tally.model.lock().unwrap_or_else(|p| p.into_inner()).clone();
        }
        if rec.output.is_none() {
            rec.output = self.tally.output.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
        log.write(&rec);
    }
}

/// A response body that ends its request's [`Pending`] with its last frame or its drop.
struct Tracked {
    inner: Body,
    pending: Option<Pending>,
}

impl Tracked {
    fn end(&mut self) {
        if let Some(mut p) = self.pending.take() {
            p.ended = true;
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(None) => this.end(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.end(),
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The text of a request worth keeping with `--audit-content`.
fn prompt_of(body: &[u8]) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["messages", "prompt", "input", "content"].iter().find_map(|k| v.get(*k).cloned())
}

/// The middleware: see the module docs.
pub async fn gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let audit_log = st.config.audit.clone();
    let mut rec = Record::default();
    if audit_log.is_some() {
        rec.time = audit::rfc3339(SystemTime::now());
        rec.method = req.method().to_string();
        rec.route = req.uri().path().to_string();
        rec.client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string());
        rec.forwarded_for =
            req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
    }
    let mut pending = Pending {
        audit: audit_log.clone(),
        rec,
        tally: Arc::new(Tally::default()),
        start,
        ended: false,
        _permit: None,
    };
    let refuse = |mut pending: Pending, e: ApiError, close: bool| -> Response {
        pending.rec.status = e.status.as_u16();
        pending.ended = true;
        let mut resp = e.into_response();
        if close {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    };

    let limit = st.config.limits.max_body_bytes;
    if declared_length(&req).is_some_and(|n| n > limit as u64) {
        return refuse(pending, ApiError::body_too_large(limit), true);
    }

    let path = req.uri().path();
    let access = if req.method() == Method::OPTIONS || (st.config.web_ui && crate::ui::is_public(path)) {
        Access::Public
    } else {
        route_scopes(path)
    };
    let caller = match st.keys.authorize(req.headers(), access) {
        Ok(c) => c,
        Err(d) => {
            pending.rec.key = d.key;
            return refuse(pending, *d.error, false);
        }
    };
    if let Some(c) = &caller {
        pending.rec.key = Some(c.policy.name.clone());
        match c.state.admit(&c.policy.limits) {
            Ok(p) => pending._permit = Some(p),
            Err(r) => {
                pending.rec.limit = Some(r.reason.as_str());
                return refuse(pending, keys::rate_limited(&c.policy.name, &r), false);
            }
        }
    }
    let keep_content = audit_log.as_ref().is_some_and(|a| a.content);
    let req = if keep_content {
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => {
                pending.rec.prompt = prompt_of(&bytes);
                Request::from_parts(parts, Body::from(bytes))
            }
            Err(_) => return refuse(pending, ApiError::body_too_large(limit), true),
        }
    } else {
        req
    };
    pending.tally = Arc::new(Tally { caller, keep_output: keep_content, ..Tally::default() });

    let resp = TALLY.scope(pending.tally.clone(), next.run(req)).await;
    pending.rec.status = resp.status().as_u16();
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        pending.ended = true;
        return resp;
    }
    let (parts, body) = resp.into_parts();
    if http_body::Body::is_end_stream(&body) {
        // An empty body may never be polled.
        pending.ended = true;
    }
    let tracked = Tracked { inner: body, pending: Some(pending) };
    Response::from_parts(parts, Body::new(tracked))
}
