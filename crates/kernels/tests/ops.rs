//! Forward-pass ops against direct f64 formulas.

#![allow(clippy::needless_range_loop)] // index loops mirror the layouts being pinned down

mod common;

use common::Rng;
use jikji_kernels::ops::*;

fn assert_close(got: &[f32], expect: &[f64], rel: f64, abs: f64, what: &str) {
    assert_eq!(got.len(), expect.len(), "{what}: length");
    for (i, (&g, &e)) in got.iter().zip(expect).enumerate() {
        assert!((g as f64 - e).abs() <= abs + rel * e.abs(), "{what}[{i}]: got {g}, expected {e}");
    }
}

#[test]
fn rms_norm_divides_by_root_mean_square() {
    let x = [1.0f32, 2.0, 3.0, 4.0, -5.0];
    for eps in [0.0f32, 1e-6, 0.5] {
        let mut out = [0.0f32; 5];
        rms_norm(&x, eps, &mut out).unwrap();
        let ms: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 5.0;
        let expect: Vec<f64> = x.iter().map(|&v| v as f64 / (ms + eps as f64).sqrt()).collect();
        assert_close(&out, &expect, 1e-6, 0.0, "rms_norm");
    }
}

#[test]
fn rms_norm_weighted_scales_each_row_then_multiplies_by_the_weight() {
    let mut rng = Rng::new(1);
    let (rows, dim) = (3, 37);
    let x = rng.vec(rows * dim, 4.0);
    let w = rng.vec(dim, 2.0);
    let mut out = vec![0.0f32; rows * dim];
    rms_norm_weighted(&x, &w, 1e-5, &mut out).unwrap();
    let mut inplace = x.clone();
    rms_norm_weighted_inplace(&mut inplace, &w, 1e-5).unwrap();
    assert_eq!(out, inplace);
    let mut plain = vec![0.0f32; rows * dim];
    rms_norm_rows(&x, dim, 1e-5, &mut plain).unwrap();
    mul_inplace(&mut plain, &w).unwrap();
    assert_eq!(out, plain, "fused = rms_norm then mul, bit for bit");
    for r in 0..rows {
        let xr = &x[r * dim..(r + 1) * dim];
        let ms: f64 = xr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / dim as f64;
        let expect: Vec<f64> = xr.iter().zip(&w).map(|(&v, &g)| v as f64 / (ms + 1e-5).sqrt() * g as f64).collect();
        assert_close(&out[r * dim..(r + 1) * dim], &expect, 1e-6, 1e-7, "rms_norm_weighted");
    }
}

#[test]
fn softmax_matches_exp_formula_and_sums_to_one() {
    let mut x = vec![1.0f32, 2.0, 3.0, -1.0, 0.5];
    let max = 3.0f64;
    let z: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
    let expect: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp() / z).collect();
    softmax_inplace(&mut x);
    assert_close(&x, &expect, 1e-6, 1e-9, "softmax");
    let s: f32 = x.iter().sum();
    assert!((s - 1.0).abs() < 1e-6);
}

#[test]
fn softmax_subtracts_the_max_so_large_logits_do_not_overflow() {
    let mut x = vec![1000.0f32, 1001.0, f32::NEG_INFINITY];
    softmax_inplace(&mut x);
    let e = (-1.0f64).exp();
    assert_close(&x, &[e / (1.0 + e), 1.0 / (1.0 + e), 0.0], 1e-6, 0.0, "softmax large");
}

#[test]
fn softmax_of_a_fully_masked_row_is_zero() {
    let mut x = vec![f32::NEG_INFINITY; 4];
    softmax_inplace(&mut x);
    assert_eq!(x, vec![0.0; 4]);
}

