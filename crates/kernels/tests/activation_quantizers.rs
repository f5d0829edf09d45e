//! Q8_0, Q8_1 and Q8_K quantizers (the activation types) produce exactly ggml's reference
//! bytes; expected bytes worked out by hand below.

mod common;

use common::quantize;
use jikji_kernels::GgmlType;

fn block32(vals: &[(usize, f32)]) -> Vec<f32> {
    let mut x = vec![0.0f32; 32];
    for &(i, v) in vals {
        x[i] = v;
    }
    x
}

#[test]
fn q8_0_with_max_127_has_d_1_and_rounds_half_away_from_zero() {
    // amax = 127 → d = 1 (f16 0x3C00), id = 1; roundf: -63.5 → -64, 0.5 → 1, -0.5 → -1,
    // 2.5 → 3, -126.49 → -126.
    let x = block32(&[(0, 127.0), (1, -63.5), (2, 0.5), (3, -0.5), (4, 2.5), (5, -126.49)]);
    let mut expect = vec![0x00, 0x3C, 127, (-64i8) as u8, 1, (-1i8) as u8, 3, (-126i8) as u8];
    expect.resize(34, 0);
    assert_eq!(quantize(GgmlType::Q8_0, &x), expect);
}

#[test]
fn q8_0_with_max_254_has_d_2() {
    // amax = 254 → d = 2 (f16 0x4000), id = 0.5: 3 → 1.5 → 2, -5 → -2.5 → -3, 1 → 0.5 → 1,
    // -254 → -127.
    let x = block32(&[(0, 3.0), (1, -5.0), (2, 1.0), (7, -254.0)]);
    let mut expect = vec![0x00, 0x40, 2, (-3i8) as u8, 1, 0, 0, 0, 0, (-127i8) as u8];
    expect.resize(34, 0);
    assert_eq!(quantize(GgmlType::Q8_0, &x), expect);
}

#[test]
fn q8_0_of_zeros_is_all_zero_bytes() {
    assert_eq!(quantize(GgmlType::Q8_0, &[0.0; 64]), vec![0u8; 68]);
}

#[test]
fn q8_1_stores_d_times_the_sum_of_quants() {
    // d = 1; quants 127, 1, -3, -1 (roundf(-0.5) = -1); sum 124 → s = f16(124) = 0x57C0.
    let x = block32(&[(0, 127.0), (1, 1.0), (2, -3.0), (3, -0.5)]);
    let mut expect = vec![0x00, 0x3C, 0xC0, 0x57, 127, 1, (-3i8) as u8, (-1i8) as u8];
    expect.resize(36, 0);
    assert_eq!(quantize(GgmlType::Q8_1, &x), expect);

    // d = 2; quants 127, 2 (1.5 → 2), -1 (-0.5 → -1); sum 128 → s = f16(256) = 0x5C00.
    let x = block32(&[(0, 254.0), (1, 3.0), (2, -1.0)]);
    let mut expect = vec![0x00, 0x40, 0x00, 0x5C, 127, 2, (-1i8) as u8];
    expect.resize(36, 0);
    assert_eq!(quantize(GgmlType::Q8_1, &x), expect);
}

fn block256(vals: &[(usize, f32)]) -> Vec<f32> {
    let mut x = vec![0.0f32; 256];
    for &(i, v) in vals {
        x[i] = v;
    }
    x
}

fn q8_k_bytes(d: f32, q: &[(usize, i8)]) -> Vec<u8> {
    let mut qs = [0i8; 256];
    for &(i, v) in q {
        qs[i] = v;
    }
    let mut b = d.to_le_bytes().to_vec();
    b.extend(qs.iter().map(|&v| v as u8));
    for j in 0..16 {
        let s: i32 = qs[16 * j..16 * j + 16].iter().map(|&v| v as i32).sum();
        b.extend((s as i16).to_le_bytes());
    }
    b
}

#[test]
fn q8_k_with_positive_max_127_negates_quants_and_rounds_ties_to_even() {
    // max = +127 → iscale = -127 / 127 = -1, d = 1 / iscale = -1: quants are -x rounded to
    // nearest even: -0.5 → 0, -1.5 → -2, -2.5 → -2. bsums[0] = -127 - 1 + 2 + 0 - 2 - 2.
    let x = block256(&[(0, 127.0), (1, 1.0), (2, -2.0), (3, 0.5), (4, 1.5), (5, 2.5), (16, -3.0)]);
    let expect = q8_k_bytes(-1.0, &[(0, -127), (1, -1), (2, 2), (3, 0), (4, -2), (5, -2), (16, 3)]);
    let got = quantize(GgmlType::Q8_K, &x);
    assert_eq!(got, expect);
    assert_eq!(&got[260..264], &[0x7E, 0xFF, 0x03, 0x00], "bsums -130 and 3");
}

#[test]
fn q8_k_with_negative_max_has_positive_scale() {
    // max = -63.5 → iscale = 2, d = 0.5: 10 → 20, 0.25 → 0.5 → 0, 0.75 → 1.5 → 2.
    let x = block256(&[(0, -63.5), (1, 10.0), (2, 0.25), (3, 0.75), (255, -1.25)]);
    let expect = q8_k_bytes(0.5, &[(0, -127), (1, 20), (2, 0), (3, 2), (255, -2)]);
    assert_eq!(quantize(GgmlType::Q8_K, &x), expect);
}

#[test]
fn q8_k_of_zeros_is_all_zero_bytes() {
    assert_eq!(quantize(GgmlType::Q8_K, &[0.0; 256]), vec![0u8; 292]);
}
