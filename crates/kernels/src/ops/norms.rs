//! RMS norms: ggml's `rms_norm` (sum of squares accumulated in f64, `scale = 1 / sqrt(mean
//! + eps)` in f32, `y = x * scale`) and the fused `rms_norm` + `mul` of llama.cpp's graph
//! with the same roundings.
//!
//! The sum of squares is the one reduction here: its AVX2 kernel keeps the scalar twin's
//! four f64 lanes (element `i` into lane `i % 4`), so both give the same bits; the
//! scaling loops are independent per element and only compiled twice (`multiversion!`).

use super::{check_rows, same_len};
use crate::KernelError;

/// ggml's RMS scale of one row: `1 / sqrtf(mean(x²) + eps)`.
#[inline]
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let mean = (sum_sq(x) / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// Sum of squares of one row (see [`scalar::sum_sq`] for the order of operations).
#[inline]
fn sum_sq(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if super::use_avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { x86::sum_sq_avx2(x) };
    }
    scalar::sum_sq(x)
}

#[inline(always)]
fn scale_into(x: &[f32], s: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * s;
    }
}
multiversion!(scale_into_mv, scale_into, (x: &[f32], s: f32, out: &mut [f32]));

#[inline(always)]
fn scale_mul_into(x: &[f32], s: f32, w: &[f32], out: &mut [f32]) {
    for ((o, &v), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = (v * s) * wv;
    }
}
multiversion!(scale_mul_into_mv, scale_mul_into, (x: &[f32], s: f32, w: &[f32], out: &mut [f32]));

#[inline(always)]
fn scale_mul_inplace(x: &mut [f32], s: f32, w: &[f32]) {
    for (v, &wv) in x.iter_mut().zip(w) {
        *v = (*v * s) * wv;
    }
}
multiversion!(scale_mul_inplace_mv, scale_mul_inplace, (x: &mut [f32], s: f32, w: &[f32]));

/// RMS norm of one row, no weight: `out = x / sqrt(mean(x²) + eps)`.
pub fn rms_norm(x: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm", x.len(), out.len())?;
    scale_into_mv(x, rms_scale(x, eps), out);
    Ok(())
}

/// RMS norm of each row of `x` ([n_rows, dim]) into `out` (same shape), no weight.
pub fn rms_norm_rows(x: &[f32], dim: usize, eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm_rows", x.len(), out.len())?;
    check_rows("rms_norm_rows", x.len(), dim)?;
    if dim == 0 {
        return Ok(());
    }
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        scale_into_mv(xr, rms_scale(xr, eps), or);
    }
    Ok(())
}

/// RMS norm then multiplication by `w` (`[dim]`) for each row of `x` (`[n_rows, dim]`):
/// `out = (x * scale) * w`, the same roundings as ggml's separate `rms_norm` and `mul`.
pub fn rms_norm_weighted(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm_weighted", x.len(), out.len())?;
    let dim = w.len();
    check_rows("rms_norm_weighted", x.len(), dim)?;
    if dim == 0 {
        return Ok(());
    }
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        scale_mul_into_mv(xr, rms_scale(xr, eps), w, or);
    }
    Ok(())
}

/// In-place [`rms_norm_weighted`] over rows of `x`.
pub fn rms_norm_weighted_inplace(x: &mut [f32], w: &[f32], eps: f32) -> Result<(), KernelError> {
    let dim = w.len();
    check_rows("rms_norm_weighted_inplace", x.len(), dim)?;
    if dim == 0 {
        return Ok(());
    }
    for xr in x.chunks_exact_mut(dim) {
        let s = rms_scale(xr, eps);
        scale_mul_inplace_mv(xr, s, w);
    }
    Ok(())
}

/// Scalar twins of this file's fast paths (re-exported in [`crate::ops::scalar`]).
pub(super) mod scalar {
    /// Sum of squares of one row: f32 products accumulated in f64 in four lanes (element
    /// `i` into lane `i % 4`), lanes combined as `(l0 + l1) + (l2 + l3)`, plus the tail
    /// summed in order.
    pub fn sum_sq(x: &[f32]) -> f64 {
        let mut acc = [0.0f64; 4];
        let chunks = x.chunks_exact(4);
        let rem = chunks.remainder();
        for c in chunks {
            for l in 0..4 {
                acc[l] += (c[l] * c[l]) as f64;
            }
        }
        let tail: f64 = rem.iter().map(|&v| (v * v) as f64).sum();
        (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
    }

    fn rms_scale(x: &[f32], eps: f32) -> f32 {
        if x.is_empty() {
            return 0.0;
        }
        let mean = (sum_sq(x) / x.len() as f64) as f32;
        1.0 / (mean + eps).sqrt()
    }

    /// Reference of [`super::rms_norm_weighted`] and [`super::rms_norm_weighted_inplace`].
    pub fn rms_norm_weighted(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        if w.is_empty() {
            return;
        }
        for (xr, or) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
            let s = rms_scale(xr, eps);
            for ((o, &v), &wv) in or.iter_mut().zip(xr).zip(w) {
                *o = (v * s) * wv;
            }
        }
    }

    /// Reference of [`super::rms_norm_rows`].
    pub fn rms_norm_rows(x: &[f32], dim: usize, eps: f32, out: &mut [f32]) {
        if dim == 0 {
            return;
        }
        for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let s = rms_scale(xr, eps);
            for (o, &v) in or.iter_mut().zip(xr) {
                *o = v * s;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::scalar::sum_sq`] with the four f64 lanes in one `__m256d`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn sum_sq_avx2(x: &[f32]) -> f64 {
        let chunks = x.chunks_exact(4);
        let rem = chunks.remainder();
        let mut acc = _mm256_setzero_pd();
        for c in chunks {
            // SAFETY: `c` has exactly 4 floats; unaligned load.
            let v = unsafe { _mm_loadu_ps(c.as_ptr()) };
            acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm_mul_ps(v, v)));
        }
        let mut l = [0.0f64; 4];
        // SAFETY: `l` has room for 4 f64.
        unsafe { _mm256_storeu_pd(l.as_mut_ptr(), acc) };
        let tail: f64 = rem.iter().map(|&v| (v * v) as f64).sum();
        (l[0] + l[1]) + (l[2] + l[3]) + tail
    }
}
