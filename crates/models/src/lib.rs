//! Transformer decoders over GGUF weights, computed through a backend.
//!
//! Layout:
//! - `hparams`: hyper-parameters from metadata; `weights::Loader`: every tensor validated
//!   (presence, type, shape, byte size) before a backend sees it;
//! - `blocks/`: the parts of a block (attention, MLA, gated FFN, MoE) with their loaders;
//! - `decoder`: the one [`decoder::Decoder`] — embedding, [`decoder::Block`]s
//!   (`[pre-norm] → mixer → [post-norm] → + → [pre-norm] → FFN → [post-norm] → +`), head —
//!   and its single forward loop with the named trace points;
//! - `arch/<name>.rs`: metadata → blocks, saying only what is special about the
//!   architecture; `registry.rs`: one line per architecture.
//!
//! The seam: everything numeric goes through [`jikji_backend::Backend`] (weights handed to
//! the backend at load, activations as backend buffers, attention/MLA/MoE as backend
//! operations, the KV caches owned by the backend). The models never call a kernel.
//! [`Model::load`] uses the CPU backend; [`Model::load_on`] takes any other. A GPU backend
//! implements `Backend` (its `Matrix`, `Vector`, `Act`, `Cache`, `Pool` types and the
//! operations) and is tested against `jikji_backend::CpuBackend`, operation by operation at
//! odd shapes and then through whole tiny models (`tests/` here), never against itself.
//!
//! Design choices:
//! - The decoder is generic over its backend (static dispatch inside a forward pass);
//!   `Model` erases the backend once, behind the object-safe [`Network`] (caches are boxed
//!   backend storage, downcast once per step, a mismatch being a typed error).
//! - Everything a forward pass relies on is validated in `Model::load`, so a forward pass
//!   only checks the request (empty input, token ids, cache capacity, block tables) and
//!   never panics on file content.
//! - A prompt runs as one batch; only the requested logits rows pass through the last
//!   layer's output projection, FFN and the vocabulary head.
//! - Two cache layouts: a contiguous per-sequence [`KvCache`] (`Model::forward`: the
//!   CPU backend's llama.cpp orders, the golden-test path) and a paged pool shared by many
//!   sequences ([`PagedKv`], `Model::forward_batch`: batch-invariant orders, so a
//!   sequence's output never depends on what it was batched with).
//! - The cache layout belongs to the architecture (`cache_widths`): plain attention stores
//!   `n_head_kv` key and value heads per token, MLA (`deepseek2`) one latent row
//!   (`kv_lora_rank + n_rot`) and no values.
//! - Encoders (embedding models: `bert`, `nomic-bert`) are their own type,
//!   [`encoder::EmbeddingModel`]: no cache, bidirectional attention, pooled output.
//! - `trace(name, layer, &x)` marks named intermediates; set `JIKJI_TRACE` to print them.
#![forbid(unsafe_code)]

pub mod arch;
pub mod blocks;
mod cache;
pub mod decoder;
pub mod encoder;
mod error;
pub mod hparams;
pub mod registry;
pub mod weights;

use jikji_backend::{Backend, CpuBackend, SeqSpan, Step};
pub use jikji_backend::RowView;
use std::any::Any;
use std::sync::Arc;

use cache::{CacheDims, PoolLayout, Storage};
pub use cache::{KvCache, KvType, PagedKv, DEFAULT_KV_BLOCK};
pub use encoder::{EmbeddingModel, EncoderParams, Pooling};
pub use error::ModelError;
pub use hparams::{HParams, RopeMode, YarnParams};
pub use jikji_backend::trace;
pub use jikji_backend::trace::trace;
pub use jikji_gguf::GgufFile;

