//! The perplexity and KL-divergence passes, end to end: chunks through the model, the
//! scored rows to the statistics, llama-perplexity's lines to `out`, and the numbers back
//! to the caller (for `results.json` and throughput).
//!
//! Three modes share one loop over chunks:
//! - plain perplexity;
//! - perplexity while writing a KL-divergence base (`--kl-divergence-base FILE` alone);
//! - KL divergence against a base (`--kl-divergence --kl-divergence-base FILE`): the tokens
//!   come from the base file, not from a text, and `n_ctx` is the base's.

use std::io::{Read, Write};
use std::time::Instant;

use jikji_models::Model;

use crate::error::EvalError;
use crate::kld::{compare_row, KldStats};
use crate::logits_file::{quantize_row, row_len, Reader, Writer};
use crate::parallel::map_rows;
use crate::perplexity::{chunk_item, chunk_logits, final_line, Chunks, NllSum};

/// How the passes run.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Tokens per micro-batch (llama.cpp's `n_ubatch`).
    pub ubatch: usize,
    /// Threads for the log-softmax of the scored rows.
    pub threads: usize,
    /// BOS substituted at each chunk's start, when the model adds one.
    pub bos: Option<u32>,
}

/// What a pass measured.
#[derive(Clone, Debug, PartialEq)]
pub struct PplResult {
    pub n_ctx: usize,
    pub n_chunk: usize,
    /// Running perplexity after each chunk.
    pub per_chunk: Vec<f64>,
    pub ppl: f64,
    /// Uncertainty of the final estimate (`None` without spread).
    pub ppl_unc: Option<f64>,
    /// Tokens run through the model and tokens scored.
    pub tokens_processed: usize,
    pub tokens_scored: usize,
    pub seconds: f64,
    /// KL-divergence statistics (KL mode only).
    pub kld: Option<KldSummary>,
}

/// The headline KL-divergence numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KldSummary {
    pub mean_kld: f64,
    pub mean_kld_unc: f64,
    pub ppl_base: f64,
    pub same_top: f64,
    pub rms_p_diff: f64,
}

/// Perplexity of `chunks`, printing `[i]x.xxxx,` items and the final line to `out`;
/// with `base`, every scored row is also written there in llama.cpp's base format.
pub fn perplexity<W: Write>(model: &Model, chunks: &Chunks, opts: RunOptions, out: &mut dyn Write, mut base: Option<Writer<W>>) -> Result<PplResult, EvalError> {
    let n_vocab = model.info().n_vocab;
    let mut cache = model.new_cache(chunks.n_ctx)?;
    let mut sum = NllSum::default();
    let mut per_chunk = Vec::with_capacity(chunks.n_chunk);
    let t0 = Instant::now();
    let nv = row_len(n_vocab);
    for i in 0..chunks.n_chunk {
        let logits = chunk_logits(model, &mut cache, chunks, i, opts.bos, opts.ubatch)?;
        let targets = chunks.targets(i);
        if let Some(w) = base.as_mut() {
            let rows = map_rows(&logits, n_vocab, opts.threads, |j, row| {
                let mut q = vec![0u16; nv];
                let nll = quantize_row(row, targets[j] as usize, &mut q);
                (nll, q)
            });
            let mut flat = Vec::with_capacity(rows.len() * nv);
            for (nll, q) in rows {
                sum.nll += nll;
                sum.nll2 += nll * nll;
                sum.count += 1;
                flat.extend_from_slice(&q);
            }
            w.write_rows(&flat)?;
        } else {
            sum.add_chunk(&logits, n_vocab, targets, opts.threads);
        }
        per_chunk.push(sum.ppl());
        write_out(out, &chunk_item(i + 1, sum.ppl()))?;
    }
    if let Some(w) = base {
        w.finish()?;
    }
    write_out(out, "\n")?;
    let est = sum.estimate();
    match est {
        Some((p, u)) => write_out(out, &format!("{}\n", final_line(p, u)))?,
        None => write_out(out, "Unexpected negative standard deviation of log(prob)\n")?,
    }
    Ok(PplResult {
        n_ctx: chunks.n_ctx,
        n_chunk: chunks.n_chunk,
        ppl: sum.ppl(),
        ppl_unc: est.map(|e| e.1),
        per_chunk,
        tokens_processed: chunks.n_chunk * chunks.n_ctx,
        tokens_scored: sum.count,
        seconds: t0.elapsed().as_secs_f64(),
        kld: None,
    })
}

/// KL divergence against the base in `base` (tokens and `n_ctx` from it), printing
/// llama-perplexity's chunk table and statistics blocks to `out`.
pub fn kl_divergence<R: Read>(model: &Model, base: R, opts: RunOptions, max_chunks: Option<usize>, out: &mut dyn Write) -> Result<PplResult, EvalError> {
    let mut reader = Reader::new(base)?;
    let n_vocab = model.info().n_vocab;
    if reader.header.n_vocab != n_vocab {
        return Err(EvalError::Mismatch(format!(
            "the base was made with a vocabulary of {} tokens, the model has {n_vocab}",
            reader.header.n_vocab
        )));
    }
    if let Some(&t) = reader.header.tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(EvalError::Format(format!("the base holds token {t}, outside the vocabulary of {n_vocab}")));
    }
    let n_chunk = max_chunks.map_or(reader.header.n_chunk, |m| m.min(reader.header.n_chunk));
    let chunks = Chunks { tokens: reader.header.tokens.clone(), n_ctx: reader.header.n_ctx, n_chunk };
    let mut cache = model.new_cache(chunks.n_ctx)?;
    let mut stats = KldStats::default();
    let mut per_chunk = Vec::with_capacity(n_chunk);
    let nv = row_len(n_vocab);
    let t0 = Instant::now();
    for i in 0..n_chunk {
        let logits = chunk_logits(model, &mut cache, &chunks, i, opts.bos, opts.ubatch)?;
        let stored = reader.next_chunk(i)?;
        let targets = chunks.targets(i);
        let cmp = map_rows(&logits, n_vocab, opts.threads, |j, row| compare_row(row, &stored[j * nv..(j + 1) * nv], targets[j] as usize));
        for t in &cmp {
            stats.add(t);
        }
        if i == 0 {
            write_out(out, &format!("\n{}\n", KldStats::table_header()))?;
        }
        write_out(out, &format!("{}\n", stats.chunk_line(i + 1)))?;
        per_chunk.push(stats.ppl().0);
    }
    write_out(out, "\n")?;
    write_out(out, &stats.report())?;
    let (ppl, ppl_base) = stats.ppl();
    let (mean_kld, mean_kld_unc) = stats.mean_kld();
    Ok(PplResult {
        n_ctx: chunks.n_ctx,
        n_chunk,
        per_chunk,
        ppl,
        ppl_unc: None,
        tokens_processed: n_chunk * chunks.n_ctx,
        tokens_scored: stats.count,
        seconds: t0.elapsed().as_secs_f64(),
        kld: Some(KldSummary { mean_kld, mean_kld_unc, ppl_base, same_top: stats.same_top(), rms_p_diff: stats.rms_p_diff() }),
    })
}

fn write_out(out: &mut dyn Write, s: &str) -> Result<(), EvalError> {
    out.write_all(s.as_bytes()).and_then(|_| out.flush()).map_err(|e| EvalError::io("cannot write the output", e))
}
