//! SIMD kernels, one module per instruction set, each the twin of a scalar reference in
//! `legacy.rs` / `kquants.rs` / `fp.rs` (tested against it in `tests/simd_vs_scalar.rs`).
//!
//! The interface is deliberately small and pointer-based, so matmul can hand a kernel a
//! whole tile of rows × tokens at once:
//!
//! - a [`MatrixFn`] computes `rows × toks` dot products of weight rows (`wrb` bytes apart,
//!   `nb` blocks each) with activation rows (`xrb` bytes apart, already quantized to
//!   `vec_dot_type`) and writes output (r, t) to `out[r * rs + t * ts]`;
//! - a [`QuantFn`] quantizes whole blocks of activations (Q8_0, Q8_1, Q8_K), producing the
//!   same bytes as the scalar reference quantizer.
//!
//! Both are `unsafe fn`s compiled with `#[target_feature]`: calling one is sound only on a
//! CPU that supports the [`Isa`] it was looked up for, with buffers of the sizes above.
//! Types without a SIMD kernel return `None` and the caller uses the scalar reference.
//!
//! `x86/` holds one file per format family (each expanded into the three x86 levels) and
//! the fixed-feature kernels of `peer_order`; `neon.rs` the aarch64 kernels.

use crate::cpu::Isa;
use jikji_gguf::GgmlType;

/// `(w, wrb, x, xrb, nb, rows, toks, out, rs, ts)`; see the module docs.
pub(crate) type MatrixFn = unsafe fn(*const u8, usize, *const u8, usize, usize, usize, usize, *mut f32, usize, usize);

/// `(src, dst)`: whole blocks, `dst.len() == row_bytes(ty, src.len())`.
pub(crate) type QuantFn = unsafe fn(&[f32], &mut [u8]);

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

#[cfg(target_arch = "aarch64")]
mod neon;

/// The matrix kernel of weight type `ty` at level `isa`, if there is one. The caller must
/// only call it when `isa.is_supported()`.
pub(crate) fn matrix_fn(isa: Isa, ty: GgmlType) -> Option<MatrixFn> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => x86::avx512vnni::matrix_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::avx512::matrix_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2::matrix_fn(ty),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::matrix_fn(ty),
        _ => {
            let _ = ty;
            None
        }
    }
}

/// The activation quantizer for `ty` at level `isa`, if there is one (same contract).
pub(crate) fn quant_fn(isa: Isa, ty: GgmlType) -> Option<QuantFn> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => x86::avx512vnni::quant_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::avx512::quant_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2::quant_fn(ty),
        _ => {
            let _ = ty;
            None
        }
    }
}
