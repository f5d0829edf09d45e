//! Rough matmul throughput per weight type (a program, not a test):
//! `cargo run --release -p jikji-kernels --example matmul_speed [threads]`.
use jikji_kernels::{matmul, quantize_row, set_num_threads, GgmlType, WeightView};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    set_num_threads(threads);
    let (rows, cols) = (4864usize, 1024usize);
    let mut seed = 1u64;
    let x: Vec<f32> = (0..rows * cols)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let only = std::env::args().nth(2);
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::F16, GgmlType::BF16, GgmlType::F32] {
        if only.as_deref().is_some_and(|o| o != ty.name()) {
            continue;
        }
        let rb = ty.row_bytes(cols as u64).unwrap_or(0) as usize;
        let mut w = vec![0u8; rb * rows];
        for (src, dst) in x.chunks_exact(cols).zip(w.chunks_exact_mut(rb)) {
            if let Err(e) = quantize_row(ty, src, dst) {
                eprintln!("{ty}: {e}");
                return;
            }
        }
        let view = WeightView { ty, data: &w, rows, cols };
        let act = &x[..cols];
        let mut y = vec![0.0f32; rows];
        // Best of several runs, and CPU time as well as wall time: the machine may be shared.
        let mut secs = f64::MAX;
        let reps = 30;
        let cpu0 = cpu_seconds();
        for _ in 0..reps {
            let t = Instant::now();
            if let Err(e) = matmul(&view, act, 1, &mut y) {
                eprintln!("{ty}: {e}");
                return;
            }
            secs = secs.min(t.elapsed().as_secs_f64());
        }
        let cpu = (cpu_seconds() - cpu0) / reps as f64;
        println!("{ty:>5}: CPU {:7.3} ms per matmul ({:5.2} GMAC/s per core)", cpu * 1e3, (rows * cols) as f64 / cpu / 1e9);
        println!("{ty:>5}: {:7.3} ms per [{rows} x {cols}] x 1 token, {:6.2} GMAC/s", secs * 1e3, (rows * cols) as f64 / secs / 1e9);
    }
}

/// CPU time of this process so far (Linux `/proc/self/schedstat`), 0 elsewhere.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map(|ns| ns / 1e9)
        .unwrap_or(0.0)
}
