//! The OpenAI-compatible HTTP server (`jikji serve`): axum router over an engine handle,
//! auth, limits, metrics, SSE streaming. Empty until the serving issue lands; the crate
//! exists so the workspace layout of `DESIGN.md` is in place from the start.
#![forbid(unsafe_code)]
