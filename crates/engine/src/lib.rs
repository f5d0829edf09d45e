//! The inference engine: sampling, chat prompts and generation over a model and its
//! tokenizer. It names no architecture and knows no HTTP.
//!
//! - [`sampler`]: llama.cpp's default sampling chain (penalties, top-k, top-p, min-p,
//!   temperature, seeded draw) with greedy decoding at temperature ≤ 0.
//! - [`chat`]: the model's chat template (or a fallback) and llama.cpp-style tokenization
//!   of the rendered prompt.
//! - [`generate`]: a one-sequence [`Generator`] that prefills the prompt in one batch,
//!   reuses the KV cache across calls for the common prefix, streams UTF-8-safe text and
//!   stops at EOG tokens, stop strings, the token limit or a full context.
//! - [`grammar`]: constrained decoding (JSON Schema, regex, Lark, choices) with
//!   llguidance: one vocabulary trie per model, a mask per sequence and token.
//! - [`reasoning`]: a streaming splitter of `<think>` reasoning from the answer, for the
//!   CLI's thinking display and the server's `reasoning_content`.
//!
//! - [`backend`]: `--backend cpu|vulkan|cuda|auto`, the device a model computes on.
//! - [`open`]: opens a model file for generation — file, tokenizer, model and the context
//!   size (one default rule), refusing a KV cache that cannot fit.
//! - [`serve`]: the multi-user serving engine (continuous batching over a paged,
//!   prefix-shared KV cache, streamed events per request) behind the HTTP server.
//!
//! - [`embed`]: encoder (embedding) models — [`embed::Embedder`] and the batching
//!   [`embed::EmbedQueue`] the server's `/v1/embeddings` submits to.
//!
//! Everything returns [`EngineError`]; nothing here panics on model or user input.
#![forbid(unsafe_code)]

pub mod backend;
pub mod chat;
pub mod embed;
mod error;
pub mod generate;
pub mod grammar;
pub mod open;
pub mod reasoning;
pub mod sampler;
pub mod serve;

pub use chat::{tokenize_chat_prompt, ChatFormatter, TemplateSource};
pub use error::EngineError;
pub use reasoning::{Part, ReasoningSplitter};
pub use backend::{BackendError, BackendKind, Device};
pub use open::{open, OpenError, OpenOptions, Opened};
pub use generate::{GenerateParams, Generation, Generator, StopReason, Timings};
pub use sampler::{Sampler, SamplerConfig, SamplerError};
