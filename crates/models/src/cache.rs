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

/// Layers and per-position widths of a cache: what a model checks before using it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CacheDims {
    pub(crate) n_layer: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
}

/// The backend's storage (`Backend::Cache` or `Backend::Pool`), boxed.
pub(crate) struct Storage(pub(crate) Box<dyn Any + Send + Sync>);

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<backend storage>")
    }
}

/// KV cache for one sequence, created by `Model::new_cache`.
#[derive(Debug)]
pub struct KvCache {
    /// Capacity in positions.
    pub(crate) n_ctx: usize,
    /// Positions filled: the next step writes position `len`.
    pub(crate) len: usize,
    pub(crate) dims: CacheDims,
    /// Element type of the stored keys and values.
    pub(crate) ty: KvType,
    pub(crate) store: Storage,
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
#[derive(Debug)]
pub struct PagedKv {
    pub(crate) layout: PoolLayout,
    pub(crate) dims: CacheDims,
    pub(crate) store: Storage,
}

/// How a pool is cut into blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolLayout {
    pub(crate) block_size: usize,
    pub(crate) n_blocks: usize,
    /// Bytes of one block, all layers, keys and values.
    pub(crate) block_bytes: usize,
}

impl PagedKv {
    /// Number of blocks in the pool.
    pub fn n_blocks(&self) -> usize {
        self.layout.n_blocks
    }

    /// Bytes of one block (all layers, keys and values).
    pub fn block_bytes(&self) -> usize {
        self.layout.block_bytes
    }

    /// Physical row of position `pos` in a sequence with block table `blocks`.
    pub(crate) fn row(&self, blocks: &[u32], pos: usize) -> usize {
        let bs = self.layout.block_size;
        blocks[pos / bs] as usize * bs + pos % bs
    }
}
