//! Perplexity the way `llama-perplexity` computes it, so the two print the same numbers.
//!
//! Method (llama.cpp `tools/perplexity`, default mode):
//! - the whole text is tokenized once, BOS first when the model adds one (special tokens
//!   are not parsed); at least `2·n_ctx` tokens are needed;
//! - it is cut into `n_tokens / n_ctx` chunks of `n_ctx` tokens (the tail is dropped);
//!   each chunk runs from an empty cache, its first token replaced by BOS when the model
//!   adds one;
//! - only the second half is scored: the logits at positions `first = n_ctx/2 .. n_ctx−2`
//!   predict tokens `first+1 .. n_ctx−1`, `n_ctx − first − 1` tokens per chunk;
//! - `nll = max + ln Σ exp(l − max) − l[tok]` per token ([`crate::logprob::nll_f64`]),
//!   summed with its square; after each chunk the running `exp(Σnll/count)` is printed
//!   as `[i]x.xxxx,`; the final line is `PPL ± ppl·sqrt((⟨nll²⟩ − ⟨nll⟩²)/(count−1))`.
//!
//! The chunk's scored logits are handed to the caller too, so one pass also writes a
//! KL-divergence base ([`crate::logits_file`]) or compares against one ([`crate::kld`]).

use jikji_models::{KvCache, Model};
use jikji_tokenizer::Tokenizer;

use crate::error::EvalError;
use crate::forward::forward_rows;
use crate::logprob::nll_f64;
use crate::parallel::map_rows;

/// Tokens of a text cut into chunks.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunks {
    /// All tokens of the text (BOS first when the model adds it), as llama.cpp stores them.
    pub tokens: Vec<u32>,
    pub n_ctx: usize,
    pub n_chunk: usize,
}

impl Chunks {
    /// Tokenizes `text` and cuts it into chunks of `n_ctx` (at most `max_chunks`).
    pub fn from_text(tok: &Tokenizer, text: &str, n_ctx: usize, max_chunks: Option<usize>) -> Result<Chunks, EvalError> {
        let tokens = tok.encode(text, true, false)?;
        Chunks::from_tokens(tokens, n_ctx, max_chunks)
    }

    pub fn from_tokens(tokens: Vec<u32>, n_ctx: usize, max_chunks: Option<usize>) -> Result<Chunks, EvalError> {
        if n_ctx < 4 {
            return Err(EvalError::Format(format!("a perplexity context of {n_ctx} tokens is too small (at least 4)")));
        }
        if tokens.len() < 2 * n_ctx {
            return Err(EvalError::TooShort { need: 2 * n_ctx, have: tokens.len(), n_ctx });
        }
        let max = tokens.len() / n_ctx;
        let n_chunk = max_chunks.map_or(max, |m| m.min(max));
        Ok(Chunks { tokens, n_ctx, n_chunk })
    }

    /// The first scored position, `n_ctx / 2`.
    pub fn first(&self) -> usize {
        self.n_ctx / 2
    }

    /// Tokens scored per chunk, `n_ctx − first − 1`.
    pub fn scored_per_chunk(&self) -> usize {
        self.n_ctx - self.first() - 1
    }

    /// The original tokens of chunk `i`.
    pub fn chunk(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.n_ctx..(i + 1) * self.n_ctx]
    }

    /// The tokens predicted by the scored rows of chunk `i` (positions `first+1 ..`).
    pub fn targets(&self, i: usize) -> &[u32] {
        &self.chunk(i)[self.first() + 1..]
    }
}

/// Runs chunk `i` from an empty cache (BOS in front when `bos` is given) and returns the
/// logits of its scored rows, `[scored_per_chunk, n_vocab]`.
pub fn chunk_logits(model: &Model, cache: &mut KvCache, chunks: &Chunks, i: usize, bos: Option<u32>, ubatch: usize) -> Result<Vec<f32>, EvalError> {
    let mut ids = chunks.chunk(i).to_vec();
    if let Some(b) = bos {
        ids[0] = b;
    }
    cache.clear();
    let rows: Vec<usize> = (chunks.first()..chunks.n_ctx - 1).collect();
    Ok(forward_rows(model, cache, &ids, &rows, ubatch)?)
}

/// Running sums of negative log-likelihoods.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NllSum {
    pub nll: f64,
    pub nll2: f64,
    pub count: usize,
}

impl NllSum {
    /// Adds the scored rows of one chunk (`targets[j]` is predicted by row `j`); returns
    /// each token's nll.
    pub fn add_chunk(&mut self, logits: &[f32], n_vocab: usize, targets: &[u32], threads: usize) -> Vec<f64> {
        let nlls = map_rows(logits, n_vocab, threads, |j, row| nll_f64(row, targets[j] as usize));
        for &v in &nlls {
            self.nll += v;
            self.nll2 += v * v;
        }
        self.count += nlls.len();
        nlls
    }

    /// `exp(Σnll / count)`.
    pub fn ppl(&self) -> f64 {
        (self.nll / self.count as f64).exp()
    }

    /// The final estimate and its uncertainty, `None` when the spread is not positive
    /// (llama.cpp prints "Unexpected negative standard deviation" then).
    pub fn estimate(&self) -> Option<(f64, f64)> {
        let n = self.count as f64;
        let mean = self.nll / n;
        let var = self.nll2 / n - mean * mean;
        let ppl = mean.exp();
        (var > 0.0 && self.count > 1).then(|| (ppl, (var / (n - 1.0)).sqrt() * ppl))
    }
}

/// `[i]x.xxxx,` — the progress item llama-perplexity prints after chunk `i` (1-based).
pub fn chunk_item(i: usize, ppl: f64) -> String {
    format!("[{i}]{ppl:.4},")
}

/// `Final estimate: PPL = X +/- Y`.
pub fn final_line(ppl: f64, unc: f64) -> String {
    format!("Final estimate: PPL = {ppl:.4} +/- {unc:.5}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_drop_the_tail_and_score_the_second_half() {
        let c = Chunks::from_tokens((0..1030).collect(), 512, None).unwrap();
        assert_eq!((c.n_chunk, c.first(), c.scored_per_chunk()), (2, 256, 255));
        assert_eq!(c.chunk(1)[0], 512);
        assert_eq!(c.targets(0)[0], 257);
        assert_eq!(c.targets(0).len(), 255);
        assert_eq!(Chunks::from_tokens((0..1030).collect(), 512, Some(1)).unwrap().n_chunk, 1);
    }

    #[test]
    fn too_short_a_text_is_refused_with_the_counts() {
        let e = Chunks::from_tokens((0..1000).collect(), 512, None).unwrap_err().to_string();
        assert!(e.contains("at least 1024 tokens") && e.contains("only 1000"), "{e}");
    }

    #[test]
    fn uniform_logits_have_the_vocabulary_as_perplexity() {
        let mut s = NllSum::default();
        let logits = vec![0.0f32; 4 * 8];
        s.add_chunk(&logits, 8, &[1, 2, 3, 4], 2);
        assert!((s.ppl() - 8.0).abs() < 1e-9);
        assert_eq!(s.estimate(), None, "zero spread has no uncertainty");
        assert_eq!(chunk_item(3, 8.0), "[3]8.0000,");
        assert_eq!(final_line(12.34567, 0.123456), "Final estimate: PPL = 12.3457 +/- 0.12346");
    }
}
