//! The subcommands other than `inspect`.

use std::io::{self, BufRead, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use jikji_engine::{
    chat, reasoning, tokenize_chat_prompt, ChatFormatter, GenerateParams, Generation, Generator, OpenOptions, Opened, ReasoningSplitter,
    Sampler, SamplerConfig, StopReason,
};
use jikji_gguf::GgufFile;
use jikji_tokenizer::Tokenizer;
use serde_json::Value;

use crate::thinking::ThinkingView;
use crate::{ChatArgs, ModelArgs, RunArgs, SamplingArgs};

/// True when the error chain ends in a closed stdout (e.g. piped into `head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Resolves `-m` (catalog name, path, or Hugging Face directory) and opens the file.
pub fn open_file(model: &str) -> Result<(PathBuf, Arc<GgufFile>)> {
    let path = jikji_catalog::resolve(model)?;
    let file = jikji_engine::open::open_file(&path)?;
    Ok((path, Arc::new(file)))
}

fn open_tokenizer(path: &Path, file: &GgufFile) -> Result<Tokenizer> {
    Tokenizer::from_gguf(file).with_context(|| format!("cannot build the tokenizer of {}", path.display()))
}

/// Sets the compute threads (`-t`; 0 is an error, `None` keeps the default).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        jikji_kernels::set_num_threads(t);
    }
    Ok(())
}

/// Resolves `-m` and opens file, tokenizer and model with the engine's context rule
/// (`--ctx`, else the training context capped at 4096); a KV cache of that context must
/// fit the machine's available memory. `run`, `chat`, `serve`, `bench` and `eval` all open
/// here, on the `--backend` they were given.
pub fn open_model(model: &str, ctx: Option<usize>, backend: jikji_engine::BackendKind) -> Result<Opened> {
    if ctx == Some(0) {
        bail!("--ctx must be at least 1");
    }
    let path = jikji_catalog::resolve(model)?;
    let opts = OpenOptions { ctx, memory_budget: jikji_eval::memory::available_bytes(), backend };
    Ok(jikji_engine::open(&path, &opts)?)
}

fn load(args: &ModelArgs) -> Result<Opened> {
    set_threads(args.threads)?;
    open_model(&args.model, args.ctx, args.backend)
}

fn sampler(args: &SamplingArgs) -> Result<Sampler> {
    let seed = args.seed.unwrap_or_else(random_seed);
    let cfg = SamplerConfig {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        presence_penalty: args.presence_penalty,
        frequency_penalty: args.frequency_penalty,
        penalty_last_n: args.repeat_last_n,
        seed,
    };
    Ok(Sampler::new(cfg)?)
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn formatter(loaded: &Opened) -> Result<ChatFormatter> {
    ChatFormatter::from_gguf(&loaded.file)
        .with_context(|| format!("cannot use the chat template of {}", loaded.path.display()))
}

/// Writes a generated piece to stdout through the thinking view and flushes; a write
/// error stops generation and is kept for the caller.
fn show_piece(view: &mut ThinkingView, out: &mut io::StdoutLock<'_>, err: &mut Option<io::Error>, piece: &str) -> ControlFlow<()> {
    match view.push(out, piece) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            *err = Some(e);
            ControlFlow::Break(())
        }
    }
}

/// Prints the statistics on stderr, on a line of their own: when the answer went to a pipe
/// or file without a final newline (stdout on a terminal always gets one), the line starts
/// with one, so `2>&1` never glues the statistics to the text.
fn report_timings(g: &Generation, open_line: bool) {
    let t = &g.timings;
    let stop = match &g.stop {
        StopReason::Eog(_) => "end of generation".to_string(),
        StopReason::MaxTokens => "token limit".to_string(),
        StopReason::StopString(s) => format!("stop string {s:?}"),
        StopReason::ContextFull => "context full".to_string(),
        StopReason::Cancelled => "cancelled".to_string(),
        StopReason::GrammarComplete => "grammar complete".to_string(),
    };
    let _ = writeln!(
        io::stderr(),
        "{}[prompt: {} tokens ({} reused) in {:.2} s, {:.1} tok/s | generated: {} tokens in {:.2} s, {:.1} tok/s | stop: {}]",
        if open_line { "\n" } else { "" },
        t.prompt_evaluated,
        t.prompt_reused,
        t.prompt_time.as_secs_f64(),
        t.prompt_tokens_per_second(),
        t.generated,
        t.generation_time.as_secs_f64(),
        t.generation_tokens_per_second(),
        stop
    );
}

pub fn pull(name: &str) -> Result<()> {
    let path = jikji_catalog::pull(name)?;
    writeln!(io::stdout(), "{}", path.display())?;
    Ok(())
}

