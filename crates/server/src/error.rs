//! OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with the HTTP
//! status OpenAI uses for the same failure.
//!
//! Every way a request can fail inside the server ends as an [`ApiError`], so clients (the
//! official SDKs included) can read the message and code the same way they do for OpenAI.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::wire::{to_json_string, ErrorBody, ErrorObject};

/// One failed request: the status, the OpenAI error object, and for 429 a `Retry-After`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `rate_limit_error`, `server_error`, `service_unavailable`.
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, param: None, code: None, retry_after_secs: None }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 400: a field is missing, of the wrong type, or out of range.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .with_param(param)
            .with_code("invalid_value")
    }

    /// 400: the body is not JSON or does not have the request's shape.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message).with_code("invalid_json")
    }

    /// 400: prompt (+ max_tokens) longer than the context.
    pub fn context_length(message: impl Into<String>, param: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .with_param(param)
            .with_code("context_length_exceeded")
    }

    /// 400: the request's grammar ran past its per-step limits during generation.
    pub fn grammar_too_complex(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message).with_code("grammar_too_complex")
    }

    /// 401: no key or a wrong key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message).with_code("invalid_api_key")
    }

    /// 404: a route that does not exist.
    pub fn no_route(method: &str, path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", format!("Unknown request URL: {method} {path}"))
            .with_code("unknown_url")
    }

    /// 404: `model` names a model this server does not serve.
    /// `served` lists the served ids, already quoted (`` `a`, `b` ``).
    pub fn unknown_model(requested: &str, served: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{requested}` does not exist; this server serves {served}"),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 400: the named model is served but answers another kind of request (e.g. a chat
    /// request naming an embedding model).
    pub fn wrong_model_kind(model: &str, is: &str, wanted: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("The model `{model}` is a `{is}` model; this endpoint needs a `{wanted}` model"),
        )
        .with_param("model")
        .with_code("model_not_supported")
    }

    /// 400: a request without `model` needs a kind of model this server does not serve.
    pub fn no_model_of_kind(wanted: &str, served: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("This server serves no `{wanted}` model (it serves {served}); name one in `model`"),
        )
        .with_param("model")
        .with_code("model_not_supported")
    }

    /// 405: a known route with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "Method not allowed for this URL")
            .with_code("method_not_allowed")
    }

    /// 413: the body is larger than the server accepts.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than the limit of {limit} bytes"),
        )
        .with_code("request_too_large")
    }

    /// 415: a body that is not declared as JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "Expected a JSON body with `Content-Type: application/json`",
        )
        .with_code("unsupported_media_type")
    }

    /// 429 + `Retry-After`: the queue is full.
    pub fn queue_full(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "The server is at capacity (request queue full); retry later",
        )
        .with_code("queue_full");
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    /// 503: the server is shutting down and takes no new work.
    pub fn shutting_down() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "The server is shutting down")
            .with_code("shutting_down")
    }

    /// 500: the engine failed on a request it had accepted.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message).with_code("internal_error")
    }

    /// The body as written on the wire: `{"error": {...}}`.
    pub fn wire(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorObject {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        }
    }

    /// The JSON body: `{"error": {...}}`, as a value.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.wire()).unwrap_or(serde_json::Value::Null)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = to_json_string(&self.wire());
        let mut resp = (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
            .into_response();
        if let Some(s) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_four_openai_fields() {
        let e = ApiError::invalid("temperature", "temperature must be in [0, 2]");
        let b = e.body();
        let obj = b["error"].as_object().expect("error object");
        let mut keys: Vec<_> = obj.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["code", "message", "param", "type"]);
        assert_eq!(b["error"]["param"], "temperature");
        assert_eq!(b["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn queue_full_sets_retry_after_header() {
        let resp = ApiError::queue_full(3).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("3"));
    }

    #[test]
    fn unknown_model_is_404_model_not_found() {
        let e = ApiError::unknown_model("gpt-4", "smollm2-135m");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.body()["error"]["code"], "model_not_found");
    }
}
