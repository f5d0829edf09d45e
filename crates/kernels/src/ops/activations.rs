//! Activations with libm's `expf` / `tanhf`: SiLU (`x / (1 + expf(-x))`), SwiGLU, and
//! GELU / GeGLU with ggml's CPU numerics.
//!
//! ggml evaluates GELU (tanh approximation) through a table over f16 inputs: the input is
//! rounded to f16, `0.5x(1 + tanh(√(2/π)·x·(1 + 0.044715x²)))` computed in f32, the result
//! rounded to f16; |x| ≥ 10 short-cuts to 0 or x. `gelu` reproduces exactly that through
//! the same 64 Ki-entry table (built once in a `OnceLock`); the AVX2 / AVX-512 kernels
//! convert to f16 with `vcvtps2ph` (round to nearest even, like `half`) and gather from the
//! table, and the scalar twin evaluates the formula directly. `gelu_exact_f32` is the
//! formula without f16 rounding. ggml's *vectorized* SiLU lives in `vexp.rs`.

use std::sync::OnceLock;

use super::same_len;
use crate::KernelError;

/// SiLU (swish): `x / (1 + expf(-x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// In-place SiLU.
pub fn silu_inplace(x: &mut [f32]) {
    for v in x {
        *v = silu(*v);
    }
}

const GELU_COEF_A: f32 = 0.044715;
/// √(2/π), rounded to f32 as ggml's `SQRT_2_OVER_PI` literal is.
const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_4_f64 as f32;

/// The tanh-approximation GELU evaluated in f32 (ggml's `ggml_gelu_f32`).
#[inline]
pub fn gelu_exact_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// ggml's GELU table: entry `h` is `f16(gelu_exact_f32(f16 h))` as f32, for all 2^16 f16
/// bit patterns (256 KiB, built on first use).
fn gelu_table() -> &'static [f32] {
    static TABLE: OnceLock<Box<[f32]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // No ±10 short-cuts here: they apply to the unrounded input (an input just above
        // -10 rounds to the f16 -10, whose entry is the formula's -0).
        (0..=u16::MAX)
            .map(|h| half::f16::from_f32(gelu_exact_f32(half::f16::from_bits(h).to_f32())).to_f32())
            .collect()
    })
}

/// GELU with ggml's CPU numerics: input rounded to f16, [`gelu_exact_f32`], result rounded
/// to f16 (what ggml's f16 lookup table holds); `x <= -10` gives 0 and `x >= 10` gives x.
#[inline]
pub fn gelu(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_table()[half::f16::from_f32(x).to_bits() as usize]
    }
}

/// In-place [`gelu`].
pub fn gelu_inplace(x: &mut [f32]) {
    geglu_impl(x, None);
}

/// `x[i] = gelu(x[i]) * up[i]` (or just `gelu(x[i])` without `up`), equal lengths.
fn geglu_impl(x: &mut [f32], up: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if super::use_avx2() {
        let table = gelu_table();
        // SAFETY: AVX2 (and F16C) checked at run time; `table` has 65536 entries so every
        // f16 bit pattern indexes inside it.
        let done = unsafe {
            if super::use_avx512() {
                x86::geglu_avx512(x, up, table)
            } else {
                x86::geglu_avx2(x, up, table)
            }
        };
        let rest = &mut x[done..];
        match up {
            Some(u) => rest.iter_mut().zip(&u[done..]).for_each(|(g, &u)| *g = gelu(*g) * u),
            None => rest.iter_mut().for_each(|g| *g = gelu(*g)),
        }
        return;
    }
    match up {
        Some(u) => x.iter_mut().zip(u).for_each(|(g, &u)| *g = gelu(*g) * u),
        None => x.iter_mut().for_each(|g| *g = gelu(*g)),
    }
}

/// SwiGLU: `out[i] = silu(gate[i]) * up[i]` (ggml `swiglu`, llama/qwen FFN).
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    same_len("swiglu", gate.len(), up.len())?;
    same_len("swiglu", gate.len(), out.len())?;
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu(g) * u;
    }
    Ok(())
}

