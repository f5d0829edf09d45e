//! Matmul throughput per weight type (a program, not a test):
//! `cargo run --release -p jikji-kernels --example matmul_speed [-- ISA [TYPE...] [--wall]]`
//! (`JIKJI_SHAPE=ROWSxCOLS` for another weight shape; `--peer` runs Q4_K/Q6_K through the
//! peer-order kernels the models use)
//!
//! For each type: GMAC/s of `matmul_quantized` on a [4864 x 1024] weight (the FFN shape
//! of the small benchmark models) with 1 token (decoding: weight streaming) and 64 tokens
//! (prompt processing: tiles), on 1 and 2 threads, for the chosen instruction set (default:
//! the best this CPU has; `scalar` gives the reference kernels, i.e. the "before").
//! 1 thread is timed in thread CPU time (wall time with `--wall`), 2 threads in wall time (best of batches; on a shared
//! machine the 2-thread figures are noisy); the activation quantizer is timed separately,
//! per token row.
use jikji_kernels::{
    matmul_kquant_batch_invariant, matmul_peer_kquant_isa, matmul_quantized_isa, peer_kquant_supported, quantize_activations_isa, quantize_row, set_num_threads, GgmlType,
    Isa, WeightView,
};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let isa = args.first().and_then(|s| Isa::from_name(s)).unwrap_or_else(jikji_kernels::isa);
    if !isa.is_supported() {
        eprintln!("{} is not supported by this CPU", isa.name());
        return;
    }
    let wall = args.iter().any(|a| a == "--wall");
    // `--peer`: Q4_K/Q6_K through the peer-order kernels (what the models run).
    let peer = args.iter().any(|a| a == "--peer");
    // `--invariant`: Q4_K/Q6_K through the batch-invariant kernels (what serving runs).
    let invariant = args.iter().any(|a| a == "--invariant");
    // `JIKJI_TOKENS=1,8,64`: the token counts to time (default 1 and 64).
    let token_counts: Vec<usize> = std::env::var("JIKJI_TOKENS")
        .ok()
        .map(|s| s.split(',').filter_map(|t| t.trim().parse().ok()).filter(|&t| t > 0).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 64]);
    let max_toks = token_counts.iter().copied().max().unwrap_or(64).max(64);
    let only: Vec<&str> = args.iter().skip(1).filter(|a| !a.starts_with("--")).map(|s| s.as_str()).collect();
    // `JIKJI_SHAPE=ROWSxCOLS` overrides the shape (e.g. 262144x640: a vocabulary head
    // larger than the caches, for the streaming speed of decoding).
    let (rows, cols) = std::env::var("JIKJI_SHAPE")
        .ok()
        .and_then(|s| {
            let (r, c) = s.split_once('x')?;
            Some((r.trim().parse().ok()?, c.trim().parse().ok()?))
        })
        .unwrap_or((4864usize, 1024usize));
    let mut seed = 1u64;
    let mut rnd = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let wf: Vec<f32> = (0..rows * cols).map(|_| rnd()).collect();
    let x: Vec<f32> = (0..max_toks * cols).map(|_| rnd()).collect();
    println!("isa {}; weight [{rows} x {cols}]; GMAC/s (best of runs)", isa.name());
    let mut head = format!("{:>5} |", "type");
    for t in &token_counts {
        head += &format!(" {:>9} {:>9} |", format!("t1 tok{t}"), format!("t2 tok{t}"));
    }
    println!("{head} quantize");
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::F32,
    ];
    for ty in types {
        if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(ty.name())) {
            continue;
        }
        let rb = ty.row_bytes(cols as u64).unwrap_or(0) as usize;
        if rb == 0 || cols % ty.block_size() != 0 {
            println!("{:>5} | {cols} columns are not whole blocks of {}", ty.name(), ty.block_size());
            continue;
        }
        let mut w = vec![0u8; rb * rows];
        for (src, dst) in wf.chunks_exact(cols).zip(w.chunks_exact_mut(rb)) {
            if let Err(e) = quantize_row(ty, src, dst) {
                eprintln!("{ty}: {e}");
                return;
            }
        }
        let view = WeightView { ty, data: &w, rows, cols };
        let mut cells = Vec::new();
        for &toks in &token_counts {
            let xq = match quantize_activations_isa(isa, ty, &x[..toks * cols], cols, toks) {
                Ok(q) => q,
                Err(e) => {
                    eprintln!("{ty}: {e}");
                    return;
                }
            };
            let mut y = vec![0.0f32; rows * toks];
            for threads in [1usize, 2] {
                set_num_threads(threads);
                let secs = best_time(
                    || {
                        let r = if invariant && peer_kquant_supported(ty, rows, cols) {
                            matmul_kquant_batch_invariant(&view, &xq, toks, &mut y)
                        } else if peer && peer_kquant_supported(ty, rows, cols) {
                            matmul_peer_kquant_isa(isa, &view, &xq, toks, &mut y)
                        } else {
                            matmul_quantized_isa(isa, &view, &xq, toks, &mut y)
                        };
                        if let Err(e) = r {
                            eprintln!("{ty}: {e}");
                        }
                    },
                    threads == 1 && !wall,
                );
                cells.push((rows * cols * toks) as f64 / secs / 1e9);
            }
        }
        let qsecs = best_time(
            || {
                let _ = quantize_activations_isa(isa, ty, &x, cols, 64);
            },
            true,
        );
        let mut line = format!("{:>5} |", ty.name());
        for pair in cells.chunks(2) {
            line += &format!(" {:9.2} {:9.2} |", pair[0], pair[1]);
        }
        println!("{line} {:6.1} ns/row", qsecs / 64.0 * 1e9);    }
}

/// Seconds per call of `f`: the best over batches of calls lasting ~10 ms each, for about
/// 0.4 s. With `cpu`, the calling thread's CPU time (immune to other processes on a shared
/// machine, exact for single-threaded runs); otherwise wall time.
fn best_time(mut f: impl FnMut(), cpu: bool) -> f64 {
    let wall = Instant::now();
    let now = |cpu: bool| if cpu { thread_cpu_seconds() } else { wall.elapsed().as_secs_f64() };
    f(); // warm-up (pool threads, caches)
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let batch = ((0.01 / one) as usize).clamp(1, 1000);
    let start = Instant::now();
    let mut best = f64::MAX;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < Duration::from_millis(400) {
        let t0 = now(cpu);
        for _ in 0..batch {
            f();
        }
        best = best.min((now(cpu) - t0) / batch as f64);
        runs += 1;
    }
    best
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
