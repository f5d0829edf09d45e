//! One file per architecture. Each exposes `load(file) -> Box<dyn Architecture>`;
//! `registry.rs` maps `general.architecture` to these loaders.

pub mod deepseek2;
pub mod exaone;
pub mod exaone4;
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

    /// Values per token per layer the cache stores for keys and for values. Plain
    /// attention stores `n_head_kv` heads of each; MLA stores one latent row as "keys"
    /// and no values.
    fn cache_widths(&self) -> (usize, usize) {
        let hp = self.hparams();
        (hp.n_embd_k_gqa(), hp.n_embd_v_gqa())
    }

    /// Architecture-specific hyper-parameters worth showing (`jikji inspect`), as
    /// `(name, value)` pairs; the common ones are in `hparams()`.
    fn details(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Runs `tokens` (the caller has checked ids, capacity and the cache's shape) at the
    /// positions `kv.positions(tokens.len())`, writes their keys/values into `kv`, and
    /// returns the logits of the batch rows listed in `out_rows` (ascending),
    /// `[out_rows.len(), n_vocab]`. A `KvView::Paged` batch concatenates several sequences'
    /// rows; everything but attention is row-wise, and attention goes through
    /// `blocks::layer::store_and_attend`, which handles both views. Linear layers take
    /// `kv.batch_invariant()`. The caller advances a contiguous cache's `len()` on success.
    fn forward(&self, file: &GgufFile, tokens: &[u32], kv: &mut KvView, out_rows: &[usize]) -> Result<Vec<f32>, ModelError>;
}