/// In-place SwiGLU: `gate[i] = silu(gate[i]) * up[i]`.
pub fn swiglu_inplace(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    same_len("swiglu_inplace", gate.len(), up.len())?;
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
    Ok(())
}

/// GeGLU: `out[i] = gelu(gate[i]) * up[i]` with ggml's GELU numerics (gemma FFN); for
/// `gate >= 10` ggml multiplies the raw value.
pub fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    same_len("geglu", gate.len(), up.len())?;
    same_len("geglu", gate.len(), out.len())?;
    out.copy_from_slice(gate);
    geglu_impl(out, Some(up));
    Ok(())
}

/// In-place GeGLU: `gate[i] = gelu(gate[i]) * up[i]`.
pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    same_len("geglu_inplace", gate.len(), up.len())?;
    geglu_impl(gate, Some(up));
    Ok(())
}

/// Scalar twins of this file's fast paths (re-exported in [`crate::ops::scalar`]).
pub(super) mod scalar {
    use super::gelu_exact_f32;

    /// GELU computed directly (no table): input rounded to f16, the f32 formula, result
    /// rounded to f16, with ggml's ±10 short-cuts. Reference of [`super::gelu`].
    pub fn gelu(x: f32) -> f32 {
        if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x
        } else {
            let xh = half::f16::from_f32(x).to_f32();
            half::f16::from_f32(gelu_exact_f32(xh)).to_f32()
        }
    }

    /// Reference of [`super::geglu_inplace`].
    pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) {
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = gelu(*g) * u;
        }
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89, newer than the workspace's declared
// rust-version (1.80); the AVX2 ones are older.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use std::arch::x86_64::*;

    /// GeGLU (or GELU without `up`) on the whole chunks of 8 of `x`; returns how many
    /// elements were done. `table` must hold 65536 entries.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn geglu_avx2(x: &mut [f32], up: Option<&[f32]>, table: &[f32]) -> usize {
        debug_assert!(table.len() == 65536);
        let n = x.len() - x.len() % 8;
        let lo = _mm256_set1_ps(-10.0);
        let hi = _mm256_set1_ps(10.0);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len() (and up.len() == x.len()); every gathered
            // index is a u16 < 65536 = table.len().
            unsafe {
                let v = _mm256_loadu_ps(x.as_ptr().add(i));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                let idx = _mm256_cvtepu16_epi32(h);
                let g = _mm256_i32gather_ps::<4>(table.as_ptr(), idx);
                // x >= 10 keeps x; x <= -10 gives 0 (NaN compares false: table value).
                let big = _mm256_cmp_ps::<_CMP_GE_OQ>(v, hi);
                let small = _mm256_cmp_ps::<_CMP_LE_OQ>(v, lo);
                let g = _mm256_blendv_ps(g, v, big);
                let g = _mm256_andnot_ps(small, g);
                let r = match up {
                    Some(u) => _mm256_mul_ps(g, _mm256_loadu_ps(u.as_ptr().add(i))),
                    None => g,
                };
                _mm256_storeu_ps(x.as_mut_ptr().add(i), r);
            }
        }
        n
    }

    /// As [`geglu_avx2`] with 16 lanes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn geglu_avx512(x: &mut [f32], up: Option<&[f32]>, table: &[f32]) -> usize {
        debug_assert!(table.len() == 65536);
        let n = x.len() - x.len() % 16;
        let lo = _mm512_set1_ps(-10.0);
        let hi = _mm512_set1_ps(10.0);
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= x.len() (and up.len() == x.len()); every gathered
            // index is a u16 < 65536 = table.len().
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr().add(i));
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                let idx = _mm512_cvtepu16_epi32(h);
                let g = _mm512_i32gather_ps::<4>(idx, table.as_ptr());
                let big = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, hi);
                let small = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, lo);
                let g = _mm512_mask_blend_ps(big, g, v);
                let g = _mm512_mask_blend_ps(small, g, _mm512_setzero_ps());
                let r = match up {
                    Some(u) => _mm512_mul_ps(g, _mm512_loadu_ps(u.as_ptr().add(i))),
                    None => g,
                };
                _mm512_storeu_ps(x.as_mut_ptr().add(i), r);
            }
        }
        n
    }
}
