//! `jikji eval suite NAME`: MMLU, KMMLU-Hard, ko-evals or a user file, scored by
//! log-likelihood (choices) or greedy generation (ko-evals), with accuracy per subject,
//! throughput and cost per 1M tokens, `--out DIR` writing `results.json` and
//! `results.csv`, and `--export-mc FILE` writing the chosen items in llama-perplexity's
//! multiple-choice format so both engines can score the same subset.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use jikji_engine::{chat, tokenize_chat_prompt, ChatFormatter};
use jikji_eval::energy;
use jikji_eval::suite::score::Style;
use jikji_eval::suite::{self, Items};

use crate::eval::{chart, open, report_speed, speed_line, ubatch, CommonArgs};

#[derive(clap::Args, Debug)]
pub struct SuiteArgs {
    /// mmlu, kmmlu-hard, ko-evals, or a path to a JSONL/CSV file.
    name: String,
    #[command(flatten)]
    common: CommonArgs,
    /// At most this many items, spread evenly over the set.
    #[arg(long)]
    limit: Option<usize>,
    /// Few-shot examples per question, from the same subject.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// Choice prompts: `letter` (lettered choices, ` A`/` B`… scored) or `answer` (the
    /// choices' texts scored after `Question: …\nAnswer:`).
    #[arg(long, default_value = "letter")]
    style: String,
    /// Put each prompt through the model's chat template (as one user message, shots
    /// included); the answer is scored as the start of the assistant's turn. Generation
    /// suites (ko-evals) are always chat-templated.
    #[arg(long)]
    chat: bool,
    /// Context size.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    ctx: usize,
    /// Longest generated answer (ko-evals).
    #[arg(long = "max-tokens", default_value_t = 48)]
    max_tokens: usize,
    /// Answers generated together (ko-evals; llama.cpp's -np): each step decodes one batch
    /// over the paged KV pool, as `serve` does. Answers do not depend on it.
    #[arg(long = "parallel", visible_alias = "np", default_value_t = 16)]
    parallel: usize,
    /// Write results.json and results.csv here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the selected choice items in llama-perplexity's multiple-choice format and stop.
    #[arg(long = "export-mc")]
    export_mc: Option<PathBuf>,
}

/// Progress on stderr: a redrawn line with ETA on a terminal, a line per 10 % otherwise.
struct Progress {
    t0: Instant,
    tty: bool,
    last_tenth: usize,
}

impl Progress {
    fn new() -> Self {
        Progress { t0: Instant::now(), tty: io::stderr().is_terminal(), last_tenth: 0 }
    }
    fn tick(&mut self, done: usize, total: usize) {
        let secs = self.t0.elapsed().as_secs_f64();
        let eta = if done > 0 { secs / done as f64 * (total - done) as f64 } else { 0.0 };
        if self.tty {
            let w = 30;
            let filled = w * done / total.max(1);
            eprint!("\r[{}{}] {done}/{total}  {:.0} s, ETA {:.0} s ", "#".repeat(filled), "-".repeat(w - filled), secs, eta);
            if done == total {
                eprintln!();
            }
        } else if done * 10 / total.max(1) > self.last_tenth || done == total {
            self.last_tenth = done * 10 / total.max(1);
            eprintln!("progress: {done}/{total} items, {secs:.0} s, ETA {eta:.0} s");
        }
    }
}

