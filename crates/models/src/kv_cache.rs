//! The key/value cache of one sequence: per layer, `n_ctx` rows of keys
//! (`[n_ctx, n_head_kv * head_dim_k]`) and values (`[n_ctx, n_head_kv * head_dim_v]`).
//!
//! Stored as F16 by default, as llama.cpp does (`type_k = type_v = f16`), so attention sees
//! the same rounded keys and values as the peer; F32 is available for debugging.
//! Positions are implicit: row `i` holds the token at position `i`, and `len()` is the next
//! position to fill. `truncate`/`clear` only move `len` (rows past it are overwritten later).

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
                for (d, s) in v[at..at + src.len()].iter_mut().zip(src) {
                    *d = half::f16::from_f32(*s);
                }
            }
            Store::F32(v) => v[at..at + src.len()].copy_from_slice(src),
        }
    }

    /// Reads elements `[from, from + dst.len())` as f32.
    pub(crate) fn read(&self, from: usize, dst: &mut [f32]) {
        match self {
            Store::F16(v) => {
                let n = dst.len();
                for (d, s) in dst.iter_mut().zip(&v[from..from + n]) {
                    *d = s.to_f32();
                }
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
