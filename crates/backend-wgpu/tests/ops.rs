//! Every Vulkan kernel against the CPU backend at odd shapes (1, 2, 7, 8, 9, 64 tokens;
//! rows not a multiple of any tile). Bounds: normalised MSE ≤ 5e-4 for matrix products
//! (llama.cpp's backend-ops bound), float tolerance for the rest, exact where the math
//! moves values without arithmetic (embedding F32 rows, row selection). Skips, saying so,
//! without a Vulkan adapter, unless JIKJI_REQUIRE_VULKAN=1.

mod common;

use common::{gpu, lcg, matrix, max_abs, nmse};
use jikji_backend::{Activation, AttnShape, Backend, CpuBackend, KvType, Rope, RopeMode, SeqSpan, Step, YarnRope};
use jikji_gguf::GgmlType;
use std::sync::Arc;

const TOKENS: [usize; 6] = [1, 2, 7, 8, 9, 64];

#[test]
fn matmul_of_every_type_matches_the_cpu_at_odd_shapes() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    use GgmlType::*;
    for ty in [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        let cols = if ty.block_size() == 256 { 512 } else { 96 };
        for rows in [1, 7, 33, 130] {
            let m = matrix(ty, rows, cols, rows as u64);
            let (wc, wg) = (cpu.load_matrix(&m).unwrap(), g.load_matrix(&m).unwrap());
            for n in TOKENS {
                let x = lcg(n as u64 + 99, n * cols);
                let mut cc = cpu.new_cache(1, 1, 1, 1, KvType::F32).unwrap();
                let mut gc = g.new_cache(1, 1, 1, 1, KvType::F32).unwrap();
                let yc = cpu.matmul(&Step::contiguous(&mut cc, 0, 0), &[&wc], &cpu.upload(&x, cols).unwrap()).unwrap();
                let yg = g.matmul(&Step::contiguous(&mut gc, 0, 0), &[&wg], &g.upload(&x, cols).unwrap()).unwrap();
                let e = nmse(&g.download(&yg[0]), &cpu.download(&yc[0]));
                assert!(e <= 5e-4, "{ty:?} [{rows}, {cols}] x {n} tokens: nmse {e}");
            }
        }
    }
}

#[test]
fn legacy_block_types_multiply_8_bit_activations_in_integers_as_the_cpu_does() {
    // Q4_0…Q8_0 take the integer path on both backends (activations quantized per 32
    // values, ggml's x86 rounding, f16 scales): the integer block sums are identical, so
    // only the float summation of the block terms differs, far below the 5e-4 bound.
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    use GgmlType::*;
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0] {
        for (rows, cols) in [(7usize, 32usize), (33, 96), (130, 1024)] {
            let m = matrix(ty, rows, cols, rows as u64 + 7);
            let (wc, wg) = (cpu.load_matrix(&m).unwrap(), g.load_matrix(&m).unwrap());
            for n in [1usize, 9] {
                let x = lcg(n as u64 + 5, n * cols);
                let mut cc = cpu.new_cache(1, 1, 1, 1, KvType::F32).unwrap();
                let mut gc = g.new_cache(1, 1, 1, 1, KvType::F32).unwrap();
                let yc = cpu.download(&cpu.matmul(&Step::contiguous(&mut cc, 0, 0), &[&wc], &cpu.upload(&x, cols).unwrap()).unwrap()[0]);
                let yg = g.download(&g.matmul(&Step::contiguous(&mut gc, 0, 0), &[&wg], &g.upload(&x, cols).unwrap()).unwrap()[0]);
                let e = nmse(&yg, &yc);
                assert!(e <= 1e-10, "{ty:?} [{rows}, {cols}] x {n} tokens: nmse {e} (integer sums should agree)");
            }
        }
    }
}

