//! One file per architecture. Each exposes `load(file) -> Box<dyn Architecture>`;
//! `registry.rs` maps `general.architecture` to these loaders.

pub mod gemma3;
pub mod llama;
pub mod qwen2;
pub mod qwen3;

use crate::error::ModelError;
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use jikji_gguf::GgufFile;

/// A loaded, validated architecture: its hyper-parameters and its forward pass.
pub trait Architecture: Send + Sync {
    fn hparams(&self) -> &HParams;

    /// Whether the output projection reuses the token embedding.
    fn tied_output(&self) -> bool;

    /// Runs `tokens` at positions `cache.len()..` (the caller has checked ids, capacity and
    /// the cache's shape), writes their keys/values into the cache rows, and returns the
    /// logits of the batch rows listed in `out_rows` (ascending), `[out_rows.len(), n_vocab]`.
    /// The caller advances `cache.len()` on success.
    fn forward(&self, file: &GgufFile, tokens: &[u32], cache: &mut KvCache, out_rows: &[usize]) -> Result<Vec<f32>, ModelError>;
}
