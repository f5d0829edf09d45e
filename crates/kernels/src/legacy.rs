//! The 32-element "legacy" block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//!
//! Byte layouts (little endian, as ggml's `ggml-common.h` declares them):
//!
//! | type | bytes | fields |
//! |---|---|---|
//! | Q4_0 | 18 | `d: f16`, `qs: [u8; 16]` (element `j` in the low nibble of `qs[j]`, element `j+16` in the high nibble); value = `d * (q - 8)` |
//! | Q4_1 | 20 | `d: f16`, `m: f16`, `qs: [u8; 16]`; value = `d * q + m` |
//! | Q5_0 | 22 | `d: f16`, `qh: u32` (bit `j` = 5th bit of element `j`), `qs: [u8; 16]`; value = `d * (q - 16)` |
//! | Q5_1 | 24 | `d: f16`, `m: f16`, `qh: u32`, `qs: [u8; 16]`; value = `d * q + m` |
//! | Q8_0 | 34 | `d: f16`, `qs: [i8; 32]`; value = `d * q` |
//! | Q8_1 | 36 | `d: f16`, `s: f16` (= `d * sum(qs)`), `qs: [i8; 32]`; value = `d * q` |
//!
//! All functions here take slices already validated to hold whole blocks (the public entry
//! points in `lib.rs` check lengths); the dot products follow ggml's scalar reference: an
//! exact integer sum per block, then one f32 multiply-add per block in the same order.

use crate::util::{f32_to_f16_bytes, nearest_i8_roundf, rd_f16};

pub(crate) const QK: usize = 32;
pub(crate) const Q4_0_BYTES: usize = 18;
pub(crate) const Q4_1_BYTES: usize = 20;
pub(crate) const Q5_0_BYTES: usize = 22;
pub(crate) const Q5_1_BYTES: usize = 24;
pub(crate) const Q8_0_BYTES: usize = 34;
pub(crate) const Q8_1_BYTES: usize = 36;

// ---------------------------------------------------------------- dequantize

pub(crate) fn dequant_q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q4_0_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(b, 0);
        let qs = &b[2..18];
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((q, y0), y1) in qs.iter().zip(lo.iter_mut()).zip(hi.iter_mut()) {
            *y0 = ((q & 0x0F) as i32 - 8) as f32 * d;
            *y1 = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub(crate) fn dequant_q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q4_1_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(b, 0);
        let m = rd_f16(b, 2);
        let qs = &b[4..20];
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((q, y0), y1) in qs.iter().zip(lo.iter_mut()).zip(hi.iter_mut()) {
            *y0 = (q & 0x0F) as f32 * d + m;
            *y1 = (q >> 4) as f32 * d + m;
        }
    }
}

/// Spreads the 8 bits of `b` into the 8 bytes of a u64, each byte 16 if its bit is set
/// (bit i → byte i), else 0.
#[inline(always)]
fn spread_bits_x16(b: u8) -> u64 {
    const LANES: u64 = 0x8040_2010_0804_0201;
    let x = (b as u64).wrapping_mul(0x0101_0101_0101_0101) & LANES; // byte i keeps bit i
    // A non-zero byte (a single bit ≤ 0x80) plus 0x7f reaches 0x80..=0xff without carrying.
    (((x + 0x7f7f_7f7f_7f7f_7f7f) >> 7) & 0x0101_0101_0101_0101) << 4
}

/// The 32 five-bit values of a Q5 block minus `offset`, in element order: element `j < 16`
/// is the low nibble of `qs[j]` plus 16 if bit `j` of `qh` is set; element `j + 16` the
/// high nibble plus 16 if bit `j + 16` is set.
#[inline(always)]
fn q5_values(qh: &[u8], qs: &[u8], offset: i8) -> [i8; QK] {
    let mut h = [0u8; QK];
    for (chunk, &byte) in h.chunks_exact_mut(8).zip(qh) {
        chunk.copy_from_slice(&spread_bits_x16(byte).to_le_bytes());
    }
    let mut v = [0i8; QK];
    let (lo, hi) = v.split_at_mut(QK / 2);
    let (hlo, hhi) = h.split_at(QK / 2);
    for j in 0..QK / 2 {
        lo[j] = ((qs[j] & 0x0F) | hlo[j]) as i8 - offset;
        hi[j] = ((qs[j] >> 4) | hhi[j]) as i8 - offset;
    }
    v
}

