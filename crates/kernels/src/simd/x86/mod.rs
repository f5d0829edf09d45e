//! x86_64 kernels: AVX2+FMA+F16C, the same with AVX-512 enabled (32 vector registers), and
//! the same with AVX-512 VNNI. One macro body is compiled three times with different
//! `target_feature` sets, so the three levels can never drift apart.
//!
//! **Numerics = ggml's x86 build.** Each quantized dot reproduces the operation order of
//! ggml's AVX2 path (which its AVX-512 builds use too): per block, eight i32 lanes (lane `i`
//! sums the products of elements `4i..4i+4` of every 32-element chunk, times the chunk's
//! sub-scale for K-quants), converted to f32 and accumulated with `acc = fma(d, lanes,
//! acc)`; at the end `hsum_float_8` plus the separately accumulated min/sum terms. Integer
//! lane sums are exact however they are formed (maddubs+madd, or VNNI `vpdpbusd`/
//! `vpdpwssd`), so every level gives bit-identical results, and the same as llama.cpp.
//! Signed×signed products (Q4_0, Q5_0, Q8_0 against Q8_0): without VNNI ggml's `sign` trick
//! (|w| × sign(w)·y, which like ggml assumes activation quants in -127..=127, what every
//! quantizer writes); with VNNI the activation is offset to unsigned once per token
//! (y + 128) and the lane starts at -128·Σw (computed once per weight block), so one
//! `vpdpbusd` gives Σ w·y exactly.
//!
//! **Tiles.** `Kern` splits a format into `unpack` (a weight block into registers, once per
//! tile), `prep` (an activation block, once per tile and token: scale broadcast, offset) and
//! `step` (one pair). `tile::<K, R, T>` runs R weight rows × T tokens over all blocks, so
//! each weight block is unpacked once per T tokens and each activation block prepared once
//! per R rows. Every (row, token)
//! output still sees exactly the single-dot sequence of operations, so results do not depend
//! on the tiling or on the number of tokens in a batch.
//!
//! **Big tiles and decoding.** With AVX-512 (32 registers) and 8+ tokens, the legacy
//! formats run `matrix_signed` / `matrix_unsigned`: 8 rows unpacked once per call into
//! scratch, 8 × 3 tiles, the `d_w·d_x` products of a block formed 8 rows per vector in a
//! first pass and read back as `{1to8}` broadcasts folded into the FMAs. One token runs one
//! row at a time (a single sequential stream, prefetched ahead); with VNNI the signed
//! formats then use `gemv_signed`: weights as unsigned `q + 2^k` against the lane start
//! `-2^k·Σy`, formed once per activation block, so the per-row work is the dot alone. All
//! of these give each output exactly the single dot's integer lanes and float operations.
//!
//! The activation quantizers (Q8_0, Q8_1, Q8_K) reproduce the scalar reference quantizers
//! byte for byte (same f32 operations, `roundf` rebuilt from truncation, ties-to-even where
//! the reference uses `nearest_int`).
//!
//! **Layout.** One file per format family, each a `macro_rules!` body (`x86_common!`,
//! `x86_legacy!`, `x86_legacy_big!`, `x86_kquants!`, `x86_float!`, `x86_quant!`) that
//! `x86_level!` below expands, in this order, into each level module: the families share
//! one namespace per level (the tiles call every format's `Kern`), but each file reads as
//! one format family. `peer.rs` / `peer_vnni.rs` are the fixed-feature kernels of
//! [`crate::peer_order`]. Every kernel's scalar reference stays in `legacy.rs`,
//! `kquants.rs`, `fp.rs` or `peer_order.rs` at the crate root.
//!
//! **Safety.** A level's `unsafe fn`s may only run on a CPU with its features: the
//! dispatch (`simd::matrix_fn` / `quant_fn`) hands out a level's kernels only for
//! `Isa::is_supported` levels, and the VNNI-only instructions sit behind `if $vnni` (through
//! the `unsafe fn` wrappers `dpbusd` / `dpwssd`, so the other levels' dead copies stay
//! honest). Pointer arguments follow the `MatrixFn` contract (see `simd/mod.rs`; `matmul`
//! validates the sizes), and every helper that takes a pointer documents the bytes it
//! reads, always within one block of those rows; each `// SAFETY:` comment names the part
//! of that contract its block relies on. Helpers on values alone (`hsum8`, `dot_us`, the
//! quantizers' vector arithmetic, ...) are safe `#[target_feature]` functions.

