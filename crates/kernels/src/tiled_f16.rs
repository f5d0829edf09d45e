//! F16 weight matrices times several tokens in the order llama.cpp's x86 build uses for
//! them: llamafile's `tinyBLAS` (ggml sends an F16 `mul_mat` with 2 tokens or more and a
//! row length that is a multiple of 16 there, and one token to `ggml_vec_dot_f16`).
//!
//! Per output: one 16-lane accumulator, `lanes[k % 16] = fma(w[k], x[k], lanes[k % 16])`
//! for k in order, then `_mm512_reduce_add_ps` ([`crate::lanes::reduce16`]). The
//! activations are f16 (the peer converts them to the weights' `vec_dot_type` first) and
//! are widened to f32 once per call, which is exact. The order does not depend on how the
//! outputs are tiled, so the AVX-512 kernel (`simd/x86/float.rs`: tiles of 4 rows × 6
//! tokens, 24 accumulators in registers, each weight vector widened once per 6 tokens)
//! gives the scalar reference's bits ([`dot_f16_tiled_scalar`]); the test
//! `f16_tiled_matmul_equals_its_scalar_reference` checks them on odd shapes.
//!
//! Where it is used: the single-sequence (peer-order) path for F16 matrices from 2 tokens
//! on (encoders above all, whose every input is a batch of rows). The serving path keeps
//! `vec_dot_f16`'s order for every row count, so a row's result never depends on the
//! other rows of a step.

use crate::{
    isa, lanes, num_threads, pool, GgmlType, Isa, KernelError, OutPtr, WeightView,
};

/// Whether [`matmul_f16_tiled`] is the peer's order for this product.
pub fn f16_tiled_supported(ty: GgmlType, cols: usize, n_tokens: usize) -> bool {
    ty == GgmlType::F16 && cols % 16 == 0 && cols > 0 && n_tokens >= 2
}

/// f16 bytes widened to f32 (exact), through the crate's F16 dequantizer.
fn widen(x: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len() / 2];
    crate::fp::dequant_f16(x, &mut out);
    out
}

/// The scalar reference: one row of f16 weights against one row of f16 activations.
pub fn dot_f16_tiled_scalar(w: &[u8], x: &[u8]) -> f32 {
    let mut l = [0.0f32; 16];
    lanes::fma_lanes_scalar(&widen(w), &widen(x), 0, &mut l);
    lanes::reduce16(&l)
}

/// `y = x · wᵀ` in tinyBLAS's order: `xq` holds `n_tokens` f16 rows of `w.cols`, `y` is
/// `[n_tokens, w.rows]`. `w` must be F16 with `cols % 16 == 0`.
pub fn matmul_f16_tiled(
    w: &WeightView,
    xq: &[u8],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    matmul_f16_tiled_isa(isa(), w, xq, n_tokens, y)
}

/// As [`matmul_f16_tiled`] with the kernels of `level` (scalar below AVX-512).
pub fn matmul_f16_tiled_isa(
    level: Isa,
    w: &WeightView,
    xq: &[u8],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    if !level.is_supported() {
        return Err(KernelError::UnsupportedIsa(level));
    }
    if w.ty != GgmlType::F16 || w.cols % 16 != 0 {
        return Err(KernelError::Size(format!(
            "no tiled F16 kernel for {:?} [{}, {}]",
            w.ty, w.rows, w.cols
        )));
    }
    let (wrb, xrb) = crate::matmul_operands(w, xq, n_tokens, y)?;
    let rows = w.rows;
    if y.is_empty() {
        return Ok(());
    }
    if !level.has_avx512() || !cfg!(target_arch = "x86_64") {
        for t in 0..n_tokens {
            for r in 0..rows {
                y[t * rows + r] = dot_f16_tiled_scalar(
                    &w.data[r * wrb..(r + 1) * wrb],
                    &xq[t * xrb..(t + 1) * xrb],
                );
            }
        }
        return Ok(());
    }
    let xf = widen(xq); // [n_tokens, cols]
    // SAFETY: `y` holds `n_tokens × rows` floats (checked by `matmul_operands`).
    unsafe { tiled_core(level, w, wrb, &xf, n_tokens, y.as_mut_ptr()) };
    Ok(())
}

