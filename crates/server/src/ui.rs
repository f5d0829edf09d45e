//! The web chat page served at `/` by `jikji serve` (turned off with `--no-ui`).
//!
//! Design choices:
//! - Every asset is compiled into the binary (`include_str!` / `include_bytes!` of the files
//!   under `crates/server/ui/`): the page works on a machine with no network at all, and
//!   what a browser runs is exactly what was tested. Plain ES modules and CSS, no build step.
//! - The page and its assets are public, like `/health`: they hold no data. Everything the
//!   page reads or does goes through the API with the user's key (the page asks for it when
//!   an API call answers 401), so a key still guards every model call.
//! - Strict headers on every asset: a Content-Security-Policy that allows only this origin
//!   (`default-src 'self'`, no inline script, no `eval`, `frame-ancestors 'none'`) — so even
//!   a bug in the page's Markdown renderer could neither run injected script nor send data
//!   elsewhere — plus `nosniff`, `no-referrer`, and `no-cache` with an `ETag` (a new binary
//!   never runs against a stale script).
//! - `GET /props` (behind the key like the API) tells the page what is served: model id,
//!   context per sequence, batch slots and the jikji version; the name and the `n_ctx` field
//!   follow llama.cpp's server.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// One embedded file: its URL name, media type and bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

/// The page's files, served under `/ui/NAME` (the index also at `/`).
const ASSETS: &[Asset] = &[
    Asset { name: "index.html", mime: "text/html; charset=utf-8", body: include_bytes!("../ui/index.html") },
    Asset { name: "style.css", mime: "text/css; charset=utf-8", body: include_bytes!("../ui/style.css") },
    Asset { name: "app.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("../ui/app.js") },
    Asset { name: "api.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("../ui/api.js") },
    Asset { name: "markdown.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("../ui/markdown.js") },
    Asset { name: "store.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("../ui/store.js") },
    Asset { name: "i18n.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("../ui/i18n.js") },
    Asset { name: "icon.svg", mime: "image/svg+xml", body: include_bytes!("../ui/icon.svg") },
];

/// The policy sent with every page asset (see the module docs).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// True for paths served without an API key when the page is on: the page itself.
pub fn is_public(path: &str) -> bool {
    path == "/" || path.strip_prefix("/ui/").is_some_and(|name| find(name).is_some())
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// Total bytes of all embedded assets (what a first visit transfers, before compression).
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn serve_asset(asset: &'static Asset, req_headers: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let fresh = req_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn index(headers: HeaderMap) -> Response {
    match find("index.html") {
        Some(a) => serve_asset(a, &headers),
        None => ApiError::no_route("GET", "/").into_response(),
    }
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match find(&name) {
        Some(a) => serve_asset(a, &headers),
        None => ApiError::no_route("GET", &format!("/ui/{name}")).into_response(),
    }
}

/// The body of `GET /props`.
#[derive(Debug, Serialize)]
pub struct Props {
    /// The first chat model (the page talks to it).
    pub model: String,
    /// Every served model's id, in command-line order.
    pub models: Vec<String>,
    /// Context per sequence (prompt + generated tokens).
    pub n_ctx: usize,
    /// Sequences decoded together.
    pub total_slots: usize,
    pub version: &'static str,
}

/// `GET /props`: what the server serves (always on; the page needs it, so may others).
pub async fn props(State(st): State<AppState>) -> Response {
    let models = st.models.iter().map(|m| m.id.clone()).collect();
    let Some(eng) = st.models.first_of(crate::ModelKind::Generate).and_then(|m| m.engine()) else {
        return crate::ApiError::no_model_of_kind("generate", &st.models.ids()).into_response();
    };
    axum::Json(Props {
        model: eng.model_id().to_string(),
        models,
        n_ctx: eng.n_ctx(),
        total_slots: eng.config().parallel,
        version: env!("CARGO_PKG_VERSION"),
    })
    .into_response()
}

/// The page's routes: `/` and `/ui/{name}`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/ui/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_public_and_nothing_else_is() {
        for a in ASSETS {
            assert!(is_public(&format!("/ui/{}", a.name)), "{}", a.name);
        }
        assert!(is_public("/"));
        for p in ["/ui/", "/ui/missing.js", "/v1/models", "/metrics", "/props", "/ui/../metrics", "//"] {
            assert!(!is_public(p), "{p}");
        }
    }

    #[test]
    fn page_fits_the_transfer_budget() {
        assert!(total_bytes() < 300 * 1024, "the page's assets weigh {} bytes", total_bytes());
    }

    #[test]
    fn assets_name_no_other_origin() {
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.body);
            for bad in ["http://", "https://", "//cdn", "@import", "fonts."] {
                // The SVG's XML namespace is an identifier, never fetched.
                let allowed = a.name == "icon.svg" && bad == "http://";
                assert!(allowed || !text.contains(bad), "{} mentions {bad}", a.name);
            }
        }
    }

    #[test]
    fn page_never_parses_text_as_html() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = String::from_utf8_lossy(a.body);
            for bad in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                assert!(!text.contains(bad), "{} uses {bad}", a.name);
            }
        }
    }
}
