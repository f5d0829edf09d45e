//! Every SIMD kernel against its scalar twin, on every instruction set this CPU has:
//! dots on seeded random data with odd block counts, extreme and raw-bit blocks; the
//! activation quantizers byte for byte; matmul tiles on odd shapes.

mod common;

use common::Rng;
use jikji_kernels::{
    dequantize_row, matmul_quantized_isa, quantize_activations_isa, quantize_row, row_bytes, scalar, vec_dot_isa, vec_dot_type,
    GgmlType, Isa,
};

/// Weight types with a SIMD kernel somewhere, plus those that fall back to scalar (the
/// dispatch must still give the reference result for them).
const TYPES: [GgmlType; 15] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q8_K,
];

const BLOCK_COUNTS: [usize; 4] = [1, 3, 7, 33];

/// The instruction sets under test (all but the reference itself).
fn simd_isas() -> Vec<Isa> {
    Isa::available().into_iter().filter(|&i| i != Isa::Scalar).collect()
}

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, x.len()).expect("whole blocks")];
    quantize_row(ty, x, &mut out).expect("quantize");
    out
}

/// Σ |w_i x_i| over the dequantized rows: the scale of the float rounding a dot may show.
fn abs_terms(ty: GgmlType, w: &[u8], xq: &[u8], n: usize) -> f64 {
    let mut wf = vec![0.0f32; n];
    let mut xf = vec![0.0f32; n];
    dequantize_row(ty, w, &mut wf).expect("dequantize w");
    dequantize_row(vec_dot_type(ty), xq, &mut xf).expect("dequantize x");
    let mut s: f64 = wf.iter().zip(&xf).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
    // Q8_1 carries its own sum field s = f16(d·Σq); Q4_1/Q5_1 dots add m·s per block.
    if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        for (bw, bx) in w.chunks_exact(ty.type_size()).zip(xq.chunks_exact(36)) {
            let m = jikji_kernels::half::f16::from_le_bytes([bw[2], bw[3]]).to_f32() as f64;
            let sx = jikji_kernels::half::f16::from_le_bytes([bx[2], bx[3]]).to_f32() as f64;
            s += (m * sx).abs();
        }
    }
    s
}

fn assert_close(what: &str, got: f32, want: f32, terms: f64) {
    let tol = 1e-5 * terms + 1e-30;
    assert!(
        ((got as f64) - (want as f64)).abs() <= tol,
        "{what}: SIMD {got} vs scalar {want} (|Δ| {} > {tol})",
        ((got as f64) - (want as f64)).abs()
    );
}

/// Compares one weight row with one activation row on every SIMD level.
fn check_dot(what: &str, ty: GgmlType, n: usize, w: &[u8], x: &[f32]) {
    let xq = quantize_activations_isa(Isa::Scalar, ty, x, n, 1).expect("quantize activations");
    let want = scalar::vec_dot(ty, n, w, &xq).expect("scalar dot");
    let terms = abs_terms(ty, w, &xq, n);
    for isa in simd_isas() {
        let got = vec_dot_isa(isa, ty, n, w, &xq).expect("simd dot");
        assert_close(&format!("{what} {ty} n={n} on {}", isa.name()), got, want, terms);
    }
}

#[test]
fn dots_match_the_scalar_twin_on_random_rows_of_odd_block_counts() {
    let mut rng = Rng::new(0x5eed_0001);
    for ty in TYPES {
        for nb in BLOCK_COUNTS {
            let n = nb * ty.block_size().max(if ty.block_size() == 1 { 32 } else { 1 });
            for scale in [1.0f32, 0.01, 300.0] {
                let wf = rng.vec(n, scale);
                let x = rng.vec(n, scale * 0.7);
                check_dot("random", ty, n, &quantize(ty, &wf), &x);
            }
        }
    }
}

#[test]
fn float_dots_match_on_lengths_that_are_not_a_multiple_of_the_vector_step() {
    let mut rng = Rng::new(0x5eed_0002);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for n in [1usize, 7, 31, 63, 64, 65, 100, 127, 200, 1000] {
            let wf = rng.vec(n, 2.0);
            let x = rng.vec(n, 2.0);
            check_dot("tail", ty, n, &quantize(ty, &wf), &x);
        }
    }
}

/// Byte offsets of each block's f16 scale fields (overwritten with sane values when a
/// block is filled with raw random bits).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        _ => &[],
    }
}