/// Direct formula: pair k rotates by angle pos * freq_scale * base^(-2k / n_rot).
#[allow(clippy::too_many_arguments)]
fn rope_reference(x: &[f32], n_heads: usize, head_dim: usize, positions: &[usize], mode: RopeMode, n_rot: usize, base: f64, freq_scale: f64) -> Vec<f64> {
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..n_heads {
            let o = (t * n_heads + h) * head_dim;
            for k in 0..n_rot / 2 {
                let theta = pos as f64 * freq_scale * base.powf(-2.0 * k as f64 / n_rot as f64);
                let (i, j) = match mode {
                    RopeMode::Norm => (o + 2 * k, o + 2 * k + 1),
                    RopeMode::Neox => (o + k, o + k + n_rot / 2),
                };
                let (a, b) = (x[i] as f64, x[j] as f64);
                y[i] = a * theta.cos() - b * theta.sin();
                y[j] = a * theta.sin() + b * theta.cos();
            }
        }
    }
    y
}

fn check_rope(mode: RopeMode, n_rot: usize, freq_scale: f32) {
    let mut rng = Rng::new(9);
    let (n_heads, head_dim) = (3, 16);
    let positions = [0usize, 1, 7, 40, 1023];
    let x = rng.vec(positions.len() * n_heads * head_dim, 1.0);
    let mut y = x.clone();
    let p = RopeParams { freq_scale, ..RopeParams::new(mode, n_rot, 10000.0) };
    rope(&mut y, positions.len(), n_heads, head_dim, &positions, &p).unwrap();
    let expect = rope_reference(&x, n_heads, head_dim, &positions, mode, n_rot, 10000.0, freq_scale as f64);
    // f32 angles at position 1023 carry ~1e-4 absolute error (ggml builds them the same way).
    assert_close(&y, &expect, 0.0, 2e-4, &format!("rope {mode:?} n_rot={n_rot}"));
    // Dimensions past n_rot are untouched, bit for bit; position 0 is the identity.
    for (i, (&a, &b)) in y.iter().zip(&x).enumerate() {
        if i % head_dim >= n_rot || i < n_heads * head_dim {
            assert_eq!(a, b, "element {i} should be unchanged");
        }
    }
}

#[test]
fn rope_norm_rotates_adjacent_pairs() {
    check_rope(RopeMode::Norm, 16, 1.0);
    check_rope(RopeMode::Norm, 10, 1.0);
}

#[test]
fn rope_neox_rotates_halves() {
    check_rope(RopeMode::Neox, 16, 1.0);
    check_rope(RopeMode::Neox, 12, 1.0);
}

#[test]
fn rope_freq_scale_slows_the_rotation() {
    check_rope(RopeMode::Neox, 16, 0.25);
    check_rope(RopeMode::Norm, 8, 0.5);
}

#[test]
fn rope_modes_differ() {
    let mut rng = Rng::new(4);
    let x = rng.vec(8, 1.0);
    let (mut a, mut b) = (x.clone(), x.clone());
    rope(&mut a, 1, 1, 8, &[3], &RopeParams::new(RopeMode::Norm, 8, 10000.0)).unwrap();
    rope(&mut b, 1, 1, 8, &[3], &RopeParams::new(RopeMode::Neox, 8, 10000.0)).unwrap();
    assert_ne!(a, b);
}

#[test]
fn rope_frequency_factors_divide_the_angles() {
    let mut rng = Rng::new(8);
    let x = rng.vec(8, 1.0);
    let ff = [1.0f32, 2.0, 4.0, 8.0];
    let mut y = x.clone();
    let p = RopeParams { freq_factors: Some(&ff), ..RopeParams::new(RopeMode::Norm, 8, 10000.0) };
    rope(&mut y, 1, 1, 8, &[5], &p).unwrap();
    let mut expect = vec![0.0f64; 8];
    for k in 0..4 {
        let theta = 5.0 * 10000f64.powf(-2.0 * k as f64 / 8.0) / ff[k] as f64;
        let (a, b) = (x[2 * k] as f64, x[2 * k + 1] as f64);
        expect[2 * k] = a * theta.cos() - b * theta.sin();
        expect[2 * k + 1] = a * theta.sin() + b * theta.cos();
    }
    assert_close(&y, &expect, 0.0, 1e-5, "rope freq factors");
}

fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * x * (1.0 + 0.044715 * x * x)).tanh())
}

