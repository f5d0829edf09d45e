//! The dispatched (SIMD) ops against their scalar twins in `ops::scalar`: bit for bit, on
//! seeded random rows of odd lengths (tails of every size), extreme values and, for GELU,
//! every f16 input. On a CPU without AVX2 both sides run the portable code and the tests
//! still pin the public numerics.

mod common;

use common::Rng;
use jikji_kernels::ops::{self, scalar, RopeMode, RopeParams};

/// Lengths covering empty rows, every tail of 8 and 16 lanes, and model-sized rows.
const LENGTHS: [usize; 14] = [0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 100, 576, 1031];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Random values with a spread of magnitudes (tiny, normal, large) and a few exact zeros.
fn spread(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 7 {
            0 => rng.unit() * 1e-20,
            3 => rng.unit() * 300.0,
            5 => 0.0,
            _ => rng.unit() * 4.0,
        })
        .collect()
}

#[test]
fn simd_isa_is_detected_once_and_reported() {
    let isa = ops::isa();
    assert_eq!(isa, ops::isa());
    eprintln!("ops ISA: {isa:?}");
}

#[test]
fn sum_of_squares_rms_norms_equal_the_scalar_twin_bit_for_bit() {
    let mut rng = Rng::new(11);
    for &dim in &LENGTHS[1..] {
        for rows in [1, 3] {
            let x = spread(&mut rng, rows * dim);
            let w = rng.vec(dim, 2.0);
            let mut fast = vec![0.0f32; x.len()];
            let mut slow = vec![0.0f32; x.len()];
            ops::rms_norm_weighted(&x, &w, 1e-6, &mut fast).unwrap();
            scalar::rms_norm_weighted(&x, &w, 1e-6, &mut slow);
            assert_eq!(bits(&fast), bits(&slow), "rms_norm_weighted dim {dim}");
            let mut inplace = x.clone();
            ops::rms_norm_weighted_inplace(&mut inplace, &w, 1e-6).unwrap();
            assert_eq!(bits(&inplace), bits(&slow), "rms_norm_weighted_inplace dim {dim}");
            ops::rms_norm_rows(&x, dim, 1e-5, &mut fast).unwrap();
            scalar::rms_norm_rows(&x, dim, 1e-5, &mut slow);
            assert_eq!(bits(&fast), bits(&slow), "rms_norm_rows dim {dim}");
        }
    }
}

#[test]
fn rms_norm_of_extreme_rows_matches_the_scalar_twin() {
    for row in [vec![0.0f32; 37], vec![f32::MAX; 19], vec![1e-38f32; 64], vec![-3.0e38, 3.0e38, 1.0]] {
        let w = vec![1.5f32; row.len()];
        let mut fast = vec![0.0f32; row.len()];
        let mut slow = vec![0.0f32; row.len()];
        ops::rms_norm_weighted(&row, &w, 1e-6, &mut fast).unwrap();
        scalar::rms_norm_weighted(&row, &w, 1e-6, &mut slow);
        assert_eq!(bits(&fast), bits(&slow));
    }
}

#[test]
fn elementwise_mul_add_scale_equal_plain_loops() {
    let mut rng = Rng::new(12);
    for &dim in &LENGTHS[1..] {
        let x = spread(&mut rng, 3 * dim);
        let w = spread(&mut rng, dim);
        let expect_mul: Vec<f32> = x.iter().enumerate().map(|(i, &a)| a * w[i % dim]).collect();
        let expect_add: Vec<f32> = x.iter().enumerate().map(|(i, &a)| a + w[i % dim]).collect();
        let mut out = vec![0.0f32; x.len()];
        ops::mul(&x, &w, &mut out).unwrap();
        assert_eq!(bits(&out), bits(&expect_mul), "mul {dim}");
        let mut y = x.clone();
        ops::mul_inplace(&mut y, &w).unwrap();
        assert_eq!(bits(&y), bits(&expect_mul), "mul_inplace {dim}");
        let mut y = x.clone();
        ops::add_inplace(&mut y, &w).unwrap();
        assert_eq!(bits(&y), bits(&expect_add), "add_inplace {dim}");
        let mut y = x.clone();
        ops::scale_inplace(&mut y, 0.37);
        let expect: Vec<f32> = x.iter().map(|&a| a * 0.37).collect();
        assert_eq!(bits(&y), bits(&expect), "scale_inplace {dim}");
    }
}

