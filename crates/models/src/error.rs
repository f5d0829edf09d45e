//! The one error type of this crate: every way a model file or a request can be wrong.

use jikji_gguf::{GgmlType, GgufError};
use jikji_backend::BackendError;

/// Errors from loading a model or running a forward pass. None of them is a panic.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The backend refused an operation (a kernel error, operands that do not fit).
    #[error("backend: {0}")]
    Backend(BackendError),
    #[error("the file has no `general.architecture` key")]
    NoArchitecture,
    #[error("unknown architecture `{0}` (supported: {1})")]
    UnknownArchitecture(String, String),
    #[error("required metadata key `{0}` is missing")]
    MissingKey(String),
    #[error("bad hyper-parameters: {0}")]
    BadHparams(String),
    #[error("required tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?} (ggml order)")]
    TensorShape { name: String, expected: Vec<u64>, found: Vec<u64> },
    #[error("tensor `{name}` has type {ty}, which is not usable here")]
    TensorType { name: String, ty: GgmlType },
    #[error("unsupported model feature: {0}")]
    Unsupported(String),
    #[error("empty input: at least one token is needed")]
    EmptyInput,
    #[error("token id {token} is out of range (vocabulary size {n_vocab})")]
    TokenOutOfRange { token: u32, n_vocab: usize },
    #[error("context overflow: {needed} positions needed, the cache holds {n_ctx}")]
    ContextOverflow { needed: usize, n_ctx: usize },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("KV cache too large: {0}")]
    CacheTooLarge(String),
    #[error("the KV cache does not fit this model: {0}")]
    CacheMismatch(String),
}

impl From<BackendError> for ModelError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Alloc(m) => ModelError::CacheTooLarge(m),
            BackendError::CacheMismatch(m) => ModelError::CacheMismatch(m),
            other => ModelError::Backend(other),
        }
    }
}