pub(crate) fn dequant_q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q5_0_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(b, 0);
        let v = q5_values(&b[2..6], &b[6..22], 16);
        for (y, q) in y.iter_mut().zip(v) {
            *y = q as f32 * d;
        }
    }
}

pub(crate) fn dequant_q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q5_1_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(b, 0);
        let m = rd_f16(b, 2);
        let v = q5_values(&b[4..8], &b[8..24], 0);
        for (y, q) in y.iter_mut().zip(v) {
            *y = q as f32 * d + m;
        }
    }
}

pub(crate) fn dequant_q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q8_0_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[2..34]) {
            *y = q as i8 as f32 * d;
        }
    }
}

pub(crate) fn dequant_q8_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q8_1_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[4..36]) {
            *y = q as i8 as f32 * d;
        }
    }
}

// ---------------------------------------------------------------- quantize

/// The element of largest magnitude, with its sign (first one wins on ties), as ggml's
/// symmetric quantizers pick it.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    (min, max)
}

/// ggml's reference Q4_0 quantizer: `d = max / -8`, `q = min(15, trunc(x / d + 8.5))`.
pub(crate) fn quant_q4_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q4_0_BYTES)) {
        let (_, max) = signed_absmax(x);
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
        for j in 0..QK / 2 {
            let q0 = ((x[j] * id + 8.5) as i8).clamp(0, 15) as u8;
            let q1 = ((x[j + QK / 2] * id + 8.5) as i8).clamp(0, 15) as u8;
            b[2 + j] = q0 | (q1 << 4);
        }
    }
}

/// ggml's reference Q4_1 quantizer: `d = (max - min) / 15`, `m = min`.
pub(crate) fn quant_q4_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q4_1_BYTES)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
        b[2..4].copy_from_slice(&f32_to_f16_bytes(min));
        for j in 0..QK / 2 {
            let q0 = (((x[j] - min) * id + 0.5) as i8).clamp(0, 15) as u8;
            let q1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).clamp(0, 15) as u8;
            b[4 + j] = q0 | (q1 << 4);
        }
    }
}

fn pack_q5(q: &[u8; QK], qh_out: &mut [u8], qs_out: &mut [u8]) {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let (q0, q1) = (q[j], q[j + QK / 2]);
        qs_out[j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    qh_out.copy_from_slice(&qh.to_le_bytes());
}

/// ggml's reference Q5_0 quantizer: `d = max / -16`, `q = min(31, trunc(x / d + 16.5))`.
pub(crate) fn quant_q5_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q5_0_BYTES)) {
        let (_, max) = signed_absmax(x);
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((v * id + 16.5) as i8).clamp(0, 31) as u8;
        }
        let (qh, qs) = b[2..].split_at_mut(4);
        pack_q5(&q, qh, qs);
    }
}

/// ggml's reference Q5_1 quantizer: `d = (max - min) / 31`, `m = min`.
pub(crate) fn quant_q5_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q5_1_BYTES)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
        b[2..4].copy_from_slice(&f32_to_f16_bytes(min));
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (((v - min) * id + 0.5) as i8).clamp(0, 31) as u8;
        }
        let (qh, qs) = b[4..].split_at_mut(4);
        pack_q5(&q, qh, qs);
    }
}

/// ggml's `quantize_row_q8_0_ref`, bit for bit: `d = amax / 127` (stored as f16),
/// `q = roundf(x * (1/d))` (half away from zero), with the f32 `d`, not the f16 one.
pub(crate) fn quant_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q8_0_BYTES)) {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
        for (q, &v) in b[2..34].iter_mut().zip(x) {
            *q = nearest_i8_roundf(v * id) as u8;
        }
    }
}

