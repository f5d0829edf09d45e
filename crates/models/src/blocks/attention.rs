//! Causal self-attention with grouped-query heads over the KV cache.
//!
//! The caller has already projected, normalised and rotated `q`/`k` and written this
//! batch's keys and values into the cache rows `pos0 .. pos0 + n_tokens`. Query head `h`
//! reads kv head `h / (n_head / n_head_kv)`. Token `t` (position `pos0 + t`) sees cache rows
//! `0 ..= pos0 + t`, further limited to the last `window` positions on sliding-window
//! layers (llama.cpp's standard SWA: key `j` is hidden when `pos - j >= window`).
//!
//! Numerics reproduce llama.cpp's non-flash-attention CPU path on x86 (AVX-512 build), where
//! the reference fixtures come from; the small models amplify last-bit differences here
//! into visible logit differences, so the operation order is part of the contract:
//! - scores `kq = k16 · q16`: with an f16 cache the queries are rounded to f16 (ggml converts
//!   the f32 operand of an f16 `mul_mat`); a batch (`n_tokens ≥ 2`) goes through llamafile's
//!   `tinyBLAS` (16 f32 lanes of FMAs over the head dim, then a tree reduction), a single
//!   token through `ggml_vec_dot_f16` (4 × 16 lanes over steps of 64, tree, f64 tail);
//! - softmax `ggml_soft_max_ext`: scale, mask, max, `exp` by ggml's AVX-512 polynomial
//!   (`ggml_v_expf`) in chunks of 16 positions summed per chunk into an f64 total, then
//!   multiplied by `(1 / sum) as f32`;
//! - output `kqv = v16 · p16`: probabilities rounded to f16, then the same two dot orders
//!   over the positions.
//!
//! An f32 cache skips the f16 roundings (a debugging aid, not a peer configuration).

use super::peer::{reduce16, v_expf};
use crate::kv_cache::LayerKv;

/// Shape and scaling of one attention layer.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Multiplies `q·k` before the softmax.
    pub kq_scale: f32,
    /// Sliding window length, `None` for global attention.
    pub window: Option<usize>,
}

/// Rounds each value through f16.
fn round_f16(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

/// Dot product in the order of one of ggml's x86 kernels. `terms` yields `(index, a, b)`
/// with increasing indices; absent indices are zero terms (which do not change the sums).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DotOrder {
    /// llamafile `tinyBLAS` (batch): lane `i % 16`, FMA, one tree reduction.
    Gemm,
    /// `ggml_vec_dot_f16` (one token): register `(i % 64) / 16`, lane `i % 16`, FMA;
    /// registers 0+2, 1+3, then 0+1, tree reduction to f64; indices past the last
    /// multiple of 64 (`tail_from`) added in f64.
    VecDot { tail_from: usize },
}

fn dot(order: DotOrder, terms: impl Iterator<Item = (usize, f32, f32)>) -> f32 {
    match order {
        DotOrder::Gemm => {
            let mut lanes = [0.0f32; 16];
            for (i, a, b) in terms {
                lanes[i % 16] = a.mul_add(b, lanes[i % 16]);
            }
            reduce16(&lanes)
        }
        DotOrder::VecDot { tail_from } => {
            let mut regs = [[0.0f32; 16]; 4];
            let mut tail = 0.0f64;
            for (i, a, b) in terms {
                if i >= tail_from {
                    tail += (a * b) as f64;
                } else {
                    let r = &mut regs[(i % 64) / 16][i % 16];
                    *r = a.mul_add(b, *r);
                }
            }
            let mut x0 = [0.0f32; 16];
            for l in 0..16 {
                let a = regs[0][l] + regs[2][l];
                let b = regs[1][l] + regs[3][l];
                x0[l] = a + b;
            }
            (reduce16(&x0) as f64 + tail) as f32
        }
    }
}

/// Softmax over the visible scores `s` (positions `lo..lo + s.len()`), in place.
fn softmax_ggml(s: &mut [f32], lo: usize) {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        s.fill(0.0);
        return;
    }
    let mut sum = 0.0f64;
    let mut chunk = [0.0f32; 16];
    let mut current = usize::MAX;
    for (k, v) in s.iter_mut().enumerate() {
        let pos = lo + k;
        if pos / 16 != current {
            if current != usize::MAX {
                sum += reduce16(&chunk) as f64;
            }
            chunk = [0.0; 16];
            current = pos / 16;
        }
        *v = v_expf(*v - max);
        chunk[pos % 16] = *v;
    }
    sum += reduce16(&chunk) as f64;
    let inv = (1.0 / sum) as f32;
    for v in s.iter_mut() {
        *v *= inv;
    }
}