#[test]
fn dots_match_on_blocks_of_raw_random_bits() {
    // Every nibble, high bit, scale and min bit pattern, not only what a quantizer writes.
    let mut rng = Rng::new(0x5eed_0003);
    for ty in TYPES.into_iter().filter(|t| !f16_fields(*t).is_empty()) {
        for nb in BLOCK_COUNTS {
            let n = nb * ty.block_size();
            let mut w: Vec<u8> = (0..nb * ty.type_size()).map(|_| rng.next_u64() as u8).collect();
            for block in w.chunks_exact_mut(ty.type_size()) {
                for &at in f16_fields(ty) {
                    let v = jikji_kernels::half::f16::from_f32(rng.unit() * 0.05);
                    block[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            let x = rng.vec(n, 3.0);
            check_dot("raw bits", ty, n, &w, &x);
        }
    }
}

#[test]
fn dots_match_on_all_zero_and_full_scale_rows() {
    let mut rng = Rng::new(0x5eed_0004);
    for ty in TYPES {
        let n = 7 * ty.block_size().max(32);
        let zeros = vec![0.0f32; n];
        let x = rng.vec(n, 1.0);
        check_dot("zero weights", ty, n, &quantize(ty, &zeros), &x);
        check_dot("zero activations", ty, n, &quantize(ty, &x), &zeros);
        // Alternating ±A: every quant at the end of its range.
        for a in [1.0f32, 1000.0] {
            let extreme: Vec<f32> = (0..n).map(|i| if (i / 3) % 2 == 0 { a } else { -a }).collect();
            check_dot("extreme", ty, n, &quantize(ty, &extreme), &extreme);
            let neg: Vec<f32> = extreme.iter().map(|v| -v).collect();
            check_dot("extreme neg", ty, n, &quantize(ty, &extreme), &neg);
        }
    }
}

/// Rows that exercise the quantizers' rounding: random values, exact ties (x·id = k + ½),
/// zero blocks, a negative extreme, ± ties for the largest magnitude.
fn quantizer_rows(rng: &mut Rng, n: usize) -> Vec<Vec<f32>> {
    let mut rows = vec![rng.vec(n, 1.0), rng.vec(n, 1e-3), rng.vec(n, 5e3), vec![0.0; n]];
    // amax = 127 → d = 1 (Q8_0/Q8_1) and max = -127 → iscale = 1 (Q8_K): halves are ties.
    let ties: Vec<f32> = (0..n)
        .map(|i| match i % 64 {
            0 => 127.0,
            1 => -127.0,
            k => (k as f32 - 32.0) + 0.5,
        })
        .collect();
    rows.push(ties.clone());
    rows.push(ties.iter().map(|v| -v).collect());
    let mut one_big: Vec<f32> = rng.vec(n, 0.1);
    for (i, v) in one_big.iter_mut().enumerate() {
        if i % 37 == 5 {
            *v = -9.0;
        }
    }
    rows.push(one_big);
    // A block whose only non-zero element is tiny.
    let mut tiny = vec![0.0f32; n];
    tiny[n / 2] = 1e-30;
    rows.push(tiny);
    rows
}

#[test]
fn activation_quantizers_are_byte_exact_with_the_reference() {
    let mut rng = Rng::new(0x5eed_0005);
    for weight_ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K] {
        let vt = vec_dot_type(weight_ty);
        for nb in BLOCK_COUNTS {
            let n = nb * vt.block_size();
            for row in quantizer_rows(&mut rng, n) {
                let want = quantize(vt, &row);
                for isa in simd_isas() {
                    let got = quantize_activations_isa(isa, weight_ty, &row, n, 1).expect("quantize");
                    assert!(got == want, "{vt} on {}: bytes differ from the reference (n={n})", isa.name());
                }
            }
        }
        // Several tokens at once.
        let n = 3 * vt.block_size();
        let x = rng.vec(5 * n, 2.0);
        let want: Vec<u8> = x.chunks_exact(n).flat_map(|r| quantize(vt, r)).collect();
        for isa in simd_isas() {
            assert_eq!(quantize_activations_isa(isa, weight_ty, &x, n, 5).expect("quantize"), want, "{vt} x5 on {}", isa.name());
        }
    }
}

#[test]
fn matmul_tiles_equal_the_single_dot_on_odd_shapes() {
    let mut rng = Rng::new(0x5eed_0006);
    let shapes_rows = [1usize, 2, 3, 4, 5, 7, 8, 13, 37];
    let shapes_toks = [1usize, 2, 3, 4, 5, 8, 9, 10, 14];
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::F32,
        GgmlType::F16,
    ] {
        let cols = 3 * ty.block_size().max(32);
        for &rows in &shapes_rows {
            for &toks in &shapes_toks {
                let wf = rng.vec(rows * cols, 1.0);
                let w: Vec<u8> = wf.chunks_exact(cols).flat_map(|r| quantize(ty, r)).collect();
                let x = rng.vec(toks * cols, 1.0);
                let view = jikji_kernels::WeightView { ty, data: &w, rows, cols };
                let wrb = row_bytes(ty, cols).expect("row bytes");
                for isa in Isa::available() {
                    let xq = quantize_activations_isa(isa, ty, &x, cols, toks).expect("quantize");
                    let xrb = xq.len() / toks;
                    let mut y = vec![f32::NAN; rows * toks];
                    matmul_quantized_isa(isa, &view, &xq, toks, &mut y).expect("matmul");
                    for t in 0..toks {
                        for r in 0..rows {
                            let (wr, xr) = (&w[r * wrb..(r + 1) * wrb], &xq[t * xrb..(t + 1) * xrb]);
                            let single = vec_dot_isa(isa, ty, cols, wr, xr).expect("dot");
                            let got = y[t * rows + r];
                            assert_eq!(
                                got.to_bits(),
                                single.to_bits(),
                                "{ty} {rows}x{cols} x {toks} tokens on {}: y[{t},{r}] = {got} vs dot {single}",
                                isa.name()
                            );
                            let want = scalar::vec_dot(ty, cols, wr, xr).expect("scalar dot");
                            assert_close(&format!("{ty} matmul on {}", isa.name()), got, want, abs_terms(ty, wr, xr, cols));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn large_matmul_split_over_threads_equals_the_single_dot() {
    // Big enough to be split across the pool (rows in several chunks, tokens in blocks).
    let mut rng = Rng::new(0x5eed_0007);
    jikji_kernels::set_num_threads(2);
    for ty in [GgmlType::Q4_1, GgmlType::Q6_K, GgmlType::F16] {
        let (rows, cols, toks) = (203usize, 1024usize, 11usize);
        let wf = rng.vec(rows * cols, 1.0);
        let w: Vec<u8> = wf.chunks_exact(cols).flat_map(|r| quantize(ty, r)).collect();
        let x = rng.vec(toks * cols, 1.0);
        let view = jikji_kernels::WeightView { ty, data: &w, rows, cols };
        let wrb = row_bytes(ty, cols).expect("row bytes");
        let isa = jikji_kernels::isa();
        let xq = quantize_activations_isa(isa, ty, &x, cols, toks).expect("quantize");
        let xrb = xq.len() / toks;
        let mut y = vec![f32::NAN; rows * toks];
        matmul_quantized_isa(isa, &view, &xq, toks, &mut y).expect("matmul");
        for t in 0..toks {
            for r in 0..rows {
                let single = vec_dot_isa(isa, ty, cols, &w[r * wrb..(r + 1) * wrb], &xq[t * xrb..(t + 1) * xrb]).expect("dot");
                assert_eq!(y[t * rows + r].to_bits(), single.to_bits(), "{ty} y[{t},{r}]");
            }
        }
    }
}

#[test]
fn x86_levels_agree_bit_for_bit() {
    // All x86 levels run the same operation sequence (ggml's); only the integer
    // instructions differ, and integer sums are exact.
    let levels: Vec<Isa> = simd_isas().into_iter().filter(|i| *i != Isa::Neon).collect();
    let mut rng = Rng::new(0x5eed_0008);
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        let n = 7 * ty.block_size();
        let w = quantize(ty, &rng.vec(n, 1.0));
        let xq = quantize_activations_isa(Isa::Scalar, ty, &rng.vec(n, 1.0), n, 1).expect("quantize");
        let results: Vec<u32> = levels.iter().map(|&i| vec_dot_isa(i, ty, n, &w, &xq).expect("dot").to_bits()).collect();
        assert!(results.windows(2).all(|p| p[0] == p[1]), "{ty}: {results:?} on {levels:?}");
    }
}

#[test]
fn an_isa_this_cpu_lacks_is_an_error_not_a_crash() {
    let missing = [Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2, Isa::Neon].into_iter().find(|i| !i.is_supported());
    if let Some(isa) = missing {
        let w = quantize(GgmlType::Q8_0, &[0.5; 32]);
        let xq = quantize(GgmlType::Q8_0, &[0.25; 32]);
        assert!(vec_dot_isa(isa, GgmlType::Q8_0, 32, &w, &xq).is_err());
    }
    assert!(Isa::available().contains(&Isa::Scalar));
    assert!(Isa::available().contains(&jikji_kernels::isa()));
}

#[test]
fn f16_tiled_matmul_equals_its_scalar_reference() {
    // tinyBLAS's order (llama.cpp's F16 prompts): every level gives the reference's bits, on
    // shapes with partial 4-row and 6-token tiles and more rows than one block.
    let mut rng = Rng::new(0x5eed_0011);
    let ty = GgmlType::F16;
    for cols in [16usize, 48, 768] {
        for rows in [1usize, 3, 4, 5, 7, 13, 70] {
            for toks in [2usize, 5, 6, 7, 13] {
                let w = quantize(ty, &rng.vec(rows * cols, 1.0));
                let x = rng.vec(toks * cols, 1.0);
                let view = jikji_kernels::WeightView { ty, data: &w, rows, cols };
                let xq = quantize_activations_isa(Isa::Scalar, ty, &x, cols, toks).expect("quantize");
                let (wrb, xrb) = (2 * cols, 2 * cols);
                for isa in Isa::available() {
                    let mut y = vec![f32::NAN; rows * toks];
                    jikji_kernels::matmul_f16_tiled_isa(isa, &view, &xq, toks, &mut y).expect("matmul");
                    for t in 0..toks {
                        for r in 0..rows {
                            let (wr, xr) = (&w[r * wrb..(r + 1) * wrb], &xq[t * xrb..(t + 1) * xrb]);
                            let want = jikji_kernels::tiled_f16::dot_f16_tiled_scalar(wr, xr);
                            let got = y[t * rows + r];
                            assert_eq!(got.to_bits(), want.to_bits(), "[{rows}x{cols}] x {toks} on {}: y[{t},{r}] {got} vs {want}", isa.name());
                            let plain = scalar::vec_dot(ty, cols, wr, xr).expect("scalar dot");
                            assert_close("tiled f16", got, plain, abs_terms(ty, wr, xr, cols));
                        }
                    }
                }
            }
        }
    }
    assert!(!jikji_kernels::f16_tiled_supported(ty, 100, 8), "rows of 100 are not a multiple of 16");
    assert!(!jikji_kernels::f16_tiled_supported(ty, 768, 1), "one token takes vec_dot_f16");
}

#[test]
fn f16_tiled_matmul_on_rounded_f32_activations_gives_the_f16_byte_paths_bits() {
    // What the encoders run: the input rounded to f16 values once and kept as f32, the
    // output written without a zero fill. Same bits as the f16-byte entry point.
    let mut rng = Rng::new(0x5eed_0012);
    let ty = GgmlType::F16;
    for cols in [16usize, 768] {
        for rows in [1usize, 5, 70, 129] {
            for toks in [2usize, 7, 25] {
                let w = quantize(ty, &rng.vec(rows * cols, 1.0));
                let x = rng.vec(toks * cols, 1.0);
                let view = jikji_kernels::WeightView { ty, data: &w, rows, cols };
                let xq = quantize_activations_isa(Isa::Scalar, ty, &x, cols, toks).expect("quantize");
                let mut want = vec![f32::NAN; rows * toks];
                jikji_kernels::matmul_f16_tiled(&view, &xq, toks, &mut want).expect("matmul");
                let mut xr = x.clone();
                jikji_kernels::ops::round_f16_inplace(&mut xr);
                let got = jikji_kernels::matmul_f16_tiled_rounded(&view, &xr, toks).expect("matmul");
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "[{rows}x{cols}] x {toks}: y[{i}] {g} vs {w}");
                }
            }
        }
    }
    let w = quantize(ty, &rng.vec(4 * 16, 1.0));
    let view = jikji_kernels::WeightView { ty, data: &w, rows: 4, cols: 16 };
    assert!(jikji_kernels::matmul_f16_tiled_rounded(&view, &[0.0; 31], 2).is_err(), "a short input is an error");
}