#[test]
fn softmax_equals_the_scalar_twin_including_masked_entries() {
    let mut rng = Rng::new(13);
    for &n in &LENGTHS[1..] {
        let mut x = rng.vec(n, 20.0);
        for (i, v) in x.iter_mut().enumerate() {
            if i % 5 == 2 {
                *v = f32::NEG_INFINITY;
            }
        }
        let mut fast = x.clone();
        let mut slow = x.clone();
        ops::softmax_inplace(&mut fast);
        scalar::softmax_inplace(&mut slow);
        assert_eq!(bits(&fast), bits(&slow), "softmax {n}");
    }
    let mut masked = vec![f32::NEG_INFINITY; 21];
    ops::softmax_inplace(&mut masked);
    assert!(masked.iter().all(|&v| v == 0.0));
}

#[test]
fn rope_equals_the_scalar_twin_in_both_modes_with_partial_rotation_and_factors() {
    let mut rng = Rng::new(14);
    let factors: Vec<f32> = (0..64).map(|i| 1.0 + i as f32 * 0.25).collect();
    for mode in [RopeMode::Norm, RopeMode::Neox] {
        for (n_heads, head_dim, n_rot) in [(3, 64, 64), (2, 64, 32), (5, 6, 4), (1, 128, 128), (2, 2, 2)] {
            for ff in [None, Some(&factors[..n_rot / 2])] {
                let mut p = RopeParams::new(mode, n_rot, 10000.0);
                p.freq_scale = 0.5;
                p.attn_factor = 1.25;
                p.freq_factors = ff;
                let n_tokens = 5;
                let positions = [0usize, 1, 7, 300, 4095];
                let x = rng.vec(n_tokens * n_heads * head_dim, 3.0);
                let mut fast = x.clone();
                let mut slow = x.clone();
                ops::rope(&mut fast, n_tokens, n_heads, head_dim, &positions, &p).unwrap();
                scalar::rope(&mut slow, n_heads, head_dim, &positions, &p);
                assert_eq!(bits(&fast), bits(&slow), "{mode:?} heads {n_heads} dim {head_dim} rot {n_rot} ff {}", ff.is_some());
            }
        }
    }
}

#[test]
fn gelu_table_equals_the_direct_formula_for_every_f16_input() {
    // Every f16 value (and so every table entry), run through the vector path in rows.
    let all: Vec<f32> = (0..=u16::MAX).map(|h| jikji_kernels::half::f16::from_bits(h).to_f32()).collect();
    let mut fast = all.clone();
    ops::gelu_inplace(&mut fast);
    for (i, (&x, &g)) in all.iter().zip(&fast).enumerate() {
        let e = scalar::gelu(x);
        assert!(g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()), "gelu(f16 {i:#06x} = {x}) = {g}, expected {e}");
        let one = ops::gelu(x);
        assert!(one.to_bits() == e.to_bits() || (one.is_nan() && e.is_nan()), "scalar-path gelu({x})");
    }
}

#[test]
fn geglu_equals_the_scalar_twin_on_values_between_f16_steps_and_past_the_cutoffs() {
    let mut rng = Rng::new(15);
    for &n in &LENGTHS {
        let mut gate = rng.vec(n, 12.0); // crosses ±10 and rounds to f16 between steps
        if n > 4 {
            gate[0] = 10.0;
            gate[1] = -10.0;
            gate[2] = 9.999;
            gate[3] = -0.0;
            gate[4] = -9.999; // rounds to the f16 -10: the formula gives -0, not the cut-off 0
        }
        let up = rng.vec(n, 2.0);
        let mut fast = gate.clone();
        let mut slow = gate.clone();
        ops::geglu_inplace(&mut fast, &up).unwrap();
        scalar::geglu_inplace(&mut slow, &up);
        assert_eq!(bits(&fast), bits(&slow), "geglu_inplace {n}");
        let mut out = vec![0.0f32; n];
        ops::geglu(&gate, &up, &mut out).unwrap();
        assert_eq!(bits(&out), bits(&slow), "geglu {n}");
    }
}