/// A decoder with its backend erased: what [`Model`] holds.
pub trait Network: Send + Sync {
    fn hparams(&self) -> &HParams;
    fn tied_output(&self) -> bool;
    fn cache_widths(&self) -> (usize, usize);
    fn details(&self) -> Vec<(String, String)>;
    fn backend_name(&self) -> &'static str;
    /// A boxed `Backend::Cache`.
    fn new_cache(&self, n_ctx: usize, ty: KvType) -> Result<Box<dyn Any + Send + Sync>, ModelError>;
    /// A boxed `Backend::Pool` and its block size in bytes.
    fn new_pool(&self, n_blocks: usize, block_size: usize) -> Result<(Box<dyn Any + Send + Sync>, usize), ModelError>;
    /// One step over a contiguous cache (`pos0` = first position) or the paged pool.
    fn forward(&self, tokens: &[u32], kv: ErasedKv<'_>, out_rows: &[usize]) -> Result<Vec<f32>, ModelError>;
    /// Whether [`ErasedKv::Shared`] steps run (the backend implements them and no layer
    /// is multi-head latent attention).
    fn shared_steps(&self) -> bool;
}

/// The cache of a step, backend storage boxed.
pub enum ErasedKv<'a> {
    Contiguous { store: &'a mut (dyn Any + Send + Sync), pos0: usize },
    Paged { store: &'a mut (dyn Any + Send + Sync), seqs: &'a [SeqSpan<'a>] },
    /// Shared-prefix rows in a contiguous cache: positions and what each row sees.
    Shared { store: &'a mut (dyn Any + Send + Sync), positions: Vec<usize>, views: &'a [RowView] },
}

fn other_backend() -> ModelError {
    ModelError::CacheMismatch("the cache belongs to another backend".into())
}

impl<B: Backend> Network for decoder::Decoder<B> {
    fn hparams(&self) -> &HParams {
        &self.hp
    }

    fn tied_output(&self) -> bool {
        self.head.output.is_none()
    }

    fn cache_widths(&self) -> (usize, usize) {
        self.cache_widths
    }

    fn details(&self) -> Vec<(String, String)> {
        self.details.clone()
    }

    fn backend_name(&self) -> &'static str {
        self.be.name()
    }

    fn new_cache(&self, n_ctx: usize, ty: KvType) -> Result<Box<dyn Any + Send + Sync>, ModelError> {
        let (kw, vw) = self.cache_widths;
        Ok(Box::new(self.be.new_cache(self.hp.n_layer, n_ctx, kw, vw, ty)?))
    }

    fn new_pool(&self, n_blocks: usize, block_size: usize) -> Result<(Box<dyn Any + Send + Sync>, usize), ModelError> {
        let (kw, vw) = self.cache_widths;
        let pool = self.be.new_pool(self.hp.n_layer, n_blocks, block_size, kw, vw)?;
        let bytes = self.be.pool_block_bytes(&pool);
        Ok((Box::new(pool), bytes))
    }

    fn forward(&self, tokens: &[u32], kv: ErasedKv<'_>, out_rows: &[usize]) -> Result<Vec<f32>, ModelError> {
        let mut step = match kv {
            ErasedKv::Contiguous { store, pos0 } => {
                let cache = store.downcast_mut::<B::Cache>().ok_or_else(other_backend)?;
                Step::contiguous(cache, pos0, tokens.len())
            }
            ErasedKv::Paged { store, seqs } => Step::paged(store.downcast_mut::<B::Pool>().ok_or_else(other_backend)?, seqs),
            ErasedKv::Shared { store, positions, views } => Step::shared(store.downcast_mut::<B::Cache>().ok_or_else(other_backend)?, positions, views),
        };
        decoder::Decoder::forward(self, &mut step, tokens, out_rows)
    }

    fn shared_steps(&self) -> bool {
        self.be.shared_steps() && self.blocks.iter().all(|b| matches!(b.mixer, decoder::Mixer::Attention(_)))
    }
}

/// Summary of a loaded model, for engines and the CLI: the hyper-parameters (reached
/// through `Deref`: `info.n_vocab`, `info.arch`, `info.n_ctx_train`, …) and what the loaded
/// weights add to them.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub hparams: HParams,
    /// Per-head width of queries and keys (`hparams.head_dim_k`).
    pub head_dim: usize,
    /// Output projection shares the token embedding.
    pub tied_output: bool,
}

impl std::ops::Deref for ModelInfo {
    type Target = HParams;
    fn deref(&self) -> &HParams {
        &self.hparams
    }
}

/// A loaded model: the mapped file and its validated architecture.
pub struct Model {
    file: Arc<GgufFile>,
    net: Box<dyn Network>,
    info: ModelInfo,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info).finish()
    }
}

impl Model {
    /// Validates the file against its architecture and loads it on the CPU backend.
    pub fn load(file: Arc<GgufFile>) -> Result<Model, ModelError> {
        Self::load_on(file, CpuBackend)
    }

