//! The CUDA backend against the CPU backend, on a machine with an NVIDIA GPU (each test
//! returns at once, saying so, where there is no CUDA driver: scripts/gpu-check.sh runs
//! them on the GPU machine). Bounds are llama.cpp's backend-ops ones: normalised MSE ≤
//! 5e-4 for matrix products; whole tiny models match the CPU's logits within 2e-2 and
//! their greedy tokens.

use jikji_backend::{Backend, CpuBackend, KvType, MatrixRef, Step};
use jikji_cuda::CudaBackend;
use jikji_gguf::{GgmlType, GgufFile, GgufWriter, TensorInfo};
use std::sync::Arc;

fn gpu() -> Option<CudaBackend> {
    if !jikji_cuda::libs::driver_present() {
        eprintln!("no CUDA driver: skipped (run on a GPU machine, scripts/gpu-check.sh)");
        return None;
    }
    Some(CudaBackend::new(0).expect("a driver is present, so device 0 must open"))
}

fn nmse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    num / den.max(1e-30)
}

fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A one-tensor GGUF in memory holding `rows x cols` random weights quantized to `ty`.
fn matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> MatrixRef {
    let vals = lcg(seed, rows * cols);
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    let mut data = vec![0u8; rb * rows];
    for (r, d) in data.chunks_exact_mut(rb).enumerate() {
        jikji_kernels::quantize_row(ty, &vals[r * cols..(r + 1) * cols], d).unwrap();
    }
    let mut w = GgufWriter::new();
    w.add_tensor("w".to_string(), &[cols as u64, rows as u64], ty, data);
    let file = Arc::new(GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap());
    let info: TensorInfo = file.tensors()[0].clone();
    MatrixRef { file, info, rows, cols }
}

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
            for n in [1, 2, 7, 8, 9, 64] {
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
fn tiny_models_give_the_cpus_logits_and_greedy_tokens() {
    let Some(g) = gpu() else { return };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
    // deepseek_v2-1 / v3-1: multi-head latent attention (latent cache, absorbed queries).
    for name in ["llama-1", "qwen2-1", "qwen3-1", "gemma3-1", "exaone-1", "exaone4-1", "qwen3moe-1", "deepseek_v2-1", "deepseek_v3-1"] {
        let path = dir.join(format!("{name}.gguf"));
        let file = Arc::new(GgufFile::open(&path).unwrap());
        let cpu = jikji_models::Model::load(file.clone()).unwrap();
        let gm = jikji_models::Model::load_on(file, g.clone()).unwrap();
        let prompt: Vec<u32> = (1..9).collect();
        let (mut cc, mut gc) = (cpu.new_cache(64).unwrap(), gm.new_cache(64).unwrap());
        let lc = cpu.forward(&prompt, &mut cc, false).unwrap();
        let lg = gm.forward(&prompt, &mut gc, false).unwrap();
        let d = lc.iter().zip(&lg).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= 2e-2, "{name}: max |Δ| {d} on the last row");
        let (mut tc, mut tg) = (argmax(&lc), argmax(&lg));
        for _ in 0..16 {
            assert_eq!(tc, tg, "{name}: greedy tokens differ");
            tc = argmax(&cpu.forward(&[tc], &mut cc, false).unwrap());
            tg = argmax(&gm.forward(&[tg], &mut gc, false).unwrap());
        }
    }
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0 as u32
}