#[test]
fn gelu_is_the_tanh_approximation_at_f16_precision() {
    let mut rng = Rng::new(12);
    for _ in 0..2000 {
        let x = rng.unit() * 12.0;
        let g = gelu(x);
        // f16 input rounding (2^-11 relative) moves the output by at most |gelu'| ≤ 1.13 times
        // that; output rounding adds 2^-11 relative.
        let e = gelu_f64(x as f64);
        let tol = 1.2 * 2f64.powi(-11) * (x as f64).abs() + 2f64.powi(-11) * e.abs() + 1e-7;
        assert!((g as f64 - e).abs() <= tol, "gelu({x}) = {g}, expected {e}");
        if x.abs() < 10.0 {
            assert_eq!(half::f16::from_f32(g).to_f32(), g, "gelu({x}) is an f16 value, as ggml's table gives");
        }
    }
    assert_eq!(gelu(-20.0), 0.0);
    assert_eq!(gelu(-10.0), 0.0);
    assert_eq!(gelu(10.0), 10.0);
    assert_eq!(gelu(0.0), 0.0);
    let exact = gelu_exact_f32(1.0) as f64;
    assert!((exact - gelu_f64(1.0)).abs() < 1e-6);
}

#[test]
fn silu_is_x_times_sigmoid() {
    let mut rng = Rng::new(13);
    let x = rng.vec(101, 20.0);
    let mut y = x.clone();
    silu_inplace(&mut y);
    let expect: Vec<f64> = x.iter().map(|&v| v as f64 / (1.0 + (-(v as f64)).exp())).collect();
    assert_close(&y, &expect, 1e-6, 1e-30, "silu");
}

#[test]
fn swiglu_and_geglu_gate_the_up_projection() {
    let mut rng = Rng::new(14);
    let g = rng.vec(67, 6.0);
    let u = rng.vec(67, 2.0);
    let mut out = vec![0.0f32; 67];
    swiglu(&g, &u, &mut out).unwrap();
    let mut inplace = g.clone();
    swiglu_inplace(&mut inplace, &u).unwrap();
    assert_eq!(out, inplace);
    for i in 0..67 {
        assert_eq!(out[i], silu(g[i]) * u[i]);
    }
    geglu(&g, &u, &mut out).unwrap();
    let mut inplace = g.clone();
    geglu_inplace(&mut inplace, &u).unwrap();
    assert_eq!(out, inplace);
    for i in 0..67 {
        assert_eq!(out[i], gelu(g[i]) * u[i]);
    }
}

#[test]
fn add_scale_and_mul_broadcast_rows() {
    let mut x = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    add_inplace(&mut x, &[10.0, 20.0, 30.0]).unwrap();
    assert_eq!(x, vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    scale_inplace(&mut x, 0.5);
    assert_eq!(x, vec![5.5, 11.0, 16.5, 7.0, 12.5, 18.0]);
    let mut out = vec![0.0f32; 6];
    mul(&x, &[2.0, 0.0], &mut out).unwrap();
    assert_eq!(out, vec![11.0, 0.0, 33.0, 0.0, 25.0, 0.0]);
    add_inplace(&mut x, &[1.0; 6]).unwrap();
    assert_eq!(x[0], 6.5);
}

#[test]
fn f16_and_bf16_row_conversions_round_to_nearest_even() {
    let src = [1.0f32, 1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), -2.5, 65504.0];
    let mut h = vec![half::f16::ZERO; 5];
    f32_to_f16_row(&src, &mut h).unwrap();
    let mut back = vec![0.0f32; 5];
    f16_to_f32_row(&h, &mut back).unwrap();
    // 1 + 2^-11 is a tie → even (1.0); 1 + 3·2^-11 is a tie → even (1 + 2^-9).
    assert_eq!(back, vec![1.0, 1.0, 1.0 + 2f32.powi(-9), -2.5, 65504.0]);
    let src = [1.0f32, 1.0 + 2f32.powi(-8), 3.0, -0.15625];
    let mut b = vec![half::bf16::ZERO; 4];
    f32_to_bf16_row(&src, &mut b).unwrap();
    bf16_to_f32_row(&b, &mut back[..4]).unwrap();
    assert_eq!(&back[..4], &[1.0, 1.0, 3.0, -0.15625]);
    assert!(f32_to_f16_row(&src, &mut h).is_err());
}