#[test]
fn vocab_projection_and_f32_columns_not_a_multiple_of_32_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    for (ty, cols) in [(GgmlType::F32, 50), (GgmlType::F16, 70), (GgmlType::Q8_0, 64)] {
        let m = matrix(ty, 301, cols, 5);
        let (wc, wg) = (cpu.load_matrix(&m).unwrap(), g.load_matrix(&m).unwrap());
        for n in TOKENS {
            let x = lcg(n as u64, n * cols);
            let yc = cpu.project_vocab(&wc, &cpu.upload(&x, cols).unwrap()).unwrap();
            let yg = g.project_vocab(&wg, &g.upload(&x, cols).unwrap()).unwrap();
            let e = nmse(&g.download(&yg), &cpu.download(&yc));
            assert!(e <= 5e-4, "{ty:?} [301, {cols}] x {n}: nmse {e}");
        }
    }
}

#[test]
fn embedding_rows_match_the_cpu_and_f32_rows_exactly() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    use GgmlType::*;
    for ty in [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        let cols = if ty.block_size() == 256 { 256 } else { 64 };
        let m = matrix(ty, 37, cols, 3);
        let (wc, wg) = (cpu.load_matrix(&m).unwrap(), g.load_matrix(&m).unwrap());
        let toks = [0u32, 36, 5, 5, 17, 1, 2, 30, 9];
        let ec = cpu.download(&cpu.embed(&wc, &toks).unwrap());
        let eg = g.download(&g.embed(&wg, &toks).unwrap());
        // Dequantization is a product of a scale and an integer: the same f32 either way.
        let d = max_abs(&eg, &ec);
        assert!(d <= 1e-6, "{ty:?}: embedding rows differ by {d}");
        if ty == F32 {
            assert_eq!(eg, ec, "F32 embedding rows are copies");
        }
    }
    assert!(g.embed(&g.load_matrix(&matrix(F32, 4, 32, 1)).unwrap(), &[4]).is_err(), "a token past the table is refused");
}

#[test]
fn select_rows_copies_rows_exactly_and_refuses_a_missing_row() {
    let Some(g) = gpu() else { return };
    let x = lcg(7, 9 * 40);
    let a = g.upload(&x, 40).unwrap();
    let rows = [8usize, 0, 3, 3];
    let got = g.download(&g.select_rows(&a, &rows).unwrap());
    let want: Vec<f32> = rows.iter().flat_map(|&r| x[r * 40..(r + 1) * 40].to_vec()).collect();
    assert_eq!(got, want);
    assert!(g.select_rows(&a, &[9]).is_err());
}

