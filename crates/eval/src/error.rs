//! Why an evaluation could not run. Every malformed input file is a [`EvalError::Format`]
//! naming what is wrong and where, never a panic.

use jikji_models::ModelError;
use jikji_tokenizer::TokenizerError;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("forward pass failed")]
    Model(#[from] ModelError),
    #[error("tokenization failed")]
    Tokenizer(#[from] TokenizerError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Format(String),
    #[error("you need at least {need} tokens to evaluate perplexity with a context of {n_ctx}; the text tokenizes to only {have}")]
    TooShort { need: usize, have: usize, n_ctx: usize },
    #[error("{0}")]
    Mismatch(String),
    #[error("no TrueType font found for the PNG charts' labels (looked in {looked}); set JIKJI_FONT to a .ttf file")]
    NoFont { looked: String },
    #[error("drawing {what}: {reason}")]
    Plot { what: String, reason: String },
}

impl EvalError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        EvalError::Io { what: what.into(), source }
    }
}
