//! Closed-loop throughput of the serving engine without HTTP: `C` clients each submit a
//! streaming greedy request (fixed mixed Korean/English chat prompts, `max_tokens`, EOS
//! ignored so every request generates the same amount), and submit the next one as soon
//! as theirs finishes, for `--requests` requests in all. Prints aggregate generated
//! tokens/s and time-to-first-token p50/p99 per concurrency.
//!
//! `cargo run --release -p jikji-engine --example serve_bench -- MODEL.gguf [-c 1,8,32]
//!  [-n 128] [--requests R] [-t THREADS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use jikji_engine::serve::{Engine, GenEvent, GenRequest, ServeConfig};
use jikji_engine::{chat, ChatFormatter};
use jikji_gguf::GgufFile;
use jikji_models::Model;
use jikji_tokenizer::Tokenizer;

const PROMPTS: [&str; 8] = [
    "What is the capital of France? Answer in detail.",
    "한국의 수도는 어디인가요? 자세히 설명해 주세요.",
    "Write a short story about a robot learning to paint.",
    "세종대왕이 한글을 만든 이유를 설명해 주세요.",
    "Explain how a transformer language model works.",
    "김치를 만드는 방법을 단계별로 알려 주세요.",
    "List ten interesting facts about the ocean.",
    "서울에서 부산까지 여행 계획을 세워 주세요.",
];

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: serve_bench MODEL.gguf [-c 1,8,32] [-n 128] [--requests R] [-t THREADS]")?;
    let conc: Vec<usize> = arg(&args, "-c", "1,8,32".to_string()).split(',').filter_map(|s| s.parse().ok()).collect();
    let max_tokens: usize = arg(&args, "-n", 128);
    let threads: usize = arg(&args, "-t", 0);
    let file = Arc::new(GgufFile::open(path)?);
    let tok = Arc::new(Tokenizer::from_gguf(&file)?);
    let chat_fmt = ChatFormatter::from_gguf(&file)?;
    let model = Arc::new(Model::load(file)?);
    let max_c = conc.iter().copied().max().unwrap_or(1);
    let cfg = ServeConfig { n_ctx: 1024, parallel: max_c, kv_tokens: max_c * 1024, threads, ..ServeConfig::default() };
    let h = Engine::start(model, tok, Some(chat_fmt), "bench".into(), cfg)?;
    let prompts: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| h.chat_prompt(&serde_json::Value::Array(vec![chat::message("user", p)]), true))
        .collect::<Result<_, _>>()?;
    println!("model {path}, max_tokens {max_tokens}");
    println!("{:>5} {:>9} {:>10} {:>10} {:>10} {:>7}", "conc", "requests", "gen tok/s", "ttft p50", "ttft p99", "errors");
    for &c in &conc {
        let requests: usize = arg(&args, "--requests", c.max(2) * 2);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let t0 = Instant::now();
        let results: Vec<(usize, Vec<f64>, usize)> = std::thread::scope(|sc| {
            let workers: Vec<_> = (0..c)
                .map(|_| {
                    let (h, prompts, next) = (&h, &prompts, &next);
                    sc.spawn(move || {
                        let (mut gen, mut ttfts, mut errors) = (0usize, Vec::new(), 0usize);
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= requests {
                                break;
                            }
                            let mut req = GenRequest::greedy(prompts[i % prompts.len()].clone(), max_tokens);
                            req.ignore_eos = true;
                            let t = Instant::now();
                            let mut first: Option<Duration> = None;
                            let Ok(mut s) = h.submit(req) else {
                                errors += 1;
                                continue;
                            };
                            while let Some(ev) = s.blocking_next() {
                                match ev {
                                    GenEvent::Token { .. } => {
                                        first.get_or_insert_with(|| t.elapsed());
                                    }
                                    GenEvent::Done { usage, .. } => {
                                        gen += usage.completion_tokens;
                                        break;
                                    }
                                    GenEvent::Error(_) => {
                                        errors += 1;
                                        break;
                                    }
                                }
                            }
                            if let Some(f) = first {
                                ttfts.push(f.as_secs_f64());
                            }
                        }
                        (gen, ttfts, errors)
                    })
                })
                .collect();
            workers.into_iter().filter_map(|w| w.join().ok()).collect()
        });
        let secs = t0.elapsed().as_secs_f64();
        let gen: usize = results.iter().map(|r| r.0).sum();
        let errors: usize = results.iter().map(|r| r.2).sum();
        let mut ttft: Vec<f64> = results.into_iter().flat_map(|r| r.1).collect();
        println!(
            "{:>5} {:>9} {:>10.1} {:>9.3}s {:>9.3}s {:>7}",
            c,
            requests,
            gen as f64 / secs,
            pct(&mut ttft, 0.5),
            pct(&mut ttft, 0.99),
            errors
        );
    }
    Ok(())
}