#[test]
fn norms_adds_scales_and_gated_activations_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    for n in TOKENS {
        let width = 96;
        let x = lcg(n as u64, n * width);
        let y = lcg(n as u64 + 1, n * width);
        let w: Vec<f32> = lcg(3, width).iter().map(|v| v + 1.0).collect();
        let hw: Vec<f32> = lcg(4, 32).iter().map(|v| v + 1.0).collect();
        let (xc, xg) = (cpu.upload(&x, width).unwrap(), g.upload(&x, width).unwrap());
        let (wc, wg) = (cpu.load_vector(w.clone()).unwrap(), g.load_vector(w.clone()).unwrap());
        let close = |a: Vec<f32>, b: Vec<f32>, what: &str| {
            let d = max_abs(&a, &b);
            assert!(d <= 1e-4, "{what} at {n} rows: max |Δ| {d}");
        };
        close(g.download(&g.rms_norm(&xg, &wg, 1e-6).unwrap()), cpu.download(&cpu.rms_norm(&xc, &wc, 1e-6).unwrap()), "rms_norm");
        // Per head: weights narrower than the row.
        let (hc, hg) = (cpu.load_vector(hw.clone()).unwrap(), g.load_vector(hw).unwrap());
        let (mut ac, mut ag) = (cpu.upload(&x, width).unwrap(), g.upload(&x, width).unwrap());
        cpu.rms_norm_inplace(&mut ac, &hc, 1e-5).unwrap();
        g.rms_norm_inplace(&mut ag, &hg, 1e-5).unwrap();
        close(g.download(&ag), cpu.download(&ac), "per-head rms_norm_inplace");
        let (yc, yg) = (cpu.upload(&y, width).unwrap(), g.upload(&y, width).unwrap());
        cpu.add(&mut ac, &yc).unwrap();
        g.add(&mut ag, &yg).unwrap();
        close(g.download(&ag), cpu.download(&ac), "add");
        cpu.add_row(&mut ac, &wc).unwrap();
        g.add_row(&mut ag, &wg).unwrap();
        close(g.download(&ag), cpu.download(&ac), "add_row");
        cpu.scale(&mut ac, 0.37).unwrap();
        g.scale(&mut ag, 0.37).unwrap();
        close(g.download(&ag), cpu.download(&ac), "scale");
        for act in [Activation::Silu, Activation::GeluTanh] {
            // Gates over [-6, 6) reach GELU's tails, where 1 + tanh cancels.
            let gate: Vec<f32> = x.iter().map(|v| v * 6.0).collect();
            let up: Vec<f32> = y.iter().map(|v| v * 12.0).collect();
            let mut gg = g.upload(&gate, width).unwrap();
            g.glu(&mut gg, &g.upload(&up, width).unwrap(), act).unwrap();
            let got = g.download(&gg);
            // Against the formula in f64, not the CPU: the CPU's GELU goes through ggml's
            // table (input and output rounded to f16, 2^-11 relative each), which would
            // hide the kernel's own error. The kernel evaluates the formula in f32; Vulkan
            // gives exp (and tanh, sinh/cosh, inherited from it) 3 + 2|t| ulp, |t| ≤ 15
            // after the clamp, so 1 + tanh(t) and 1 + exp(-v) are off by at most ~33 ulp of
            // 1 plus a few ulp of rounding, scaled by |v| / 2 and |u|. Bound: 64 ulp of 1
            // (2^-18) times (1 + |v|) · |u|.
            for (i, ((&v, &u), &a)) in gate.iter().zip(&up).zip(&got).enumerate() {
                let (v64, u64_) = (v as f64, u as f64);
                let exact = match act {
                    Activation::Silu => v64 / (1.0 + (-v64).exp()),
                    Activation::GeluTanh => 0.5 * v64 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * v64 * (1.0 + 0.044715 * v64 * v64)).tanh()),
                } * u64_;
                let bound = (1.0 + v64.abs()) * u64_.abs() / (1u64 << 18) as f64;
                let d = (a as f64 - exact).abs();
                assert!(d <= bound, "glu {act:?} at {n} rows, element {i} (gate {v}, up {u}): {a} vs exact {exact}, |Δ| {d} > {bound}");
            }
        }
        assert!(g.add(&mut ag, &g.upload(&x[..width], width).unwrap()).is_err() || n == 1, "shapes must agree");
    }
}

#[test]
fn rope_variants_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    let ff: Arc<[f32]> = (0..16).map(|i| 1.0 + i as f32 * 0.25).collect::<Vec<_>>().into();
    let ropes = [
        Rope::Plain { mode: RopeMode::Norm, n_rot: 32, base: 10000.0, freq_scale: 1.0, freq_factors: None },
        Rope::Plain { mode: RopeMode::Neox, n_rot: 32, base: 1_000_000.0, freq_scale: 0.5, freq_factors: None },
        Rope::Plain { mode: RopeMode::Neox, n_rot: 24, base: 10000.0, freq_scale: 1.0, freq_factors: None },
        Rope::Plain { mode: RopeMode::Norm, n_rot: 32, base: 500000.0, freq_scale: 1.0, freq_factors: Some(ff) },
        Rope::Yarn(YarnRope { mode: RopeMode::Neox, n_rot: 32, base: 10000.0, freq_scale: 0.25, ext_factor: 1.0, mscale: 1.0, corr_dims: YarnRope::corr_dims(32, 4096, 10000.0, 32.0, 1.0) }),
        Rope::Yarn(YarnRope { mode: RopeMode::Norm, n_rot: 32, base: 10000.0, freq_scale: 0.25, ext_factor: 1.0, mscale: 0.707, corr_dims: YarnRope::corr_dims(32, 4096, 10000.0, 32.0, 1.0) }),
    ];
    for r in &ropes {
        for n in TOKENS {
            let (hd, width) = (32, 32 * 3);
            let x = lcg(n as u64 + 5, n * width);
            let pos0 = 17 * n;
            let (mut cc, mut gc) = (cpu.new_cache(1, 1, 1, 1, KvType::F32).unwrap(), g.new_cache(1, 1, 1, 1, KvType::F32).unwrap());
            let (mut xc, mut xg) = (cpu.upload(&x, width).unwrap(), g.upload(&x, width).unwrap());
            cpu.rope(&Step::contiguous(&mut cc, pos0, n), &mut xc, hd, r).unwrap();
            g.rope(&Step::contiguous(&mut gc, pos0, n), &mut xg, hd, r).unwrap();
            let d = max_abs(&g.download(&xg), &cpu.download(&xc));
            assert!(d <= 2e-3, "{r:?} at {n} rows from {pos0}: max |Δ| {d}");
        }
    }
}