// AVX-512 intrinsics are stable since Rust 1.89, newer than the workspace's declared
// rust-version (1.80); the crate needs 1.89 to build on x86_64 anyway.
#![allow(clippy::incompatible_msrv)]

#[macro_use]
mod common;
#[macro_use]
mod float;
#[macro_use]
mod kquants;
#[macro_use]
mod legacy;
#[macro_use]
mod legacy_big;
#[macro_use]
mod quant;

// The fixed-feature kernels of `peer_order` (its fold orders, not `vec_dot`'s).
pub(crate) mod peer;

/// F16 weights in llamafile tinyBLAS's order (`crate::tiled_f16`), AVX-512.
///
/// # Safety
/// The CPU has AVX-512 (F, DQ, VL) with F16C and FMA; `w` holds `rows` rows of `nb` f16
/// `wrb` bytes apart, `xf` `toks` rows of `nb` f32, `nb % 16 == 0`, and `out` an element at
/// every `r * rs + t * ts`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tiled_f16(w: *const u8, wrb: usize, xf: *const f32, nb: usize, rows: usize, toks: usize, out: *mut f32, rs: usize, ts: usize) {
    // SAFETY: forwarded from this function's contract.
    unsafe { float::f512::tiled_f16(w, wrb, xf, nb, rows, toks, out, rs, ts) }
}
pub(crate) mod peer_vnni;

/// One level module: every family's items expanded with the level's features, in one
/// namespace (the families call each other's helpers by name), plus the dispatch table.
macro_rules! x86_level {
    ($modname:ident, $feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
        pub(crate) mod $modname {
            // Kernel entry points share one pointer-based signature (`MatrixFn`).
            #![allow(clippy::too_many_arguments)]
            use super::super::{MatrixFn, QuantFn};
            use crate::util::f32_to_f16_bytes;
            use jikji_gguf::GgmlType;
            use std::arch::x86_64::*;

            x86_common!($feat, vnni = $vnni, avx512 = $avx512);
            x86_legacy!($feat, vnni = $vnni, avx512 = $avx512);
            x86_legacy_big!($feat, vnni = $vnni, avx512 = $avx512);
            x86_kquants!($feat, vnni = $vnni, avx512 = $avx512);
            x86_float!($feat, vnni = $vnni, avx512 = $avx512);
            x86_quant!($feat, vnni = $vnni, avx512 = $avx512);

            /// The matrix kernel for weights of type `ty` (against `vec_dot_type(ty)`).
            pub(crate) fn matrix_fn(ty: GgmlType) -> Option<MatrixFn> {
                let f: MatrixFn = match ty {
                    GgmlType::Q4_0 => gemv_signed::<Q4_0>,
                    GgmlType::Q4_1 => matrix_unsigned::<Q4_1>,
                    GgmlType::Q5_0 => gemv_signed::<Q5_0>,
                    GgmlType::Q5_1 => matrix_unsigned::<Q5_1>,
                    GgmlType::Q8_0 => gemv_signed::<Q8_0>,
                    GgmlType::Q4_K => matrix::<Q4K, 2, 4>,
                    GgmlType::Q5_K => matrix::<Q5K, 2, 4>,
                    GgmlType::Q6_K => matrix::<Q6K, 2, 4>,
                    GgmlType::F32 => matrix_f32,
                    GgmlType::F16 => matrix_f16,
                    _ => return None,
                };
                Some(f)
            }
        }
    };
}

x86_level!(avx2, "avx2,fma,f16c", vnni = false, avx512 = false);
x86_level!(avx512, "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl", vnni = false, avx512 = true);
x86_level!(avx512vnni, "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni", vnni = true, avx512 = true);
