//! Scoring several continuations of one shared prefix (HellaSwag endings, Winogrande
//! options, multiple-choice answers, suite items after their header), computing exactly
//! the logits llama-perplexity computes and laying them out as it does.
//!
//! llama.cpp puts a task's common prefix once into a batch shared by one sequence per
//! continuation (its unified KV cache: one cell per prefix token, owned by every
//! sequence, then each continuation's own cells) and asks for logits at the prefix's last
//! token and at the continuation tokens. It packs consecutive tasks into one batch while
//! they fit the context and its four sequences ([`llama_batches`]) and clears the cache
//! between batches.
//!
//! Here, where the model runs shared-prefix steps ([`Model::forward_shared`], the CPU
//! backend), each of llama.cpp's batches is one forward pass laid out in the cache cell
//! for cell as llama.cpp lays it out (the prefix, then every continuation after it, all
//! in one matmul per weight), so every logit has the bits llama.cpp computes for it; a
//! batch larger than `ubatch` is split every `ubatch` rows as llama.cpp splits it into
//! micro-batches. With [`ChoiceScorer::packing`], several batches share a pass, each from
//! a multiple of 16 cells (attention depends on a cell's offset only modulo 16, and hidden
//! cells are exact zeros in its sums), which keeps the attention bits but not the
//! matmuls' (see there).
//!
//! Elsewhere (a GPU backend, multi-head latent attention) each task runs on its own: the
//! prefix into a contiguous cache, then each continuation after it with the cache cut back
//! to the prefix (the prefix's KV computed once, as in llama.cpp).
//!
//! Either way a task's [`ChoiceLogits`] is llama.cpp's flat table of output rows —
//! `[prefix last] ++ rows of continuation 0 ++ rows of continuation 1 …` — so the modes
//! index it with llama.cpp's own offsets, quirks included.

use std::ops::Range;

use jikji_models::{KvCache, Model, RowView};

use crate::error::EvalError;
use crate::forward::forward_rows;
use crate::logprob::{logprob_f32, softmax_probs};

/// Tokens shared by the start of every sequence.
pub fn common_prefix(seqs: &[Vec<u32>]) -> usize {
    let Some(first) = seqs.first() else { return 0 };
    let min = seqs.iter().map(Vec::len).min().unwrap_or(0);
    (0..min).take_while(|&k| seqs.iter().all(|s| s[k] == first[k])).count()
}

/// Tokens a task occupies in llama.cpp's batch (prefix once, every tail), checked against
/// the context as llama.cpp checks it.
pub fn required_tokens(seqs: &[Vec<u32>], prefix: usize) -> usize {
    prefix + seqs.iter().map(|s| s.len() - prefix.min(s.len())).sum::<usize>()
}

/// Which of a continuation's tokens (those after the prefix) give an output row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// All but the last, each predicting the next (HellaSwag, multiple-choice).
    AllButLast,
    /// All of them (llama.cpp's Winogrande asks for every row).
    All,
    /// Only the last (a whole prompt per continuation).
    Last,
}

impl Out {
    fn rows(self, tail: usize) -> Range<usize> {
        match self {
            Out::AllButLast => 0..tail.saturating_sub(1),
            Out::All => 0..tail,
            Out::Last => tail.saturating_sub(1)..tail,
        }
    }
}

/// One task: continuations sharing their first `prefix` tokens.
#[derive(Clone, Debug)]
pub struct ChoiceTask {
    pub seqs: Vec<Vec<u32>>,
    pub prefix: usize,
    pub out: Out,
}

impl ChoiceTask {
    /// A task over `seqs`, sharing their common prefix; refused when they share no first
    /// token or one is a prefix of another (nothing would be scored).
    pub fn new(seqs: Vec<Vec<u32>>, out: Out) -> Result<Self, EvalError> {
        let prefix = common_prefix(&seqs);
        if prefix == 0 || seqs.iter().any(|s| s.len() <= prefix) {
            return Err(EvalError::Format(
                "the choices share no first token, or one choice is a prefix of the others (nothing to score)".into(),
            ));
        }
        Ok(ChoiceTask { seqs, prefix, out })
    }

