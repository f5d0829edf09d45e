//! ggml's *vectorized* x86 exponential (`ggml_v_expf`: a range reduction by `ln 2`, a
//! degree-5 polynomial and a `scalef`), within about 1 ulp of `expf` but not always equal,
//! and what llama.cpp's AVX-512 build computes with it: softmax exponentials
//! (`exp_sub_ggml_inplace`) and `ggml_vec_swiglu_f32` (whole chunks of 16 through it, the
//! tail through `expf`). For forward passes that must match such a peer bit for bit.
//!
//! The scalar twin reproduces each fused multiply-add with `mul_add` and the single
//! rounding of `scalef` through an exact f64 product, so it gives the AVX-512 kernel's
//! bits on every CPU.

use super::same_len;
use crate::KernelError;

/// ggml's `ggml_v_expf` (the AVX-512 version) for one value: a degree-5 polynomial after a
/// range reduction by `ln 2`, then `scalef`. Within about 1 ulp of `expf`, not always
/// equal; what llama.cpp's AVX-512 build computes in softmax and SiLU.
#[inline]
pub fn v_expf(x: f32) -> f32 {
    scalar::v_expf(x)
}

/// `x[i] = v_expf(x[i] - sub)` (the exponentials of a softmax after its max subtraction).
pub fn exp_sub_ggml_inplace(x: &mut [f32], sub: f32) {
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: AVX-512F checked at run time.
        let done = unsafe { x86::exp_sub_avx512(x, sub) };
        scalar::exp_sub_ggml_inplace(&mut x[done..], sub);
        return;
    }
    scalar::exp_sub_ggml_inplace(x, sub)
}

/// ggml's vectorized SiLU for one value: `x / (1 + v_expf(0 - x))`.
#[inline]
pub fn silu_ggml(x: f32) -> f32 {
    x / (1.0 + v_expf(0.0 - x))
}

/// `ggml_vec_swiglu_f32` on one row, in place: `gate[i] = silu(gate[i]) * up[i]`, where
/// the whole chunks of 16 use [`silu_ggml`] and the tail uses `expf`
/// ([`silu`](super::silu)), as llama.cpp's AVX-512 build does.
pub fn swiglu_ggml_inplace(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    same_len("swiglu_ggml_inplace", gate.len(), up.len())?;
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: AVX-512F checked at run time; lengths are equal.
        let done = unsafe { x86::swiglu_avx512(gate, up) };
        let rest = gate.len() - done;
        scalar::swiglu_ggml_tail(&mut gate[done..], &up[done..], rest);
        return Ok(());
    }
    scalar::swiglu_ggml_tail(gate, up, gate.len());
    Ok(())
}

/// Scalar twins of this file's fast paths (re-exported in [`crate::ops::scalar`]).
pub(super) mod scalar {
    /// ggml's `ggml_v_expf` (AVX-512) for one lane, each fused multiply-add written as
    /// `mul_add` and `scalef(j, n)` as one rounding of the exact f64 product.
    pub fn v_expf(x: f32) -> f32 {
        let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
        let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
        let n = z - r;
        let b = (-n).mul_add(f32::from_bits(0x35bf_be8e), (-n).mul_add(f32::from_bits(0x3f31_7200), x));
        let u = b * b;
        let p = f32::from_bits(0x3c07_2010).mul_add(b, f32::from_bits(0x3d2b_9f17));
        let q = f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb));
        let s = f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0);
        let j = p.mul_add(u, q).mul_add(u, s);
        if n.abs() > 192.0 {
            return if n <= 0.0 { 0.0 } else { f32::INFINITY };
        }
        (j as f64 * 2f64.powi(n as i32)) as f32
    }

    /// Reference of [`super::exp_sub_ggml_inplace`].
    pub fn exp_sub_ggml_inplace(x: &mut [f32], sub: f32) {
        for v in x {
            *v = v_expf(*v - sub);
        }
    }

    /// Reference of [`super::swiglu_ggml_inplace`].
    pub fn swiglu_ggml_inplace(gate: &mut [f32], up: &[f32]) {
        swiglu_ggml_tail(gate, up, gate.len());
    }

    /// SwiGLU over a row of which `row_len` elements remain (counting from `gate[0]`): the
    /// elements in whole chunks of 16 of the row use `v_expf`, the tail `expf`.
    pub(super) fn swiglu_ggml_tail(gate: &mut [f32], up: &[f32], row_len: usize) {
        let full = row_len - row_len % 16;
        for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
            let x = *g;
            let e = if i < full { v_expf(0.0 - x) } else { (-x).exp() };
            *g = (x / (1.0 + e)) * u;
        }
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89, newer than the workspace's declared
// rust-version (1.80); the AVX2 ones are older.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use std::arch::x86_64::*;

    /// ggml's `ggml_v_expf` for 16 lanes (AVX-512F).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn v_expf16(x: __m512) -> __m512 {
        let c = |bits: u32| _mm512_set1_ps(f32::from_bits(bits));
        let r = c(0x4b40_0000);
        let z = _mm512_fmadd_ps(x, c(0x3fb8_aa3b), r);
        let n = _mm512_sub_ps(z, r);
        let b = _mm512_fnmadd_ps(n, c(0x35bf_be8e), _mm512_fnmadd_ps(n, c(0x3f31_7200), x));
        let abs_n = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(n), _mm512_set1_epi32(0x7fff_ffff)));
        let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(abs_n, _mm512_set1_ps(192.0));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(_mm512_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)), u, _mm512_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb))),
            u,
            _mm512_fmadd_ps(c(0x3f7f_fff6), b, _mm512_set1_ps(1.0)),
        );
        let res = _mm512_scalef_ps(j, n);
        if d == 0 {
            return res;
        }
        let zero = _mm512_setzero_ps();
        let alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero), _mm512_set1_ps(f32::INFINITY), zero);
        _mm512_mask_blend_ps(d, res, alt)
    }

    /// `x[i] = v_expf(x[i] - sub)` on the whole chunks of 16; returns how many were done.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_sub_avx512(x: &mut [f32], sub: f32) -> usize {
        let n = x.len() - x.len() % 16;
        let s = _mm512_set1_ps(sub);
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= x.len().
            unsafe {
                let v = _mm512_sub_ps(_mm512_loadu_ps(x.as_ptr().add(i)), s);
                _mm512_storeu_ps(x.as_mut_ptr().add(i), v_expf16(v));
            }
        }
        n
    }

    /// SwiGLU with ggml's SiLU on the whole chunks of 16; returns how many were done.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn swiglu_avx512(gate: &mut [f32], up: &[f32]) -> usize {
        let n = gate.len() - gate.len() % 16;
        let one = _mm512_set1_ps(1.0);
        let zero = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= gate.len() == up.len().
            unsafe {
                let x = _mm512_loadu_ps(gate.as_ptr().add(i));
                let e = v_expf16(_mm512_sub_ps(zero, x));
                let s = _mm512_div_ps(x, _mm512_add_ps(one, e));
                let r = _mm512_mul_ps(s, _mm512_loadu_ps(up.as_ptr().add(i)));
                _mm512_storeu_ps(gate.as_mut_ptr().add(i), r);
            }
        }
        n
    }
}
