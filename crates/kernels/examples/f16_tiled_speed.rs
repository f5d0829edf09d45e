//! GMAC/s of the tiled F16 matmul (llamafile tinyBLAS's order; what encoders run) on the
//! shapes of nomic-embed-text-v1.5 (a program, not a test):
//! `cargo run --release -p jikji-kernels --example f16_tiled_speed [-- TOKENS...]`
//! Two threads, wall time, best of batches.
use jikji_kernels::{matmul_f16_tiled, quantize_activations, quantize_row, set_num_threads, GgmlType, WeightView};
use std::time::{Duration, Instant};

fn main() {
    let toks: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let toks = if toks.is_empty() { vec![1, 2, 7, 25, 31, 64, 203, 812] } else { toks };
    set_num_threads(2);
    let mut seed = 1u64;
    let mut rnd = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    for (rows, cols) in [(2304usize, 768usize), (768, 768), (3072, 768), (768, 3072)] {
        let rb = 2 * cols;
        let wf: Vec<f32> = (0..rows * cols).map(|_| rnd()).collect();
        let mut w = vec![0u8; rb * rows];
        for (src, dst) in wf.chunks_exact(cols).zip(w.chunks_exact_mut(rb)) {
            quantize_row(GgmlType::F16, src, dst).unwrap();
        }
        // `JIKJI_COLD=1`: cycle through copies larger than the caches (weights from DRAM,
        // as in a model's forward pass).
        let copies = if std::env::var("JIKJI_COLD").is_ok() { (96 << 20) / w.len() + 1 } else { 1 };
        let ws: Vec<Vec<u8>> = (0..copies).map(|_| w.clone()).collect();
        let views: Vec<WeightView> = ws.iter().map(|w| WeightView { ty: GgmlType::F16, data: w, rows, cols }).collect();
        let mut next = 0usize;
        let mut line = format!("[{rows:>4} x {cols:>4}]");
        for &t in &toks {
            let x: Vec<f32> = (0..t * cols).map(|_| rnd()).collect();
            let xq = quantize_activations(GgmlType::F16, &x, cols, t).unwrap();
            let mut y = vec![0.0f32; rows * t];
            let secs = best_time(|| {
                if t >= 2 {
                    next = (next + 1) % views.len();
                    matmul_f16_tiled(&views[next], &xq, t, &mut y).unwrap()
                }
            });
            line += &format!(" tok{t}: {:6.1}", (rows * cols * t) as f64 / secs / 1e9);
        }
        println!("{line}  GMAC/s");
    }
}

fn best_time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let batch = ((0.01 / one) as usize).clamp(1, 1000);
    let start = Instant::now();
    let mut best = f64::MAX;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < Duration::from_millis(300) {
        let t0 = Instant::now();
        for _ in 0..batch {
            f();
        }
        best = best.min(t0.elapsed().as_secs_f64() / batch as f64);
        runs += 1;
    }
    best
}
