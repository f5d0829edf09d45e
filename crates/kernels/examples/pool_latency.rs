//! Fork/join latency of `pool::parallel_for` versus spawning scoped threads per call.
//!
//! `cargo run --release -p jikji-kernels --example pool_latency [-- THREADS [CALLS]]`
//! Prints the mean and median time per call of an empty job of `THREADS` tasks (default:
//! the default thread count) and of a job of small tasks, for the pool and for
//! `std::thread::scope`.

use std::hint::black_box;
use std::time::Instant;

use jikji_kernels::pool::parallel_for;

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.sort_by(f64::total_cmp);
    (mean, v[v.len() / 2])
}

fn time_calls(calls: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..calls / 10 {
        f();
    }
    let mut per = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        f();
        per.push(t.elapsed().as_secs_f64() * 1e6);
    }
    stats(per)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or_else(jikji_kernels::num_threads);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    jikji_kernels::set_num_threads(threads);
    println!("threads {threads}, {calls} calls each (µs per call: mean / median)");

    let (m, md) = time_calls(calls, || parallel_for(threads, &|i| {
        black_box(i);
    }));
    println!("pool, empty tasks          {m:8.2} / {md:8.2}");

    let data: Vec<f32> = (0..576 * threads).map(|i| i as f32).collect();
    let (m, md) = time_calls(calls, || {
        parallel_for(threads, &|i| {
            let s: f32 = data[i * 576..(i + 1) * 576].iter().sum();
            black_box(s);
        })
    });
    println!("pool, 576-float sum/task   {m:8.2} / {md:8.2}");

    let (m, md) = time_calls(calls / 10, || {
        std::thread::scope(|s| {
            for i in 0..threads {
                s.spawn(move || black_box(i));
            }
        })
    });
    println!("thread::scope spawn, empty {m:8.2} / {md:8.2}");
}
