//! Every weight multiplication of the models goes through here.
//!
//! - Several projections of the same input (q/k/v, gate/up) quantize the input once per
//!   activation type (`jikji_kernels::vec_dot_type`) and share it, as ggml reuses its
//!   converted `src1` buffer.
//! - Q8_0/Q8_1 activations are quantized the way llama.cpp's x86 build does it
//!   (`peer::quantize_row_q8`); other activation types (Q8_K, F16, F32) use the kernels'
//!   quantizer, which already matches (Q8_K is ggml's reference quantizer bit for bit, and
//!   the peer's 4-row `ggml_quantize_mat_q8_K_4x8` yields the same products: it can only
//!   flip the sign of both `d` and the quants).
//! - Q4_1, Q5_0, Q5_1 and Q8_0 weights use `peer::dot_legacy`, ggml's x86 accumulation
//!   order; Q4_K (row count a multiple of 8, which the peer repacks) and Q6_K use
//!   `peer::dot_q4_k` / `peer::dot_q6_k`. For repacked Q4_K the peer multiplies the first
//!   `n_tokens - n_tokens % 4` tokens with its gemm and the rest one by one with its gemv,
//!   which fold partial sums at different strides; the token index picks the order here.
//! - Other types (Q4_0 and Q5_K, which this order does not cover yet, F16/F32) use
//!   `jikji_kernels::matmul_quantized`, whose order differs from the peer's in the last bits.
//! - The peer-order paths are plain Rust, split over weight rows with
//!   `jikji_kernels::pool::parallel_for`; each task fills its own buffer (no shared mutable
//!   output), which is then scattered into `[n_tokens, rows]`.

use crate::error::ModelError;
use crate::weights::Matrix;
use jikji_gguf::{GgmlType, GgufFile};
use super::peer;
use jikji_kernels::pool::{parallel_for, split_range};
use jikji_kernels::{matmul_quantized, num_threads, quantize_activations, vec_dot_type, WeightView};
use std::sync::Mutex;

/// Activations `x` (`[n_tokens, cols]`) quantized for a weight of type `weight_ty`.
fn quantize_input(weight_ty: GgmlType, x: &[f32], cols: usize, n_tokens: usize) -> Result<Vec<u8>, ModelError> {
    let Some(with_sum) = peer::q8_with_sum(vec_dot_type(weight_ty)) else {
        return Ok(quantize_activations(weight_ty, x, cols, n_tokens)?);
    };
    if cols.checked_rem(32) != Some(0) || x.len() != cols * n_tokens {
        // Let the kernel report the size problem with its own message.
        return Ok(quantize_activations(weight_ty, x, cols, n_tokens)?);
    }
    let mut out = Vec::with_capacity(n_tokens * (cols / 32) * 36);
    for row in x.chunks_exact(cols) {
        peer::quantize_row_q8(row, with_sum, &mut out);
    }
    Ok(out)
}

/// `y = x · mᵀ`: `x` `[n_tokens, m.cols]` → `[n_tokens, m.rows]`.
pub fn matmul(file: &GgufFile, m: &Matrix, x: &[f32], n_tokens: usize) -> Result<Vec<f32>, ModelError> {
    let mut outs = project_many(file, &[m], x, n_tokens)?;
    Ok(outs.pop().unwrap_or_default())
}

/// The vocabulary projection: nothing downstream re-rounds logits, so the peer's summation
/// order does not matter here (differences stay near 1e-6) and the kernels' fast path is
/// used for what is by far the largest matrix.
pub fn matmul_head(file: &GgufFile, m: &Matrix, x: &[f32], n_tokens: usize) -> Result<Vec<f32>, ModelError> {
    let xq = quantize_input(m.info.ggml_type, x, m.cols, n_tokens)?;
    let mut y = vec![0.0f32; n_tokens * m.rows]; // [n_tokens, n_vocab]
    matmul_quantized(&m.view(file), &xq, n_tokens, &mut y)?;
    Ok(y)
}

/// `x`: `[n_tokens, cols]` → one `[n_tokens, m.rows]` output per matrix (all with `cols` columns).
pub fn project_many(file: &GgufFile, mats: &[&Matrix], x: &[f32], n_tokens: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let mut cache: Vec<(GgmlType, Vec<u8>)> = Vec::new();
    let mut outs = Vec::with_capacity(mats.len());
    for m in mats {
        let vt = vec_dot_type(m.info.ggml_type);
        let idx = match cache.iter().position(|(t, _)| *t == vt) {
            Some(i) => i,
            None => {
                cache.push((vt, quantize_input(m.info.ggml_type, x, m.cols, n_tokens)?));
                cache.len() - 1
            }
        };
        let mut y = vec![0.0f32; n_tokens * m.rows]; // [n_tokens, m.rows]
        let ty = m.info.ggml_type;
        if let Some((wb, with_sum)) = peer::legacy_block(ty) {
            matmul_legacy(&m.view(file), wb, if with_sum { 36 } else { 34 }, &cache[idx].1, n_tokens, &mut y);
        } else if let Some(wb) = peer_kquant(ty, m.rows, m.cols) {
            matmul_kquant(&m.view(file), wb, &cache[idx].1, n_tokens, &mut y);
        } else {
            matmul_quantized(&m.view(file), &cache[idx].1, n_tokens, &mut y)?;
        }
        outs.push(y);
    }
    Ok(outs)
}