    /// Tokens the task runs through the model (prefix once, every tail).
    pub fn required(&self) -> usize {
        required_tokens(&self.seqs, self.prefix)
    }

    fn n_out(&self) -> usize {
        1 + self.seqs.iter().map(|s| self.out.rows(s.len() - self.prefix).len()).sum::<usize>()
    }
}

/// The output rows of one task, `n_vocab` wide.
pub struct ChoiceLogits<'a> {
    pub rows: &'a [f32],
    pub n_vocab: usize,
}

impl ChoiceLogits<'_> {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.n_vocab..(i + 1) * self.n_vocab]
    }

    /// The scores llama.cpp sums for each continuation of a task laid out with
    /// [`Out::AllButLast`] (HellaSwag, multiple-choice): the log of its first token's
    /// probability from the prefix's last row (llama.cpp's `softmax` helper, then `ln` in
    /// f32), and the log-probabilities of its later tokens (`compute_logprobs`), in token
    /// order. The modes add them up in their own precisions.
    pub fn answer_logprobs(&self, task: &ChoiceTask) -> Vec<(f32, Vec<f32>)> {
        let cp = task.prefix;
        let first = softmax_probs(self.row(0), task.seqs.iter().map(|s| s[cp] as usize));
        let pairs: Vec<(usize, usize)> = task.seqs.iter().flat_map(|s| &s[cp + 1..]).enumerate().map(|(k, &t)| (1 + k, t as usize)).collect();
        let mut lps = self.logprobs_f32(&pairs).into_iter();
        task.seqs.iter().zip(first).map(|(s, p0)| (p0.ln(), lps.by_ref().take(s.len() - cp - 1).collect())).collect()
    }

    /// [`logprob_f32`] of each `(row, token)` pair, the pairs split over the machine's
    /// threads as llama.cpp's `compute_logprobs` splits them (each sum keeps its own order,
    /// so the split changes no bit).
    pub fn logprobs_f32(&self, pairs: &[(usize, usize)]) -> Vec<f32> {
        let threads = crate::parallel::default_threads().clamp(1, pairs.len().div_ceil(4).max(1));
        if threads == 1 {
            return pairs.iter().map(|&(r, t)| logprob_f32(self.row(r), t)).collect();
        }
        let per = pairs.len().div_ceil(threads);
        std::thread::scope(|sc| {
            let hs: Vec<_> = pairs.chunks(per).map(|c| sc.spawn(move || c.iter().map(|&(r, t)| logprob_f32(self.row(r), t)).collect::<Vec<f32>>())).collect();
            hs.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    }
}

/// llama-perplexity's batches: from each first task not yet run, the following tasks while
/// their tokens fit `n_ctx` together and their sequences `max_seq` (llama.cpp's
/// `n_parallel`, 4 unless raised). A task with more sequences than that runs alone (llama.cpp
/// refuses it); one larger than `n_ctx` is an error naming it.
pub fn llama_batches(tasks: &[ChoiceTask], n_ctx: usize, max_seq: usize) -> Result<Vec<Range<usize>>, EvalError> {
    let mut out = Vec::new();
    let mut i0 = 0;
    while i0 < tasks.len() {
        let (mut i1, mut n_cur, mut s0) = (i0, 0, 0);
        while i1 < tasks.len() && n_cur + tasks[i1].required() <= n_ctx {
            let n = tasks[i1].seqs.len();
            if s0 + n > max_seq && s0 > 0 {
                break;
            }
            s0 += n;
            n_cur += tasks[i1].required();
            i1 += 1;
        }
        if i1 == i0 {
            let need = tasks[i0].required();
            return Err(EvalError::Format(format!("task {} does not fit in the context window (requires {need} tokens, context {n_ctx})", i0 + 1)));
        }
        out.push(i0..i1);
        i0 = i1;
    }
    Ok(out)
}

/// Most output rows one packed forward pass returns (bounds its logits buffer).
const MAX_OUT_ROWS: usize = 256;

/// Runs tasks and hands each one's logits to the caller, in task order.
pub struct ChoiceScorer<'m> {
    model: &'m Model,
    cache: KvCache,
    ubatch: usize,
    /// Several of llama.cpp's batches per forward pass (see [`ChoiceScorer::packing`]).
    pack_batches: bool,
    /// Tokens run through the model.
    pub tokens_processed: usize,
}