/// Writes the attention output `[n_tokens, n_head * head_dim_v]` into `out`.
///
/// `q`: `[n_tokens, n_head * head_dim_k]`. `f16_math` mirrors an f16 cache: queries and
/// softmax weights are rounded to f16 before their dot products, as ggml does.
pub fn attention(
    s: &AttnShape,
    q: &[f32],
    layer: &LayerKv,
    pos0: usize,
    n_tokens: usize,
    f16_math: bool,
    out: &mut [f32],
) {
    let n_kv = pos0 + n_tokens;
    let kw = s.n_head_kv * s.head_dim_k;
    let vw = s.n_head_kv * s.head_dim_v;
    // f32 copies of the visible cache rows (already rounded to the cache type).
    let mut kf = vec![0.0f32; n_kv * kw]; // [n_kv, n_head_kv * head_dim_k]
    let mut vf = vec![0.0f32; n_kv * vw]; // [n_kv, n_head_kv * head_dim_v]
    layer.k.read(0, &mut kf);
    layer.v.read(0, &mut vf);

    let group = s.n_head / s.n_head_kv;
    let (dk, dv) = (s.head_dim_k, s.head_dim_v);
    let order = |len: usize| {
        if n_tokens >= 2 {
            DotOrder::Gemm
        } else {
            DotOrder::VecDot { tail_from: len - len % 64 }
        }
    };
    let kq_order = order(dk);
    // ggml pads the cache length it attends over to a multiple of 64 or more, so the
    // position dot never has a tail.
    let kqv_order = if n_tokens >= 2 { DotOrder::Gemm } else { DotOrder::VecDot { tail_from: usize::MAX } };
    let mut qh = vec![0.0f32; dk];
    let mut scores = vec![0.0f32; n_kv];
    for t in 0..n_tokens {
        let pos = pos0 + t;
        let lo = match s.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        };
        let visible = lo..pos + 1;
        for h in 0..s.n_head {
            let kvh = h / group;
            qh.copy_from_slice(&q[t * s.n_head * dk + h * dk..][..dk]);
            if f16_math {
                round_f16(&mut qh);
            }
            let sc = &mut scores[visible.clone()];
            for (j, sj) in visible.clone().zip(sc.iter_mut()) {
                let kr = &kf[j * kw + kvh * dk..][..dk];
                let d = dot(kq_order, qh.iter().zip(kr).enumerate().map(|(i, (&a, &b))| (i, b, a)));
                *sj = d * s.kq_scale;
            }
            softmax_ggml(sc, lo);
            if f16_math {
                round_f16(sc);
            }
            let o = &mut out[t * s.n_head * dv + h * dv..][..dv];
            for (d, od) in o.iter_mut().enumerate() {
                let col = kvh * dv + d;
                *od = dot(kqv_order, visible.clone().zip(sc.iter()).map(|(j, &p)| (j, vf[j * vw + col], p)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::{KvCache, KvType};

    #[test]
    fn single_visible_key_returns_its_value_and_window_hides_old_keys() {
        // 1 head, dim 2, 3 positions; window 1 means each token sees only itself.
        let mut c = KvCache::new(1, 3, 2, 2, KvType::F32);
        c.layers[0].k.write(0, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        c.layers[0].v.write(0, &[10.0, 0.0, 0.0, 20.0, 5.0, 5.0]);
        let s = AttnShape { n_head: 1, n_head_kv: 1, head_dim_k: 2, head_dim_v: 2, kq_scale: 1.0, window: Some(1) };
        let q = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let mut out = vec![0.0; 6];
        attention(&s, &q, &c.layers[0], 0, 3, false, &mut out);
        assert_eq!(out, vec![10.0, 0.0, 0.0, 20.0, 5.0, 5.0]);
        // Without a window, token 1 mixes positions 0 and 1 with weights softmax(1, 0).
        let s = AttnShape { window: None, ..s };
        attention(&s, &q, &c.layers[0], 0, 3, false, &mut out);
        let e = 1f32.exp();
        assert!((out[2] - 10.0 * e / (e + 1.0)).abs() < 1e-4);
        assert!((out[3] - 20.0 / (e + 1.0)).abs() < 1e-4);
    }

    #[test]
    fn dot_orders_agree_with_a_plain_sum_on_exact_values() {
        let terms: Vec<(usize, f32, f32)> = (0..200).map(|i| (i, (i % 7) as f32, (i % 5) as f32)).collect();
        let plain: f32 = terms.iter().map(|t| t.1 * t.2).sum();
        assert_eq!(dot(DotOrder::Gemm, terms.iter().copied()), plain);
        assert_eq!(dot(DotOrder::VecDot { tail_from: 192 }, terms.iter().copied()), plain);
    }
}
