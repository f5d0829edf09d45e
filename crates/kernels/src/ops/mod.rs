//! Elementwise and row operations of transformer forward passes, on f32, with ggml's CPU
//! numerics where they matter:
//!
//! - `rms_norm`: sum of squares accumulated in f64 (ggml's `ggml_float`), `scale =
//!   1 / sqrt(mean + eps)` in f32, `y = x * scale`; the weight is a separate `mul`, as in
//!   llama.cpp's graph (`rms_norm_weighted` fuses the two with the same rounding).
//! - `softmax_inplace`: max subtraction, `expf`, sum in f64, multiply by `(1/sum) as f32`.
//! - `rope`: ggml's rotation cache: `theta_scale = powf(base, -2 / n_rot)`, per-pair angle
//!   built by repeated f32 multiplication from the position, `freq_scale`, optional
//!   per-pair frequency factors and `attn_factor` (YaRN's ext_factor = 0 only).
//! - `gelu`: ggml's CPU backend evaluates GELU (tanh approximation) through a table over
//!   f16 inputs: the input is rounded to f16, `0.5x(1 + tanh(√(2/π)·x·(1 + 0.044715x²)))`
//!   computed in f32, the result rounded to f16; |x| ≥ 10 short-cuts to 0 or x. `gelu`
//!   reproduces exactly that (through the same 64 Ki-entry table, built once in a
//!   `OnceLock`); `gelu_exact_f32` is the formula without f16 rounding.
//! - `silu`: `x / (1 + expf(-x))`.
//! - `v_expf`, `exp_sub_ggml_inplace`, `silu_ggml`, `swiglu_ggml_inplace`: ggml's
//!   *vectorized* x86 numerics (`ggml_v_expf`, a degree-5 polynomial and a `scalef`,
//!   within about 1 ulp of `expf` but not always equal; `ggml_vec_swiglu_f32` uses it on
//!   whole chunks of 16 and `expf` on the tail), for forward passes that must match a peer
//!   built with AVX-512 bit for bit.
//!
//! **Speed without changing a bit.** Every public function computes exactly what its
//! scalar twin in [`scalar`] computes — the twins are the reference and the tests compare
//! the two bit for bit. The fast paths are chosen once at run time by the crate's one
//! CPU-feature detector ([`isa`], `cpu.rs`; so `JIKJI_ISA` lowers them too):
//! - loops whose arithmetic is already independent per element (scaling, `mul`, `add`,
//!   the rope rotation) are the same generic bodies compiled a second time with
//!   `#[target_feature(enable = "avx2,fma")]` (Rust never contracts `a * b + c` into an
//!   FMA nor reorders float sums, so the wider vectors give identical results);
//! - reductions and lookups are written with `std::arch` intrinsics in the exact order of
//!   the scalar twin: the rms sum of squares keeps its four f64 lanes, the GELU lookup
//!   converts to f16 with `vcvtps2ph` (round to nearest even, like `half`) and gathers
//!   from the table, and `v_expf` is ggml's AVX-512 sequence whose scalar twin reproduces
//!   each fused multiply-add and the single rounding of `scalef`;
//! - `expf` itself (softmax, `silu`) stays libm's, so those loops are only partly faster.
//!
//! Functions that take several buffers check their lengths and return [`KernelError`]
//! instead of panicking.
//!
//! **Layout.** One file per responsibility, each with its public functions, the scalar
//! twins of its fast paths (gathered in [`scalar`]) and its x86 kernels: `norms.rs` (RMS
//! norms), `elementwise.rs` (`mul`, `add`, `scale`), `softmax.rs`, `rope.rs`,
//! `activations.rs` (SiLU, SwiGLU, GELU, GeGLU), `vexp.rs` (ggml's vectorized `exp` and
//! what uses it) and `f16.rs` (f16 / bf16 rows). Every item keeps its `ops::` path.

use crate::KernelError;

fn size_err(what: &str, detail: String) -> KernelError {
    KernelError::Size(format!("{what}: {detail}"))
}

fn same_len(what: &str, a: usize, b: usize) -> Result<(), KernelError> {
    if a != b {
        return Err(size_err(what, format!("lengths differ ({a} vs {b})")));
    }
    Ok(())
}

fn check_rows(what: &str, len: usize, dim: usize) -> Result<(), KernelError> {
    if dim == 0 {
        if len == 0 {
            return Ok(());
        }
        return Err(size_err(what, "row width is 0".into()));
    }
    if len % dim != 0 {
        return Err(size_err(what, format!("{len} values are not whole rows of {dim}")));
    }
    Ok(())
}

// ------------------------------------------------------------------ dispatch

/// The instruction set the fast paths dispatch on: the crate's level ([`crate::isa`]),
/// detected once; `ops` uses its AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL) parts.
pub use crate::cpu::isa;

/// True when the AVX2 (+FMA, F16C) paths may run.
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn use_avx2() -> bool {
    isa().has_avx2()
}

/// True when the AVX-512 (F/BW/VL, on top of AVX2) paths may run.
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn use_avx512() -> bool {
    isa().has_avx512()
}

/// Runs the generic body `$body` compiled for AVX2+FMA when the CPU has it, else the
/// portable build of the same body. `$name` is a fresh wrapper name; arguments are typed.
macro_rules! multiversion {
    ($name:ident, $body:ident, ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
        #[inline]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if $crate::ops::use_avx2() {
                    // SAFETY: `use_avx2()` checked at run time that the CPU supports
                    // AVX2 and FMA, the features `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

mod activations;
mod elementwise;
mod f16;
mod norms;
mod rope;
mod softmax;
mod vexp;

pub use activations::{gelu, gelu_exact_f32, gelu_inplace, geglu, geglu_inplace, silu, silu_inplace, swiglu, swiglu_inplace};
pub use elementwise::{add_inplace, mul, mul_inplace, scale_inplace};
pub use f16::{bf16_to_f32_row, f16_to_f32_row, f32_to_bf16_row, f32_to_f16_row, round_f16_inplace};
pub use norms::{rms_norm, rms_norm_rows, rms_norm_weighted, rms_norm_weighted_inplace};
pub use rope::{rope, RopeMode, RopeParams};
pub use softmax::softmax_inplace;
pub use vexp::{exp_sub_ggml_inplace, silu_ggml, swiglu_ggml_inplace, v_expf};

/// The portable reference of every fast path in this module. Each function here is what
/// the dispatched public function must reproduce bit for bit (tests compare the two); each
/// is defined beside its fast path, in the file of its responsibility.
pub mod scalar {
    pub use super::activations::scalar::{geglu_inplace, gelu};
    pub use super::norms::scalar::{rms_norm_rows, rms_norm_weighted, sum_sq};
    pub use super::rope::scalar::rope;
    pub use super::softmax::scalar::{max_of, softmax_inplace};
    pub use super::vexp::scalar::{exp_sub_ggml_inplace, swiglu_ggml_inplace, v_expf};
}