impl<'m> ChoiceScorer<'m> {
    pub fn new(model: &'m Model, n_ctx: usize, ubatch: usize) -> Result<Self, EvalError> {
        let ubatch = ubatch.max(1);
        Ok(ChoiceScorer { model, cache: model.new_cache(n_ctx.max(16))?, ubatch, pack_batches: false, tokens_processed: 0 })
    }

    /// Runs as many batches as fit `ubatch` rows in one forward pass. Faster for small
    /// batches, but not llama.cpp's bits: the peer's Q4_K and Q6_K matmuls pick their fold
    /// order from a token's index in its batch and the batch size (`jikji_kernels::
    /// matmul_peer_kquant`), so a row's logits change with what it is batched with. Off by
    /// default (one llama.cpp batch per pass, bit for bit); the suites, which have no
    /// llama.cpp reference, turn it on.
    pub fn packing(mut self, on: bool) -> Self {
        self.pack_batches = on;
        self
    }

    /// Scores `tasks` grouped into llama.cpp's `batches` (consecutive ranges covering every
    /// task), calling `each(task, logits)` in task order.
    pub fn run(&mut self, tasks: &[ChoiceTask], batches: &[Range<usize>], mut each: impl FnMut(usize, &ChoiceLogits<'_>) -> Result<(), EvalError>) -> Result<(), EvalError> {
        let n_vocab = self.model.info().n_vocab;
        if !self.model.shared_steps() {
            for (i, t) in tasks.iter().enumerate() {
                let rows = self.alone(t)?;
                each(i, &ChoiceLogits { rows: &rows, n_vocab })?;
            }
            return Ok(());
        }
        let mut b = 0;
        while b < batches.len() {
            let (mut e, mut rows, mut outs) = (b, 0, 0);
            while e < batches.len() {
                let r: usize = tasks[batches[e].clone()].iter().map(ChoiceTask::required).sum();
                let o: usize = tasks[batches[e].clone()].iter().map(ChoiceTask::n_out).sum();
                if e > b && (rows + r > self.ubatch || outs + o > MAX_OUT_ROWS || !self.pack_batches) {
                    break;
                }
                rows += r;
                outs += o;
                e += 1;
            }
            self.pack(tasks, &batches[b..e], n_vocab, &mut each)?;
            b = e;
        }
        Ok(())
    }

    /// One task on its own over the contiguous cache.
    fn alone(&mut self, t: &ChoiceTask) -> Result<Vec<f32>, EvalError> {
        let p = t.prefix;
        self.cache.clear();
        let mut rows = forward_rows(self.model, &mut self.cache, &t.seqs[0][..p], &[p - 1], self.ubatch)?;
        self.tokens_processed += p;
        for s in &t.seqs {
            let tail = &s[p..];
            let want: Vec<usize> = t.out.rows(tail.len()).collect();
            if want.is_empty() {
                continue;
            }
            self.cache.truncate(p);
            rows.extend(forward_rows(self.model, &mut self.cache, tail, &want, self.ubatch)?);
            self.tokens_processed += tail.len();
        }
        Ok(rows)
    }

    /// llama.cpp's `batches` side by side in one cache, each from a multiple of 16 cells.
    fn pack(&mut self, tasks: &[ChoiceTask], batches: &[Range<usize>], n_vocab: usize, each: &mut impl FnMut(usize, &ChoiceLogits<'_>) -> Result<(), EvalError>) -> Result<(), EvalError> {
        let (mut tokens, mut positions, mut views, mut out_rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut task_rows = Vec::new(); // (task, its output rows)
        let mut cell = 0usize;
        for batch in batches {
            cell = cell.next_multiple_of(16);
            for ti in batch.clone() {
                let t = &tasks[ti];
                let (p, pc) = (t.prefix, cell);
                let o0 = out_rows.len();
                for (k, &tok) in t.seqs[0][..p].iter().enumerate() {
                    tokens.push(tok);
                    positions.push(k);
                    views.push(RowView { cell: pc + k, shared: pc..pc, shared_pos0: 0, own: pc });
                }
                out_rows.push(tokens.len() - 1);
                cell = pc + p;
                for s in &t.seqs {
                    let (own, row0) = (cell, tokens.len());
                    for (k, &tok) in s[p..].iter().enumerate() {
                        tokens.push(tok);
                        positions.push(p + k);
                        views.push(RowView { cell: own + k, shared: pc..pc + p, shared_pos0: 0, own });
                    }
                    out_rows.extend(t.out.rows(s.len() - p).map(|r| row0 + r));
                    cell = own + s.len() - p;
                }
                task_rows.push((ti, o0..out_rows.len()));
            }
        }
        if cell > self.cache.n_ctx() {
            self.cache = self.model.new_cache(cell.next_power_of_two())?;
        }
        self.cache.clear();
        let mut logits = Vec::new();
        let mut next = 0; // index into out_rows
        for c0 in (0..tokens.len()).step_by(self.ubatch) {
            let c1 = (c0 + self.ubatch).min(tokens.len());
            let start = next;
            while next < out_rows.len() && out_rows[next] < c1 {
                next += 1;
            }
            let local: Vec<usize> = out_rows[start..next].iter().map(|&r| r - c0).collect();
            let want = if local.is_empty() { vec![c1 - c0 - 1] } else { local };
            let got = self.model.forward_shared(&tokens[c0..c1], &positions[c0..c1], &views[c0..c1], &mut self.cache, &want)?;
            if start < next && logits.is_empty() {
                logits = got; // the usual single pass: no copy
            } else if start < next {
                logits.extend(got);
            }
        }
        self.tokens_processed += tokens.len();
        for (ti, r) in task_rows {
            each(ti, &ChoiceLogits { rows: &logits[r.start * n_vocab..r.end * n_vocab], n_vocab })?;
        }
        Ok(())
    }
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

    fn task(n_seqs: usize, tail: usize) -> ChoiceTask {
        ChoiceTask::new((0..n_seqs as u32).map(|s| [vec![1, 2], vec![10 + s; tail]].concat()).collect(), Out::AllButLast).unwrap()
    }

    #[test]
    fn llama_batches_fill_four_sequences_and_the_context_like_llama_perplexity() {
        // Winogrande-like pairs: two tasks per batch (four sequences).
        let pairs: Vec<ChoiceTask> = (0..5).map(|_| task(2, 3)).collect();
        assert_eq!(llama_batches(&pairs, 2048, 4).unwrap(), vec![0..2, 2..4, 4..5]);
        // Four answers: one task per batch; two answers after it fit with it only if four.
        let mixed = vec![task(4, 3), task(2, 3), task(2, 3), task(3, 3)];
        assert_eq!(llama_batches(&mixed, 2048, 4).unwrap(), vec![0..1, 1..3, 3..4]);
        // The context bounds a batch too: 2 + 2·3 = 8 tokens each.
        assert_eq!(llama_batches(&pairs, 15, 4).unwrap(), vec![0..1, 1..2, 2..3, 3..4, 4..5]);
        // More sequences than llama.cpp's four: alone. Larger than the context: an error.
        assert_eq!(llama_batches(&[task(6, 2), task(2, 2)], 2048, 4).unwrap(), vec![0..1, 1..2]);
        let e = llama_batches(&[task(2, 3), task(4, 600)], 2048, 4).unwrap_err().to_string();
        assert!(e.contains("task 2") && e.contains("2402"), "{e}");
    }

    #[test]
    fn a_task_without_a_shared_token_or_with_a_choice_inside_another_is_refused() {
        assert!(ChoiceTask::new(vec![vec![1, 2], vec![3, 4]], Out::All).is_err());
        assert!(ChoiceTask::new(vec![vec![1, 2], vec![1, 2, 3]], Out::All).is_err());
        let t = ChoiceTask::new(vec![vec![1, 2, 3], vec![1, 2, 4, 5]], Out::AllButLast).unwrap();
        assert_eq!((t.prefix, t.required(), t.n_out()), (2, 5, 1 + 0 + 1));
        let t = ChoiceTask { out: Out::Last, ..t };
        assert_eq!(t.n_out(), 3);
    }
}
