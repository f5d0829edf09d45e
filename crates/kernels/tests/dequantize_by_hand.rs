//! Dequantization of blocks assembled byte by byte from ggml's documented layouts, against
//! values worked out by hand (all chosen to be exact in f32, so comparisons are exact).

#![allow(clippy::needless_range_loop)] // index loops mirror the layouts being pinned down

mod common;

use common::dequantize;
use jikji_kernels::GgmlType;

fn f16b(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

#[test]
fn f32_row_reads_little_endian_floats() {
    let mut b = Vec::new();
    for v in [1.5f32, -2.0, 0.0, 3.25] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(dequantize(GgmlType::F32, &b, 4), vec![1.5, -2.0, 0.0, 3.25]);
}

#[test]
fn f16_row_decodes_known_bit_patterns() {
    // 0x3C00 = 1.0, 0xC000 = -2.0, 0x3800 = 0.5, 0x7BFF = 65504 (max), 0x0001 = 2^-24.
    let bits: [u16; 5] = [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001];
    let b: Vec<u8> = bits.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::F16, &b, 5), vec![1.0, -2.0, 0.5, 65504.0, 2.0f32.powi(-24)]);
}

#[test]
fn bf16_row_is_the_top_half_of_an_f32() {
    // 0x3F80 = 1.0, 0xC040 = -3.0, 0x4049 = 3.140625.
    let bits: [u16; 3] = [0x3F80, 0xC040, 0x4049];
    let b: Vec<u8> = bits.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::BF16, &b, 3), vec![1.0, -3.0, 3.140625]);
}

/// qs[j] = j (low nibble) | (15 - j) << 4 (high nibble).
fn ramp_nibbles() -> Vec<u8> {
    (0..16u8).map(|j| j | ((15 - j) << 4)).collect()
}

#[test]
fn q4_0_block_with_d_half_and_ramp_nibbles() {
    let mut b = f16b(0.5).to_vec();
    b.extend(ramp_nibbles());
    let y = dequantize(GgmlType::Q4_0, &b, 32);
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.5, "low nibble {j}");
        assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5, "high nibble {j}");
    }
}

#[test]
fn q4_1_block_adds_the_min() {
    let mut b = f16b(0.25).to_vec();
    b.extend(f16b(-1.0));
    b.extend(ramp_nibbles());
    let y = dequantize(GgmlType::Q4_1, &b, 32);
    for j in 0..16 {
        assert_eq!(y[j], j as f32 * 0.25 - 1.0);
        assert_eq!(y[j + 16], (15 - j) as f32 * 0.25 - 1.0);
    }
}

/// qh = 0xFFFF_5555: elements 0..16 get a fifth bit when even, elements 16..32 always.
fn fifth_bit(e: usize) -> u32 {
    if e < 16 {
        u32::from(e % 2 == 0) * 16
    } else {
        16
    }
}

#[test]
fn q5_0_block_takes_the_fifth_bit_from_qh() {
    let mut b = f16b(1.0).to_vec();
    b.extend(0xFFFF_5555u32.to_le_bytes());
    b.extend(ramp_nibbles());
    let y = dequantize(GgmlType::Q5_0, &b, 32);
    for e in 0..32 {
        let nib = if e < 16 { e as u32 } else { 15 - (e as u32 - 16) };
        let q = (nib + fifth_bit(e)) as f32 - 16.0;
        assert_eq!(y[e], q, "element {e}");
    }
}

#[test]
fn q5_1_block_takes_the_fifth_bit_and_adds_the_min() {
    let mut b = f16b(0.5).to_vec();
    b.extend(f16b(2.0));
    b.extend(0xFFFF_5555u32.to_le_bytes());
    b.extend(ramp_nibbles());
    let y = dequantize(GgmlType::Q5_1, &b, 32);
    for e in 0..32 {
        let nib = if e < 16 { e as u32 } else { 15 - (e as u32 - 16) };
        let q = (nib + fifth_bit(e)) as f32;
        assert_eq!(y[e], q * 0.5 + 2.0, "element {e}");
    }
}

#[test]
fn q8_0_block_is_scale_times_signed_bytes() {
    let mut b = f16b(0.25).to_vec();
    b.extend((0..32).map(|j| (j as i8 - 16) as u8));
    let y = dequantize(GgmlType::Q8_0, &b, 32);
    for (j, v) in y.iter().enumerate() {
        assert_eq!(*v, (j as f32 - 16.0) * 0.25);
    }
}

#[test]
fn q8_1_block_ignores_the_sum_field() {
    let mut b = f16b(2.0).to_vec();
    b.extend(f16b(1234.0)); // s: only used by dot products
    b.extend((0..32).map(|j| (3 * j - 50) as i8 as u8));
    let y = dequantize(GgmlType::Q8_1, &b, 32);
    for (j, v) in y.iter().enumerate() {
        assert_eq!(*v, (3 * j as i32 - 50) as f32 * 2.0);
    }
}

/// With every qs byte = 0b11_10_01_00, the 2-bit code of element e is (e % 128) / 32.
const QS_E4: u8 = 0xE4;

#[test]
fn q2_k_block_with_per_16_scales_and_mins() {
    // scales[j]: low nibble = 1 + j % 15 (scale), high nibble = j % 4 (min).
    let scales: Vec<u8> = (0..16).map(|j| (1 + j % 15) as u8 | (((j % 4) as u8) << 4)).collect();
    let mut b = scales.clone();
    b.extend([QS_E4; 64]);
    b.extend(f16b(0.5));
    b.extend(f16b(0.25));
    let y = dequantize(GgmlType::Q2_K, &b, 256);
    for e in 0..256 {
        let j = e / 16;
        let q = ((e % 128) / 32) as f32;
        let expect = 0.5 * (1 + j % 15) as f32 * q - 0.25 * (j % 4) as f32;
        assert_eq!(y[e], expect, "element {e}");
    }
}

