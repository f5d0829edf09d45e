//! Grammar compile times and forced-token counts for a set of JSON schemas, without HTTP
//! (scripts/bench-structured.py runs it for the figures the server does not expose).
//!
//! For each schema of SCHEMAS.json (an object `{name: schema}`): compiles it `--reps`
//! times (the compile includes the first mask; median and max reported), generates a
//! greedy chat answer inside it with PROMPT, then replays the answer's tokens through a
//! fresh copy of the grammar and counts the steps where llguidance forces the next token
//! (`Constraint::forced_tokens` non-empty): the tokens fast-forwarding could have skipped
//! sampling for. Prints one JSON object per schema, one a line.
//!
//! `cargo run --release -p jikji-engine --example grammar_stats -- MODEL.gguf SCHEMAS.json
//!  [--reps 5] [-n 160] [--prompt TEXT]`

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use jikji_engine::grammar::{GrammarCompiler, GrammarLimits, GrammarSpec};
use jikji_engine::{chat, tokenize_chat_prompt, ChatFormatter, GenerateParams, Generator, OpenOptions, Sampler, SamplerConfig};
use serde_json::{json, Value};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: grammar_stats MODEL.gguf SCHEMAS.json [--reps 5] [-n 160] [--prompt TEXT]".into());
    }
    let reps: usize = arg(&args, "--reps", 5).max(1);
    let n: usize = arg(&args, "-n", 160);
    let prompt: String = arg(&args, "--prompt", "Produce a short JSON example.".to_string());
    let schemas: serde_json::Map<String, Value> = serde_json::from_str(&std::fs::read_to_string(&args[2])?)?;
    let loaded = jikji_engine::open(std::path::Path::new(&args[1]), &OpenOptions { ctx: Some(1024), memory_budget: None, ..Default::default() })?;
    let n_rows = loaded.model.info().n_vocab;
    let t0 = Instant::now();
    let compiler = GrammarCompiler::new(Arc::new(loaded.tokenizer.clone()), n_rows, GrammarLimits::default())?;
    eprintln!("vocabulary trie built in {:.1} ms (once per model)", t0.elapsed().as_secs_f64() * 1e3);
    let fmt = ChatFormatter::from_gguf(&loaded.file)?;
    let rendered = fmt.render(&Value::Array(vec![chat::message("user", &prompt)]), true)?;
    let ids = tokenize_chat_prompt(&loaded.tokenizer, &rendered)?;
    let mut generator = Generator::new(&loaded.model, &loaded.tokenizer, loaded.n_ctx)?;
    let params = GenerateParams { max_tokens: n, ..GenerateParams::default() };
    for (name, schema) in &schemas {
        let spec = GrammarSpec::JsonSchema(schema.clone());
        let mut times = Vec::new();
        let mut compiled = None;
        for _ in 0..reps {
            let t = Instant::now();
            let c = compiler.compile(&spec)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            compiled = Some(c);
        }
        let Some(fresh) = compiled else { continue };
        times.sort_by(|a, b| a.total_cmp(b));
        let mut walk = fresh.clone();
        let mut sampler = Sampler::new(SamplerConfig { temperature: 0.0, ..SamplerConfig::default() })?;
        let g = generator.generate_constrained(&ids, &params, &mut sampler, Some(&mut walk), |_| ControlFlow::Continue(()))?;
        let mut replay = fresh.clone();
        let (mut forced, mut forced_same) = (0usize, 0usize);
        for &id in &g.ids {
            let ff = replay.forced_tokens();
            if !ff.is_empty() {
                forced += 1;
                forced_same += usize::from(ff[0] == id);
            }
            replay.commit(id)?;
        }
        let line = json!({
            "schema": name,
            "compile_ms_median": times[times.len() / 2],
            "compile_ms_max": times[times.len() - 1],
            "output_tokens": g.ids.len(),
            "forced_steps": forced,
            "forced_steps_matching_the_sampled_token": forced_same,
            "decode_ms_per_token": g.timings.generation_time.as_secs_f64() * 1e3 / g.ids.len().max(1) as f64,
            "text": g.text,
        });
        println!("{line}");
    }
    Ok(())
}
