//! Causal self-attention with grouped-query heads over the KV cache.
//!
//! The caller has already projected, normalised and rotated `q`/`k` and written this
//! batch's keys and values into the cache rows `pos0 .. pos0 + n_tokens`. Query head `h`
//! reads kv head `h / (n_head / n_head_kv)`. Token `t` (position `pos0 + t`) sees cache rows
//! `0 ..= pos0 + t`, further limited to the last `window` positions on sliding-window
//! layers (llama.cpp's standard SWA: key `j` is hidden when `pos - j >= window`).

use crate::kv_cache::LayerKv;
use jikji_kernels::ops::softmax_inplace;

/// Rounds each value through f16 (what ggml does to an f32 operand of an f16 matmul).
fn round_f16(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

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
    let mut qh = vec![0.0f32; dk];
    let mut scores = vec![0.0f32; n_kv];
    let mut acc = vec![0.0f32; dv];
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
                let dot: f32 = qh.iter().zip(kr).map(|(a, b)| a * b).sum();
                *sj = dot * s.kq_scale;
            }
            softmax_inplace(sc);
            if f16_math {
                round_f16(sc);
            }
            acc.iter_mut().for_each(|a| *a = 0.0);
            for (j, &p) in visible.clone().zip(sc.iter()) {
                let vr = &vf[j * vw + kvh * dv..][..dv];
                for (a, &v) in acc.iter_mut().zip(vr) {
                    *a += p * v;
                }
            }
            out[t * s.n_head * dv + h * dv..][..dv].copy_from_slice(&acc);
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
}
