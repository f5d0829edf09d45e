//! The CPU backend's encoder operations: layer norm with bias, GELU, and bidirectional
//! attention within each sequence of a batch (BERT-style encoders, no KV cache).
//!
//! - Layer norm follows ggml's `norm` order: the mean and the variance are summed in f64,
//!   the scale `1 / sqrt(var + eps)` is an f32, then `· w + b` in f32.
//! - GELU is the exact erf form (`0.5 x (1 + erf(x / √2))`, as transformers' `gelu`), with
//!   erf evaluated in f64 (Numerical Recipes' `erfc` Chebyshev fit, relative error below
//!   1.2e-7), rounded once to f32.
//! - Attention: every row of a sequence sees every row of the same sequence (no mask, no
//!   cache); grouped-query heads as in the decoder (`h / (n_head / n_head_kv)`); softmax in
//!   f32 with the max subtracted and ggml's `exp` polynomial. One pool task per (sequence,
//!   head) computes that head's scores and output as two register-tiled products, so a
//!   result does not depend on the split nor on the other sequences of the batch.

use crate::{AttnShape, BackendError};
use jikji_kernels::lanes::{dot16_tile, v_expf_slice};
use jikji_kernels::pool::{for_rows_mut, parallel_for};
use std::sync::Mutex;

/// Layer norm of every `w.len()`-wide row of `x` in place: `(x - mean) / sqrt(var + eps) · w + b`.
pub(super) fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) -> Result<(), BackendError> {
    let n = w.len();
    if n == 0 || b.len() != n || !x.len().is_multiple_of(n) {
        return Err(BackendError::Shape(format!("layer_norm: {} values, weight {}, bias {}", x.len(), n, b.len())));
    }
    for_rows_mut(x, n, 4, &|_, rows| {
        for row in rows.chunks_exact_mut(n) {
            layer_norm_row(row, w, b, eps);
        }
    });
    Ok(())
}

