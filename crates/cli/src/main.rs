//! `jikji`: the command-line front end. Thin glue over the library crates: argument parsing
//! (clap), model resolution (`jikji-catalog`), and printing. Every failure is reported on
//! stderr with a non-zero exit code; nothing here unwraps user input.
#![forbid(unsafe_code)]

mod bench;
mod commands;
mod constrain;
mod devices;
mod embed;
mod eval;
mod eval_suite;
mod inspect;
mod keys;
mod serve;
mod thinking;

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// jikji (직지): run open-weight LLMs from GGUF files on your own CPU, the way llama.cpp does.
///
/// `-m` takes a catalog name (pulled on first use) or a path to a .gguf file; `run` and
/// `chat` default to qwen2.5-0.5b. Catalog: smollm2-135m, gemma3-270m, qwen2.5-0.5b.
#[derive(Parser, Debug)]
#[command(name = "jikji", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Download a catalog model into $JIKJI_MODELS (default ~/.cache/jikji/models).
    Pull {
        /// Catalog name: smollm2-135m, gemma3-270m or qwen2.5-0.5b.
        name: String,
    },
    /// Generate a reply to one prompt (chat-formatted unless --raw) and stream it to stdout.
    Run(RunArgs),
    /// Interactive multi-turn chat: one user message per line on stdin; `/exit` or EOF quits.
    Chat(ChatArgs),
    /// Print the token ids of TEXT as a JSON array.
    Tokenize {
        #[arg(short = 'm', long = "model")]
        model: String,
        /// Add BOS/EOS as the model's metadata asks and parse special tokens in TEXT.
        #[arg(long)]
        special: bool,
        /// Text to tokenize (put it after `--` if it starts with `-`; may be empty).
        text: String,
    },
    /// Print the chat prompt the model's template renders for MESSAGES.json (an
    /// OpenAI-style messages array), generation prompt added, byte for byte.
    Template {
        #[arg(short = 'm', long = "model")]
        model: String,
        messages: std::path::PathBuf,
    },
    /// Sentence embeddings of TEXT... with an encoder model (bert, nomic-bert).
    Embed(embed::EmbedArgs),
    /// Measure prompt-processing and generation speed (tokens/s), like llama-bench.
    Bench(bench::BenchArgs),
    /// Evaluate a model: perplexity, KL divergence, multiple-choice benchmarks, cost.
    #[command(subcommand)]
    Eval(eval::EvalCmd),
    /// Serve the OpenAI-compatible API (chat/completions, streaming, batching) over HTTP(S).
    Serve(serve::ServeArgs),
    /// Manage a --keys-file: `add NAME`, `list`, `remove NAME`.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// List the compute devices: CPU features, Vulkan adapters, CUDA devices.
    Devices,
    /// Show a model file's metadata and tensor table.
    Inspect {
        /// Catalog name or path.
        model: String,
    },
}

/// Options shared by `run` and `chat`: the model and how to run it.
#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// Catalog name or path to a .gguf file [default: the catalog's best Korean speaker].
    #[arg(short = 'm', long = "model", default_value = jikji_catalog::DEFAULT_MODEL)]
    model: String,
    /// Context size in tokens [default: the model's training context, at most 4096].
    #[arg(long = "ctx", short = 'c')]
    ctx: Option<usize>,
    /// Compute threads [default: available parallelism].
    #[arg(long, short = 't')]
    threads: Option<usize>,
    /// Where the model computes: cpu, vulkan, cuda (a build with `--features cuda`) or
    /// auto (a GPU when there is one, else the CPU); `jikji devices` lists them.
    #[arg(long, default_value = "cpu", value_parser = crate::devices::parse_backend)]
    backend: jikji_engine::BackendKind,
}

/// Sampling options. Defaults are llama.cpp's: temperature 0.8, top-k 40, top-p 0.95,
/// min-p 0.05, no penalties. `--temp 0` is greedy decoding.
#[derive(Args, Debug, Clone)]
struct SamplingArgs {
    /// Temperature; 0 (or below) is greedy decoding.
    #[arg(long = "temp", default_value_t = 0.8, allow_negative_numbers = true)]
    temp: f32,
    /// Keep the K most likely tokens (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this cumulative probability (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95, allow_negative_numbers = true)]
    top_p: f32,
    /// Drop tokens less likely than this fraction of the best token (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05, allow_negative_numbers = true)]
    min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Presence penalty (0 = off).
    #[arg(long = "presence-penalty", default_value_t = 0.0, allow_negative_numbers = true)]
    presence_penalty: f32,
    /// Frequency penalty (0 = off).
    #[arg(long = "frequency-penalty", default_value_t = 0.0, allow_negative_numbers = true)]
    frequency_penalty: f32,
    /// How many recent tokens the penalties consider.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    repeat_last_n: usize,
    /// Random seed [default: random]; the same seed gives the same output.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    constrain: constrain::ConstrainArgs,
    /// Tokenize the prompt as-is (BOS per metadata, special tokens parsed), no chat template.
    #[arg(long)]
    raw: bool,
    /// Maximum number of tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    n_predict: usize,
    /// Print one JSON object {"prompt_ids", "ids", "text"} instead of streaming text.
    #[arg(long)]
    json: bool,
    /// System message for the chat template.
    #[arg(long)]
    system: Option<String>,
    /// Stop when the output contains this text (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Do not print a reasoning model's thinking (`<think>` … `</think>`), only its answer.
    #[arg(long = "hide-thinking")]
    hide_thinking: bool,
    /// The prompt (put it after `--` if it starts with `-`; may be empty with --raw on
    /// models that add BOS).
    prompt: String,
}

#[derive(Args, Debug)]
struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    constrain: constrain::ConstrainArgs,
    /// Maximum number of tokens per reply.
    #[arg(short = 'n', long = "n-predict", default_value_t = 1024)]
    n_predict: usize,
    /// System message for the chat template.
    #[arg(long)]
    system: Option<String>,
    /// Do not print a reasoning model's thinking (`<think>` … `</think>`), only its answer.
    #[arg(long = "hide-thinking")]
    hide_thinking: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jikji_kernels::alloc::retain_freed_memory();
    let result = match cli.cmd {
        Cmd::Pull { name } => commands::pull(&name),
        Cmd::Run(args) => commands::run(args),
        Cmd::Chat(args) => commands::chat(args),
        Cmd::Tokenize { model, special, text } => commands::tokenize(&model, special, &text),
        Cmd::Template { model, messages } => commands::template(&model, &messages),
        Cmd::Inspect { model } => inspect::inspect(&model),
        Cmd::Devices => devices::devices(),
        Cmd::Embed(args) => embed::embed(args),
        Cmd::Bench(args) => bench::bench(args),
        Cmd::Serve(args) => serve::serve(args),
        Cmd::Eval(cmd) => eval::eval(cmd),
        Cmd::Keys(cmd) => keys::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if commands::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