pub fn run(args: RunArgs) -> Result<()> {
    // A bad grammar file is refused before the model loads.
    args.constrain.spec()?;
    let loaded = load(&args.model)?;
    let mut grammar = args.constrain.compile(&loaded)?;
    let n_ctx = loaded.n_ctx;
    let mut sampler = sampler(&args.sampling)?;
    let mut rendered_prompt = args.prompt.clone();
    let prompt_ids = if args.raw {
        if args.system.is_some() {
            bail!("--system needs the chat template; it cannot be combined with --raw");
        }
        loaded.tokenizer.encode(&args.prompt, true, true).context("cannot tokenize the prompt")?
    } else {
        let fmt = formatter(&loaded)?;
        let mut messages = Vec::new();
        if let Some(sys) = &args.system {
            messages.push(chat::message("system", sys));
        }
        messages.push(chat::message("user", &args.prompt));
        let rendered = fmt.render(&Value::Array(messages), true)?;
        let ids = tokenize_chat_prompt(&loaded.tokenizer, &rendered)?;
        rendered_prompt = rendered;
        ids
    };
    if prompt_ids.is_empty() {
        bail!("the prompt is empty after tokenization (this model adds no BOS); give some text");
    }
    let params = GenerateParams { max_tokens: args.n_predict, stop: args.stop.clone(), render_special: false };
    let mut generator = Generator::new(&loaded.model, &loaded.tokenizer, n_ctx)?;
    let stdout = io::stdout();
    if args.json {
        let g = generator.generate_constrained(&prompt_ids, &params, &mut sampler, grammar.as_mut(), |_| ControlFlow::Continue(()))?;
        let mut obj = serde_json::json!({ "prompt_ids": g.prompt_ids, "ids": g.ids, "text": g.text });
        let (reasoning, content) = reasoning::split_all(&mut ReasoningSplitter::for_prompt(&rendered_prompt), &g.text);
        if !reasoning.is_empty() {
            obj["reasoning_content"] = Value::String(reasoning);
            obj["content"] = Value::String(content);
        }
        let mut out = stdout.lock();
        writeln!(out, "{obj}")?;
        out.flush()?;
        report_timings(&g, false);
        return Ok(());
    }
    let mut out = stdout.lock();
    let mut write_err = None;
    let mut view = ThinkingView::new(&rendered_prompt, args.hide_thinking, io::stdout().is_terminal());
    let g = generator.generate_constrained(&prompt_ids, &params, &mut sampler, grammar.as_mut(), |piece| {
        show_piece(&mut view, &mut out, &mut write_err, piece)
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    view.finish(&mut out)?;
    let on_terminal = io::stdout().is_terminal();
    if on_terminal {
        writeln!(out)?;
    }
    out.flush()?;
    report_timings(&g, !on_terminal && !g.text.is_empty() && !g.text.ends_with('\n'));
    Ok(())
}

pub fn chat(args: ChatArgs) -> Result<()> {
    args.constrain.spec()?;
    let loaded = load(&args.model)?;
    let grammar = args.constrain.compile(&loaded)?;
    let n_ctx = loaded.n_ctx;
    let fmt = formatter(&loaded)?;
    let mut sampler = sampler(&args.sampling)?;
    let params = GenerateParams { max_tokens: args.n_predict, ..GenerateParams::default() };
    let mut generator = Generator::new(&loaded.model, &loaded.tokenizer, n_ctx)?;
    let mut messages: Vec<Value> = Vec::new();
    if let Some(sys) = &args.system {
        messages.push(chat::message("system", sys));
    }
    let interactive = io::stdin().is_terminal();
    if interactive {
        let _ = writeln!(io::stderr(), "jikji chat with {} — type a message; /exit or Ctrl-D quits.", loaded.path.display());
    }
    let stdin = io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            let _ = write!(io::stderr(), "> ");
            let _ = io::stderr().flush();
        }
        let line = match lines.next() {
            None => break,
            Some(l) => l.context("cannot read stdin")?,
        };
        let text = line.trim_end_matches('\r');
        if text.trim() == "/exit" {
            break;
        }
        if text.trim().is_empty() {
            continue;
        }
        messages.push(chat::message("user", text));
        let rendered = fmt.render(&Value::Array(messages.clone()), true)?;
        let ids = tokenize_chat_prompt(&loaded.tokenizer, &rendered)?;
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let mut write_err = None;
        let mut view = ThinkingView::new(&rendered, args.hide_thinking, io::stdout().is_terminal());
        // Each reply walks a fresh copy of the grammar compiled once above.
        let mut turn_grammar = grammar.clone();
        let g = generator
            .generate_constrained(&ids, &params, &mut sampler, turn_grammar.as_mut(), |piece| {
                show_piece(&mut view, &mut out, &mut write_err, piece)
            })
            .context("generation failed (the conversation may no longer fit the context; try a larger --ctx)")?;
        if let Some(e) = write_err {
            return Err(e.into());
        }
        view.finish(&mut out)?;
        writeln!(out)?;
        out.flush()?;
        report_timings(&g, false);
        messages.push(chat::message("assistant", &g.text));
    }
    Ok(())
}

pub fn tokenize(model: &str, special: bool, text: &str) -> Result<()> {
    let (path, file) = open_file(model)?;
    let tok = open_tokenizer(&path, &file)?;
    let ids = tok.encode(text, special, special).context("cannot tokenize the text")?;
    let mut out = io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&ids)?)?;
    out.flush()?;
    Ok(())
}

pub fn template(model: &str, messages_path: &Path) -> Result<()> {
    let src = std::fs::read_to_string(messages_path)
        .with_context(|| format!("cannot read {}", messages_path.display()))?;
    let messages: Value = serde_json::from_str(&src)
        .with_context(|| format!("{} is not valid JSON", messages_path.display()))?;
    if !messages.is_array() {
        bail!("{} must hold a JSON array of messages", messages_path.display());
    }
    let (path, file) = open_file(model)?;
    let fmt = ChatFormatter::from_gguf(&file)
        .with_context(|| format!("cannot use the chat template of {}", path.display()))?;
    let rendered = fmt.render(&messages, true)?;
    let mut out = io::stdout().lock();
    out.write_all(rendered.as_bytes())?;
    out.flush()?;
    Ok(())
}