fn attn_shapes() -> Vec<AttnShape> {
    vec![
        AttnShape { n_head: 4, n_head_kv: 2, head_dim_k: 32, head_dim_v: 32, kq_scale: 32f32.powf(-0.5), window: None },
        AttnShape { n_head: 3, n_head_kv: 1, head_dim_k: 64, head_dim_v: 64, kq_scale: 0.125, window: Some(5) },
        AttnShape { n_head: 2, n_head_kv: 2, head_dim_k: 256, head_dim_v: 256, kq_scale: 0.0625, window: None },
    ]
}

#[test]
fn contiguous_attention_matches_the_cpu_over_several_steps() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    for s in attn_shapes() {
        for ty in [KvType::F16, KvType::F32] {
            let (qw, kw, vw) = (s.n_head * s.head_dim_k, s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v);
            let mut cc = cpu.new_cache(2, 160, kw, vw, ty).unwrap();
            let mut gc = g.new_cache(2, 160, kw, vw, ty).unwrap();
            let mut pos = 0;
            // A prompt, then steps of odd sizes, each attending over everything before it.
            for (i, n) in [64usize, 1, 2, 7, 8, 9, 1].into_iter().enumerate() {
                let (q, k, v) = (lcg(i as u64, n * qw), lcg(i as u64 + 50, n * kw), lcg(i as u64 + 90, n * vw));
                let oc = cpu.attention(&mut Step::contiguous(&mut cc, pos, n), 1, &s, &cpu.upload(&q, qw).unwrap(), &cpu.upload(&k, kw).unwrap(), &cpu.upload(&v, vw).unwrap()).unwrap();
                let og = g.attention(&mut Step::contiguous(&mut gc, pos, n), 1, &s, &g.upload(&q, qw).unwrap(), &g.upload(&k, kw).unwrap(), &g.upload(&v, vw).unwrap()).unwrap();
                let d = max_abs(&g.download(&og), &cpu.download(&oc));
                assert!(d <= 1e-3, "{s:?} {ty:?}: step of {n} at {pos}: max |Δ| {d}");
                pos += n;
            }
            let q = lcg(1, qw);
            let past = g.attention(&mut Step::contiguous(&mut gc, 160, 1), 1, &s, &g.upload(&q, qw).unwrap(), &g.upload(&q[..kw], kw).unwrap(), &g.upload(&q[..vw], vw).unwrap());
            assert!(past.is_err(), "a position past the cache is refused");
        }
    }
}

