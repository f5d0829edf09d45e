//! `jikji bench`: prompt-processing and generation speed, measured like llama-bench.
//!
//! - **pp** (`-p N`): one forward pass of `N` random token ids (fixed seed) from an empty
//!   cache, all tokens in one batch (ubatches of 512 when `N > 512`, as llama.cpp splits).
//! - **tg** (`-n N`): `N` single-token forward passes from an empty cache (llama-bench's
//!   `tg128` also starts from an empty context).
//! - One warm-up of each first, then `-r` repetitions; the table shows the median tok/s
//!   ± the standard deviation over repetitions.
//! - **Bandwidth**: `jikji_eval::bandwidth`'s STREAM-style probe (every hardware thread
//!   reading its own part of an array four times the last-level cache, best of 5 passes),
//!   run in a child process (`jikji bench --membw-only`) so that its array does not count
//!   in this process's peak RSS, which is reported too (`VmHWM`, Linux) for comparisons
//!   with the peer. `tg_bandwidth_share = model_bytes × tg_tok_s ÷ bandwidth`, where
//!   `model_bytes` is what one decoded token reads (`jikji_eval::cost`): every weight
//!   tensor once, except an untied token embedding of which only one row is read.
//! - The model is opened like `run` opens it (`jikji_engine::open`), with a context of
//!   `max(-p, -n)` positions; one that cannot fit in memory is refused before anything is
//!   allocated.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use jikji_eval::{bandwidth, cost, memory, Summary};
use jikji_models::Model;

use crate::commands::{open_model, set_threads};

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
    /// Where the model computes: cpu, vulkan, cuda (a build with `--features cuda`) or
    /// auto (a GPU when there is one, else the CPU); `jikji devices` lists them.
    #[arg(long, default_value = "cpu", value_parser = crate::devices::parse_backend)]
    backend: jikji_engine::BackendKind,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Only measure memory bandwidth (every hardware thread, whatever `-t` says) and print
    /// it in GB/s (used by `bench` itself, in a child process).
    #[arg(long = "membw-only", hide = true)]
    membw_only: bool,
}

/// Tokens per ubatch, as llama.cpp's default `n_ubatch`.
const UBATCH: usize = 512;

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.membw_only {
        let bw = bandwidth::measure_default().context("memory bandwidth test")?;
        println!("{:.3}", bw.gb_s);
        return Ok(());
    }
    set_threads(args.threads)?;
    let threads = jikji_kernels::num_threads();
    if args.reps == 0 {
        bail!("--repetitions must be at least 1");
    }
    let Some(model_arg) = args.model.as_deref() else { bail!("-m/--model is required") };
    // Each test starts from an empty cache, so the longer of the two sets the context.
    let ctx = args.n_prompt.max(args.n_gen).max(1);
    let opened = open_model(model_arg, Some(ctx), args.backend)
        .with_context(|| format!("bench -p {} -n {}", args.n_prompt, args.n_gen))?;
    let (path, model) = (opened.path, opened.model);
    let bytes = cost::weight_bytes_per_token(model.file().tensors(), model.info().tied_output);
    let info = model.info().clone();

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
    let peak_rss = memory::peak_rss_bytes();
    let bandwidth = if args.n_gen > 0 { Some(bandwidth_in_child()?) } else { None };

    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| model_arg.to_string());
    let pp_s = Summary::of(&pp);
    let tg_s = Summary::of(&tg);
    let share = match (tg_s, bandwidth) {
        (Some(tg), Some(bw)) => cost::bandwidth_share(bytes, tg.median, bw),
        _ => None,
    };
    if args.json {
        let v = serde_json::json!({
            "model": name,
            "backend": model.backend(),
            "threads": threads,
            "pp": args.n_prompt,
            "tg": args.n_gen,
            "reps": args.reps,
            "pp_tok_s": pp_s.map(|s| s.median),
            "pp_tok_s_stddev": pp_s.map(|s| s.stddev),
            "tg_tok_s": tg_s.map(|s| s.median),
            "tg_tok_s_stddev": tg_s.map(|s| s.stddev),
            "model_bytes": bytes,
            "bandwidth_gb_s": bandwidth,
            "tg_bandwidth_share": share,
            "peak_rss_bytes": peak_rss,
        });
        println!("{v}");
        return Ok(());
    }

    println!("| model | arch | size | backend | threads | test | t/s |");
    println!("| --- | --- | ---: | --- | ---: | ---: | ---: |");
    let size = format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0));
    for (test, s) in [(format!("pp{}", args.n_prompt), pp_s), (format!("tg{}", args.n_gen), tg_s)] {
        if let Some(s) = s {
            println!("| {name} | {} | {size} | {} | {threads} | {test} | {:.2} ± {:.2} |", info.arch, model.backend(), s.median, s.stddev);
        }
    }
    if let Some(bw) = bandwidth {
        print!("memory bandwidth {bw:.1} GB/s");
        if let (Some(sh), Some(tg)) = (share, tg_s) {
            print!(", tg reads {:.1} GB/s = {:.0} % of it", cost::read_gb_s(bytes, tg.median), sh * 100.0);
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

/// Runs the bandwidth test in a child process (its array stays out of our RSS).
fn bandwidth_in_child() -> Result<f64> {
    let exe = std::env::current_exe().context("cannot find the jikji executable for the bandwidth test")?;
    let out = std::process::Command::new(&exe)
        .args(["bench", "--membw-only"])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} for the bandwidth test", exe.display()))?;
    if !out.status.success() {
        bail!("bandwidth test failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse::<f64>().with_context(|| format!("bandwidth test printed {text:?}"))
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
