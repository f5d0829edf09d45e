//! The 256-element "K-quant" super-block formats: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the
//! activation format Q8_K.
//!
//! Byte layouts (little endian, field order of ggml's `ggml-common.h`, `QK_K = 256`):
//!
//! | type | bytes | fields |
//! |---|---|---|
//! | Q2_K | 84 | `scales: [u8; 16]` (low nibble scale, high nibble min, per 16 elements), `qs: [u8; 64]`, `d: f16`, `dmin: f16` |
//! | Q3_K | 110 | `hmask: [u8; 32]`, `qs: [u8; 64]`, `scales: [u8; 12]` (16 six-bit scales, biased by 32), `d: f16` |
//! | Q4_K | 144 | `d: f16`, `dmin: f16`, `scales: [u8; 12]` (8 six-bit scales + 8 six-bit mins), `qs: [u8; 128]` |
//! | Q5_K | 176 | `d: f16`, `dmin: f16`, `scales: [u8; 12]`, `qh: [u8; 32]`, `qs: [u8; 128]` |
//! | Q6_K | 210 | `ql: [u8; 128]`, `qh: [u8; 64]`, `scales: [i8; 16]`, `d: f16` |
//! | Q8_K | 292 | `d: f32`, `qs: [i8; 256]`, `bsums: [i16; 16]` (sums of 16 quants) |
//!
//! Design: each weight format has one `*_values` unpacker giving the 256 small integers of
//! a super-block in element order, and one scale unpacker. Dequantize and dot share them,
//! so the two can never disagree about bit positions. The dot products then follow ggml's
//! scalar reference (`ggml-cpu/quants.c`): exact integer sums per super-block, eight f32
//! lane accumulators (`sums[l] += d * aux32[l]`) reduced at the end, and the min term
//! through Q8_K's `bsums`.
//!
//! The weight quantizers are simple, correct reference quantizers (min/max per sub-block,
//! scales quantized relative to the super-block scale); they do not run ggml's iterative
//! error search, so files they write are valid but slightly less accurate than llama.cpp's.
//! The Q8_K quantizer is ggml's reference bit for bit (it decides activation numerics).

use crate::util::{f32_to_f16_bytes, nearest_int, rd_f16, rd_f32};

pub(crate) const QK_K: usize = 256;
pub(crate) const Q2_K_BYTES: usize = 84;
pub(crate) const Q3_K_BYTES: usize = 110;
pub(crate) const Q4_K_BYTES: usize = 144;
pub(crate) const Q5_K_BYTES: usize = 176;
pub(crate) const Q6_K_BYTES: usize = 210;
pub(crate) const Q8_K_BYTES: usize = 292;

// ---------------------------------------------------------------- unpacking

/// Q2_K quants (0..=3) in element order: element `128*n + 32*j + l` is bits `2j..2j+2` of
/// `qs[32*n + l]`.
#[inline]
fn q2k_values(qs: &[u8]) -> [i8; QK_K] {
    let mut a = [0i8; QK_K];
    for n in 0..2 {
        let q = &qs[32 * n..32 * n + 32];
        for j in 0..4 {
            let out = &mut a[128 * n + 32 * j..128 * n + 32 * j + 32];
            for (o, &b) in out.iter_mut().zip(q) {
                *o = ((b >> (2 * j)) & 3) as i8;
            }
        }
    }
    a
}

/// Q3_K quants (-4..=3): two low bits as Q2_K, minus 4 unless the element's `hmask` bit
/// (bit `e / 32` of `hmask[e % 32]`) is set.
#[inline]
fn q3k_values(hmask: &[u8], qs: &[u8]) -> [i8; QK_K] {
    let mut a = q2k_values(qs);
    for (c, chunk) in a.chunks_exact_mut(32).enumerate() {
        let bit = 1u8 << c;
        for (v, &h) in chunk.iter_mut().zip(hmask) {
            *v -= if h & bit == 0 { 4 } else { 0 };
        }
    }
    a
}

/// Q3_K's sixteen 6-bit scales, bias (32) removed. Low nibbles sit in bytes 0..8 (scales
/// 0..8 low nibble, 8..16 high nibble), the two high bits of scale `j` in byte `8 + j % 4`
/// at bit `2 * (j / 4)`.
#[inline]
fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0F } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = ((low | (high << 4)) as i32 - 32) as i8;
    }
    out
}

