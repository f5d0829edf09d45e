//! Quantize → dequantize round trips, `vec_dot` against an f64 dot of dequantized data,
//! and `matmul` against a naive f64 matmul, for every type, on seeded random data with odd
//! block counts.

#![allow(clippy::needless_range_loop)] // index loops mirror the layouts being pinned down

mod common;

use common::*;
use jikji_kernels::{get_row, matmul, set_num_threads, vec_dot, vec_dot_type, GgmlType, WeightView};

/// Relative RMS error bound of a quantize → dequantize round trip of uniform [-1, 1) data.
/// Derivation: a uniform quantizer with step s has RMS error s/√12; uniform [-1, 1) data has
/// RMS 1/√3, so the relative error is about s/2. Steps: Q8: 1/127; Q6_K: amax/32 per 16;
/// Q5: range/31 or amax/16; Q4: range/15 or amax/8; Q3_K: amax/4 (plus clamping of the +4
/// side); Q2_K: range/3 per 16. Bounds add a margin for the quantized sub-block scales.
fn roundtrip_bound(ty: GgmlType) -> f64 {
    use GgmlType::*;
    match ty {
        F32 => 0.0,
        F16 => 3e-4,
        BF16 => 3e-3,
        Q8_0 | Q8_1 | Q8_K => 0.0045,
        Q6_K => 0.02,
        Q5_0 | Q5_1 => 0.036,
        Q5_K => 0.04,
        Q4_0 | Q4_1 => 0.075,
        Q4_K => 0.08,
        Q3_K => 0.16,
        Q2_K => 0.34,
        _ => unreachable!(),
    }
}

fn rel_rmse(x: &[f32], y: &[f32]) -> f64 {
    let err: f64 = x.iter().zip(y).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let sig: f64 = x.iter().map(|&a| (a as f64).powi(2)).sum();
    (err / sig).sqrt()
}

#[test]
fn quantize_then_dequantize_stays_within_the_format_error() {
    let mut rng = Rng::new(7);
    for ty in ALL_TYPES {
        let blocks = if ty.block_size() == 1 { 1001 } else if ty.block_size() == 32 { 33 } else { 7 };
        let n = n_for(ty, blocks);
        let x = rng.vec(n, 1.0);
        let y = dequantize(ty, &quantize(ty, &x), n);
        let e = rel_rmse(&x, &y);
        eprintln!("{ty}: relative rms error {e:.5}");
        assert!(e <= roundtrip_bound(ty), "{ty}: relative rms error {e} above {}", roundtrip_bound(ty));
        // A lossy format must not be lossless on random data (catches "copy through" bugs).
        if ty != GgmlType::F32 {
            assert!(e > 0.0, "{ty}: suspiciously exact");
        }
    }
}

#[test]
fn quantize_keeps_each_block_scale_local() {
    // One block of large values next to one of tiny values: the tiny block must not be
    // flushed to zero (each block has its own scale).
    for ty in ALL_TYPES {
        let bs = ty.block_size().max(32);
        let mut x = vec![0.0f32; 2 * bs];
        let mut rng = Rng::new(11);
        for (i, v) in x.iter_mut().enumerate() {
            *v = rng.unit() * if i < bs { 100.0 } else { 0.01 };
        }
        let y = dequantize(ty, &quantize(ty, &x), x.len());
        let e = rel_rmse(&x[bs..], &y[bs..]);
        assert!(e <= roundtrip_bound(ty) * 1.5 + 1e-3, "{ty}: small block error {e}");
    }
}

#[test]
fn zero_rows_quantize_to_exact_zeros() {
    for ty in ALL_TYPES {
        let n = n_for(ty, 3);
        let x = vec![0.0f32; n];
        let y = dequantize(ty, &quantize(ty, &x), n);
        assert!(y.iter().all(|&v| v == 0.0), "{ty}");
    }
}

/// `vec_dot` equals the f64 dot of the dequantized weight and the dequantized activation
/// (the activation quantized to `vec_dot_type`), up to f32 accumulation error.
#[test]
fn vec_dot_matches_f64_dot_of_dequantized_rows() {
    let mut rng = Rng::new(42);
    for ty in ALL_TYPES {
        let vt = vec_dot_type(ty);
        for blocks in [1usize, 3, 9] {
            let n = n_for(ty, blocks) * if ty.block_size() == 1 { 37 } else { 1 };
            let w = quantize(ty, &rng.vec(n, 1.0));
            let xq = quantize(vt, &rng.vec(n, 3.0));
            let wd = dequantize(ty, &w, n);
            let xd = dequantize(vt, &xq, n);
            let expect = dot_f64(&wd, &xd);
            let got = vec_dot(ty, n, &w, &xq) as f64;
            let tol = 2e-6 * abs_dot_f64(&wd, &xd) + 1e-6 + q8_1_sum_slack(ty, &w, &xq);
            assert!((got - expect).abs() <= tol, "{ty} n={n}: got {got}, expected {expect} (tol {tol})");
        }
    }
}

#[test]
fn vec_dot_type_follows_llama_cpp_cpu_traits() {
    use GgmlType::*;
    for (w, a) in [
        (F32, F32),
        (F16, F16),
        (BF16, BF16),
        (Q4_0, Q8_0),
        (Q5_0, Q8_0),
        (Q8_0, Q8_0),
        (Q4_1, Q8_1),
        (Q5_1, Q8_1),
        (Q2_K, Q8_K),
        (Q3_K, Q8_K),
        (Q4_K, Q8_K),
        (Q5_K, Q8_K),
        (Q6_K, Q8_K),
    ] {
        assert_eq!(vec_dot_type(w), a, "{w}");
    }
}

