//! f16 and bf16 rows: conversions and the f16 round trip of attention's operands.
//!
//! f32 → f16 rounds to nearest even; with F16C eight values go through `vcvtps2ph` /
//! `vcvtph2ps` at a time, which give exactly `half`'s bits, so the portable tail (and the
//! non-x86 build) is `half` itself. bf16 stays portable.

use super::same_len;
use crate::KernelError;

/// f32 → f16 (round to nearest even; F16C eight at a time, the same bits as
/// `half::f16::from_f32`).
pub fn f32_to_f16_row(src: &[f32], dst: &mut [half::f16]) -> Result<(), KernelError> {
    same_len("f32_to_f16_row", src.len(), dst.len())?;
    #[allow(unused_mut)] // only the x86 fast path advances it
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::use_avx2() {
        // SAFETY: AVX2/F16C detected; equal lengths checked above.
        done = unsafe { x86::f32_to_f16_f16c(src, dst) };
    }
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = half::f16::from_f32(s);
    }
    Ok(())
}

/// f16 → f32 (exact).
pub fn f16_to_f32_row(src: &[half::f16], dst: &mut [f32]) -> Result<(), KernelError> {
    same_len("f16_to_f32_row", src.len(), dst.len())?;
    #[allow(unused_mut)] // only the x86 fast path advances it
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::use_avx2() {
        // SAFETY: AVX2/F16C detected; equal lengths checked above.
        done = unsafe { x86::f16_to_f32_f16c(src, dst) };
    }
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = s.to_f32();
    }
    Ok(())
}

/// Rounds every value to the nearest f16 and back (what storing into an f16 cache and
/// reading it again gives): ggml's f16 operands of attention, in place.
pub fn round_f16_inplace(x: &mut [f32]) {
    #[allow(unused_mut)] // only the x86 fast path advances it
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::use_avx2() {
        // SAFETY: AVX2/F16C detected.
        done = unsafe { x86::round_f16_f16c(x) };
    }
    for v in &mut x[done..] {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

/// f32 → bf16 (round to nearest even, NaN stays NaN).
pub fn f32_to_bf16_row(src: &[f32], dst: &mut [half::bf16]) -> Result<(), KernelError> {
    same_len("f32_to_bf16_row", src.len(), dst.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::bf16::from_f32(s);
    }
    Ok(())
}

/// bf16 → f32 (exact).
pub fn bf16_to_f32_row(src: &[half::bf16], dst: &mut [f32]) -> Result<(), KernelError> {
    same_len("bf16_to_f32_row", src.len(), dst.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// f32 → f16 on the whole chunks of 8; returns how many were done.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn f32_to_f16_f16c(src: &[f32], dst: &mut [half::f16]) -> usize {
        let n = src.len().min(dst.len()) / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n, in bounds of both slices; f16 is 2 bytes.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            }
        }
        n
    }

    /// f16 → f32 on the whole chunks of 8; returns how many were done.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn f16_to_f32_f16c(src: &[half::f16], dst: &mut [f32]) -> usize {
        let n = src.len().min(dst.len()) / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n, in bounds of both slices; f16 is 2 bytes.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        n
    }

    /// f32 → f16 → f32 in place on the whole chunks of 8; returns how many were done.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn round_f16_f16c(x: &mut [f32]) -> usize {
        let n = x.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len().
            unsafe {
                let p = x.as_mut_ptr().add(i);
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(p));
                _mm256_storeu_ps(p, _mm256_cvtph_ps(h));
            }
        }
        n
    }
}