/// Q4_K/Q5_K's eight 6-bit (scale, min) pairs (ggml's `get_scale_min_k4`).
#[inline]
fn k4_scale_min(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = q[j] & 63;
            m[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
    (sc, m)
}

/// Q4_K quants (0..=15): for each 64-element chunk `c`, the first 32 are the low nibbles of
/// `qs[32c..32c+32]`, the next 32 the high nibbles.
#[inline]
fn q4k_values(qs: &[u8]) -> [i8; QK_K] {
    let mut a = [0i8; QK_K];
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        let (lo, hi) = a[64 * c..64 * c + 64].split_at_mut(32);
        for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(q) {
            *l = (b & 0x0F) as i8;
            *h = (b >> 4) as i8;
        }
    }
    a
}

/// Q5_K quants (0..=31): Q4_K's nibbles plus 16 if bit `e / 32` of `qh[e % 32]` is set.
#[inline]
fn q5k_values(qh: &[u8], qs: &[u8]) -> [i8; QK_K] {
    let mut a = q4k_values(qs);
    for (c, chunk) in a.chunks_exact_mut(32).enumerate() {
        let bit = 1u8 << c;
        for (v, &h) in chunk.iter_mut().zip(qh) {
            *v += if h & bit != 0 { 16 } else { 0 };
        }
    }
    a
}

/// Q6_K quants (-32..=31). Per 128-element half `n` (ql offset 64n, qh offset 32n), for
/// `l < 32`: elements `l`, `l+32`, `l+64`, `l+96` take the low nibble of `ql[l]`, the low
/// nibble of `ql[l+32]`, the high nibble of `ql[l]`, the high nibble of `ql[l+32]`, and
/// bit pairs 0, 2, 4, 6 of `qh[l]` as their top two bits.
#[inline]
fn q6k_values(ql: &[u8], qh: &[u8]) -> [i8; QK_K] {
    let mut a = [0i8; QK_K];
    for n in 0..2 {
        let ql = &ql[64 * n..64 * n + 64];
        let qh = &qh[32 * n..32 * n + 32];
        let out = &mut a[128 * n..128 * n + 128];
        for l in 0..32 {
            let h = qh[l];
            out[l] = ((ql[l] & 0x0F) | ((h & 3) << 4)) as i8 - 32;
            out[l + 32] = ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) as i8 - 32;
            out[l + 64] = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    a
}

// ---------------------------------------------------------------- dequantize

pub(crate) fn dequant_q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q2_K_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let sc = &b[0..16];
        let a = q2k_values(&b[16..80]);
        let d = rd_f16(b, 80);
        let min = rd_f16(b, 82);
        for ((y, a), &s) in y.chunks_exact_mut(16).zip(a.chunks_exact(16)).zip(sc) {
            let dl = d * (s & 0x0F) as f32;
            let ml = min * (s >> 4) as f32;
            for (y, &q) in y.iter_mut().zip(a) {
                *y = dl * q as f32 - ml;
            }
        }
    }
}

pub(crate) fn dequant_q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q3_K_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let a = q3k_values(&b[0..32], &b[32..96]);
        let sc = q3k_scales(&b[96..108]);
        let d_all = rd_f16(b, 108);
        for ((y, a), &s) in y.chunks_exact_mut(16).zip(a.chunks_exact(16)).zip(&sc) {
            let dl = d_all * s as f32;
            for (y, &q) in y.iter_mut().zip(a) {
                *y = dl * q as f32;
            }
        }
    }
}

fn dequant_k4_like(y: &mut [f32], a: &[i8; QK_K], d: f32, min: f32, scales: &[u8]) {
    let (sc, m) = k4_scale_min(scales);
    for (j, (y, a)) in y.chunks_exact_mut(32).zip(a.chunks_exact(32)).enumerate() {
        let d1 = d * sc[j] as f32;
        let m1 = min * m[j] as f32;
        for (y, &q) in y.iter_mut().zip(a) {
            *y = d1 * q as f32 - m1;
        }
    }
}

pub(crate) fn dequant_q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q4_K_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let a = q4k_values(&b[16..144]);
        dequant_k4_like(y, &a, rd_f16(b, 0), rd_f16(b, 2), &b[4..16]);
    }
}