pub fn suite(a: SuiteArgs) -> Result<()> {
    let style = match a.style.as_str() {
        "letter" => Style::Letter,
        "answer" => Style::Answer,
        s => bail!("--style {s:?}: use letter or answer"),
    };
    let cache = jikji_catalog::models_dir()?;
    let items = suite::load(&a.name, &cache).with_context(|| format!("suite {}", a.name))?.limit(a.limit);
    if items.is_empty() {
        bail!("suite {} has no items", a.name);
    }
    let p = suite::prompting_for(&a.name, style, a.shots);
    if let Some(path) = &a.export_mc {
        let Items::Choice(v) = &items else { bail!("--export-mc needs a choice suite") };
        let tasks = suite::to_multiple_choice(v, &p);
        std::fs::write(path, jikji_eval::multiple_choice::write(&tasks)?).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {} tasks to {}", tasks.len(), path.display());
        return Ok(());
    }
    let opened = open(&a.common, a.ctx)?;
    let ub = ubatch(&a.common)?;
    let name = opened.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let rapl0 = energy::rapl_read();
    let t0 = Instant::now();
    let mut progress = Progress::new();
    eprintln!("suite {}: {} items on {name}", a.name, items.len());
    let (summary, processed, scored, seconds, json) = match &items {
        Items::Choice(v) => {
            let fmt = if a.chat { Some(ChatFormatter::from_gguf(&opened.file).with_context(|| format!("--chat: the chat template of {name}"))?) } else { None };
            let tok = &opened.tokenizer;
            let render = |ctx: &str| -> Result<Vec<u32>, String> {
                let fmt = fmt.as_ref().ok_or("no chat template")?;
                let arr = serde_json::Value::Array(vec![chat::message("user", ctx)]);
                let text = fmt.render(&arr, true).map_err(|e| e.to_string())?;
                tokenize_chat_prompt(tok, &text).map_err(|e| e.to_string())
            };
            let chat_prompt: Option<&suite::score::ChatPrompt<'_>> = if a.chat { Some(&render) } else { None };
            let r = suite::score::run(&opened.model, tok, v, &p, a.ctx, ub, chat_prompt, |d, t| progress.tick(d, t))?;
            let mut out = io::stdout().lock();
            writeln!(out, "subject\tn\tacc\tacc_norm\tacc_mean")?;
            for (s, t) in &r.per_subject {
                writeln!(out, "{s}\t{}\t{:.2}\t{:.2}\t{:.2}", t.n, t.pct(t.acc), t.pct(t.acc_norm), t.pct(t.acc_mean))?;
            }
            let o = r.overall;
            let line = format!("{}: acc {:.2} %, acc_norm {:.2} %, acc_mean {:.2} % over {} items", a.name, o.pct(o.acc), o.pct(o.acc_norm), o.pct(o.acc_mean), o.n);
            writeln!(out, "{line}")?;
            let json = serde_json::json!({ "kind": "choice", "style": a.style, "shots": a.shots, "chat": a.chat, "result": r });
            (line, r.tokens_processed, r.tokens_scored, r.seconds, json)
        }
        Items::Gen(v) => {
            let fmt = ChatFormatter::from_gguf(&opened.file).with_context(|| format!("the chat template of {name}"))?;
            let tok = &opened.tokenizer;
            let render = |msgs: &[(String, String)]| -> Result<Vec<u32>, String> {
                let arr = serde_json::Value::Array(msgs.iter().map(|(r, c)| chat::message(r, c)).collect());
                let text = fmt.render(&arr, true).map_err(|e| e.to_string())?;
                tokenize_chat_prompt(tok, &text).map_err(|e| e.to_string())
            };
            let o = suite::generate::GenOptions { n_ctx: a.ctx, max_tokens: a.max_tokens, parallel: a.parallel };
            let r = suite::generate::run(&opened.model, tok, v, &render, o, |d, t| progress.tick(d, t))?;
            let mut out = io::stdout().lock();
            writeln!(out, "subject\tn\texact\tmatch\tincludes")?;
            let pct = |k: usize, n: usize| 100.0 * k as f64 / n.max(1) as f64;
            for (s, t) in &r.per_subject {
                writeln!(out, "{s}\t{}\t{:.2}\t{:.2}\t{:.2}", t.n, pct(t.exact, t.n), pct(t.matched, t.n), pct(t.includes, t.n))?;
            }
            let o = r.overall;
            let line = format!(
                "{}: exact {:.2} %, match {:.2} %, includes {:.2} % over {} items (greedy, at most {} tokens)",
                a.name,
                pct(o.exact, o.n),
                pct(o.matched, o.n),
                pct(o.includes, o.n),
                o.n,
                a.max_tokens
            );
            writeln!(out, "{line}")?;
            eprintln!(
                "prompt {:.1} tokens/s, generation {:.1} tokens/s",
                r.prompt_tokens as f64 / r.prompt_seconds.max(1e-9),
                r.generated_tokens as f64 / r.generation_seconds.max(1e-9)
            );
            let secs = r.prompt_seconds + r.generation_seconds;
            let json = serde_json::json!({ "kind": "generation", "sampling": {"temperature": 0, "max_tokens": a.max_tokens}, "parallel": a.parallel, "result": r });
            (line, r.prompt_tokens + r.generated_tokens, r.generated_tokens, secs, json)
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    let joules = match (rapl0, energy::rapl_read()) {
        (Some(b), Some(a)) => energy::rapl_joules(&b, &a),
        _ => None,
    };
    report_speed(&mut io::stderr(), processed, scored, seconds, wall, &a.common, joules);
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cost = energy::cost_per_million(processed, seconds, a.common.price_per_hour, a.common.watts, joules);
        let doc = serde_json::json!({
            "suite": a.name, "model": name, "items": items.len(), "summary": summary,
            "tokens_processed": processed, "tokens_scored": scored, "seconds": seconds,
            "tokens_per_second": processed as f64 / seconds.max(1e-9),
            "price_per_1m_tokens": cost.price_per_m, "kwh_per_1m_tokens": cost.kwh_per_m,
            "details": json,
        });
        let jp = dir.join("results.json");
        std::fs::write(&jp, serde_json::to_string_pretty(&doc)? + "\n").with_context(|| format!("cannot write {}", jp.display()))?;
        let mut csv = String::from("suite,model,subject,n,score1,score2,score3\n");
        let per = &doc["details"]["result"]["per_subject"];
        if let Some(m) = per.as_object() {
            for (s, t) in m {
                let f = |k: &str| t[k].as_u64().unwrap_or(0) as f64 * 100.0 / t["n"].as_u64().unwrap_or(1).max(1) as f64;
                let (k1, k2, k3) = if t.get("acc").is_some() { ("acc", "acc_norm", "acc_mean") } else { ("exact", "match", "includes") };
                csv.push_str(&format!("{},{},{},{},{:.2},{:.2},{:.2}\n", a.name, name, s.replace(',', " "), t["n"], f(k1), f(k2), f(k3)));
            }
        }
        let mut charts = Vec::new();
        if let Some(m) = per.as_object() {
            let bars: Vec<(String, f64)> = m
                .iter()
                .map(|(s, t)| {
                    let k = if t.get("acc").is_some() { "acc" } else { "match" };
                    (s.clone(), t[k].as_u64().unwrap_or(0) as f64 * 100.0 / t["n"].as_u64().unwrap_or(1).max(1) as f64)
                })
                .collect();
            let title = format!("{} on {name}: accuracy per subject (%)", a.name);
            charts.push(chart(dir, "accuracy-per-subject", &title, &jikji_eval::plot::bars_svg(&title, &bars, 100.0), jikji_eval::plot_png::bars_png(&title, &bars, 100.0))?);
        }
        let cp = dir.join("results.csv");
        std::fs::write(&cp, csv).with_context(|| format!("cannot write {}", cp.display()))?;
        let body = format!("Model `{name}`, {} items.\n\n{summary}\n{}", items.len(), speed_line(processed, seconds, cost.price_per_m, cost.kwh_per_m));
        jikji_eval::report::write_markdown(dir, &format!("{} on {name}", a.name), &body, &charts)?;
        eprintln!("wrote {}, {}, the charts and report.md", jp.display(), cp.display());
    }
    Ok(())
}