#[test]
fn q3_k_block_with_hmask_and_packed_6bit_scales() {
    // hmask bytes 0b0101_0101: the high bit of element e is set iff e / 32 is even, and a
    // clear high bit subtracts 4.
    let mut b = vec![0x55u8; 32];
    b.extend([QS_E4; 64]);
    // scales: low nibbles 3 (scales 0..8) and 5 (scales 8..16) in bytes 0..8; bytes 8..12 =
    // 0b11_10_01_00 put high bits j / 4 on scale j. So the 6-bit scales are
    // 3, 19, 37, 53 for j in 0..4, 4..8, 8..12, 12..16; minus the bias 32: -29, -13, 5, 21.
    b.extend([0x53u8; 8]);
    b.extend([0xE4u8; 4]);
    b.extend(f16b(0.5));
    let y = dequantize(GgmlType::Q3_K, &b, 256);
    let sc = [-29.0f32, -13.0, 5.0, 21.0];
    for e in 0..256 {
        let low = ((e % 128) / 32) as f32;
        let q = if (e / 32) % 2 == 0 { low } else { low - 4.0 };
        let expect = 0.5 * sc[(e / 16) / 4] * q;
        assert_eq!(y[e], expect, "element {e}");
    }
}

/// Q4_K/Q5_K scale bytes: q[0..4] = 0x41, q[4..8] = 0x82, q[8..12] = 0x53 give
/// (scale, min) = (1, 2) for sub-blocks 0..4 and (3 | 1 << 4, 5 | 2 << 4) = (19, 37) for 4..8.
fn k4_scales() -> Vec<u8> {
    let mut s = vec![0x41u8; 4];
    s.extend([0x82u8; 4]);
    s.extend([0x53u8; 4]);
    s
}

fn k4_scale_min(j: usize) -> (f32, f32) {
    if j < 4 {
        (1.0, 2.0)
    } else {
        (19.0, 37.0)
    }
}

#[test]
fn q4_k_block_with_6bit_scales_and_mins() {
    let mut b = f16b(0.5).to_vec();
    b.extend(f16b(0.125));
    b.extend(k4_scales());
    b.extend([0x7Cu8; 128]); // low nibble 12, high nibble 7
    let y = dequantize(GgmlType::Q4_K, &b, 256);
    for e in 0..256 {
        let (sc, m) = k4_scale_min(e / 32);
        let q = if e % 64 < 32 { 12.0 } else { 7.0 };
        assert_eq!(y[e], 0.5 * sc * q - 0.125 * m, "element {e}");
    }
}

#[test]
fn q5_k_block_adds_16_from_qh() {
    let mut b = f16b(0.25).to_vec();
    b.extend(f16b(0.5));
    b.extend(k4_scales());
    b.extend([0xAAu8; 32]); // bit e / 32 set iff e / 32 is odd
    b.extend([0x7Cu8; 128]);
    let y = dequantize(GgmlType::Q5_K, &b, 256);
    for e in 0..256 {
        let (sc, m) = k4_scale_min(e / 32);
        let nib = if e % 64 < 32 { 12.0 } else { 7.0 };
        let q = if (e / 32) % 2 == 1 { nib + 16.0 } else { nib };
        assert_eq!(y[e], 0.25 * sc * q - 0.5 * m, "element {e}");
    }
}

#[test]
fn q6_k_block_with_split_low_and_high_bits() {
    // ql bytes 0x9A (low nibble 10, high 9); qh bytes 0b11_10_01_00 give the four
    // 32-element quarters of each 128 top bits 0, 1, 2, 3:
    // quants 10-32 = -22, (10 | 16)-32 = -6, (9 | 32)-32 = 9, (9 | 48)-32 = 25.
    let mut b = vec![0x9Au8; 128];
    b.extend([0xE4u8; 64]);
    b.extend((0..16).map(|j| (j as i8 - 8) as u8));
    b.extend(f16b(0.25));
    let y = dequantize(GgmlType::Q6_K, &b, 256);
    let quarter = [-22.0f32, -6.0, 9.0, 25.0];
    for e in 0..256 {
        let sc = (e / 16) as f32 - 8.0;
        assert_eq!(y[e], 0.25 * sc * quarter[(e % 128) / 32], "element {e}");
    }
}

#[test]
fn q8_k_block_has_an_f32_scale() {
    let mut b = 0.5f32.to_le_bytes().to_vec();
    b.extend((0..256).map(|j| (j - 128) as i8 as u8));
    b.extend([0u8; 32]);
    let y = dequantize(GgmlType::Q8_K, &b, 256);
    for (j, v) in y.iter().enumerate() {
        assert_eq!(*v, (j as f32 - 128.0) * 0.5);
    }
}

#[test]
fn several_blocks_dequantize_independently() {
    // Two Q8_0 blocks with different scales.
    let mut b = f16b(1.0).to_vec();
    b.extend([1u8; 32]);
    b.extend(f16b(-2.0));
    b.extend([3u8; 32]);
    let y = dequantize(GgmlType::Q8_0, &b, 64);
    assert!(y[..32].iter().all(|&v| v == 1.0));
    assert!(y[32..].iter().all(|&v| v == -6.0));
}
