//! Plain floating-point rows: F32, F16, BF16 (one element per "block", little endian).
//!
//! Dots accumulate in f64 (ggml's scalar `ggml_vec_dot_{f32,f16,bf16}` accumulate in
//! `ggml_float` = double) over eight independent lanes, so the loop can be vectorized
//! without changing the result more than f64 rounding.

use crate::util::f16_bits_to_f32;

#[inline(always)]
fn f16_of(b: &[u8]) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

#[inline(always)]
fn bf16_of(b: &[u8]) -> f32 {
    f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
}

#[inline(always)]
fn f32_of(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn dequant_f32(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *y = f32_of(b);
    }
}

pub(crate) fn dequant_f16(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *y = f16_of(b);
    }
}

pub(crate) fn dequant_bf16(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *y = bf16_of(b);
    }
}

pub(crate) fn quant_f32(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

/// f32 → f16, round to nearest even (ggml's `GGML_FP32_TO_FP16`).
pub(crate) fn quant_f16(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&half::f16::from_f32(*x).to_le_bytes());
    }
}

/// f32 → bf16, round to nearest even, NaN kept quiet (ggml's `GGML_FP32_TO_BF16`).
pub(crate) fn quant_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&half::bf16::from_f32(*x).to_le_bytes());
    }
}

/// Elements decoded per step of the f16/bf16 dots.
const STEP: usize = 64;

/// f64 dot of two f32 slices of equal length, eight independent lanes (vectorizable).
#[inline(always)]
fn dot_f32_slices(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let ac = a.chunks_exact(8);
    let bc = b.chunks_exact(8);
    let tail: f64 = ac.remainder().iter().zip(bc.remainder()).map(|(&x, &y)| (x * y) as f64).sum();
    for (a8, b8) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += (a8[l] * b8[l]) as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Dot of two rows of a 2-byte float type: decode `STEP` elements of each into f32 stack
/// buffers (a simple loop the compiler vectorizes), then an f64-accumulated f32 dot.
#[inline(always)]
fn dot_half_rows(w: &[u8], x: &[u8], decode: fn(&[u8], &mut [f32])) -> f32 {
    let mut wf = [0.0f32; STEP];
    let mut xf = [0.0f32; STEP];
    let mut sum = 0.0f64;
    for (wc, xc) in w.chunks(2 * STEP).zip(x.chunks(2 * STEP)) {
        let n = wc.len() / 2;
        decode(wc, &mut wf[..n]);
        decode(xc, &mut xf[..n]);
        sum += dot_f32_slices(&wf[..n], &xf[..n]);
    }
    sum as f32
}

pub(crate) fn dot_f32(w: &[u8], x: &[u8]) -> f32 {
    let mut wf = [0.0f32; STEP];
    let mut xf = [0.0f32; STEP];
    let mut sum = 0.0f64;
    for (wc, xc) in w.chunks(4 * STEP).zip(x.chunks(4 * STEP)) {
        let n = wc.len() / 4;
        dequant_f32(wc, &mut wf[..n]);
        dequant_f32(xc, &mut xf[..n]);
        sum += dot_f32_slices(&wf[..n], &xf[..n]);
    }
    sum as f32
}

pub(crate) fn dot_f16(w: &[u8], x: &[u8]) -> f32 {
    dot_half_rows(w, x, dequant_f16)
}

pub(crate) fn dot_bf16(w: &[u8], x: &[u8]) -> f32 {
    dot_half_rows(w, x, dequant_bf16)
}
