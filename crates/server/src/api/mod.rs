//! The HTTP API: [`handlers`] read and check requests and submit them to the engine;
//! `reply` assembles the engine's events into OpenAI replies and SSE streams, whose
//! bodies are the typed structs of [`crate::wire`].
//!
//! Stream and non-stream replies are built from the same per-token events through the
//! same per-choice state, so the concatenated deltas of a stream equal the non-streamed
//! text exactly.

pub mod embeddings;
pub mod handlers;
mod reply;

#[cfg(test)]
mod pins;

pub use embeddings::embeddings;
pub use handlers::{
    chat_completions, completions, detokenize, get_model, health, list_models, method_not_allowed, metrics,
    not_found, tokenize,
};
