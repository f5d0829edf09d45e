//! `jikji embed -m M [--json] [--dimensions N] TEXT...`: sentence embeddings of an encoder
//! model, one L2-normalised vector per TEXT, all TEXTs in one forward batch.
//!
//! Plain output: one line per text, the values separated by spaces. `--json`: an OpenAI-
//! shaped object (`data[i].embedding`, `usage.prompt_tokens`). `--tokens` prints each
//! text's token ids instead (the WordPiece check against llama.cpp).

use anyhow::{bail, Context, Result};
use clap::Args;
use jikji_engine::embed::{matryoshka, Embedder};
use std::io::Write;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Catalog name or path of an encoder GGUF (bert, nomic-bert).
    #[arg(short = 'm', long = "model")]
    model: String,
    /// Print an OpenAI-shaped JSON object instead of one line of numbers per text.
    #[arg(long)]
    json: bool,
    /// Keep the first N dimensions and renormalise (Matryoshka models).
    #[arg(long)]
    dimensions: Option<usize>,
    /// Print the token ids of each text (JSON arrays, one per line) instead of vectors.
    #[arg(long)]
    tokens: bool,
    /// Compute threads.
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Texts to embed (put them after `--` if one starts with `-`).
    #[arg(required = true)]
    text: Vec<String>,
}

pub fn embed(a: EmbedArgs) -> Result<()> {
    crate::commands::set_threads(a.threads)?;
    let path = jikji_catalog::resolve(&a.model)?;
    let e = Embedder::open(&path).with_context(|| format!("cannot open {} as an embedding model", path.display()))?;
    let seqs: Vec<Vec<u32>> = a.text.iter().map(|t| e.tokenize(t)).collect();
    let mut out = std::io::stdout().lock();
    if a.tokens {
        for s in &seqs {
            writeln!(out, "{}", serde_json::to_string(s)?)?;
        }
        return Ok(());
    }
    if let Some(d) = a.dimensions {
        if d == 0 || d > e.n_embd() {
            bail!("--dimensions must be between 1 and {}", e.n_embd());
        }
    }
    let mut vecs = e.embed_tokens(&seqs)?;
    if let Some(d) = a.dimensions {
        vecs = vecs.iter().map(|v| matryoshka(v, d)).collect();
    }
    if a.json {
        let data: Vec<serde_json::Value> = vecs
            .iter()
            .enumerate()
            .map(|(i, v)| serde_json::json!({"object": "embedding", "index": i, "embedding": v}))
            .collect();
        let n: usize = seqs.iter().map(Vec::len).sum();
        let model = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let doc = serde_json::json!({"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": n, "total_tokens": n}});
        writeln!(out, "{doc}")?;
    } else {
        for v in &vecs {
            let line: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
            writeln!(out, "{}", line.join(" "))?;
        }
    }
    Ok(())
}
