//! aarch64 NEON kernels for the legacy 32-element formats Q8_0·Q8_0, Q4_0·Q8_0 and
//! Q4_1·Q8_1 (other types use the scalar reference). Integer block sums are exact
//! (`vmull_s8` products fit i16, `vpadalq_s16` widens pairs into i32), and the f32 per-block
//! update is the scalar reference's, so results equal the scalar twin bit for bit.

#![allow(clippy::too_many_arguments)] // the shared `MatrixFn` signature

use super::MatrixFn;
use crate::util::f16_bits_to_f32;
use jikji_gguf::GgmlType;
use std::arch::aarch64::*;

#[inline(always)]
unsafe fn rd16(p: *const u8) -> f32 {
    // SAFETY: the caller passes the 2 bytes of a block's f16 (inside a whole block).
    unsafe {
        f16_bits_to_f32(u16::from_le_bytes([*p, *p.add(1)]))
    }
}

/// Σ a[i]·b[i] over 32 signed bytes given as two 16-byte halves each.
#[inline]
#[target_feature(enable = "neon")]
fn dot32(a0: int8x16_t, a1: int8x16_t, b0: int8x16_t, b1: int8x16_t) -> i32 {
    let mut acc = vdupq_n_s32(0);
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a0), vget_low_s8(b0)));
    acc = vpadalq_s16(acc, vmull_high_s8(a0, b0));
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a1), vget_low_s8(b1)));
    acc = vpadalq_s16(acc, vmull_high_s8(a1, b1));
    vaddvq_s32(acc)
}

/// The 32 nibbles of 16 packed bytes (low nibbles = elements 0..16) minus `offset`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(p: *const u8, offset: i8) -> (int8x16_t, int8x16_t) {
    // SAFETY: the caller passes a block's 16 packed nibble bytes.
    unsafe {
        let q = vld1q_u8(p);
        let lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
        let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
        let off = vdupq_n_s8(offset);
        (vsubq_s8(lo, off), vsubq_s8(hi, off))
    }
}

#[target_feature(enable = "neon")]
unsafe fn dot_q8_0(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: `w` and `x` hold `nb` whole Q8_0 blocks (34 bytes) each (the `MatrixFn` contract, per
    // row): block `b` starts at `34b`, and its scale (0..2) and two 16-byte quant halves (2..18,
    // 18..34) are inside it.
    unsafe {
        let mut sumf = 0.0f32;
        for b in 0..nb {
            let (pw, px) = (w.add(34 * b), x.add(34 * b));
            let a0 = vld1q_s8(pw.add(2) as *const i8);
            let a1 = vld1q_s8(pw.add(18) as *const i8);
            let b0 = vld1q_s8(px.add(2) as *const i8);
            let b1 = vld1q_s8(px.add(18) as *const i8);
            sumf += dot32(a0, a1, b0, b1) as f32 * (rd16(pw) * rd16(px));
        }
        sumf
    }
}

#[target_feature(enable = "neon")]
unsafe fn dot_q4_0(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: `w` holds `nb` whole Q4_0 blocks (18 bytes) and `x` `nb` Q8_0 blocks (34 bytes), per
    // the `MatrixFn` contract: every read (scales at 0..2, nibbles at 2..18, quants at 2..34) is
    // inside block `b`.
    unsafe {
        let mut sumf = 0.0f32;
        for b in 0..nb {
            let (pw, px) = (w.add(18 * b), x.add(34 * b));
            let (a0, a1) = nibbles(pw.add(2), 8);
            let b0 = vld1q_s8(px.add(2) as *const i8);
            let b1 = vld1q_s8(px.add(18) as *const i8);
            sumf += dot32(a0, a1, b0, b1) as f32 * rd16(pw) * rd16(px);
        }
        sumf
    }
}

#[target_feature(enable = "neon")]
unsafe fn dot_q4_1(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: `w` holds `nb` whole Q4_1 blocks (20 bytes) and `x` `nb` Q8_1 blocks (36 bytes), per
    // the `MatrixFn` contract: every read (two f16 at 0..4, nibbles at 4..20, quants at 4..36) is
    // inside block `b`.
    unsafe {
        let mut sumf = 0.0f32;
        for b in 0..nb {
            let (pw, px) = (w.add(20 * b), x.add(36 * b));
            let (a0, a1) = nibbles(pw.add(4), 0);
            let b0 = vld1q_s8(px.add(4) as *const i8);
            let b1 = vld1q_s8(px.add(20) as *const i8);
            let sumi = dot32(a0, a1, b0, b1);
            sumf += (rd16(pw) * rd16(px)) * sumi as f32 + rd16(pw.add(2)) * rd16(px.add(2));
        }
        sumf
    }
}

macro_rules! neon_matrix {
    ($name:ident, $dot:ident) => {
        #[target_feature(enable = "neon")]
        unsafe fn $name(
            w: *const u8,
            wrb: usize,
            x: *const u8,
            xrb: usize,
            nb: usize,
            rows: usize,
            toks: usize,
            out: *mut f32,
            rs: usize,
            ts: usize,
        ) {
            // SAFETY: the `MatrixFn` contract (validated by `matmul`): `w` holds `rows` rows of
            // `nb` blocks `wrb` apart, `x` `toks` rows `xrb` apart, and `out` an element at every
            // `r * rs + t * ts`; NEON is always present on aarch64 (`Isa::Neon`).
            unsafe {
                for r in 0..rows {
                    for t in 0..toks {
                        *out.add(r * rs + t * ts) = $dot(w.add(r * wrb), x.add(t * xrb), nb);
                    }
                }
            }
        }
    };
}

neon_matrix!(matrix_q8_0, dot_q8_0);
neon_matrix!(matrix_q4_0, dot_q4_0);
neon_matrix!(matrix_q4_1, dot_q4_1);

pub(crate) fn matrix_fn(ty: GgmlType) -> Option<MatrixFn> {
    let f: MatrixFn = match ty {
        GgmlType::Q8_0 => matrix_q8_0,
        GgmlType::Q4_0 => matrix_q4_0,
        GgmlType::Q4_1 => matrix_q4_1,
        _ => return None,
    };
    Some(f)
}
