//! `general.architecture` → architecture loader. Adding an architecture is one line here.

use crate::arch;
use crate::decoder::Decoder;
use crate::error::ModelError;
use crate::weights::Loader;
use jikji_backend::{Backend, CpuBackend};
use jikji_gguf::GgufFile;
use std::sync::Arc;

/// Builds a decoder on backend `B` from a validated file.
pub type LoadFn<B> = fn(&Loader<B>) -> Result<Decoder<B>, ModelError>;

/// Every supported architecture name with its loader.
pub fn architectures<B: Backend>() -> Vec<(&'static str, LoadFn<B>)> {
    vec![
        ("llama", arch::llama::load),
        ("qwen2", arch::qwen2::load),
        ("qwen3", arch::qwen3::load),
        ("qwen3moe", arch::qwen3moe::load),
        ("gemma3", arch::gemma3::load),
        ("deepseek2", arch::deepseek2::load),
        ("exaone", arch::exaone::load),
        ("exaone4", arch::exaone4::load),
    ]
}

/// Names of the supported architectures.
pub fn supported() -> Vec<&'static str> {
    architectures::<CpuBackend>().iter().map(|(n, _)| *n).collect()
}

/// Loads the architecture named by the file's `general.architecture` onto `be`.
pub fn load<B: Backend>(file: &Arc<GgufFile>, be: &B) -> Result<Decoder<B>, ModelError> {
    let name = file.get_str("general.architecture")?.ok_or(ModelError::NoArchitecture)?;
    match architectures::<B>().iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f(&Loader::new(file, be)),
        None => Err(ModelError::UnknownArchitecture(name.to_string(), supported().join(", "))),
    }
}
