//! Every weight multiplication of the models goes through here.
//!
//! - Several projections of the same input (q/k/v, gate/up) quantize the input once per
//!   activation type (`jikji_kernels::vec_dot_type`) and share it, as ggml reuses its
//!   converted `src1` buffer.
//! - Q8_0/Q8_1 activations are quantized the way llama.cpp's x86 build does it
//!   (`peer::quantize_row_q8`); other activation types (Q8_K, F16, F32) use the kernels'
//!   quantizer, which already matches.
//! - Q4_1, Q5_0, Q5_1 and Q8_0 weights use `peer::dot_legacy`, ggml's x86 accumulation
//!   order; other types (K-quants, Q4_0 which the peer repacks, F16/F32) use
//!   `jikji_kernels::matmul_quantized`, whose order differs from the peer's in the last bits.

use crate::error::ModelError;
use crate::weights::Matrix;
use jikji_gguf::{GgmlType, GgufFile};
use super::peer;
use jikji_kernels::{matmul_quantized, quantize_activations, vec_dot_type, WeightView};

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
        if let Some((wb, with_sum)) = peer::legacy_block(m.info.ggml_type) {
            matmul_legacy(&m.view(file), wb, if with_sum { 36 } else { 34 }, &cache[idx].1, n_tokens, &mut y);
        } else {
            matmul_quantized(&m.view(file), &cache[idx].1, n_tokens, &mut y)?;
        }
        outs.push(y);
    }
    Ok(outs)
}

/// Legacy-format weights (`peer::legacy_block`): `peer::dot_legacy` for every (token, row);
/// `xq` holds `n_tokens` activation rows of `x_block` bytes per 32 values.
fn matmul_legacy(w: &WeightView, w_block: usize, x_block: usize, xq: &[u8], n_tokens: usize, y: &mut [f32]) {
    let nb = w.cols / 32;
    let (wrb, xrb) = (nb * w_block, nb * x_block);
    for (t, yt) in y.chunks_exact_mut(w.rows).enumerate().take(n_tokens) {
        let xr = &xq[t * xrb..(t + 1) * xrb];
        for (r, out) in yt.iter_mut().enumerate() {
            *out = peer::dot_legacy(w.ty, &w.data[r * wrb..(r + 1) * wrb], xr);
        }
    }
}