/// As [`matmul_f16_tiled`] for activations given as f32 values that are already f16 values
/// (`xr`, `[n_tokens, w.cols]`, say through `ops::round_f16_inplace`): the same products
/// and bits without the f16 bytes and their widening, and the output `[n_tokens, w.rows]`
/// is allocated here and written once, not zero-filled first. (Values that are not f16
/// values are multiplied as they are: a more exact product, no longer the peer's.)
pub fn matmul_f16_tiled_rounded(w: &WeightView, xr: &[f32], n_tokens: usize) -> Result<Vec<f32>, KernelError> {
    if w.ty != GgmlType::F16 || w.cols % 16 != 0 {
        return Err(KernelError::Size(format!("no tiled F16 kernel for {:?} [{}, {}]", w.ty, w.rows, w.cols)));
    }
    let wrb = w.validate()?;
    let need = n_tokens.checked_mul(w.cols).ok_or_else(|| KernelError::Size("activation size overflows".into()))?;
    if xr.len() != need {
        return Err(KernelError::Size(format!("activations: expected {n_tokens} x {} = {need} floats, got {}", w.cols, xr.len())));
    }
    let len = n_tokens.checked_mul(w.rows).ok_or_else(|| KernelError::Size("output size overflows".into()))?;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    if len > 0 {
        // SAFETY: the capacity holds `n_tokens × rows` floats; `tiled_core` writes every one
        // of them (each (token, row) pair once) before the length is set.
        unsafe {
            tiled_core(isa(), w, wrb, xr, n_tokens, y.as_mut_ptr());
            y.set_len(len);
        }
    }
    Ok(y)
}

/// Writes `y[t · rows + r]` for every token `t < n_tokens` and row `r < w.rows`: the
/// AVX-512 tiles split over the pool, or the scalar reference below AVX-512.
///
/// # Safety
/// `level` must be supported; `y` must be valid for `n_tokens × w.rows` writes; `w` is validated F16 with `cols % 16
/// == 0` and `wrb` its row bytes; `xf` holds `n_tokens × cols` floats.
unsafe fn tiled_core(level: Isa, w: &WeightView, wrb: usize, xf: &[f32], n_tokens: usize, y: *mut f32) {
    let (rows, cols) = (w.rows, w.cols);
    if rows == 0 || n_tokens == 0 {
        return;
    }
    if !level.has_avx512() || !cfg!(target_arch = "x86_64") {
        let mut wf = vec![0.0f32; cols];
        for r in 0..rows {
            crate::fp::dequant_f16(&w.data[r * wrb..(r + 1) * wrb], &mut wf);
            for t in 0..n_tokens {
                let mut l = [0.0f32; 16];
                lanes::fma_lanes_scalar(&wf, &xf[t * cols..(t + 1) * cols], 0, &mut l);
                // SAFETY: t < n_tokens and r < rows (the caller's bounds).
                unsafe { *y.add(t * rows + r) = lanes::reduce16(&l) };
            }
        }
        return;
    }
    let parts = num_threads().clamp(1, rows.div_ceil(16));
    let n_tasks = if parts <= 1 { 1 } else { parts * 4 };
    let chunk = rows.div_ceil(n_tasks).next_multiple_of(4);
    let out = OutPtr(y);
    let (wp, xp) = (w.data.as_ptr() as usize, xf.as_ptr() as usize);
    pool::parallel_for(n_tasks, &|i| {
        let r0 = (i * chunk).min(rows);
        let r1 = (r0 + chunk).min(rows);
        if r0 == r1 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level has AVX-512 (checked above); rows r0..r1 of `w` (validated sizes)
        // and all `n_tokens` rows of `xf` are in bounds, `cols % 16 == 0`; this task alone
        // writes y[t, r0..r1] for every t (disjoint row ranges), inside `y`.
        unsafe {
            crate::simd::x86::tiled_f16(
                (wp as *const u8).add(r0 * wrb),
                wrb,
                xp as *const f32,
                cols,
                r1 - r0,
                n_tokens,
                out.get().add(r0),
                1,
                rows,
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (wp, xp, &out, cols);
    });
}