    /// Validates the file against its architecture and loads its weights onto `be`.
    pub fn load_on<B: Backend>(file: Arc<GgufFile>, be: B) -> Result<Model, ModelError> {
        let net: Box<dyn Network> = Box::new(registry::load(&file, &be)?);
        let hp = net.hparams();
        let info = ModelInfo { hparams: hp.clone(), head_dim: hp.head_dim_k, tied_output: net.tied_output() };
        Ok(Model { file, net, info })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn hparams(&self) -> &HParams {
        self.net.hparams()
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// An empty F16 cache for `n_ctx` positions (llama.cpp's default cache type).
    pub fn new_cache(&self, n_ctx: usize) -> Result<KvCache, ModelError> {
        self.new_cache_with(n_ctx, KvType::F16)
    }

    /// An empty cache of the given element type; a size that overflows or cannot be
    /// allocated is [`ModelError::CacheTooLarge`].
    pub fn new_cache_with(&self, n_ctx: usize, ty: KvType) -> Result<KvCache, ModelError> {
        let store = Storage(self.net.new_cache(n_ctx, ty)?);
        Ok(KvCache { n_ctx, len: 0, dims: self.dims(), ty, store })
    }

    /// The layers and widths a cache of this model has.
    fn dims(&self) -> CacheDims {
        let (k_width, v_width) = self.net.cache_widths();
        CacheDims { n_layer: self.net.hparams().n_layer, k_width, v_width }
    }

    /// A cache made for another model (or another backend) is refused, never read.
    fn check_dims(&self, what: &str, have: CacheDims) -> Result<(), ModelError> {
        let want = self.dims();
        if have != want {
            return Err(ModelError::CacheMismatch(format!(
                "{what} has {} layers of widths {}/{}, model needs {} of {}/{}",
                have.n_layer, have.k_width, have.v_width, want.n_layer, want.k_width, want.v_width
            )));
        }
        Ok(())
    }

    /// The backend the model computes on (`cpu`, …).
    pub fn backend(&self) -> &'static str {
        self.net.backend_name()
    }

    /// Values per token per layer stored for keys and values (see
    /// `Architecture::cache_widths`); the cache costs `(k + v) · n_layer · element size`
    /// bytes per token.
    pub fn cache_widths(&self) -> (usize, usize) {
        self.net.cache_widths()
    }

    /// Architecture-specific hyper-parameters, for display.
    pub fn details(&self) -> Vec<(String, String)> {
        self.net.details()
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
        let hp = self.net.hparams();
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(ModelError::TokenOutOfRange { token, n_vocab: hp.n_vocab });
        }
        self.check_dims("cache", cache.dims)?;
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
        let logits = self.net.forward(tokens, ErasedKv::Contiguous { store: &mut *cache.store.0, pos0: cache.len }, out_rows)?;
        cache.len = needed;
        Ok(logits)
    }

    /// Whether [`Model::forward_shared`] runs on this model and backend (the CPU backend,
    /// plain attention).
    pub fn shared_steps(&self) -> bool {
        self.net.shared_steps()
    }