pub(crate) fn dequant_q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q5_K_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let a = q5k_values(&b[16..48], &b[48..176]);
        dequant_k4_like(y, &a, rd_f16(b, 0), rd_f16(b, 2), &b[4..16]);
    }
}

pub(crate) fn dequant_q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q6_K_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let a = q6k_values(&b[0..128], &b[128..192]);
        let d = rd_f16(b, 208);
        for ((y, a), &s) in y.chunks_exact_mut(16).zip(a.chunks_exact(16)).zip(&b[192..208]) {
            let ds = d * (s as i8) as f32;
            for (y, &q) in y.iter_mut().zip(a) {
                *y = ds * q as f32;
            }
        }
    }
}

pub(crate) fn dequant_q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q8_K_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = rd_f32(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[4..260]) {
            *y = d * (q as i8) as f32;
        }
    }
}

// ---------------------------------------------------------------- quantize

/// ggml's `quantize_row_q8_K_ref`, bit for bit: `iscale = -127 / max` where `max` is the
/// signed element of largest magnitude, `q = min(127, nearest_int(iscale * x))`,
/// `d = 1 / iscale` (f32), `bsums` the sums of each 16 quants.
pub(crate) fn quant_q8_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q8_K_BYTES)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            // ggml leaves bsums untouched here; zero them so the block is deterministic.
            b.fill(0);
            continue;
        }
        let iscale = -127.0f32 / max;
        for (q, &v) in b[4..260].iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        for j in 0..16 {
            let sum: i32 = b[4 + 16 * j..4 + 16 * j + 16].iter().map(|&q| q as i8 as i32).sum();
            b[260 + 2 * j..262 + 2 * j].copy_from_slice(&(sum as i16).to_le_bytes());
        }
        b[0..4].copy_from_slice(&(1.0f32 / iscale).to_le_bytes());
    }
}

/// Asymmetric sub-block scales: for each sub-block, `(scale, -min)` with `min` clamped to
/// at most 0 so that every value is `scale * q - minv` with `q >= 0`.
fn sub_scale_min(x: &[f32], sub: usize, levels: f32) -> (Vec<f32>, Vec<f32>) {
    let mut scales = Vec::with_capacity(x.len() / sub);
    let mut mins = Vec::with_capacity(x.len() / sub);
    for c in x.chunks_exact(sub) {
        let min = c.iter().fold(f32::MAX, |a, &v| a.min(v)).min(0.0);
        let max = c.iter().fold(-f32::MAX, |a, &v| a.max(v));
        scales.push(((max - min) / levels).max(0.0));
        mins.push(-min);
    }
    (scales, mins)
}

/// Quantizes non-negative `v` relative to `vmax` onto `0..=top`; returns (codes, step).
fn quantize_scales(v: &[f32], top: i32) -> (Vec<u8>, f32) {
    let vmax = v.iter().fold(0.0f32, |a, &s| a.max(s));
    let inv = if vmax > 0.0 { top as f32 / vmax } else { 0.0 };
    let codes = v.iter().map(|&s| nearest_int(inv * s).clamp(0, top) as u8).collect();
    (codes, vmax / top as f32)
}

/// Asymmetric element codes `clamp(round((x + m) / d), 0, top)`.
#[inline]
fn code_asym(x: f32, d: f32, m: f32, top: i32) -> i32 {
    if d == 0.0 {
        0
    } else {
        nearest_int((x + m) / d).clamp(0, top)
    }
}

/// Symmetric element codes `clamp(round(x / d), lo, hi)`.
#[inline]
fn code_sym(x: f32, d: f32, lo: i32, hi: i32) -> i32 {
    if d == 0.0 {
        0
    } else {
        nearest_int(x / d).clamp(lo, hi)
    }
}

/// Packs 256 2-bit codes as Q2_K/Q3_K `qs`.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for n in 0..2 {
        for i in 0..32 {
            let e = 128 * n + i;
            qs[32 * n + i] = l[e] | (l[e + 32] << 2) | (l[e + 64] << 4) | (l[e + 96] << 6);
        }
    }
}

