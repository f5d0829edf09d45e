//! The CPU backend's matrix products: every weight multiplication of a model lands here.
//!
//! - Several projections of the same input (q/k/v, gate/up) quantize the input once per
//!   activation type (`jikji_kernels::vec_dot_type`) and share it, as ggml reuses its
//!   converted `src1` buffer.
//! - Q8_0/Q8_1 activations are quantized the way llama.cpp's x86 build does it
//!   (`peer::quantize_row_q8`); other activation types (Q8_K, F16, F32) use the kernels'
//!   quantizer, which already matches (Q8_K is ggml's reference quantizer bit for bit, and
//!   the peer's 4-row `ggml_quantize_mat_q8_K_4x8` yields the same products: it can only
//!   flip the sign of both `d` and the quants).
//! - Legacy weights (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and Q5_K go to
//!   `jikji_kernels::matmul_quantized`, whose x86 SIMD dots follow ggml's AVX2 order (the
//!   order of the reference fixtures' build; bit-exact on the real models' Q4_1/Q5_0/Q8_0).
//! - Q4_K (row count a multiple of 8, which the peer repacks) and Q6_K go to
//!   `jikji_kernels::matmul_peer_kquant`, which follows the peer's repacked gemm/gemv and
//!   tiled/vec orders (chosen there from the token index and batch size).
//! - F16 weights from 2 tokens on (single-sequence steps; encoders above all) take
//!   llamafile tinyBLAS's order (`jikji_kernels::matmul_f16_tiled_rounded`): the input is
//!   rounded to f16 values once, kept as f32, for every projection that shares it, and
//!   the outputs are written without a zero fill (the peer's bits, less memory traffic).
//! - All of them split weight rows over the kernels' persistent thread pool.
//! - `batch_invariant` (the serving path, `KvView::Paged`): Q4_K/Q6_K go to
//!   `jikji_kernels::matmul_kquant_batch_invariant` instead, one fold order for every row
//!   whatever the row count; every other type is already invariant (`matmul_quantized`
//!   keeps the single-dot order for every tile).

use super::peer;
use crate::{BackendError, MatrixRef};
use jikji_gguf::GgmlType;
use jikji_kernels::{
    f16_tiled_supported, matmul_f16_tiled_rounded, matmul_kquant_batch_invariant, matmul_peer_kquant, matmul_quantized, matvec_peer_kquant_rows, matvec_quantized_rows, peer_kquant_supported,
    quantize_activations, vec_dot_type,
};
use std::sync::Mutex;

/// Activations `x` (`[n_tokens, cols]`) quantized for a weight of type `weight_ty`.
fn quantize_input(weight_ty: GgmlType, x: &[f32], cols: usize, n_tokens: usize) -> Result<Vec<u8>, BackendError> {
    let Some(with_sum) = peer::q8_with_sum(vec_dot_type(weight_ty)) else {
        return Ok(quantize_activations(weight_ty, x, cols, n_tokens)?);
    };
    if cols.checked_rem(32) != Some(0) || x.len() != cols * n_tokens {
        // Let the kernel report the size problem with its own message.
        return Ok(quantize_activations(weight_ty, x, cols, n_tokens)?);
    }
    let rb = peer::q8_row_bytes(cols, with_sum);
    let mut out = vec![0u8; n_tokens * rb];
    // Row by row, so the rows are split over the pool (same bytes in any split).
    jikji_kernels::pool::for_rows_mut(&mut out, rb, 8, &|first, rows| {
        for (k, o) in rows.chunks_exact_mut(rb).enumerate() {
            peer::quantize_row_q8_into(&x[(first + k) * cols..][..cols], with_sum, o);
        }
    });
    Ok(out)
}

/// `y = x · mᵀ`: `x` `[n_tokens, m.cols]` → `[n_tokens, m.rows]`.
pub fn matmul(m: &MatrixRef, x: &[f32], n_tokens: usize, batch_invariant: bool) -> Result<Vec<f32>, BackendError> {
    let mut outs = project_many(&[m], x, n_tokens, batch_invariant)?;
    Ok(outs.pop().unwrap_or_default())
}

/// The vocabulary projection: nothing downstream re-rounds logits, so the peer's summation
/// order does not matter here (differences stay near 1e-6) and the kernels' fast path is
/// used for what is by far the largest matrix.
pub fn matmul_head(m: &MatrixRef, x: &[f32], n_tokens: usize) -> Result<Vec<f32>, BackendError> {
    let xq = quantize_input(m.info.ggml_type, x, m.cols, n_tokens)?;
    let mut y = vec![0.0f32; n_tokens * m.rows]; // [n_tokens, n_vocab]
    matmul_quantized(&m.view(), &xq, n_tokens, &mut y)?;
    Ok(y)
}

/// `x` rounded to f16 values (the peer's F16 activations, kept as f32 for the tiled
/// kernel), row by row over the pool.
fn round_input_f16(x: &[f32], cols: usize) -> Vec<f32> {
    let mut xr = x.to_vec();
    jikji_kernels::pool::for_rows_mut(&mut xr, cols.max(1), 16, &|_, rows| jikji_kernels::ops::round_f16_inplace(rows));
    xr
}

