//! One file per architecture. Each exposes `load(file) -> Box<dyn Architecture>`;
//! `registry.rs` maps `general.architecture` to these loaders.

pub mod gemma3;
pub mod llama;
pub mod qwen2;
pub mod qwen3;

use crate::error::ModelError;
use crate::hparams::HParams;
use crate::kv_cache::KvView;
use jikji_gguf::GgufFile;

/// A loaded, validated architecture: its hyper-parameters and its forward pass.
pub trait Architecture: Send + Sync {
    fn hparams(&self) -> &HParams;

    /// Whether the output projection reuses the token embedding.
    fn tied_output(&self) -> bool;

    /// Runs `tokens` (the caller has checked ids, capacity and the cache's shape) at the
    /// positions `kv.positions(tokens.len())`, writes their keys/values into `kv`, and
    /// returns the logits of the batch rows listed in `out_rows` (ascending),
    /// `[out_rows.len(), n_vocab]`. A `KvView::Paged` batch concatenates several sequences'
    /// rows; everything but attention is row-wise, and attention goes through
    /// `blocks::layer::store_and_attend`, which handles both views. Linear layers take
    /// `kv.batch_invariant()`. The caller advances a contiguous cache's `len()` on success.
    fn forward(&self, file: &GgufFile, tokens: &[u32], kv: &mut KvView, out_rows: &[usize]) -> Result<Vec<f32>, ModelError>;
}
