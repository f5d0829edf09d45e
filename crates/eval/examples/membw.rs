//! Prints the STREAM-style read bandwidth of this machine (`jikji_eval::bandwidth`) with
//! its configuration and every pass: `cargo run --release -p jikji-eval --example membw
//! [MIB [THREADS [RUNS]]]`.

use std::time::Instant;

use jikji_eval::bandwidth::{self, BandwidthConfig};

fn main() {
    let mut cfg = BandwidthConfig::default();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if let Some(&mib) = args.first() {
        cfg.bytes = mib << 20;
    }
    if let Some(&t) = args.get(1) {
        cfg.threads = t;
    }
    if let Some(&r) = args.get(2) {
        cfg.runs = r;
    }
    println!("last-level cache {:?} bytes, config {cfg:?}", bandwidth::last_level_cache_bytes());
    let t = Instant::now();
    match bandwidth::measure(&cfg) {
        Ok(bw) => {
            let passes: Vec<String> = bw.pass_secs.iter().map(|s| format!("{:.1}", bw.bytes as f64 / s / 1e9)).collect();
            println!(
                "{:.2} GB/s ({} MiB, {} threads; passes {} GB/s) in {:.2} s total, {:.2} s of it filling",
                bw.gb_s,
                bw.bytes >> 20,
                bw.threads,
                passes.join(" "),
                t.elapsed().as_secs_f64(),
                bw.fill_secs
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
