//! The engine's error type: every failure of loading, prompting or generating as a value.

use jikji_gguf::GgufError;
use jikji_models::ModelError;
use jikji_tokenizer::chat::ChatTemplateError;
use jikji_tokenizer::TokenizerError;

use crate::grammar::GrammarError;
use crate::sampler::SamplerError;

/// Errors from the engine. Wraps the lower crates' errors and adds request-level ones.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] ChatTemplateError),
    #[error(transparent)]
    Grammar(#[from] GrammarError),
    #[error("sampler: {0}")]
    Sampler(#[from] SamplerError),
    #[error("the prompt is empty (no tokens to evaluate)")]
    EmptyPrompt,
    #[error("the prompt has {n_prompt} tokens but the context holds only {n_ctx}")]
    PromptTooLong { n_prompt: usize, n_ctx: usize },
    #[error("invalid context size {0}: must be at least 1")]
    BadContextSize(usize),
    #[error("bad engine configuration: {0}")]
    BadConfig(String),
    #[error("no chat template is loaded for this model")]
    NoChatTemplate,
    #[error("the model returned {got} logits, expected {expected}")]
    LogitsShape { expected: usize, got: usize },
}
