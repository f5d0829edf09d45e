//! Key/value caches.
//!
//! - [`KvCache`]: one sequence, per layer `n_ctx` rows of keys
//!   (`[n_ctx, n_head_kv * head_dim_k]`) and values (`[n_ctx, n_head_kv * head_dim_v]`).
//!   Stored as F16 by default, as llama.cpp does (`type_k = type_v = f16`), so attention
//!   sees the same rounded keys and values as the peer; F32 is available for debugging.
//!   Positions are implicit: row `i` holds the token at position `i`, and `len()` is the
//!   next position to fill. `truncate`/`clear` only move `len` (rows past it are
//!   overwritten later).
//! - [`PagedKv`]: a pool of fixed-size blocks shared by many sequences (the serving
//!   engine's cache); each sequence reaches its positions through a block table, so
//!   blocks can be handed out, shared by prompts with a common prefix and returned one at
//!   a time. Stored as f16 like the default [`KvCache`] (half the bytes of f32, so twice
//!   the contexts fit a serving memory budget); attention widens what it reads to f32.
//! - [`KvView`]: what an architecture's forward pass writes and attends over (one of the
//!   two, with the matching numerics).

/// Element type of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvType {
    F16,
    F32,
}

#[derive(Clone, Debug)]
pub(crate) enum Store {
    F16(Vec<half::f16>),
    F32(Vec<f32>),
}

impl Store {
    fn new(ty: KvType, n: usize) -> Self {
        match ty {
            KvType::F16 => Store::F16(vec![half::f16::ZERO; n]),
            KvType::F32 => Store::F32(vec![0.0; n]),
        }
    }

    /// Writes `src` at element offset `at` (rounding to the storage type).
    pub(crate) fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Store::F16(v) => {
                jikji_kernels::ops::f32_to_f16_row(src, &mut v[at..at + src.len()]).expect("equal lengths");
            }
            Store::F32(v) => v[at..at + src.len()].copy_from_slice(src),
        }
    }

    /// Reads elements `[from, from + dst.len())` as f32.
    pub(crate) fn read(&self, from: usize, dst: &mut [f32]) {
        match self {
            Store::F16(v) => {
                let n = dst.len();
                jikji_kernels::ops::f16_to_f32_row(&v[from..from + n], dst).expect("equal lengths");
            }
            Store::F32(v) => dst.copy_from_slice(&v[from..from + dst.len()]),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct LayerKv {
    pub(crate) k: Store, // [n_ctx, n_embd_k_gqa]
    pub(crate) v: Store, // [n_ctx, n_embd_v_gqa]
}

/// KV cache for one sequence, created by `Model::new_cache`.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub(crate) n_ctx: usize,
    pub(crate) len: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) ty: KvType,
    pub(crate) layers: Vec<LayerKv>,
}

impl KvCache {
    pub(crate) fn new(n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize, ty: KvType) -> Self {
        let layers = (0..n_layer)
            .map(|_| LayerKv { k: Store::new(ty, n_ctx * k_width), v: Store::new(ty, n_ctx * v_width) })
            .collect();
        KvCache { n_ctx, len: 0, k_width, v_width, ty, layers }
    }

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

// ------------------------------------------------------------------ paged KV

/// Positions per block of a [`PagedKv`] unless the caller picks another size.
pub const DEFAULT_KV_BLOCK: usize = 16;

/// One layer of a [`PagedKv`], stored as f16 (llama.cpp's default cache type; half the
/// memory of f32, so twice the contexts fit a memory budget): keys row-major per
/// position, values transposed per block so that the weighted sum over positions reads
/// each value dimension contiguously. Attention converts what it reads to f32 (exact).
/// Allocated zeroed (pages are touched only when a block is first written).
#[derive(Clone, Debug)]
pub(crate) struct PagedLayer {
    pub(crate) k: Vec<half::f16>, // [n_blocks * block_size, k_width]: row = block * block_size + offset
    pub(crate) v: Vec<half::f16>, // [n_blocks, v_width, block_size]
}

/// A pool of KV blocks shared by many sequences, in f16 (llama.cpp's default cache type).
///
/// A block holds `block_size` consecutive positions of one sequence for every layer. The
/// pool only stores; which sequence owns which block (its *block table*: block `i` of the
/// table holds positions `i * block_size ..`), reference counts and prefix sharing are the
/// serving engine's business. [`crate::Model::forward_batch`] reads and writes it through
/// the block tables it is given.
#[derive(Clone, Debug)]
pub struct PagedKv {
    pub(crate) block_size: usize,
    pub(crate) n_blocks: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) layers: Vec<PagedLayer>,
}

