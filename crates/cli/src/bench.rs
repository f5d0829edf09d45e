//! `jikji bench`: prompt-processing and generation speed, measured like llama-bench.
//!
//! - **pp** (`-p N`): one forward pass of `N` random token ids (fixed seed) from an empty
//!   cache, all tokens in one batch (ubatches of 512 when `N > 512`, as llama.cpp splits).
//! - **tg** (`-n N`): `N` single-token forward passes from an empty cache (llama-bench's
//!   `tg128` also starts from an empty context).
//! - One warm-up of each first, then `-r` repetitions; the table shows the median tok/s
//!   ± the standard deviation over repetitions.
//! - **Bandwidth**: a multi-threaded sequential read of a 1 GiB buffer (best of 3), run in
//!   a child process (`jikji bench --membw-only`) so that the buffer does not count in
//!   this process's peak RSS, which is reported too (`VmHWM`, Linux) for comparisons with
//!   the peer. `tg_bandwidth_share = model_bytes × tg_tok_s ÷ bandwidth`, where
//!   `model_bytes` is what one decoded token reads: every weight tensor once, except an
//!   untied token embedding of which only one row is read.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use jikji_models::Model;

use crate::commands::open_file;

/// Options of `jikji bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Catalog name or path to a .gguf file.
    #[arg(short = 'm', long = "model", required_unless_present = "membw_only")]
    model: Option<String>,
    /// Prompt tokens processed in one batch (0 skips the prompt test).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Tokens generated one at a time (0 skips the generation test).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Compute threads [default: physical cores].
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Only measure memory bandwidth and print it in GB/s (used by `bench` itself).
    #[arg(long = "membw-only", hide = true)]
    membw_only: bool,
}

/// Tokens per ubatch, as llama.cpp's default `n_ubatch`.
const UBATCH: usize = 512;
/// Size of the memory-bandwidth test buffer.
const MEMBW_BYTES: usize = 1 << 30;

pub fn bench(args: BenchArgs) -> Result<()> {
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => jikji_kernels::num_threads(),
    };
    jikji_kernels::set_num_threads(threads);
    if args.membw_only {
        let gbs = memory_bandwidth_gb_s(threads)?;
        println!("{gbs:.3}");
        return Ok(());
    }
    if args.reps == 0 {
        bail!("--repetitions must be at least 1");
    }
    let Some(model_arg) = args.model.as_deref() else { bail!("-m/--model is required") };
    let (path, file) = open_file(model_arg)?;
    let model = Model::load(file.clone()).with_context(|| format!("cannot load model {}", path.display()))?;
    let bytes = model_bytes(&model);
    let info = model.info().clone();

    let ctx = args.n_prompt.max(args.n_gen).max(1);
    let mut cache = model.new_cache(ctx)?;
    let mut rng = XorShift(0x853c_49e6_748f_ea9b);
    let mut random_ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.below(info.n_vocab) as u32).collect() };

    // Warm-up: one pass of each test (pages the weights in, grows every buffer).
    if args.n_prompt > 0 {
        run_prompt(&model, &mut cache, &random_ids(args.n_prompt))?;
    }
    if args.n_gen > 0 {
        run_gen(&model, &mut cache, &random_ids(args.n_gen.min(2)))?;
    }

    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for _ in 0..args.reps {
        if args.n_prompt > 0 {
            let ids = random_ids(args.n_prompt);
            let secs = run_prompt(&model, &mut cache, &ids)?;
            pp.push(args.n_prompt as f64 / secs);
        }
        if args.n_gen > 0 {
            let ids = random_ids(args.n_gen);
            let secs = run_gen(&model, &mut cache, &ids)?;
            tg.push(args.n_gen as f64 / secs);
        }
    }
    drop(cache);
    let peak_rss = peak_rss_bytes();
    let bandwidth = if args.n_gen > 0 { Some(bandwidth_in_child(threads)?) } else { None };

    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| model_arg.to_string());
    let pp_s = stats(&pp);
    let tg_s = stats(&tg);
    let share = match (tg_s, bandwidth) {
        (Some((tg_med, _)), Some(bw)) if bw > 0.0 => Some(bytes as f64 * tg_med / (bw * 1e9)),
        _ => None,
    };
    if args.json {
        let v = serde_json::json!({
            "model": name,
            "threads": threads,
            "pp": args.n_prompt,
            "tg": args.n_gen,
            "reps": args.reps,
            "pp_tok_s": pp_s.map(|s| s.0),
            "pp_tok_s_stddev": pp_s.map(|s| s.1),
            "tg_tok_s": tg_s.map(|s| s.0),
            "tg_tok_s_stddev": tg_s.map(|s| s.1),
            "model_bytes": bytes,
            "bandwidth_gb_s": bandwidth,
            "tg_bandwidth_share": share,
            "peak_rss_bytes": peak_rss,
        });
        println!("{v}");
        return Ok(());
    }

    println!("| model | arch | size | threads | test | t/s |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    let size = format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0));
    for (test, s) in [(format!("pp{}", args.n_prompt), pp_s), (format!("tg{}", args.n_gen), tg_s)] {
        if let Some((med, sd)) = s {
            println!("| {name} | {} | {size} | {threads} | {test} | {med:.2} ± {sd:.2} |", info.arch);
        }
    }
    if let Some(bw) = bandwidth {
        print!("memory bandwidth {bw:.1} GB/s");
        if let Some(sh) = share {
            print!(", tg reads {:.1} GB/s = {:.0} % of it", bytes as f64 * tg_s.map_or(0.0, |s| s.0) / 1e9, sh * 100.0);
        }
        println!();
    }
    if let Some(rss) = peak_rss {
        println!("peak RSS {:.1} MiB", rss as f64 / (1024.0 * 1024.0));
    }
    Ok(())
}