    /// One step of rows that share prefixes inside one contiguous cache, the way llama.cpp
    /// evaluates several answers to one question in one batch: row `i` (token `tokens[i]`
    /// at position `positions[i]`) writes cell `views[i].cell` and attends over the cells
    /// `views[i]` names ([`RowView`]). Returns the logits of the rows in `out_rows`
    /// (ascending), `[out_rows.len(), n_vocab]`, with the CPU backend's llama.cpp orders:
    /// a row's logits are the bits llama.cpp computes for it when its cells sit at the
    /// same offsets modulo 16.
    ///
    /// Checked: cells strictly ascending and inside the cache; every cell a row sees was
    /// written before this step (below `cache.len()`) or by an earlier row of it; the
    /// shared keys come before the row's own run in position. Afterwards `cache.len()` is
    /// one past the highest cell written.
    pub fn forward_shared(&self, tokens: &[u32], positions: &[usize], views: &[RowView], cache: &mut KvCache, out_rows: &[usize]) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        if !self.shared_steps() {
            return Err(ModelError::BadRequest(format!("shared-prefix steps do not run on the {} backend with this architecture", self.backend())));
        }
        let hp = self.net.hparams();
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(ModelError::TokenOutOfRange { token, n_vocab: hp.n_vocab });
        }
        self.check_dims("cache", cache.dims)?;
        if positions.len() != tokens.len() || views.len() != tokens.len() {
            return Err(ModelError::BadRequest(format!("{} tokens with {} positions and {} views", tokens.len(), positions.len(), views.len())));
        }
        if views.windows(2).any(|w| w[0].cell >= w[1].cell) {
            return Err(ModelError::BadRequest("shared step: cells must be strictly ascending".into()));
        }
        let top = views[views.len() - 1].cell + 1;
        if top > cache.n_ctx() {
            return Err(ModelError::ContextOverflow { needed: top, n_ctx: cache.n_ctx() });
        }
        // written[c] for cells at or above the cache's length: how many of base..c this
        // step writes (a prefix count, so a range check is one subtraction).
        let base = cache.len().min(top);
        let mut count = vec![0u32; top - base + 1];
        for v in views.iter().filter(|v| v.cell >= base) {
            count[v.cell - base + 1] = 1;
        }
        for i in 1..count.len() {
            count[i] += count[i - 1];
        }
        let all_written = |a: usize, b: usize| a >= b || b <= base || {
            let a = a.max(base);
            (count[b - base] - count[a - base]) as usize == b - a
        };
        for (i, (v, &pos)) in views.iter().zip(positions).enumerate() {
            let bad = |why: &str| ModelError::BadRequest(format!("shared step, row {i} (cell {}, position {pos}): {why}", v.cell));
            if v.shared.start > v.shared.end || v.shared.end > v.own || v.own > v.cell {
                return Err(bad("views must satisfy shared.start <= shared.end <= own <= cell"));
            }
            let own_first = pos.checked_sub(v.cell - v.own).ok_or_else(|| bad("its own run starts before position 0"))?;
            if !v.shared.is_empty() && v.shared_pos0 + v.shared.len() > own_first {
                return Err(bad("the shared keys do not come before its own run"));
            }
            // The cells it sees lie below its own, so written by this step means written by
            // an earlier row (cells ascend).
            if !all_written(v.shared.start, v.shared.end) || !all_written(v.own, v.cell) {
                return Err(bad("it sees a cell nothing has written"));
            }
        }
        if out_rows.is_empty() || out_rows.windows(2).any(|w| w[0] >= w[1]) || out_rows.iter().any(|&r| r >= tokens.len()) {
            return Err(ModelError::BadRequest(format!("output rows {out_rows:?} must be non-empty, ascending and below {}", tokens.len())));
        }
        let logits = self.net.forward(tokens, ErasedKv::Shared { store: &mut *cache.store.0, positions: positions.to_vec(), views }, out_rows)?;
        cache.len = cache.len.max(top);
        Ok(logits)
    }

    /// An empty paged KV pool of `n_blocks` blocks of `block_size` positions (F16).
    pub fn new_paged_kv(&self, n_blocks: usize, block_size: usize) -> Result<PagedKv, ModelError> {
        let (kw, vw) = self.net.cache_widths();
        if block_size == 0 || n_blocks == 0 || n_blocks > u32::MAX as usize {
            return Err(ModelError::BadRequest(format!("paged KV of {n_blocks} blocks of {block_size} positions")));
        }
        let fits = n_blocks.checked_mul(block_size).and_then(|r| r.checked_mul(kw.max(vw)));
        if fits.is_none() {
            return Err(ModelError::BadRequest("paged KV size overflows".into()));
        }
        let (store, block_bytes) = self.net.new_pool(n_blocks, block_size)?;
        Ok(PagedKv { layout: PoolLayout { block_size, n_blocks, block_bytes }, dims: self.dims(), store: Storage(store) })
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
        let hp = self.net.hparams();
        if seqs.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        self.check_dims("paged pool", kv.dims)?;
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
            let cap = s.blocks.len() * kv.layout.block_size;
            if end > cap {
                return Err(ModelError::ContextOverflow { needed: end, n_ctx: cap });
            }
            if let Some(&b) = s.blocks[..end.div_ceil(kv.layout.block_size)].iter().find(|&&b| b as usize >= kv.layout.n_blocks) {
                return Err(ModelError::BadRequest(format!("sequence {i}: block {b} outside the pool of {}", kv.layout.n_blocks)));
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
            let logits = self.net.forward(&tokens, ErasedKv::Paged { store: &mut *kv.store.0, seqs: &spans }, &[tokens.len() - 1])?;
            drop(logits);
            return Ok(Vec::new());
        }
        self.net.forward(&tokens, ErasedKv::Paged { store: &mut *kv.store.0, seqs: &spans }, &out_rows)
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