/// ggml's `quantize_row_q8_1_ref`, bit for bit: as Q8_0, plus `s = f16(d * sum(q))`.
pub(crate) fn quant_q8_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q8_1_BYTES)) {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
        let mut sum = 0i32;
        for (q, &v) in b[4..36].iter_mut().zip(x) {
            let qi = nearest_i8_roundf(v * id);
            sum += qi as i32;
            *q = qi as u8;
        }
        b[2..4].copy_from_slice(&f32_to_f16_bytes(sum as f32 * d));
    }
}

// ---------------------------------------------------------------- dot products

#[inline(always)]
fn dot_i8_i8(a: &[u8], b: &[u8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i8 as i32 * y as i8 as i32).sum()
}

/// Sum over a block of `w_nibble[j] * y[j]` with nibbles unpacked as in Q4_x, `offset`
/// subtracted from every nibble.
#[inline(always)]
fn dot_nibbles(qs: &[u8], y: &[u8], offset: i32) -> i32 {
    let (ylo, yhi) = y.split_at(QK / 2);
    let mut s0 = 0i32;
    let mut s1 = 0i32;
    for ((&q, &a), &b) in qs.iter().zip(ylo).zip(yhi) {
        s0 += ((q & 0x0F) as i32 - offset) * a as i8 as i32;
        s1 += ((q >> 4) as i32 - offset) * b as i8 as i32;
    }
    s0 + s1
}

pub(crate) fn dot_q4_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q4_0_BYTES).zip(x.chunks_exact(Q8_0_BYTES)) {
        let sumi = dot_nibbles(&bw[2..18], &bx[2..34], 8);
        sumf += sumi as f32 * rd_f16(bw, 0) * rd_f16(bx, 0);
    }
    sumf
}

pub(crate) fn dot_q4_1_q8_1(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q4_1_BYTES).zip(x.chunks_exact(Q8_1_BYTES)) {
        let sumi = dot_nibbles(&bw[4..20], &bx[4..36], 0);
        sumf += (rd_f16(bw, 0) * rd_f16(bx, 0)) * sumi as f32 + rd_f16(bw, 2) * rd_f16(bx, 2);
    }
    sumf
}

#[inline(always)]
fn dot_i8_i8v(a: &[i8; QK], b: &[u8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i8 as i32).sum()
}

pub(crate) fn dot_q5_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q5_0_BYTES).zip(x.chunks_exact(Q8_0_BYTES)) {
        let v = q5_values(&bw[2..6], &bw[6..22], 16);
        let sumi = dot_i8_i8v(&v, &bx[2..34]);
        sumf += (rd_f16(bw, 0) * rd_f16(bx, 0)) * sumi as f32;
    }
    sumf
}

pub(crate) fn dot_q5_1_q8_1(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q5_1_BYTES).zip(x.chunks_exact(Q8_1_BYTES)) {
        let v = q5_values(&bw[4..8], &bw[8..24], 0);
        let sumi = dot_i8_i8v(&v, &bx[4..36]);
        sumf += (rd_f16(bw, 0) * rd_f16(bx, 0)) * sumi as f32 + rd_f16(bw, 2) * rd_f16(bx, 2);
    }
    sumf
}

pub(crate) fn dot_q8_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q8_0_BYTES).zip(x.chunks_exact(Q8_0_BYTES)) {
        let sumi = dot_i8_i8(&bw[2..34], &bx[2..34]);
        sumf += sumi as f32 * (rd_f16(bw, 0) * rd_f16(bx, 0));
    }
    sumf
}

/// Q8_1 weights are unusual (ggml uses Q8_1 only for activations) but dot like Q8_0.
pub(crate) fn dot_q8_1_q8_1(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q8_1_BYTES).zip(x.chunks_exact(Q8_1_BYTES)) {
        let sumi = dot_i8_i8(&bw[4..36], &bx[4..36]);
        sumf += sumi as f32 * (rd_f16(bw, 0) * rd_f16(bx, 0));
    }
    sumf
}
