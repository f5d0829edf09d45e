//! Tokenizers built from GGUF metadata, chat templates, and UTF-8-safe incremental decoding.
//!
//! The goal is the exact token ids llama.cpp produces, so the design follows llama.cpp's
//! `llama-vocab.cpp` and `unicode.cpp` rather than Hugging Face `tokenizers`:
//!
//! - [`Vocab`] is the raw `tokenizer.ggml.*` metadata (absent keys stay `None`, since
//!   llama.cpp's defaults depend on them); [`Tokenizer::from_vocab`] validates it (ids in
//!   range, array lengths, merges naming real tokens, no duplicate tokens) and applies
//!   llama.cpp's defaults and special-token detection (EOT/EOG by text, FIM tokens).
//! - Byte-level BPE (`gpt2`): the pre-tokenizer chosen by `tokenizer.ggml.pre`
//!   (`pretokenize`; an unknown name is an error, never a silent fallback), GPT-2's byte
//!   alphabet, then rank-ordered merges with a heap (`bpe`).
//! - SentencePiece (`llama`, as Gemma uses): score-ordered bigram merges with byte fallback
//!   (`spm`), `▁` for spaces, and the space prefix the metadata asks for.
//! - WordPiece (`bert`, encoder models): [`WordPiece`], llama.cpp's WPM normalisation and
//!   greedy longest match over a `▁`-prefixed vocabulary.
//! - Special tokens written in the text are split out first, longest first, as llama.cpp's
//!   `tokenizer_st_partition` does; CONTROL tokens only when `parse_special` is on.
//! - Decoding works on bytes; [`IncrementalDecoder`] holds back partial UTF-8 characters so
//!   a stream never shows half a Hangul syllable.
//!
//! Tokenization never panics on file data: every id and length is checked when the
//! tokenizer is built, and per-call errors are [`TokenizerError`] values.
#![forbid(unsafe_code)]

mod bpe;
mod decode;
mod error;
mod pretokenize;
mod spm;
mod tokenizer;
mod unicode;
mod vocab;
mod wordpiece;

/// Chat templates (owned by the chat-template helper: `chat/` and `tests/chat_*.rs`).
pub mod chat;

pub use decode::IncrementalDecoder;
pub use error::TokenizerError;
pub use tokenizer::{Tokenizer, TokenizerKind};
pub use vocab::{token_type, TokenAttr, Vocab};
pub use wordpiece::WordPiece;