/// `x`: `[n_tokens, cols]` → one `[n_tokens, m.rows]` output per matrix (all with `cols` columns).
/// `batch_invariant`: every row in the same float order whatever `n_tokens` (serving).
pub fn project_many(
    mats: &[&MatrixRef],
    x: &[f32],
    n_tokens: usize,
    batch_invariant: bool,
) -> Result<Vec<Vec<f32>>, BackendError> {
    // F16 weights from 2 tokens on (single-sequence orders): the peer's tinyBLAS order
    // (`jikji_kernels::tiled_f16`) on the input rounded to f16 values once for all of them.
    let tiled = |m: &MatrixRef| !batch_invariant && f16_tiled_supported(m.info.ggml_type, m.cols, n_tokens);
    let rounded: Option<Vec<f32>> = match mats.iter().any(|m| tiled(m)) {
        true => Some(round_input_f16(x, mats[0].cols)),
        false => None,
    };
    let mut cache: Vec<(GgmlType, Vec<u8>)> = Vec::new();
    let mut input_of = Vec::with_capacity(mats.len());
    for m in mats {
        if tiled(m) {
            input_of.push(usize::MAX); // reads `rounded`
            continue;
        }
        let vt = vec_dot_type(m.info.ggml_type);
        let idx = match cache.iter().position(|(t, _)| *t == vt) {
            Some(i) => i,
            None => {
                cache.push((vt, quantize_input(m.info.ggml_type, x, m.cols, n_tokens)?));
                cache.len() - 1
            }
        };
        input_of.push(idx);
    }
    if n_tokens == 1 && mats.len() > 1 {
        return project_one_token(mats, &cache, &input_of, batch_invariant);
    }
    let mut outs = Vec::with_capacity(mats.len());
    for (m, &idx) in mats.iter().zip(&input_of) {
        if let (true, Some(xr)) = (tiled(m), &rounded) {
            outs.push(matmul_f16_tiled_rounded(&m.view(), xr, n_tokens)?);
            continue;
        }
        let mut y = vec![0.0f32; n_tokens * m.rows]; // [n_tokens, m.rows]
        let ty = m.info.ggml_type;
        if batch_invariant && peer_kquant_supported(ty, m.rows, m.cols) {
            matmul_kquant_batch_invariant(&m.view(), &cache[idx].1, n_tokens, &mut y)?;
        } else if peer_kquant_supported(ty, m.rows, m.cols) {
            matmul_peer_kquant(&m.view(), &cache[idx].1, n_tokens, &mut y)?;
        } else {
            matmul_quantized(&m.view(), &cache[idx].1, n_tokens, &mut y)?;
        }
        outs.push(y);
    }
    Ok(outs)
}

/// Several projections of one token as a single pool job: the matrices' rows are cut into
/// chunks of about equal work (a few per thread) and every chunk is one task, so decoding
/// pays one fork/join for q/k/v (or gate/up) instead of one per matrix, and the small
/// matrices no longer leave a thread idle. Each row's dot is the one the per-matrix path
/// computes (`matvec_*_rows`), so the outputs are bit-identical.
fn project_one_token(
    mats: &[&MatrixRef],
    inputs: &[(GgmlType, Vec<u8>)],
    input_of: &[usize],
    batch_invariant: bool,
) -> Result<Vec<Vec<f32>>, BackendError> {
    let mut outs: Vec<Vec<f32>> = mats.iter().map(|m| vec![0.0f32; m.rows]).collect();
    let total: usize = mats.iter().map(|m| m.rows * m.cols).sum();
    let per_task = total.div_ceil(4 * jikji_kernels::num_threads()).max(1);
    // (matrix, first row, output rows) per task.
    let mut tasks: Vec<Mutex<(usize, usize, &mut [f32])>> = Vec::new();
    for (mi, (m, y)) in mats.iter().zip(outs.iter_mut()).enumerate() {
        let parts = (m.rows * m.cols).div_ceil(per_task).clamp(1, m.rows.max(1));
        let mut rest: &mut [f32] = y;
        for i in 0..parts {
            let r = jikji_kernels::pool::split_range(m.rows, parts, i);
            let (head, tail) = rest.split_at_mut(r.len());
            tasks.push(Mutex::new((mi, r.start, head)));
            rest = tail;
        }
    }
    let failure: Mutex<Option<BackendError>> = Mutex::new(None);
    jikji_kernels::pool::parallel_for(tasks.len(), &|i| {
        let mut task = tasks[i].lock().unwrap_or_else(|e| e.into_inner());
        let (mi, r0, ref mut y) = *task;
        let m = mats[mi];
        let xq = &inputs[input_of[mi]].1;
        let rows = r0..r0 + y.len();
        let ty = m.info.ggml_type;
        let r = if peer_kquant_supported(ty, m.rows, m.cols) {
            matvec_peer_kquant_rows(&m.view(), xq, rows, y, batch_invariant)
        } else {
            matvec_quantized_rows(&m.view(), xq, rows, y)
        };
        if let Err(e) = r {
            failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e.into());
        }
    });
    drop(tasks);
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(outs),
    }
}