/// Q4_1/Q5_1 dots take the block sum of the activation from Q8_1's `s` field, which ggml
/// stores as f16(d * sum(q)): the min term `m * s` then differs from the exact dot by up to
/// |m| * |s| * 2^-11 per block (llama.cpp has the same rounding). Zero for other types.
fn q8_1_sum_slack(ty: GgmlType, w: &[u8], xq: &[u8]) -> f64 {
    let wbytes = match ty {
        GgmlType::Q4_1 => 20,
        GgmlType::Q5_1 => 24,
        _ => return 0.0,
    };
    let f16_at = |b: &[u8], at: usize| half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32() as f64;
    w.chunks_exact(wbytes)
        .zip(xq.chunks_exact(36))
        .map(|(bw, bx)| f16_at(bw, 2).abs() * f16_at(bx, 2).abs() * 2f64.powi(-11))
        .sum()
}

/// Naive reference: y[t, r] = sum_c deq(W)[r, c] * deq(quant(x_t))[c], in f64.
/// Also returns, per output, the tolerance: f32 accumulation error plus the Q8_1 sum slack.
fn reference_matmul(ty: GgmlType, w: &[u8], rows: usize, cols: usize, x: &[f32], n_tokens: usize) -> (Vec<f64>, Vec<f64>) {
    let vt = vec_dot_type(ty);
    let wd = dequantize(ty, w, rows * cols);
    let rb = bytes_for(ty, cols);
    let mut y = vec![0.0f64; rows * n_tokens];
    let mut tol = vec![0.0f64; rows * n_tokens];
    for t in 0..n_tokens {
        let xq = quantize(vt, &x[t * cols..(t + 1) * cols]);
        let xd = dequantize(vt, &xq, cols);
        for r in 0..rows {
            let wr = &wd[r * cols..(r + 1) * cols];
            y[t * rows + r] = dot_f64(wr, &xd);
            tol[t * rows + r] = 2e-6 * abs_dot_f64(wr, &xd) + 1e-6 + q8_1_sum_slack(ty, &w[r * rb..(r + 1) * rb], &xq);
        }
    }
    (y, tol)
}

#[test]
fn matmul_matches_naive_f64_reference_on_odd_shapes() {
    let mut rng = Rng::new(2024);
    for ty in ALL_TYPES {
        let (rows, n_tokens) = (37, 3);
        let cols = n_for(ty, 3) * if ty.block_size() == 1 { 33 } else { 1 };
        let w = quantize(ty, &rng.vec(rows * cols, 0.5));
        let x = rng.vec(n_tokens * cols, 2.0);
        let view = WeightView { ty, data: &w, rows, cols };
        let mut y = vec![0.0f32; rows * n_tokens];
        matmul(&view, &x, n_tokens, &mut y).expect("matmul");
        let (expect, tol) = reference_matmul(ty, &w, rows, cols, &x, n_tokens);
        for i in 0..y.len() {
            let tol = tol[i];
            assert!((y[i] as f64 - expect[i]).abs() <= tol, "{ty} [{}, {}]: {} vs {}", i / rows, i % rows, y[i], expect[i]);
        }
    }
}

#[test]
fn matmul_gives_identical_results_on_one_or_two_threads() {
    let mut rng = Rng::new(5);
    // Large enough to cross the threading threshold, both the decode (1 token) and the
    // multi-token paths.
    for (ty, rows, cols, n_tokens) in [(GgmlType::Q4_K, 129, 4096, 1), (GgmlType::Q8_0, 67, 2048, 5), (GgmlType::F16, 41, 1024, 13)] {
        let w = quantize(ty, &rng.vec(rows * cols, 0.5));
        let x = rng.vec(n_tokens * cols, 1.0);
        let view = WeightView { ty, data: &w, rows, cols };
        let mut y1 = vec![0.0f32; rows * n_tokens];
        let mut y2 = vec![0.0f32; rows * n_tokens];
        set_num_threads(1);
        matmul(&view, &x, n_tokens, &mut y1).expect("matmul 1 thread");
        set_num_threads(2);
        matmul(&view, &x, n_tokens, &mut y2).expect("matmul 2 threads");
        set_num_threads(0);
        assert_eq!(y1, y2, "{ty}");
        // And every output is the row's own vec_dot.
        let (expect, tol) = reference_matmul(ty, &w, rows, cols, &x, n_tokens);
        for i in 0..y1.len() {
            assert!((y1[i] as f64 - expect[i]).abs() <= tol[i], "{ty} output {i}");
        }
    }
}

#[test]
fn get_row_returns_the_dequantized_row() {
    let mut rng = Rng::new(3);
    for ty in ALL_TYPES {
        let (rows, cols) = (5, n_for(ty, 2));
        let all = rng.vec(rows * cols, 1.0);
        let w = quantize(ty, &all);
        let full = dequantize(ty, &w, rows * cols);
        let view = WeightView { ty, data: &w, rows, cols };
        let mut dst = vec![0.0f32; cols];
        for r in [0, 3, 4] {
            get_row(&view, r, &mut dst).expect("get_row");
            assert_eq!(dst, full[r * cols..(r + 1) * cols], "{ty} row {r}");
        }
    }
}
