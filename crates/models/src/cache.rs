//! The model-level handles of the KV caches: sizes and fill state here, storage in the
//! backend (a `Backend::Cache` / `Backend::Pool` behind a type-erased box, so the engine
//! never names a backend).
//!
//! - [`KvCache`]: one sequence, per layer `n_ctx` positions of `k_width` key and `v_width`
//!   value elements (F16 by default, as llama.cpp; F32 for debugging). Positions are
//!   implicit: row `i` holds position `i`, and `len()` is the next position to fill.
//!   `truncate`/`clear` only move `len` (rows past it are overwritten later).
//! - [`PagedKv`]: a pool of fixed-size blocks shared by many sequences (the serving
//!   engine's cache); each sequence reaches its positions through a block table, so
//!   blocks can be handed out, shared by prompts with a common prefix and returned one at
//!   a time. Which sequence owns which block is the engine's business.

pub use jikji_backend::KvType;
use std::any::Any;

/// Positions per block of a [`PagedKv`] unless the caller picks another size.
pub const DEFAULT_KV_BLOCK: usize = 16;

/// KV cache for one sequence, created by `Model::new_cache`.
pub struct KvCache {
    pub(crate) n_ctx: usize,
    pub(crate) len: usize,
    pub(crate) n_layer: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) ty: KvType,
    /// The backend's storage (`Backend::Cache`).
    pub(crate) store: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("n_ctx", &self.n_ctx)
            .field("len", &self.len)
            .field("layers", &self.n_layer)
            .field("widths", &(self.k_width, self.v_width))
            .field("ty", &self.ty)
            .finish()
    }
}

impl KvCache {
    /// Number of positions filled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in positions.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn kv_type(&self) -> KvType {
        self.ty
    }

    /// Forgets every position at or after `n` (no-op if `n >= len`).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// A pool of KV blocks shared by many sequences, in f16, created by `Model::new_paged_kv`.
/// A block holds `block_size` consecutive positions of one sequence for every layer;
/// [`crate::Model::forward_batch`] reads and writes it through the block tables it is
/// given.
pub struct PagedKv {
    pub(crate) block_size: usize,
    pub(crate) n_blocks: usize,
    pub(crate) n_layer: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) block_bytes: usize,
    /// The backend's storage (`Backend::Pool`).
    pub(crate) store: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for PagedKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagedKv")
            .field("block_size", &self.block_size)
            .field("n_blocks", &self.n_blocks)
            .field("layers", &self.n_layer)
            .field("widths", &(self.k_width, self.v_width))
            .finish()
    }
}

impl PagedKv {
    /// Positions per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Number of blocks in the pool.
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// Bytes of one block (all layers, keys and values).
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Physical row of position `pos` in a sequence with block table `blocks`.
    pub(crate) fn row(&self, blocks: &[u32], pos: usize) -> usize {
        blocks[pos / self.block_size] as usize * self.block_size + pos % self.block_size
    }
}
