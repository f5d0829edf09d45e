//! Shared by the Vulkan tests: the device (or a clear skip), random operands, and the
//! comparisons.
#![allow(dead_code)]

use jikji_backend::MatrixRef;
use jikji_gguf::{GgmlType, GgufFile, GgufWriter, TensorInfo};
use jikji_wgpu::WgpuBackend;
use std::sync::{Arc, OnceLock};

/// The Vulkan backend, or `None` (saying so) when this machine has no Vulkan adapter.
/// With `JIKJI_REQUIRE_VULKAN=1` (CI, on lavapipe) a missing adapter fails the test.
pub fn gpu() -> Option<WgpuBackend> {
    static BE: OnceLock<Result<WgpuBackend, String>> = OnceLock::new();
    let be = BE.get_or_init(|| WgpuBackend::new().map_err(|e| e.to_string()));
    match be {
        Ok(b) => Some(b.clone()),
        Err(e) => {
            if std::env::var("JIKJI_REQUIRE_VULKAN").as_deref() == Ok("1") {
                panic!("JIKJI_REQUIRE_VULKAN=1 but the Vulkan backend did not open: {e}");
            }
            eprintln!("no Vulkan device ({e}): skipped (install libvulkan1 and mesa-vulkan-drivers for lavapipe)");
            None
        }
    }
}

/// Normalised mean squared error of `a` against the reference `b`.
pub fn nmse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    num / den.max(1e-30)
}

pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Deterministic values in [-1, 1).
pub fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A one-tensor GGUF in memory holding `rows x cols` random weights quantized to `ty`.
pub fn matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> MatrixRef {
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

pub fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0 as u32
}