pub(crate) fn quant_q2_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q2_K_BYTES)) {
        let (scales, mins) = sub_scale_min(x, 16, 3.0);
        let (ls, d) = quantize_scales(&scales, 15);
        let (lm, dmin) = quantize_scales(&mins, 15);
        b[80..82].copy_from_slice(&f32_to_f16_bytes(d));
        b[82..84].copy_from_slice(&f32_to_f16_bytes(dmin));
        let (d, dmin) = (rd_f16(b, 80), rd_f16(b, 82));
        let mut l = [0u8; QK_K];
        for (j, (xs, ls_out)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            b[j] = ls[j] | (lm[j] << 4);
            let (dl, ml) = (d * ls[j] as f32, dmin * lm[j] as f32);
            for (o, &v) in ls_out.iter_mut().zip(xs) {
                *o = code_asym(v, dl, ml, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b[16..80]);
    }
}

pub(crate) fn quant_q3_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q3_K_BYTES)) {
        b.fill(0);
        // Symmetric sub-block scales chosen so the extreme value maps to -4.
        let mut scales = [0.0f32; 16];
        for (s, c) in scales.iter_mut().zip(x.chunks_exact(16)) {
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in c {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            *s = max / -4.0;
        }
        let (mut amax, mut max_scale) = (0.0f32, 0.0f32);
        for &s in &scales {
            if s.abs() > amax {
                amax = s.abs();
                max_scale = s;
            }
        }
        let iscale = if amax > 0.0 { -32.0 / max_scale } else { 0.0 };
        let d = if amax > 0.0 { 1.0 / iscale } else { 0.0 };
        b[108..110].copy_from_slice(&f32_to_f16_bytes(d));
        let d = rd_f16(b, 108);
        let mut l = [0u8; QK_K];
        for (j, (xs, lo)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let ls = nearest_int(iscale * scales[j]).clamp(-32, 31);
            let u = (ls + 32) as u8;
            if j < 8 {
                b[96 + j] |= u & 0x0F;
            } else {
                b[96 + j - 8] |= (u & 0x0F) << 4;
            }
            b[96 + 8 + j % 4] |= (u >> 4) << (2 * (j / 4));
            let dl = d * ls as f32;
            for (o, &v) in lo.iter_mut().zip(xs) {
                *o = (code_sym(v, dl, -4, 3) + 4) as u8;
            }
        }
        for (e, v) in l.iter_mut().enumerate() {
            if *v > 3 {
                b[e % 32] |= 1 << (e / 32);
                *v -= 4;
            }
        }
        pack_2bit(&l, &mut b[32..96]);
    }
}

/// Q4_K/Q5_K shared part: writes d, dmin and the 12 scale bytes; returns the 256 codes.
fn quant_k4_like(x: &[f32], b: &mut [u8], top: i32) -> [u8; QK_K] {
    let (scales, mins) = sub_scale_min(x, 32, top as f32);
    let (ls, d) = quantize_scales(&scales, 63);
    let (lm, dmin) = quantize_scales(&mins, 63);
    b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
    b[2..4].copy_from_slice(&f32_to_f16_bytes(dmin));
    let sb = &mut b[4..16];
    sb.fill(0);
    for j in 0..8 {
        if j < 4 {
            sb[j] = ls[j];
            sb[j + 4] = lm[j];
        } else {
            sb[j + 4] = (ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4);
            sb[j - 4] |= (ls[j] >> 4) << 6;
            sb[j] |= (lm[j] >> 4) << 6;
        }
    }
    let (d, dmin) = (rd_f16(b, 0), rd_f16(b, 2));
    let mut l = [0u8; QK_K];
    for (j, (xs, lo)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let (dl, ml) = (d * ls[j] as f32, dmin * lm[j] as f32);
        for (o, &v) in lo.iter_mut().zip(xs) {
            *o = code_asym(v, dl, ml, top) as u8;
        }
    }
    l
}

fn pack_nibbles_k(l: &[u8; QK_K], qs: &mut [u8]) {
    for c in 0..4 {
        for i in 0..32 {
            qs[32 * c + i] = (l[64 * c + i] & 0x0F) | ((l[64 * c + 32 + i] & 0x0F) << 4);
        }
    }
}

pub(crate) fn quant_q4_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q4_K_BYTES)) {
        let l = quant_k4_like(x, b, 15);
        pack_nibbles_k(&l, &mut b[16..144]);
    }
}

