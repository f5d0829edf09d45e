//! The CPU backend's key/value storage.
//!
//! - [`CpuCache`]: one sequence, per layer `n_ctx` rows of keys (`[n_ctx, k_width]`) and
//!   values (`[n_ctx, v_width]`). F16 by default, as llama.cpp stores it (`type_k = type_v
//!   = f16`), so attention sees the same rounded keys and values as the peer; F32 is a
//!   debugging aid. Row `i` holds position `i`; how many rows are filled is the model's
//!   bookkeeping (a step says where it starts).
//! - [`CpuPool`]: fixed-size blocks shared by many sequences (the serving engine's cache),
//!   each sequence reaching its positions through a block table. Always f16 (half the
//!   bytes of f32, so twice the contexts fit a serving memory budget); attention widens
//!   what it reads to f32 (exact). Keys are row-major per position; values are transposed
//!   per block so that the weighted sum over positions reads each value dimension
//!   contiguously. MLA stores its latent rows in the key store and has no values.
//!
//! Sizes are checked before anything is allocated, and allocation is fallible: a cache
//! that cannot be had is [`BackendError::Alloc`], never the allocator's abort.

use crate::{BackendError, KvType};

/// A zeroed vector of `n` elements, or an error when the memory cannot be had.
fn zeroed<T: Clone>(n: usize, zero: T) -> Result<Vec<T>, ()> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| ())?;
    v.resize(n, zero);
    Ok(v)
}

/// Total bytes of `n_layer` layers of `rows` positions of `k_width + v_width` elements of
/// `elem` bytes, if addressable.
fn checked_bytes(n_layer: usize, rows: usize, k_width: usize, v_width: usize, elem: usize) -> Option<(usize, usize, usize)> {
    let k = rows.checked_mul(k_width)?;
    let v = rows.checked_mul(v_width)?;
    let total = k.checked_add(v)?.checked_mul(n_layer)?.checked_mul(elem)?;
    (total <= isize::MAX as usize).then_some((k, v, total))
}

fn alloc_error(what: &str, bytes: usize) -> BackendError {
    BackendError::Alloc(format!("{what} needs {:.1} GiB, which cannot be allocated", bytes as f64 / (1u64 << 30) as f64))
}

#[derive(Clone, Debug)]
pub(crate) enum Store {
    F16(Vec<half::f16>),
    F32(Vec<f32>),
}

impl Store {
    fn new(ty: KvType, n: usize) -> Result<Self, ()> {
        Ok(match ty {
            KvType::F16 => Store::F16(zeroed(n, half::f16::ZERO)?),
            KvType::F32 => Store::F32(zeroed(n, 0.0)?),
        })
    }

    /// Writes `src` at element offset `at` (rounding to the storage type).
    pub(crate) fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Store::F16(v) => write_f16_bits(v, at, src),
            Store::F32(v) => v[at..at + src.len()].copy_from_slice(src),
        }
    }

    /// Reads elements `[from, from + dst.len())` as f32.
    pub(crate) fn read(&self, from: usize, dst: &mut [f32]) {
        match self {
            Store::F16(v) => read_f16_bits(v, from, dst),
            Store::F32(v) => dst.copy_from_slice(&v[from..from + dst.len()]),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct LayerKv {
    pub(crate) k: Store, // [n_ctx, k_width]
    pub(crate) v: Store, // [n_ctx, v_width]
}

/// The KV cache of one sequence.
#[derive(Clone, Debug)]
pub struct CpuCache {
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) ty: KvType,
    pub(crate) layers: Vec<LayerKv>,
}

impl CpuCache {
    pub(crate) fn new(n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize, ty: KvType) -> Result<Self, BackendError> {
        let (k, v, total) = checked_bytes(n_layer, n_ctx, k_width, v_width, ty.bytes()).ok_or_else(|| {
            BackendError::Alloc(format!("a KV cache of {n_ctx} positions × {n_layer} layers × {} values overflows", k_width + v_width))
        })?;
        let what = format!("a KV cache of {n_ctx} positions");
        let mut layers = Vec::with_capacity(n_layer);
        for _ in 0..n_layer {
            let k = Store::new(ty, k).map_err(|_| alloc_error(&what, total))?;
            let v = Store::new(ty, v).map_err(|_| alloc_error(&what, total))?;
            layers.push(LayerKv { k, v });
        }
        Ok(CpuCache { k_width, v_width, ty, layers })
    }
}

/// One layer of a [`CpuPool`].
#[derive(Clone, Debug)]
pub(crate) struct PagedLayer {
    pub(crate) k: Vec<half::f16>, // [n_blocks * block_size, k_width]: row = block * block_size + offset
    pub(crate) v: Vec<half::f16>, // [n_blocks, v_width, block_size]
}

/// A pool of KV blocks shared by many sequences, in f16. A block holds `block_size`
/// consecutive positions of one sequence for every layer; which sequence owns which block
/// is the serving engine's business.
#[derive(Clone, Debug)]
pub struct CpuPool {
    pub(crate) block_size: usize,
    pub(crate) n_blocks: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) layers: Vec<PagedLayer>,
}

impl CpuPool {
    pub(crate) fn new(n_layer: usize, n_blocks: usize, block_size: usize, k_width: usize, v_width: usize) -> Result<Self, BackendError> {
        let overflow = || BackendError::Alloc(format!("a paged KV pool of {n_blocks} blocks of {block_size} positions overflows"));
        let rows = n_blocks.checked_mul(block_size).ok_or_else(overflow)?;
        let (k, v, total) = checked_bytes(n_layer, rows, k_width, v_width, 2).ok_or_else(overflow)?;
        let what = format!("a paged KV pool of {n_blocks} blocks");
        let zero = half::f16::ZERO;
        let mut layers = Vec::with_capacity(n_layer);
        for _ in 0..n_layer {
            let k = zeroed(k, zero).map_err(|_| alloc_error(&what, total))?;
            let v = zeroed(v, zero).map_err(|_| alloc_error(&what, total))?;
            layers.push(PagedLayer { k, v });
        }
        Ok(CpuPool { block_size, n_blocks, k_width, v_width, layers })
    }

    /// Number of blocks.
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

/// Writes `src` at element offset `at` of an f16 store, rounded to f16.
pub(crate) fn write_f16_bits(dst: &mut [half::f16], at: usize, src: &[f32]) {
    jikji_kernels::ops::f32_to_f16_row(src, &mut dst[at..at + src.len()]).expect("equal lengths");
}

/// Reads `dst.len()` values at element offset `from` of an f16 store as f32.
pub(crate) fn read_f16_bits(src: &[half::f16], from: usize, dst: &mut [f32]) {
    jikji_kernels::ops::f16_to_f32_row(&src[from..from + dst.len()], dst).expect("equal lengths");
}
