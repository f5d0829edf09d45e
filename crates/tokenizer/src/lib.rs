//! Tokenizers built from GGUF metadata, chat templates, and UTF-8-safe incremental decoding.
#![forbid(unsafe_code)]

/// Chat templates (owned by the chat-template helper: `chat.rs` and `tests/chat_*.rs`).
pub mod chat;
