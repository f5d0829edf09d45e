//! Scoring several continuations of one shared prefix (HellaSwag endings, Winogrande
//! options, multiple-choice answers), computing exactly the logits llama-perplexity
//! computes and laying them out as it does.
//!
//! llama.cpp puts the common prefix once into a batch shared by one sequence per
//! continuation and asks for logits at the prefix's last token and at the continuation
//! tokens. Here the prefix runs once into a contiguous cache; each continuation is appended
//! after it and the cache cut back to the prefix before the next (the prefix's KV is
//! computed once, as in llama.cpp). The returned [`ChoiceLogits`] is llama.cpp's flat
//! table of output rows — `[prefix last] ++ rows of continuation 0 ++ rows of
//! continuation 1 …` — so the modes can index it with llama.cpp's own offsets, quirks
//! included.

use jikji_models::{KvCache, Model};

use crate::error::EvalError;
use crate::forward::forward_rows;

/// Tokens shared by the start of every sequence.
pub fn common_prefix(seqs: &[Vec<u32>]) -> usize {
    let Some(first) = seqs.first() else { return 0 };
    let min = seqs.iter().map(Vec::len).min().unwrap_or(0);
    (0..min).take_while(|&k| seqs.iter().all(|s| s[k] == first[k])).count()
}

/// The output rows of one task, `n_vocab` wide.
pub struct ChoiceLogits {
    pub rows: Vec<f32>,
    pub n_vocab: usize,
}

impl ChoiceLogits {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.n_vocab..(i + 1) * self.n_vocab]
    }
}

/// Runs `seqs` sharing their first `prefix` tokens (`prefix ≥ 1`, every sequence longer):
/// logits of the prefix's last token, then for each sequence its tokens from `prefix` on,
/// all of them when `with_last`, else all but the last (HellaSwag, multiple-choice).
pub fn score_rows(model: &Model, cache: &mut KvCache, seqs: &[Vec<u32>], prefix: usize, with_last: bool, ubatch: usize) -> Result<ChoiceLogits, EvalError> {
    if prefix == 0 || seqs.iter().any(|s| s.len() <= prefix) {
        return Err(EvalError::Format(
            "the choices share no first token, or one choice is a prefix of the others (nothing to score)".into(),
        ));
    }
    let n_vocab = model.info().n_vocab;
    cache.clear();
    let mut rows = forward_rows(model, cache, &seqs[0][..prefix], &[prefix - 1], ubatch)?;
    for s in seqs {
        let tail = &s[prefix..];
        let n_out = if with_last { tail.len() } else { tail.len() - 1 };
        if n_out == 0 {
            continue;
        }
        cache.truncate(prefix);
        let want: Vec<usize> = (0..n_out).collect();
        rows.extend(forward_rows(model, cache, tail, &want, ubatch)?);
    }
    Ok(ChoiceLogits { rows, n_vocab })
}

/// Tokens a task occupies in llama.cpp's batch (prefix once, every tail), checked against
/// the context as llama.cpp checks it.
pub fn required_tokens(seqs: &[Vec<u32>], prefix: usize) -> usize {
    prefix + seqs.iter().map(|s| s.len() - prefix.min(s.len())).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_stops_at_the_first_difference_or_the_shortest() {
        assert_eq!(common_prefix(&[vec![1, 2, 3], vec![1, 2, 4], vec![1, 2, 3, 5]]), 2);
        assert_eq!(common_prefix(&[vec![1, 2], vec![1, 2, 3]]), 2);
        assert_eq!(common_prefix(&[vec![9], vec![1]]), 0);
        assert_eq!(required_tokens(&[vec![1, 2, 3], vec![1, 2, 4, 5]], 2), 2 + 1 + 2);
    }
}