fn layer_norm_row(row: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = row.len();
    let mean = (row.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
    let mut var = 0.0f64;
    for v in row.iter_mut() {
        *v -= mean;
        var += (*v as f64) * (*v as f64);
    }
    let scale = 1.0 / ((var / n as f64) as f32 + eps).sqrt();
    for ((v, &wi), &bi) in row.iter_mut().zip(w).zip(b) {
        *v = *v * scale * wi + bi;
    }
}

/// erf(x) in f64 from the complementary error function's Chebyshev fit (|ε| < 1.2e-7).
pub(crate) fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// Exact (erf) GELU of one value.
pub(crate) fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// GELU in place over all of `x`.
pub(super) fn gelu_inplace(x: &mut [f32]) {
    for_rows_mut(x, 1, 4096, &|_, vals| vals.iter_mut().for_each(|v| *v = gelu(*v)));
}

/// Bidirectional attention: `q` `[n, n_head · dk]`, `k` `[n, n_head_kv · dk]`, `v`
/// `[n, n_head_kv · dv]`, the rows being the sequences of `seq_lens` one after another.
/// Returns `[n, n_head · dv]`.
///
/// One task per (sequence, head), split over the pool: the scores `Q·Kᵀ` of the whole
/// sequence as one register-tiled product over the head dimension
/// (`jikji_kernels::lanes::dot16_tile`), the softmax rows (max subtracted, ggml's `exp`
/// polynomial, `1 / sum` as an f32), then `P·V` as a second tiled product against the
/// head's values transposed, both zero-padded to a multiple of 16 positions (zero terms
/// leave every sum unchanged). A task's result depends only on its own sequence and head.
pub(super) fn attention(s: &AttnShape, q: &[f32], k: &[f32], v: &[f32], seq_lens: &[usize]) -> Result<Vec<f32>, BackendError> {
    let n: usize = seq_lens.iter().sum();
    let (dk, dv) = (s.head_dim_k, s.head_dim_v);
    let (qw, kw, vw) = (s.n_head * dk, s.n_head_kv * dk, s.n_head_kv * dv);
    if s.n_head_kv == 0 || !s.n_head.is_multiple_of(s.n_head_kv) || q.len() != n * qw || k.len() != n * kw || v.len() != n * vw || n == 0 || seq_lens.contains(&0) {
        return Err(BackendError::Shape(format!(
            "bidirectional attention: q/k/v of {}/{}/{} values for sequences of {seq_lens:?}",
            q.len(),
            k.len(),
            v.len()
        )));
    }
    let group = s.n_head / s.n_head_kv;
    let ow = s.n_head * dv;
    // (first row, length) of every sequence.
    let mut seqs = Vec::with_capacity(seq_lens.len());
    let mut start = 0;
    for &len in seq_lens {
        seqs.push((start, len));
        start += len;
    }
    // One [len, dv] block per task, placed into the rows afterwards.
    let blocks: Vec<Mutex<Vec<f32>>> = (0..seqs.len() * s.n_head).map(|_| Mutex::new(Vec::new())).collect();
    parallel_for(seqs.len() * s.n_head, &|task| {
        let ((t0, len), h) = (seqs[task / s.n_head], task % s.n_head);
        let hk = h / group;
        let lp = len.next_multiple_of(16);
        // scores [len, lp]: row i = query t0 + i against every key of the sequence.
        let mut p = vec![0.0f32; len * lp];
        dot16_tile(&q[t0 * qw + h * dk..], qw, len, &k[t0 * kw + hk * dk..], kw, len, dk, 0, &mut p, lp);
        for row in p.chunks_exact_mut(lp) {
            let live = &mut row[..len];
            let mut max = f32::NEG_INFINITY;
            for sc in live.iter_mut() {
                *sc *= s.kq_scale;
                max = max.max(*sc);
            }
            live.iter_mut().for_each(|sc| *sc -= max);
            v_expf_slice(live);
            let inv = 1.0 / live.iter().map(|&e| e as f64).sum::<f64>() as f32;
            live.iter_mut().for_each(|e| *e *= inv);
        }
        // The head's values transposed, [dv, lp]: row d = value column d over positions.
        let mut vt = vec![0.0f32; dv * lp];
        for j in 0..len {
            let vh = &v[(t0 + j) * vw + hk * dv..][..dv];
            for (d, &x) in vh.iter().enumerate() {
                vt[d * lp + j] = x;
            }
        }
        let mut o = vec![0.0f32; len * dv]; // [len, dv]
        dot16_tile(&p, lp, len, &vt, lp, dv, lp, 0, &mut o, dv);
        *blocks[task].lock().unwrap_or_else(|e| e.into_inner()) = o;
    });
    let mut out = vec![0.0f32; n * ow]; // [n, n_head * dv]
    for (task, block) in blocks.into_iter().enumerate() {
        let ((t0, _), h) = (seqs[task / s.n_head], task % s.n_head);
        let block = block.into_inner().unwrap_or_else(|e| e.into_inner());
        for (i, orow) in block.chunks_exact(dv).enumerate() {
            out[(t0 + i) * ow + h * dv..][..dv].copy_from_slice(orow);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) as f32
            })
            .collect()
    }

    #[test]
    fn layer_norm_matches_a_float64_reference_at_odd_widths() {
        for &(rows, n) in &[(1, 1), (3, 7), (5, 384), (2, 769)] {
            let x0 = rand(rows * n, n as u64);
            let w = rand(n, 1);
            let b = rand(n, 2);
            let mut x = x0.clone();
            layer_norm(&mut x, &w, &b, 1e-12).unwrap();
            for r in 0..rows {
                let row = &x0[r * n..(r + 1) * n];
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
                for c in 0..n {
                    let want = (row[c] as f64 - mean) / (var + 1e-12).sqrt() * w[c] as f64 + b[c] as f64;
                    let got = x[r * n + c] as f64;
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "row {r} col {c}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn layer_norm_refuses_a_bias_of_the_wrong_width() {
        let mut x = vec![1.0; 8];
        assert!(layer_norm(&mut x, &[1.0; 4], &[0.0; 3], 1e-5).is_err());
        assert!(layer_norm(&mut x, &[1.0; 3], &[0.0; 3], 1e-5).is_err());
    }

    #[test]
    fn erf_gelu_matches_known_values() {
        // erf(0.5), erf(1), erf(2) to 1e-9 from tables.
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7);
        assert!((erf(1.0) - 0.842_700_792_9).abs() < 2e-7);
        assert!((erf(-2.0) + 0.995_322_265_0).abs() < 2e-7);
        assert_eq!(gelu(0.0), 0.0);
        assert!((gelu(1.0) - 0.841_344_75).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_25).abs() < 1e-6);
        let mut x = vec![1.0f32, -1.0, 3.0];
        gelu_inplace(&mut x);
        assert_eq!(x, vec![gelu(1.0), gelu(-1.0), gelu(3.0)]);
    }

    /// Float64 scalar attention of one sequence.
    fn reference(s: &AttnShape, q: &[f32], k: &[f32], v: &[f32], n: usize) -> Vec<f64> {
        let (dk, dv) = (s.head_dim_k, s.head_dim_v);
        let group = s.n_head / s.n_head_kv;
        let mut out = vec![0.0f64; n * s.n_head * dv];
        for t in 0..n {
            for h in 0..s.n_head {
                let hk = h / group;
                let sc: Vec<f64> = (0..n)
                    .map(|j| (0..dk).map(|d| q[t * s.n_head * dk + h * dk + d] as f64 * k[j * s.n_head_kv * dk + hk * dk + d] as f64).sum::<f64>() * s.kq_scale as f64)
                    .collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..dv {
                    out[t * s.n_head * dv + h * dv + d] = (0..n).map(|j| e[j] / z * v[j * s.n_head_kv * dv + hk * dv + d] as f64).sum();
                }
            }
        }
        out
    }

    #[test]
    fn bidirectional_attention_sees_only_its_own_sequence_and_matches_a_scalar_reference() {
        let s = AttnShape { n_head: 4, n_head_kv: 2, head_dim_k: 5, head_dim_v: 3, kq_scale: 0.4, window: None };
        let lens = [3usize, 1, 6];
        let n: usize = lens.iter().sum();
        let q = rand(n * 4 * 5, 10);
        let k = rand(n * 2 * 5, 11);
        let v = rand(n * 2 * 3, 12);
        let got = attention(&s, &q, &k, &v, &lens).unwrap();
        let mut row = 0;
        for &len in &lens {
            let qs = &q[row * 20..(row + len) * 20];
            let ks = &k[row * 10..(row + len) * 10];
            let vs = &v[row * 6..(row + len) * 6];
            let want = reference(&s, qs, ks, vs, len);
            for (i, w) in want.iter().enumerate() {
                let g = got[row * 12 + i] as f64;
                assert!((g - w).abs() < 1e-5, "sequence at row {row}, value {i}: {g} vs {w}");
            }
            // Alone, the sequence gets the same bits as in the batch.
            let alone = attention(&s, qs, ks, vs, &[len]).unwrap();
            assert_eq!(alone, got[row * 12..(row + len) * 12]);
            row += len;
        }
    }

    #[test]
    fn bidirectional_attention_refuses_mismatched_operands() {
        let s = AttnShape { n_head: 2, n_head_kv: 2, head_dim_k: 2, head_dim_v: 2, kq_scale: 1.0, window: None };
        assert!(attention(&s, &[0.0; 8], &[0.0; 8], &[0.0; 8], &[3]).is_err());
        assert!(attention(&s, &[], &[], &[], &[]).is_err());
    }
}