#[test]
fn vectorized_exp_equals_its_scalar_twin_and_stays_within_two_ulp_of_exp() {
    let mut rng = Rng::new(16);
    let mut xs: Vec<f32> = (0..4096).map(|_| rng.unit() * 100.0).collect();
    xs.extend([0.0, -0.0, 88.0, 88.8, 89.0, -87.0, -103.0, -150.0, -200.0, 200.0, f32::INFINITY, f32::NEG_INFINITY]);
    xs.extend((0..200).map(|i| -104.0 + i as f32 * 0.1)); // results near and below f32's subnormals
    for &sub in &[0.0f32, 3.5] {
        let mut fast = xs.clone();
        ops::exp_sub_ggml_inplace(&mut fast, sub);
        let mut slow = xs.clone();
        scalar::exp_sub_ggml_inplace(&mut slow, sub);
        for (i, (&f, &s)) in fast.iter().zip(&slow).enumerate() {
            assert!(f.to_bits() == s.to_bits() || (f.is_nan() && s.is_nan()), "v_expf({} - {sub}): simd {f:e}, scalar {s:e}", xs[i]);
        }
    }
    for &x in &xs {
        let v = ops::v_expf(x) as f64;
        let e = (x as f64).exp();
        if e.is_finite() && e > f32::MIN_POSITIVE as f64 && e < f32::MAX as f64 {
            let ulp = (e as f32).to_bits().abs_diff((v as f32).to_bits());
            assert!(ulp <= 2, "v_expf({x}) = {v:e} is {ulp} ulp from exp = {e:e}");
        }
    }
}

#[test]
fn ggml_swiglu_equals_its_scalar_twin_with_expf_on_the_tail() {
    let mut rng = Rng::new(17);
    for &n in &LENGTHS {
        let gate = rng.vec(n, 30.0);
        let up = rng.vec(n, 2.0);
        let mut fast = gate.clone();
        ops::swiglu_ggml_inplace(&mut fast, &up).unwrap();
        let mut slow = gate.clone();
        scalar::swiglu_ggml_inplace(&mut slow, &up);
        assert_eq!(bits(&fast), bits(&slow), "swiglu_ggml {n}");
        // The tail past the last whole chunk of 16 is the libm formula.
        let full = n - n % 16;
        for i in full..n {
            assert_eq!(fast[i].to_bits(), (ops::silu(gate[i]) * up[i]).to_bits());
        }
        // And the chunked part is within a couple of ulp of it.
        for i in 0..full {
            let e = ops::silu(gate[i]) * up[i];
            assert!((fast[i] - e).abs() <= 4.0 * f32::EPSILON * e.abs() + 1e-30, "swiglu_ggml[{i}] {} vs {e}", fast[i]);
        }
    }
    assert!(ops::swiglu_ggml_inplace(&mut [1.0, 2.0], &[1.0]).is_err());
}

#[test]
fn f16_conversions_equal_the_half_crate_bit_for_bit() {
    // Every f16 pattern's neighbourhood: exact values, halfway ties, subnormals, overflow.
    let mut src: Vec<f32> = (0..=u16::MAX).map(|b| half::f16::from_bits(b).to_f32()).filter(|v| !v.is_nan()).collect();
    let n0 = src.len();
    for i in 0..n0 {
        let v = src[i];
        src.push(f32::from_bits(v.to_bits().wrapping_add(1 << 12)));
        src.push(v * 1.000_3);
    }
    src.extend([65520.0, -65520.0, 65519.99, 1e-9, -1e-9, 6.0e-8, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]);
    src.push(7.0); // an odd length leaves a scalar tail
    let want_h: Vec<u16> = src.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    let mut h = vec![half::f16::ZERO; src.len()];
    jikji_kernels::ops::f32_to_f16_row(&src, &mut h).unwrap();
    assert_eq!(h.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want_h);
    let mut back = vec![0.0f32; src.len()];
    jikji_kernels::ops::f16_to_f32_row(&h, &mut back).unwrap();
    let want_back: Vec<u32> = h.iter().map(|v| v.to_f32().to_bits()).collect();
    assert_eq!(back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want_back);
    let mut r = src.clone();
    jikji_kernels::ops::round_f16_inplace(&mut r);
    assert_eq!(r.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want_back);
}
