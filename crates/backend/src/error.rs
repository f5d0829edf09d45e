//! The backend's error type: a shape it cannot serve, memory it cannot have, or a
//! kernel's own refusal. None of them is a panic.

use jikji_kernels::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("kernel error: {0}")]
    Kernel(#[from] KernelError),
    /// An operation was given operands that do not fit together.
    #[error("bad operands: {0}")]
    Shape(String),
    /// A cache or buffer too large to address or to allocate.
    #[error("{0}")]
    Alloc(String),
    /// A cache handed to a step does not match the model (layers, widths, backend).
    #[error("{0}")]
    CacheMismatch(String),
    /// A device backend's own failure (no device, a driver or compiler error, an operation
    /// or type the backend does not implement).
    #[error("{0}")]
    Device(String),
}
