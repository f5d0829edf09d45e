//! Transformer architectures over GGUF weights: hyper-parameters from metadata, shared
//! building blocks (`blocks/`), one file per architecture (`arch/`), and a registry
//! mapping `general.architecture` to its implementation.
//!
//! Design choices:
//! - Weights stay in the file's type inside the mmap (`weights::Matrix` is a tensor index
//!   entry, sliced on use); only norm weights and biases become f32 vectors.
//! - Everything a forward pass relies on is validated in `Model::load` (presence, type,
//!   shape, byte size, head counts), so a forward pass only checks the request itself
//!   (empty input, token ids, cache capacity) and never panics on file content.
//! - A prompt runs as one batch (`matmul` with `n_tokens > 1`); only the requested logits
//!   rows pass through the last layer's output projection, FFN and the vocabulary head.
//! - Numerics follow llama.cpp's CPU backend: f16 KV cache by default, f32 elsewhere,
//!   activations quantized by the kernels exactly where ggml quantizes them.
//! - Two cache layouts behind one forward pass (`KvView`): a contiguous per-sequence
//!   `KvCache` (`Model::forward`, llama.cpp's float orders, which depend on the batch size:
//!   the golden-test path) and a paged pool shared by many sequences (`PagedKv`,
//!   `Model::forward_batch`: all sequences' rows concatenated through every linear layer,
//!   attention per sequence through its block table, and batch-invariant float orders so
//!   a sequence's output never depends on what it was batched with).
//! - `trace(name, layer, &x)` marks named intermediates; set `JIKJI_TRACE` to print them.
//! - The cache layout belongs to the architecture (`Architecture::cache_widths`): plain
//!   attention stores `n_head_kv` key and value heads per token, MLA (`deepseek2`) one
//!   latent row (`kv_lora_rank + n_rot`) and no values, so contiguous and paged caches are
//!   sized by the architecture, never by `head_count_kv × key_length` alone.
//! - Stacked 3-D weights (MoE experts, MLA's per-head `attn_k_b`/`attn_v_b`) are sliced
//!   per expert/head as file references (`Loader::stacked`): experts stay in the file's
//!   quantized type, and a token only reads the experts it was routed to.
#![forbid(unsafe_code)]

pub mod arch;
pub(crate) mod blocks;
mod error;
pub mod hparams;
mod kv_cache;
pub mod registry;
pub mod trace;
pub(crate) mod weights;

use std::sync::Arc;

pub use arch::Architecture;
pub use error::ModelError;
pub use hparams::{HParams, RopeMode, YarnParams};
pub use jikji_gguf::GgufFile;
pub use kv_cache::{KvCache, KvType, KvView, PagedKv, SeqSpan, DEFAULT_KV_BLOCK};
pub use trace::trace;

/// Summary of a loaded model, for engines and the CLI.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// `general.architecture`.
    pub arch: String,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// `{arch}.context_length` (0 if absent).
    pub n_ctx_train: usize,
    pub sliding_window: Option<usize>,
    /// Output projection shares the token embedding.
    pub tied_output: bool,
}

/// A loaded model: the mapped file and its validated architecture.
pub struct Model {
    file: Arc<GgufFile>,
    arch: Box<dyn Architecture>,
    info: ModelInfo,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info).finish()
    }
}

impl Model {
    /// Validates the file against its architecture and keeps it mapped.
    pub fn load(file: Arc<GgufFile>) -> Result<Model, ModelError> {
        let arch = registry::load(&file)?;
        let hp = arch.hparams();
        let info = ModelInfo {
            arch: hp.arch.clone(),
            n_vocab: hp.n_vocab,
            n_embd: hp.n_embd,
            n_layer: hp.n_layer,
            n_ff: hp.n_ff,
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim_k,
            n_ctx_train: hp.n_ctx_train,
            sliding_window: hp.sliding_window,
            tied_output: arch.tied_output(),
        };
        Ok(Model { file, arch, info })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn hparams(&self) -> &HParams {
        self.arch.hparams()
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// An empty F16 cache for `n_ctx` positions (llama.cpp's default cache type).
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        self.new_cache_with(n_ctx, KvType::F16)
    }

    /// An empty cache of the given element type.
    pub fn new_cache_with(&self, n_ctx: usize, ty: KvType) -> KvCache {
        let hp = self.arch.hparams();
        let (kw, vw) = self.arch.cache_widths();
        KvCache::new(hp.n_layer, n_ctx, kw, vw, ty)
    }

    /// Values per token per layer stored for keys and values (see
    /// `Architecture::cache_widths`); the cache costs `(k + v) · n_layer · element size`
    /// bytes per token.
    pub fn cache_widths(&self) -> (usize, usize) {
        self.arch.cache_widths()
    }

    /// Architecture-specific hyper-parameters, for display.
    pub fn details(&self) -> Vec<(String, String)> {
        self.arch.details()
    }

    /// Appends `tokens` at positions `cache.len()..` and returns logits, row-major
    /// `[n_out, n_vocab]`: every position if `all_logits`, else only the last.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, all_logits: bool) -> Result<Vec<f32>, ModelError> {
        let rows: Vec<usize> = if all_logits { (0..tokens.len()).collect() } else { vec![tokens.len().saturating_sub(1)] };
        self.forward_rows(tokens, cache, &rows)
    }

