//! Generation items (ko-evals): the chat prompt, a greedy answer, and the answer checked
//! against the ideal ones the way OpenAI's evals check them — `match` (the answer starts
//! with an ideal), `includes` (contains one) — plus `exact` (equal after trimming).
//!
//! Greedy decoding (temperature 0), at most `max_tokens` tokens, stopping at an
//! end-of-generation token or a newline after some text (every ideal answer of these sets
//! is one line); many items at once through the paged pool, as `serve` batches ([`run`]).

use std::collections::BTreeMap;
use std::time::Instant;

use jikji_models::{BatchSeq, Model};
use jikji_tokenizer::Tokenizer;

use super::items::GenItem;
use crate::error::EvalError;
use crate::logprob::argmax;

/// Counts of a group of generation items.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct GenTally {
    pub n: usize,
    pub exact: usize,
    #[serde(rename = "match")]
    pub matched: usize,
    pub includes: usize,
}

/// One answer, for the results file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Answer {
    pub subject: String,
    pub output: String,
    pub ideal: Vec<String>,
    pub matched: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenResult {
    pub overall: GenTally,
    pub per_subject: BTreeMap<String, GenTally>,
    pub answers: Vec<Answer>,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_seconds: f64,
    pub generation_seconds: f64,
    pub max_tokens: usize,
}

/// Turns `(role, content)` messages into prompt tokens (the chat template).
pub type Render<'a> = &'a dyn Fn(&[(String, String)]) -> Result<Vec<u32>, String>;

/// Limits of a generation run.
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    pub n_ctx: usize,
    pub max_tokens: usize,
    /// Sequences decoded together (llama.cpp's `-np`): every step is one batch over the
    /// paged KV pool, as `serve` runs it.
    pub parallel: usize,
}

/// Positions per KV block of the pool.
const BLOCK: usize = 16;

/// One sequence being decoded.
struct Slot {
    item: usize,
    blocks: Vec<u32>,
    pos: usize,
    ids: Vec<u32>,
    pending: u32,
}