/// One prompt pass from an empty cache, in ubatches of [`UBATCH`]; returns seconds.
fn run_prompt(model: &Model, cache: &mut jikji_models::KvCache, ids: &[u32]) -> Result<f64> {
    cache.clear();
    let t = Instant::now();
    for chunk in ids.chunks(UBATCH) {
        model.forward(chunk, cache, false).context("prompt forward pass failed")?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// `ids.len()` single-token passes from an empty cache; returns seconds.
fn run_gen(model: &Model, cache: &mut jikji_models::KvCache, ids: &[u32]) -> Result<f64> {
    cache.clear();
    let t = Instant::now();
    for &id in ids {
        model.forward(&[id], cache, false).context("generation forward pass failed")?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Median and (sample) standard deviation, or `None` for no samples.
fn stats(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    let mean = s.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    Some((median, var.sqrt()))
}

/// Bytes of weights one decoded token reads: every tensor, except that an untied token
/// embedding contributes only one row (a lookup, not a matmul).
fn model_bytes(model: &Model) -> u64 {
    let info = model.info();
    model
        .file()
        .tensors()
        .iter()
        .map(|t| {
            if t.name == "token_embd.weight" && !info.tied_output {
                let rows = t.dims.get(1).copied().unwrap_or(1).max(1);
                t.n_bytes / rows
            } else {
                t.n_bytes
            }
        })
        .sum()
}

/// This process's peak resident set size (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs the bandwidth test in a child process (its 1 GiB buffer stays out of our RSS).
fn bandwidth_in_child(threads: usize) -> Result<f64> {
    let exe = std::env::current_exe().context("cannot find the jikji executable for the bandwidth test")?;
    let out = std::process::Command::new(&exe)
        .args(["bench", "--membw-only", "-t", &threads.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} for the bandwidth test", exe.display()))?;
    if !out.status.success() {
        bail!("bandwidth test failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse::<f64>().with_context(|| format!("bandwidth test printed {text:?}"))
}

/// Sequential read bandwidth in GB/s: `threads` threads (the kernels' pool) each sum their
/// share of a [`MEMBW_BYTES`] buffer; best of 3 passes.
fn memory_bandwidth_gb_s(threads: usize) -> Result<f64> {
    let n = MEMBW_BYTES / 8;
    // Non-zero contents so every page is really backed by memory.
    let mut buf: Vec<u64> = Vec::new();
    buf.try_reserve_exact(n).context("cannot allocate the 1 GiB bandwidth buffer")?;
    buf.extend((0..n as u64).map(|i| i | 1));
    let sums: Vec<std::sync::atomic::AtomicU64> = (0..threads).map(|_| Default::default()).collect();
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        jikji_kernels::pool::parallel_for(threads, &|i| {
            let part = &buf[jikji_kernels::pool::split_range(n, threads, i)];
            // Eight independent lanes: the loop vectorizes and never waits on one adder.
            let mut acc = [0u64; 8];
            for c in part.chunks_exact(8) {
                for l in 0..8 {
                    acc[l] = acc[l].wrapping_add(c[l]);
                }
            }
            let s = acc.iter().fold(0u64, |a, &b| a.wrapping_add(b));
            sums[i].fetch_add(s, std::sync::atomic::Ordering::Relaxed);
        });
        let secs = t.elapsed().as_secs_f64();
        best = best.max(MEMBW_BYTES as f64 / secs / 1e9);
    }
    // Keep the sums observable so the reads cannot be optimized away.
    std::hint::black_box(&sums);
    Ok(best)
}

/// xorshift64* — a fixed-seed source of token ids, reproducible across runs.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((r >> 32) as usize) % n.max(1)
    }
}
