//! `general.architecture` → architecture loader. Adding an architecture is one line here.

use crate::arch::{self, Architecture};
use crate::error::ModelError;
use jikji_gguf::GgufFile;

type LoadFn = fn(&GgufFile) -> Result<Box<dyn Architecture>, ModelError>;

/// Every supported architecture name with its loader.
pub const ARCHITECTURES: &[(&str, LoadFn)] = &[
    ("llama", arch::llama::load),
    ("qwen2", arch::qwen2::load),
    ("qwen3", arch::qwen3::load),
    ("gemma3", arch::gemma3::load),
    ("deepseek2", arch::deepseek2::load),
    ("exaone", arch::exaone::load),
    ("exaone4", arch::exaone4::load),
];

/// Names of the supported architectures.
pub fn supported() -> Vec<&'static str> {
    ARCHITECTURES.iter().map(|(n, _)| *n).collect()
}

/// Loads the architecture named by the file's `general.architecture`.
pub fn load(file: &GgufFile) -> Result<Box<dyn Architecture>, ModelError> {
    let name = file.get_str("general.architecture")?.ok_or(ModelError::NoArchitecture)?;
    match ARCHITECTURES.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f(file),
        None => Err(ModelError::UnknownArchitecture(name.to_string(), supported().join(", "))),
    }
}