/// Block bytes of a K-quant weight that `peer` multiplies in the peer's order: Q6_K, and
/// Q4_K when the peer repacks it (row count a multiple of 8).
fn peer_kquant(ty: GgmlType, rows: usize, cols: usize) -> Option<usize> {
    let wb = peer::kquant_block(ty)?;
    let repacked = ty != GgmlType::Q4_K || rows.is_multiple_of(8);
    (cols.is_multiple_of(256) && repacked).then_some(wb)
}

/// Legacy-format weights (`peer::legacy_block`): `peer::dot_legacy` for every (token, row);
/// `xq` holds `n_tokens` activation rows of `x_block` bytes per 32 values.
fn matmul_legacy(w: &WeightView, w_block: usize, x_block: usize, xq: &[u8], n_tokens: usize, y: &mut [f32]) {
    let nb = w.cols / 32;
    let (wrb, xrb) = (nb * w_block, nb * x_block);
    parallel_rows(w.rows, n_tokens, y, &|r, t| {
        peer::dot_legacy(w.ty, &w.data[r * wrb..(r + 1) * wrb], &xq[t * xrb..(t + 1) * xrb])
    });
}

/// Q4_K/Q6_K weights (`peer_kquant`) against Q8_K activations: token `t` of a Q4_K product
/// takes the gemm order when it lies in the first `n_tokens - n_tokens % 4` tokens.
fn matmul_kquant(w: &WeightView, w_block: usize, xq: &[u8], n_tokens: usize, y: &mut [f32]) {
    let nb = w.cols / 256;
    let (wrb, xrb) = (nb * w_block, nb * peer::Q8K_BYTES);
    let gemm_tokens = n_tokens - n_tokens % 4;
    let q4 = w.ty == GgmlType::Q4_K;
    parallel_rows(w.rows, n_tokens, y, &|r, t| {
        let (wr, xr) = (&w.data[r * wrb..(r + 1) * wrb], &xq[t * xrb..(t + 1) * xrb]);
        if q4 {
            peer::dot_q4_k(wr, xr, t < gemm_tokens)
        } else if n_tokens >= 8 {
            peer::dot_q6_k_tiled(wr, xr)
        } else {
            peer::dot_q6_k(wr, xr)
        }
    });
}

/// `y[t * rows + r] = dot(r, t)` for every row and token, rows split over the thread pool.
/// Each task walks its rows outermost (one weight row stays in cache across the tokens)
/// into its own buffer; the buffers are scattered into `y` (`[n_tokens, rows]`) afterwards.
fn parallel_rows(rows: usize, n_tokens: usize, y: &mut [f32], dot: &(dyn Fn(usize, usize) -> f32 + Sync)) {
    let parts = num_threads().clamp(1, rows.max(1));
    let bufs: Vec<Mutex<Vec<f32>>> = (0..parts).map(|_| Mutex::new(Vec::new())).collect();
    parallel_for(parts, &|i| {
        let range = split_range(rows, parts, i);
        let mut buf = Vec::with_capacity(range.len() * n_tokens); // [range, n_tokens]
        for r in range {
            buf.extend((0..n_tokens).map(|t| dot(r, t)));
        }
        *bufs[i].lock().unwrap_or_else(|e| e.into_inner()) = buf;
    });
    for (i, buf) in bufs.into_iter().enumerate() {
        let buf = buf.into_inner().unwrap_or_else(|e| e.into_inner());
        for (r, outs) in split_range(rows, parts, i).zip(buf.chunks_exact(n_tokens.max(1))) {
            for (t, &v) in outs.iter().enumerate() {
                y[t * rows + r] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_rows_places_every_row_and_token() {
        for rows in [1usize, 7, 64] {
            for n_tokens in [1usize, 3, 17] {
                let mut y = vec![f32::NAN; rows * n_tokens];
                parallel_rows(rows, n_tokens, &mut y, &|r, t| (r * 1000 + t) as f32);
                for t in 0..n_tokens {
                    for r in 0..rows {
                        assert_eq!(y[t * rows + r], (r * 1000 + t) as f32);
                    }
                }
            }
        }
    }

    #[test]
    fn only_repacked_q4_k_and_q6_k_take_the_peer_k_quant_path() {
        assert_eq!(peer_kquant(GgmlType::Q4_K, 640, 2048), Some(144));
        assert_eq!(peer_kquant(GgmlType::Q4_K, 644, 2048), None);
        assert_eq!(peer_kquant(GgmlType::Q6_K, 644, 2048), Some(210));
        assert_eq!(peer_kquant(GgmlType::Q6_K, 640, 640), None);
        assert_eq!(peer_kquant(GgmlType::Q5_K, 640, 2048), None);
    }
}