    /// Like `forward`, returning logits only for the batch rows in `out_rows`
    /// (strictly ascending indices into `tokens`), `[out_rows.len(), n_vocab]`.
    pub fn forward_rows(&self, tokens: &[u32], cache: &mut KvCache, out_rows: &[usize]) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let hp = self.arch.hparams();
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(ModelError::TokenOutOfRange { token, n_vocab: hp.n_vocab });
        }
        let (kw, vw) = self.arch.cache_widths();
        if cache.layers.len() != hp.n_layer || cache.k_width != kw || cache.v_width != vw {
            return Err(ModelError::CacheMismatch(format!(
                "cache has {} layers of widths {}/{}, model needs {} of {}/{}",
                cache.layers.len(),
                cache.k_width,
                cache.v_width,
                hp.n_layer,
                kw,
                vw
            )));
        }
        let needed = cache.len() + tokens.len();
        if needed > cache.n_ctx() {
            return Err(ModelError::ContextOverflow { needed, n_ctx: cache.n_ctx() });
        }
        if out_rows.is_empty() || out_rows.windows(2).any(|w| w[0] >= w[1]) || out_rows.iter().any(|&r| r >= tokens.len()) {
            return Err(ModelError::BadRequest(format!(
                "output rows {out_rows:?} must be non-empty, ascending and below {}",
                tokens.len()
            )));
        }
        let logits = self.arch.forward(&self.file, tokens, &mut KvView::Contiguous(cache), out_rows)?;
        cache.len = needed;
        Ok(logits)
    }

    /// An empty paged KV pool of `n_blocks` blocks of `block_size` positions (F16).
    pub fn new_paged_kv(&self, n_blocks: usize, block_size: usize) -> Result<PagedKv, ModelError> {
        let hp = self.arch.hparams();
        let (kw, vw) = self.arch.cache_widths();
        if block_size == 0 || n_blocks == 0 || n_blocks > u32::MAX as usize {
            return Err(ModelError::BadRequest(format!("paged KV of {n_blocks} blocks of {block_size} positions")));
        }
        let fits = n_blocks.checked_mul(block_size).and_then(|r| r.checked_mul(kw.max(vw)));
        if fits.is_none() {
            return Err(ModelError::BadRequest("paged KV size overflows".into()));
        }
        Ok(PagedKv::new(hp.n_layer, n_blocks, block_size, kw, vw))
    }

    /// One batched step over several sequences sharing the paged pool `kv`.
    ///
    /// Each [`BatchSeq`] brings new tokens at positions `pos0..` of its sequence, whose
    /// block table must cover them; all rows go through every linear layer as one matmul
    /// (weights stream once per step), attention runs per sequence through its block table.
    /// Numerics are batch-invariant: a sequence's logits are bit-identical whatever the
    /// other sequences of the step and however its prompt was split into chunks. Returns
    /// the last-row logits of every sequence with `logits: true`, in order,
    /// `[n_out, n_vocab]`. Positions a step writes must not be shared with another sequence
    /// of the same step (checked).
    pub fn forward_batch(&self, seqs: &[BatchSeq], kv: &mut PagedKv) -> Result<Vec<f32>, ModelError> {
        let hp = self.arch.hparams();
        if seqs.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let (kw, vw) = self.arch.cache_widths();
        if kv.layers.len() != hp.n_layer || kv.k_width != kw || kv.v_width != vw {
            return Err(ModelError::CacheMismatch(format!(
                "paged pool has {} layers of widths {}/{}, model needs {} of {}/{}",
                kv.layers.len(),
                kv.k_width,
                kv.v_width,
                hp.n_layer,
                kw,
                vw
            )));
        }
        let mut tokens = Vec::new();
        let mut spans = Vec::with_capacity(seqs.len());
        let mut out_rows = Vec::new();
        let mut written = std::collections::HashSet::new();
        for (i, s) in seqs.iter().enumerate() {
            if s.tokens.is_empty() {
                return Err(ModelError::EmptyInput);
            }
            if let Some(&token) = s.tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
                return Err(ModelError::TokenOutOfRange { token, n_vocab: hp.n_vocab });
            }
            let end = s.pos0 + s.tokens.len();
            let cap = s.blocks.len() * kv.block_size;
            if end > cap {
                return Err(ModelError::ContextOverflow { needed: end, n_ctx: cap });
            }
            if let Some(&b) = s.blocks[..end.div_ceil(kv.block_size)].iter().find(|&&b| b as usize >= kv.n_blocks) {
                return Err(ModelError::BadRequest(format!("sequence {i}: block {b} outside the pool of {}", kv.n_blocks)));
            }
            for pos in s.pos0..end {
                if !written.insert(kv.row(s.blocks, pos)) {
                    return Err(ModelError::BadRequest(format!("sequence {i}: position {pos} shares a KV row written twice in this step")));
                }
            }
            tokens.extend_from_slice(s.tokens);
            if s.logits {
                out_rows.push(tokens.len() - 1);
            }
            spans.push(SeqSpan { pos0: s.pos0, n_tokens: s.tokens.len(), blocks: s.blocks });
        }
        if out_rows.is_empty() {
            // The architectures always produce at least one row; compute the last and drop it.
            let logits = self.arch.forward(&self.file, &tokens, &mut KvView::Paged { kv, seqs: &spans }, &[tokens.len() - 1])?;
            drop(logits);
            return Ok(Vec::new());
        }
        self.arch.forward(&self.file, &tokens, &mut KvView::Paged { kv, seqs: &spans }, &out_rows)
    }
}

/// One sequence's part of a [`Model::forward_batch`] step.
#[derive(Clone, Copy, Debug)]
pub struct BatchSeq<'a> {
    /// New tokens, at positions `pos0..pos0 + tokens.len()`.
    pub tokens: &'a [u32],
    pub pos0: usize,
    /// Block table: block `i` holds positions `i * block_size ..` of this sequence.
    pub blocks: &'a [u32],
    /// Return the logits of this sequence's last new row.
    pub logits: bool,
}
