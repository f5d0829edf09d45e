//! Softmax of one row as ggml computes it: subtract the max, `expf`, sum in f64, multiply
//! by `(1 / sum) as f32`.
//!
//! Only the max is vectorized (AVX2 `vmaxps`, ordered so NaNs are ignored exactly as the
//! scalar `f32::max` fold ignores them); `expf` stays libm's and the final scaling is the
//! multiversioned `scale_inplace`, so the result equals the scalar twin bit for bit.

use super::scale_inplace;

/// Largest element (`-inf` for an empty slice; NaNs are ignored as `f32::max` does).
#[inline]
fn max_of(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::use_avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { x86::max_avx2(x) };
    }
    scalar::max_of(x)
}

/// Softmax of one row in place, as ggml computes it: subtract the max, `expf`, sum in f64,
/// multiply by `(1 / sum) as f32`. A row that is entirely `-inf` (fully masked) becomes all
/// zeros rather than NaN.
pub fn softmax_inplace(x: &mut [f32]) {
    let max = max_of(x);
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        let e = (*v - max).exp();
        sum += e as f64;
        *v = e;
    }
    let inv = (1.0 / sum) as f32;
    scale_inplace(x, inv);
}

/// Scalar twins of this file's fast paths (re-exported in [`crate::ops::scalar`]).
pub(super) mod scalar {
    /// Largest element, NaNs ignored; `-inf` for an empty slice.
    pub fn max_of(x: &[f32]) -> f32 {
        x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
    }

    /// Reference of [`super::softmax_inplace`].
    pub fn softmax_inplace(x: &mut [f32]) {
        let max = max_of(x);
        if max == f32::NEG_INFINITY {
            x.fill(0.0);
            return;
        }
        let mut sum = 0.0f64;
        for v in x.iter_mut() {
            let e = (*v - max).exp();
            sum += e as f64;
            *v = e;
        }
        let inv = (1.0 / sum) as f32;
        for v in x.iter_mut() {
            *v *= inv;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Max of a slice, NaNs ignored (`vmaxps` returns its second operand when either is
    /// NaN, and the running max is always passed second).
    #[target_feature(enable = "avx2")]
    pub unsafe fn max_avx2(x: &[f32]) -> f32 {
        let chunks = x.chunks_exact(8);
        let rem = chunks.remainder();
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in chunks {
            // SAFETY: `c` has exactly 8 floats; unaligned load.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            // max(v, m) returns m where v is NaN: NaNs never enter the running max.
            m = _mm256_max_ps(v, m);
        }
        let mut l = [0.0f32; 8];
        // SAFETY: `l` has room for 8 floats.
        unsafe { _mm256_storeu_ps(l.as_mut_ptr(), m) };
        l.iter().chain(rem).fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }
}