/// Runs every item, calling `progress(done, total)` as answers finish.
///
/// Continuous batching over the paged pool: up to `parallel` sequences are in flight;
/// each step first prefills the prompts of newly admitted items (one batch), then decodes
/// one token for every sequence still running (one batch), and a finished sequence frees
/// its blocks for the next item. The pool's kernels are batch-invariant, so an answer does
/// not depend on `parallel` nor on its neighbours. Prompt time is the prefill steps',
/// generation time the decode steps'.
pub fn run(model: &Model, tok: &Tokenizer, items: &[GenItem], render: Render, o: GenOptions, mut progress: impl FnMut(usize, usize)) -> Result<GenResult, EvalError> {
    let GenOptions { n_ctx, max_tokens, parallel } = o;
    let parallel = parallel.max(1);
    let mut prompts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prompt = render(&item.messages).map_err(EvalError::Format)?;
        if prompt.is_empty() || prompt.len() + max_tokens > n_ctx {
            return Err(EvalError::Format(format!("item {}: a prompt of {} tokens does not fit the context of {n_ctx}", i + 1, prompt.len())));
        }
        prompts.push(prompt);
    }
    let need = |p: &[u32]| (p.len() + max_tokens).div_ceil(BLOCK);
    let widest = prompts.iter().map(|p| need(p)).max().unwrap_or(1);
    let n_blocks = widest * parallel.min(items.len().max(1));
    let mut kv = model.new_paged_kv(n_blocks, BLOCK)?;
    let mut free: Vec<u32> = (0..n_blocks as u32).rev().collect();
    let mut res = GenResult { max_tokens, ..Default::default() };
    let mut outputs: Vec<Option<Vec<u32>>> = vec![None; items.len()];
    let mut active: Vec<Slot> = Vec::new();
    let (mut next, mut done) = (0usize, 0usize);
    // Advances `slot` by the argmax of `row`; true when its answer is complete.
    let advance = |slot: &mut Slot, row: &[f32]| -> Result<bool, EvalError> {
        let t = argmax(row).1 as u32;
        if tok.is_eog(t) {
            return Ok(true);
        }
        slot.ids.push(t);
        slot.pending = t;
        Ok(slot.ids.len() >= max_tokens || tok.decode(&slot.ids, false)?.trim_start().contains('\n'))
    };
    while done < items.len() {
        // Admit items while there are slots and blocks for them.
        let first_new = active.len();
        while active.len() < parallel && next < items.len() && free.len() >= need(&prompts[next]) {
            let blocks = free.split_off(free.len() - need(&prompts[next]));
            active.push(Slot { item: next, blocks, pos: prompts[next].len(), ids: Vec::new(), pending: 0 });
            next += 1;
        }
        let mut finished = vec![false; active.len()];
        if first_new < active.len() {
            let t = Instant::now();
            let seqs: Vec<BatchSeq> = active[first_new..].iter().map(|s| BatchSeq { tokens: &prompts[s.item], pos0: 0, blocks: &s.blocks, logits: true }).collect();
            let logits = model.forward_batch(&seqs, &mut kv)?;
            res.prompt_seconds += t.elapsed().as_secs_f64();
            let nv = logits.len() / seqs.len();
            for (k, slot) in active[first_new..].iter_mut().enumerate() {
                res.prompt_tokens += prompts[slot.item].len();
                finished[first_new + k] = max_tokens == 0 || advance(slot, &logits[k * nv..(k + 1) * nv])?;
            }
        }
        // One decode step for the sequences still running (the new ones included).
        let running: Vec<usize> = (0..active.len()).filter(|&i| !finished[i]).collect();
        if !running.is_empty() {
            let t = Instant::now();
            let toks: Vec<[u32; 1]> = running.iter().map(|&i| [active[i].pending]).collect();
            let seqs: Vec<BatchSeq> = running.iter().zip(&toks).map(|(&i, t)| BatchSeq { tokens: t, pos0: active[i].pos, blocks: &active[i].blocks, logits: true }).collect();
            let logits = model.forward_batch(&seqs, &mut kv)?;
            res.generation_seconds += t.elapsed().as_secs_f64();
            let nv = logits.len() / seqs.len();
            for (k, &i) in running.iter().enumerate() {
                active[i].pos += 1;
                finished[i] = advance(&mut active[i], &logits[k * nv..(k + 1) * nv])?;
            }
        }
        // Retire finished sequences (in reverse, so the indices stay valid).
        for i in (0..active.len()).rev() {
            if finished[i] {
                let slot = active.swap_remove(i);
                free.extend_from_slice(&slot.blocks);
                res.generated_tokens += slot.ids.len();
                outputs[slot.item] = Some(slot.ids);
                done += 1;
                progress(done, items.len());
            }
        }
    }
    for (item, ids) in items.iter().zip(outputs) {
        let output = tok.decode(&ids.unwrap_or_default(), false)?.trim().to_string();
        let exact = item.ideal.iter().any(|x| x.trim() == output);
        let matched = item.ideal.iter().any(|x| output.starts_with(x.trim()));
        let includes = item.ideal.iter().any(|x| output.contains(x.trim()));
        for t in [&mut res.overall, res.per_subject.entry(item.subject.clone()).or_default()] {
            t.n += 1;
            t.exact += usize::from(exact);
            t.matched += usize::from(matched);
            t.includes += usize::from(includes);
        }
        res.answers.push(Answer { subject: item.subject.clone(), output, ideal: item.ideal.clone(), matched });
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jikji_gguf::GgufFile;
    use std::sync::Arc;

    fn tiny() -> (Model, Tokenizer) {
        let r = jikji_testkit::tiny::TinyReference::load("llama-1");
        let file = Arc::new(GgufFile::open(r.gguf_path()).unwrap());
        (Model::load(file.clone()).unwrap(), Tokenizer::from_gguf(&file).unwrap())
    }

    fn items() -> Vec<GenItem> {
        ["Hello", "The quick brown fox", "1 2 3 4 5 6", "Once upon a time, in a land far away,", "a", "Korean: 한국어"]
            .iter()
            .enumerate()
            .map(|(i, t)| GenItem { subject: format!("s{}", i % 2), messages: vec![("user".into(), t.to_string())], ideal: vec!["-".into()] })
            .collect()
    }

    /// One item alone through the pool: prefill, then one token a step, the same stops.
    fn alone(m: &Model, tok: &Tokenizer, prompt: &[u32], max_tokens: usize) -> Vec<u32> {
        let blocks: Vec<u32> = (0..(prompt.len() + max_tokens).div_ceil(BLOCK) as u32).collect();
        let mut kv = m.new_paged_kv(blocks.len(), BLOCK).unwrap();
        let mut logits = m.forward_batch(&[BatchSeq { tokens: prompt, pos0: 0, blocks: &blocks, logits: true }], &mut kv).unwrap();
        let mut ids = Vec::new();
        loop {
            let t = argmax(&logits).1 as u32;
            if tok.is_eog(t) {
                return ids;
            }
            ids.push(t);
            if ids.len() >= max_tokens || tok.decode(&ids, false).unwrap().trim_start().contains('\n') {
                return ids;
            }
            let pos = prompt.len() + ids.len() - 1;
            logits = m.forward_batch(&[BatchSeq { tokens: &[t], pos0: pos, blocks: &blocks, logits: true }], &mut kv).unwrap();
        }
    }

    #[test]
    fn batched_answers_equal_each_item_decoded_alone_whatever_the_parallelism() {
        let (m, tok) = tiny();
        let render = |msgs: &[(String, String)]| tok.encode(&msgs[0].1, true, false).map_err(|e| e.to_string());
        let items = items();
        let max_tokens = 12;
        let want: Vec<String> = items
            .iter()
            .map(|it| {
                let prompt = render(&it.messages).unwrap();
                tok.decode(&alone(&m, &tok, &prompt, max_tokens), false).unwrap().trim().to_string()
            })
            .collect();
        for parallel in [1, 2, 4, 16] {
            let mut ticks = Vec::new();
            let r = run(&m, &tok, &items, &render, GenOptions { n_ctx: 256, max_tokens, parallel }, |d, t| ticks.push((d, t))).unwrap();
            let got: Vec<&str> = r.answers.iter().map(|a| a.output.as_str()).collect();
            assert_eq!(got, want, "parallel {parallel}");
            assert_eq!(ticks.last(), Some(&(items.len(), items.len())), "parallel {parallel}: progress reaches the end");
            assert_eq!(r.overall.n, items.len());
            assert!(r.generated_tokens > 0 && r.prompt_tokens > 0);
        }
        // Scoring: with the answers as ideals, every item is exact, a match and includes.
        let scored: Vec<GenItem> = items.iter().zip(&want).map(|(it, w)| GenItem { ideal: vec![w.clone()], ..it.clone() }).collect();
        let r = run(&m, &tok, &scored, &render, GenOptions { n_ctx: 256, max_tokens, parallel: 3 }, |_, _| {}).unwrap();
        assert_eq!((r.overall.exact, r.overall.matched, r.overall.includes), (items.len(), items.len(), items.len()));
        assert_eq!(r.per_subject.len(), 2);
    }

    #[test]
    fn a_prompt_longer_than_the_context_is_a_clear_error() {
        let (m, tok) = tiny();
        let render = |msgs: &[(String, String)]| tok.encode(&msgs[0].1, true, false).map_err(|e| e.to_string());
        let e = run(&m, &tok, &items(), &render, GenOptions { n_ctx: 8, max_tokens: 4, parallel: 4 }, |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("does not fit the context of 8"), "{e}");
    }
}