pub(crate) fn quant_q5_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q5_K_BYTES)) {
        let l = quant_k4_like(x, b, 31);
        let qh = &mut b[16..48];
        qh.fill(0);
        for (e, &v) in l.iter().enumerate() {
            if v > 15 {
                qh[e % 32] |= 1 << (e / 32);
            }
        }
        pack_nibbles_k(&l, &mut b[48..176]);
    }
}

pub(crate) fn quant_q6_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q6_K_BYTES)) {
        let mut scales = [0.0f32; 16];
        for (s, c) in scales.iter_mut().zip(x.chunks_exact(16)) {
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in c {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            *s = max / -32.0;
        }
        let (mut amax, mut max_scale) = (0.0f32, 0.0f32);
        for &s in &scales {
            if s.abs() > amax {
                amax = s.abs();
                max_scale = s;
            }
        }
        let iscale = if amax > 0.0 { -128.0 / max_scale } else { 0.0 };
        let d = if amax > 0.0 { 1.0 / iscale } else { 0.0 };
        b[208..210].copy_from_slice(&f32_to_f16_bytes(d));
        let d = rd_f16(b, 208);
        let mut l = [0u8; QK_K];
        for (j, (xs, lo)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let ls = nearest_int(iscale * scales[j]).clamp(-128, 127);
            b[192 + j] = ls as i8 as u8;
            let dl = d * ls as f32;
            for (o, &v) in lo.iter_mut().zip(xs) {
                *o = (code_sym(v, dl, -32, 31) + 32) as u8;
            }
        }
        let (ql, rest) = b.split_at_mut(128);
        let qh = &mut rest[0..64];
        for n in 0..2 {
            for i in 0..32 {
                let e = 128 * n + i;
                let (q1, q2, q3, q4) = (l[e], l[e + 32], l[e + 64], l[e + 96]);
                ql[64 * n + i] = (q1 & 0x0F) | ((q3 & 0x0F) << 4);
                ql[64 * n + i + 32] = (q2 & 0x0F) | ((q4 & 0x0F) << 4);
                qh[32 * n + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
    }
}

// ---------------------------------------------------------------- dot products

/// Q8_K fields of one block: (d, quants as i8, bsums).
#[inline]
fn q8k_parts(b: &[u8]) -> (f32, [i8; QK_K], [i16; 16]) {
    let mut q = [0i8; QK_K];
    for (o, &v) in q.iter_mut().zip(&b[4..260]) {
        *o = v as i8;
    }
    let mut bs = [0i16; 16];
    for (j, o) in bs.iter_mut().enumerate() {
        *o = i16::from_le_bytes([b[260 + 2 * j], b[261 + 2 * j]]);
    }
    (rd_f32(b, 0), q, bs)
}

/// ggml's eight integer lanes: `aux32[l] = sum_g scale16[g / 2] * a[8g + l] * q8[8g + l]`
/// over the 32 groups of 8 elements (`scale16` holds one scale per 16 elements). Written
/// per 16-element sub-block with fixed-size arrays so it vectorizes; integer sums are exact,
/// so the lane values are identical to ggml's loop order.
#[inline(always)]
fn lanes(a: &[i8; QK_K], q8: &[i8; QK_K], scale16: &[i32; 16]) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for ((a16, q16), &s) in a.chunks_exact(16).zip(q8.chunks_exact(16)).zip(scale16) {
        // |a| ≤ 32 and |q8| ≤ 128, so products fit in i16 (ggml's `aux16`); scales fit in
        // i16 too, which lets the compiler use 16-bit multiplies.
        let mut p = [0i16; 16];
        for ((p, &x), &y) in p.iter_mut().zip(a16).zip(q16) {
            *p = x as i16 * y as i16;
        }
        let s = s as i16 as i32;
        for l in 0..8 {
            aux32[l] += s * p[l] as i32 + s * p[l + 8] as i32;
        }
    }
    aux32
}

#[inline]
fn add_lanes(sums: &mut [f32; 8], d: f32, aux32: &[i32; 8]) {
    for (s, &a) in sums.iter_mut().zip(aux32) {
        *s += d * a as f32;
    }
}

pub(crate) fn dot_q2_k_q8_k(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q2_K_BYTES).zip(x.chunks_exact(Q8_K_BYTES)) {
        let (yd, q8, bsums) = q8k_parts(bx);
        let sc = &bw[0..16];
        let summs: i32 = bsums.iter().zip(sc).map(|(&s, &c)| s as i32 * (c >> 4) as i32).sum();
        let dall = yd * rd_f16(bw, 80);
        let dmin = yd * rd_f16(bw, 82);
        let a = q2k_values(&bw[16..80]);
        let mut isum = 0i32;
        for ((ag, qg), &c) in a.chunks_exact(16).zip(q8.chunks_exact(16)).zip(sc) {
            let isuml: i32 = ag.iter().zip(qg).map(|(&a, &q)| a as i32 * q as i32).sum();
            isum += (c & 0x0F) as i32 * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

pub(crate) fn dot_q3_k_q8_k(w: &[u8], x: &[u8]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (bw, bx) in w.chunks_exact(Q3_K_BYTES).zip(x.chunks_exact(Q8_K_BYTES)) {
        let (yd, q8, _) = q8k_parts(bx);
        let a = q3k_values(&bw[0..32], &bw[32..96]);
        let sc = q3k_scales(&bw[96..108]);
        let scale16: [i32; 16] = std::array::from_fn(|j| sc[j] as i32);
        // `lanes` indexes scale16 by group/2 = element/16, which is Q3_K's scale granularity.
        let aux32 = lanes(&a, &q8, &scale16);
        add_lanes(&mut sums, rd_f16(bw, 108) * yd, &aux32);
    }
    sums.iter().fold(0.0f32, |a, &s| a + s)
}

fn dot_k4_like(w_blocks: &[u8], x: &[u8], bytes: usize, values: impl Fn(&[u8]) -> [i8; QK_K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (bw, bx) in w_blocks.chunks_exact(bytes).zip(x.chunks_exact(Q8_K_BYTES)) {
        let (yd, q8, bsums) = q8k_parts(bx);
        let a = values(bw);
        let (sc, m) = k4_scale_min(&bw[4..16]);
        let sumi: i32 = bsums.iter().enumerate().map(|(j, &s)| s as i32 * m[j / 2] as i32).sum();
        let scale16: [i32; 16] = std::array::from_fn(|j| sc[j / 2] as i32);
        let aux32 = lanes(&a, &q8, &scale16);
        add_lanes(&mut sums, rd_f16(bw, 0) * yd, &aux32);
        let dmin = rd_f16(bw, 2) * yd;
        sumf -= dmin * sumi as f32;
    }
    sums.iter().fold(sumf, |a, &s| a + s)
}

pub(crate) fn dot_q4_k_q8_k(w: &[u8], x: &[u8]) -> f32 {
    dot_k4_like(w, x, Q4_K_BYTES, |b| q4k_values(&b[16..144]))
}

pub(crate) fn dot_q5_k_q8_k(w: &[u8], x: &[u8]) -> f32 {
    dot_k4_like(w, x, Q5_K_BYTES, |b| q5k_values(&b[16..48], &b[48..176]))
}

pub(crate) fn dot_q6_k_q8_k(w: &[u8], x: &[u8]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (bw, bx) in w.chunks_exact(Q6_K_BYTES).zip(x.chunks_exact(Q8_K_BYTES)) {
        let (yd, q8, _) = q8k_parts(bx);
        let a = q6k_values(&bw[0..128], &bw[128..192]);
        let scale16: [i32; 16] = std::array::from_fn(|j| bw[192 + j] as i8 as i32);
        let aux32 = lanes(&a, &q8, &scale16);
        add_lanes(&mut sums, rd_f16(bw, 208) * yd, &aux32);
    }
    sums.iter().fold(0.0f32, |a, &s| a + s)
}

/// Q8_K weights are not produced by llama.cpp (Q8_K is an activation format); supported
/// for completeness as `sum(d_w * d_x * sumi)` per block.
pub(crate) fn dot_q8_k_q8_k(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (bw, bx) in w.chunks_exact(Q8_K_BYTES).zip(x.chunks_exact(Q8_K_BYTES)) {
        let sumi: i32 = bw[4..260].iter().zip(&bx[4..260]).map(|(&a, &b)| a as i8 as i32 * b as i8 as i32).sum();
        sumf += (rd_f32(bw, 0) * rd_f32(bx, 0)) * sumi as f32;
    }
    sumf
}