impl PagedKv {
    pub(crate) fn new(n_layer: usize, n_blocks: usize, block_size: usize, k_width: usize, v_width: usize) -> Self {
        let rows = n_blocks * block_size;
        let zero = half::f16::ZERO;
        let layers = (0..n_layer).map(|_| PagedLayer { k: vec![zero; rows * k_width], v: vec![zero; rows * v_width] }).collect();
        PagedKv { block_size, n_blocks, k_width, v_width, layers }
    }

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
        self.layers.len() * self.block_size * (self.k_width + self.v_width) * std::mem::size_of::<half::f16>()
    }

    /// Physical row of position `pos` in a sequence with block table `blocks`.
    pub(crate) fn row(&self, blocks: &[u32], pos: usize) -> usize {
        blocks[pos / self.block_size] as usize * self.block_size + pos % self.block_size
    }
}

impl PagedKv {
    /// Stores position `pos` (through `blocks`) of layer `il`: key row `k` and value row
    /// `v`, each rounded through f16.
    pub(crate) fn store(&mut self, il: usize, blocks: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let (bs, kw, vw) = (self.block_size, self.k_width, self.v_width);
        let (blk, off) = (blocks[pos / bs] as usize, pos % bs);
        let layer = &mut self.layers[il];
        let r = blk * bs + off;
        write_f16_bits(&mut layer.k, r * kw, &k[..kw.min(k.len())]);
        let vb = &mut layer.v[blk * vw * bs..(blk + 1) * vw * bs];
        for (c, &x) in v.iter().enumerate().take(vw) {
            vb[c * bs + off] = half::f16::from_f32(x);
        }
    }
}

/// Writes `src` at element offset `at` of a paged layer's key store, rounded to f16 (the
/// pool's element type). For architectures that store their own rows (MLA latents).
pub(crate) fn write_f16_bits(dst: &mut [half::f16], at: usize, src: &[f32]) {
    jikji_kernels::ops::f32_to_f16_row(src, &mut dst[at..at + src.len()]).expect("equal lengths");
}

/// Reads `dst.len()` values at element offset `from` of a paged layer's key store as f32.
pub(crate) fn read_f16_bits(src: &[half::f16], from: usize, dst: &mut [f32]) {
    jikji_kernels::ops::f16_to_f32_row(&src[from..from + dst.len()], dst).expect("equal lengths");
}

/// One sequence of a batched step: `n_tokens` new tokens at positions `pos0..`, stored
/// through the block table `blocks` (which covers at least `pos0 + n_tokens` positions).
#[derive(Clone, Copy, Debug)]
pub struct SeqSpan<'a> {
    pub pos0: usize,
    pub n_tokens: usize,
    pub blocks: &'a [u32],
}

/// The cache a forward pass writes and attends over.
///
/// - `Contiguous`: one sequence in a [`KvCache`], positions `cache.len()..`; numerics in
///   llama.cpp's order, which picks float orders by batch size (the golden-test path).
/// - `Paged`: several sequences, rows concatenated in `seqs` order, each through its block
///   table in a [`PagedKv`]; **batch-invariant** numerics: every row gets the same float
///   order whatever else is in the step, so a sequence's logits do not depend on batching
///   or prefill chunking.
pub enum KvView<'a> {
    Contiguous(&'a mut KvCache),
    Paged { kv: &'a mut PagedKv, seqs: &'a [SeqSpan<'a>] },
}

impl KvView<'_> {
    /// Position of every one of the `n_tokens` batch rows, in row order.
    pub fn positions(&self, n_tokens: usize) -> Vec<usize> {
        match self {
            KvView::Contiguous(c) => (c.len..c.len + n_tokens).collect(),
            KvView::Paged { seqs, .. } => seqs.iter().flat_map(|s| s.pos0..s.pos0 + s.n_tokens).collect(),
        }
    }

    /// Whether linear layers and attention must use batch-invariant orders.
    pub fn batch_invariant(&self) -> bool {
        matches!(self, KvView::Paged { .. })
    }
}