#[test]
fn paged_attention_matches_the_cpu_for_a_batch_of_sequences() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    for s in attn_shapes() {
        let (qw, kw, vw) = (s.n_head * s.head_dim_k, s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v);
        let bs = 16;
        let mut pc = cpu.new_pool(2, 24, bs, kw, vw).unwrap();
        let mut pg = g.new_pool(2, 24, bs, kw, vw).unwrap();
        // Three sequences with scattered, interleaved block tables.
        let tables: [Vec<u32>; 3] = [vec![3, 9, 1, 20], vec![0, 11, 5], vec![23, 2, 7, 8, 13]];
        let mut pos = [0usize; 3];
        for (step, lens) in [[9usize, 1, 64], [1, 7, 2], [8, 2, 1], [1, 1, 1]].iter().enumerate() {
            let spans: Vec<SeqSpan> = (0..3).map(|i| SeqSpan { pos0: pos[i], n_tokens: lens[i], blocks: &tables[i] }).collect();
            let n: usize = lens.iter().sum();
            let (q, k, v) = (lcg(step as u64, n * qw), lcg(step as u64 + 50, n * kw), lcg(step as u64 + 90, n * vw));
            let oc = cpu.attention(&mut Step::paged(&mut pc, &spans), 0, &s, &cpu.upload(&q, qw).unwrap(), &cpu.upload(&k, kw).unwrap(), &cpu.upload(&v, vw).unwrap()).unwrap();
            let og = g.attention(&mut Step::paged(&mut pg, &spans), 0, &s, &g.upload(&q, qw).unwrap(), &g.upload(&k, kw).unwrap(), &g.upload(&v, vw).unwrap()).unwrap();
            let d = max_abs(&g.download(&og), &cpu.download(&oc));
            assert!(d <= 1e-3, "{s:?}: paged step {step} of {lens:?}: max |Δ| {d}");
            for i in 0..3 {
                pos[i] += lens[i];
            }
        }
        // f16 packed two to a word: the CPU pool's bytes, half of f32's.
        assert_eq!(g.pool_block_bytes(&pg), 2 * bs * (kw + vw) * 2);
        assert_eq!(g.pool_block_bytes(&pg), cpu.pool_block_bytes(&pc));
    }
}

#[test]
fn a_matrix_split_across_bindings_gives_the_same_product() {
    // A binding limit of 8 KiB splits these matrices into 2 to 11 row chunks (the code path
    // of a vocabulary projection larger than lavapipe's 128 MiB binding limit).
    // Activations must fit one binding too: the widest here is [9, 203] f32, 7,308 bytes.
    let Some(_) = gpu() else { return };
    let small = jikji_wgpu::WgpuBackend::with_binding_limit(None, 8192).unwrap();
    let cpu = CpuBackend;
    for ty in [GgmlType::F32, GgmlType::Q4_0, GgmlType::Q6_K] {
        let cols = if ty.block_size() == 256 { 512 } else { 96 };
        let m = matrix(ty, 203, cols, 11);
        let (wc, wg) = (cpu.load_matrix(&m).unwrap(), small.load_matrix(&m).unwrap());
        assert!(wg.n_chunks() > 1, "{ty:?}: 203 rows in {} chunk(s)", wg.n_chunks());
        for n in [1, 9] {
            let x = lcg(n as u64, n * cols);
            let yc = cpu.project_vocab(&wc, &cpu.upload(&x, cols).unwrap()).unwrap();
            let yg = small.project_vocab(&wg, &small.upload(&x, cols).unwrap()).unwrap();
            let e = nmse(&small.download(&yg), &cpu.download(&yc));
            assert!(e <= 5e-4, "{ty:?} split: nmse {e}");
        }
        let toks = [202u32, 0, 101, 57];
        let d = max_abs(&small.download(&small.embed(&wg, &toks).unwrap()), &cpu.download(&cpu.embed(&wc, &toks).unwrap()));
        assert!(d <= 1e-6, "{ty:?} split embedding: {d}");
    }
}

#[test]
fn an_unsupported_operation_is_a_clear_error() {
    let Some(g) = gpu() else { return };
    let m = matrix(GgmlType::F32, 4, 32, 1);
    let w = g.load_matrix(&m).unwrap();
    let x = g.upload(&lcg(1, 3 * 16), 16).unwrap();
    let mut c = g.new_cache(1, 1, 1, 1, KvType::F32).unwrap();
    let e = g.matmul(&Step::contiguous(&mut c, 0, 0), &[&w], &x).err().expect("width mismatch").to_string();
    assert!(e.contains("32 columns") && e.contains("16 wide"), "{e}");
}
