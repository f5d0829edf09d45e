//! The engine loop: admit, step, sample, stream, free.
//!
//! Each iteration: drop cancelled sequences (their stream was dropped), admit queued
//! requests while slots and KV blocks allow (reusing cached prefix blocks), then run one
//! `forward_batch` holding every generating sequence's next row and up to
//! `prefill_chunk` prompt tokens of the sequences still prefilling (oldest first), and
//! turn each returned logits row into a token, text and events.
//!
//! Forced tokens: when a constrained sequence's grammar allows exactly one continuation
//! after the sampled token (the keys and punctuation of a JSON schema, a tool call's
//! `{"name": "get_weather", "arguments": `), llguidance names those tokens
//! (`compute_ff_tokens`) and the sequence takes them at once, without sampling: they are
//! streamed right away and all enter the next step's forward as rows of one chunk, so k
//! forced tokens cost one step instead of k. At most [`MAX_FORCED`] per step; not for
//! requests that ask for logprobs (a forced token has no logits row of its own), and off
//! with `ServeConfig::fast_forward = false`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use jikji_models::{BatchSeq, Model, PagedKv};
use jikji_tokenizer::IncrementalDecoder;
use tokio::sync::mpsc;

use super::blocks::{block_hash, BlockTable, ROOT};
use super::{FinishReason, GenEvent, Pending, Shared, TokenLogprob, Usage};
use crate::generate::{Pushed, StopStream};
use crate::grammar::Constraint;
use crate::sampler::Sampler;

/// Most forced tokens a sequence takes after one sampled token.
const MAX_FORCED: usize = 64;

/// One admitted request.
struct Seq {
    tx: mpsc::UnboundedSender<GenEvent>,
    sampler: Sampler,
    decoder: IncrementalDecoder,
    stops: StopStream,
    max_tokens: usize,
    logit_bias: Vec<(u32, f32)>,
    logprobs: Option<usize>,
    ignore_eos: bool,
    /// Constrained decoding state (its next mask is computed during the forward pass).
    grammar: Option<Constraint>,
    /// Prompt then generated tokens; positions `0..computed` have their KV in the pool.
    tokens: Vec<u32>,
    n_prompt: usize,
    computed: usize,
    /// Block table: `blocks[i]` holds positions `i * block_size ..`.
    blocks: Vec<u32>,
    /// Names of the full blocks so far (prefix-cache hashes), in order.
    names: Vec<u64>,
    /// Blocks this sequence may still allocate (its share of the reservation).
    reserve: usize,
    generated: usize,
    cached: usize,
    submitted: Instant,
    last_token: Option<Instant>,
}

impl Seq {
    fn usage(&self) -> Usage {
        Usage { prompt_tokens: self.n_prompt, completion_tokens: self.generated, cached_prompt_tokens: self.cached }
    }
}

/// What happened to a sequence after a step.
enum Outcome {
    Continue,
    /// Finished normally (events sent).
    Finished,
    /// The client is gone.
    Cancelled,
    Failed(String),
}

struct Worker {
    sh: Arc<Shared>,
    model: Arc<Model>,
    kv: PagedKv,
    table: BlockTable,
    running: Vec<Seq>,
    /// Sum of the running sequences' `reserve`.
    reserved: usize,
    eog: Vec<u32>,
    /// `JIKJI_SERVE_TRACE` set: print every step's size and forward time to stderr.
    trace: bool,
}

pub(crate) fn run(sh: Arc<Shared>, model: Arc<Model>, kv: PagedKv) {
    let table = BlockTable::new(kv.n_blocks());
    let eog = sh.tokenizer.eog_ids();
    let trace = std::env::var_os("JIKJI_SERVE_TRACE").is_some();
    let mut w = Worker { sh, model, kv, table, running: Vec::new(), reserved: 0, eog, trace };
    loop {
        {
            let mut q = w.sh.lock();
            loop {
                if q.stop {
                    w.sh.loop_alive.store(false, Ordering::Relaxed);
                    q.waiting.clear();
                    q.running = 0;
                    return;
                }
                if !w.running.is_empty() || !q.waiting.is_empty() {
                    break;
                }
                q = w.sh.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        }
        w.drop_cancelled();
        w.admit();
        if w.running.is_empty() {
            // Only cancelled requests were waiting (or nothing fits yet): wait for news.
            let q = w.sh.lock();
            if !q.stop && !q.waiting.is_empty() {
                let _ = w.sh.wake.wait_timeout(q, std::time::Duration::from_millis(20));
            }
            continue;
        }
        w.step();
    }
}

impl Worker {
    fn bs(&self) -> usize {
        self.sh.block_size
    }

    fn publish_usage(&self) {
        self.sh.blocks_used.store(self.table.used(), Ordering::Relaxed);
    }

    /// Frees sequence `i`'s blocks and reservation and removes it.
    fn finish(&mut self, i: usize) -> Seq {
        let s = self.running.remove(i);
        for &b in &s.blocks {
            self.table.release(b);
        }
        self.reserved -= s.reserve;
        self.sh.lock().running -= 1;
        self.publish_usage();
        s
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].tx.is_closed() {
                self.finish(i);
                self.sh.metrics.update(|c| c.cancelled += 1);
            } else {
                i += 1;
            }
        }
    }

    /// Admits queued requests (oldest first) while a slot and their KV budget are free.
    fn admit(&mut self) {
        let bs = self.bs();
        while self.running.len() < self.sh.cfg.parallel {
            let p = {
                let mut q = self.sh.lock();
                let mut next = None;
                while let Some(p) = q.waiting.pop_front() {
                    if p.tx.is_closed() {
                        self.sh.metrics.update(|c| c.cancelled += 1);
                        continue;
                    }
                    q.running += 1;
                    next = Some(p);
                    break;
                }
                next
            };
            let Some(p) = p else { break };
            let n_prompt = p.req.prompt.len();
            // Reuse cached full blocks, leaving at least the last prompt token to compute.
            let (mut blocks, mut names, mut parent) = (Vec::new(), Vec::new(), ROOT);
            for chunk in p.req.prompt[..n_prompt - 1].chunks_exact(bs) {
                let h = block_hash(parent, chunk);
                match self.table.lookup(h, parent, chunk) {
                    Some(b) => {
                        blocks.push(b);
                        names.push(h);
                        parent = h;
                    }
                    None => break,
                }
            }
            let total = (n_prompt + p.req.max_tokens).div_ceil(bs);
            let need = total.saturating_sub(blocks.len());
            if self.table.available() < self.reserved + need {
                for &b in &blocks {
                    self.table.release(b);
                }
                let mut q = self.sh.lock();
                q.running -= 1;
                q.waiting.push_front(p);
                break;
            }
            self.reserved += need;
            let cached = blocks.len() * bs;
            self.sh.metrics.update(|c| {
                c.prompt_tokens += n_prompt as u64;
                c.prefix_hit_tokens += cached as u64;
            });
            self.running.push(self.new_seq(p, blocks, names, need, cached));
            self.publish_usage();
        }
    }

    fn new_seq(&self, p: Pending, blocks: Vec<u32>, names: Vec<u64>, reserve: usize, cached: usize) -> Seq {
        let Pending { req, mut sampler, tx, submitted } = p;
        sampler.reset();
        for &id in &req.prompt {
            sampler.accept(id);
        }
        Seq {
            tx,
            sampler,
            decoder: self.sh.tokenizer.incremental_decoder_with(req.special_text),
            stops: StopStream::new(&req.stop),
            max_tokens: req.max_tokens,
            logit_bias: req.logit_bias,
            logprobs: req.logprobs,
            ignore_eos: req.ignore_eos,
            grammar: req.grammar,
            n_prompt: req.prompt.len(),
            tokens: req.prompt,
            computed: cached,
            blocks,
            names,
            reserve,
            generated: 0,
            cached,
            submitted,
            last_token: None,
        }
    }

    /// One batched forward over every running sequence, then sampling and events.
    fn step(&mut self) {
        let bs = self.bs();
        // (sequence index, first position, end position) of this step's rows.
        let mut feeds: Vec<(usize, usize, usize)> = Vec::new();
        for (i, s) in self.running.iter().enumerate() {
            if s.computed >= s.n_prompt {
                feeds.push((i, s.computed, s.tokens.len()));
            }
        }
        let mut budget = self.sh.cfg.prefill_chunk;
        for (i, s) in self.running.iter().enumerate() {
            if s.computed < s.n_prompt && budget > 0 {
                let take = (s.n_prompt - s.computed).min(budget);
                budget -= take;
                feeds.push((i, s.computed, s.computed + take));
            }
        }
        // Blocks for the positions this step writes.
        let mut failed: Vec<(usize, String)> = Vec::new();
        for &(i, _, end) in &feeds {
            while self.running[i].blocks.len() * bs < end {
                let s = &mut self.running[i];
                if s.reserve == 0 {
                    failed.push((i, "internal error: KV reservation exhausted".into()));
                    break;
                }
                match self.table.alloc() {
                    Some(b) => {
                        s.blocks.push(b);
                        s.reserve -= 1;
                        self.reserved -= 1;
                    }
                    None => {
                        failed.push((i, "internal error: the KV pool is exhausted".into()));
                        break;
                    }
                }
            }
        }
        self.publish_usage();
        feeds.retain(|(i, _, _)| !failed.iter().any(|(j, _)| j == i));
        let mut outcomes: Vec<(usize, Outcome)> = failed.into_iter().map(|(i, e)| (i, Outcome::Failed(e))).collect();

        if !feeds.is_empty() {
            // The grammar states of the sequences sampling this step leave their sequences
            // for the forward pass: a helper thread computes their masks meanwhile.
            let mut side: Vec<Constraint> = Vec::new();
            let mut side_of: Vec<usize> = Vec::new();
            for &(i, _, end) in &feeds {
                let s = &self.running[i];
                if end == s.tokens.len() && s.grammar.is_some() {
                    side_of.push(i);
                }
            }
            for &i in &side_of {
                side.extend(self.running[i].grammar.take());
            }
            let batch: Vec<BatchSeq> = feeds
                .iter()
                .map(|&(i, start, end)| {
                    let s = &self.running[i];
                    BatchSeq { tokens: &s.tokens[start..end], pos0: start, blocks: &s.blocks, logits: end == s.tokens.len() }
                })
                .collect();
            let (model, kv) = (&self.model, &mut self.kv);
            let t_fwd = Instant::now();
            let (result, side, mask_time) = std::thread::scope(|sc| {
                let helper = (!side.is_empty()).then(|| {
                    sc.spawn(move || {
                        let t = Instant::now();
                        for g in side.iter_mut() {
                            // An error stays in the matcher and fails the sequence when applied.
                            let _ = g.prepare();
                        }
                        (side, t.elapsed())
                    })
                });
                let result = catch_unwind(AssertUnwindSafe(|| model.forward_batch(&batch, kv)));
                match helper.map(|h| h.join()) {
                    None => (result, Some(Vec::new()), std::time::Duration::ZERO),
                    Some(Ok((side, t))) => (result, Some(side), t),
                    Some(Err(_)) => (result, None, std::time::Duration::ZERO),
                }
            });
            let fwd = t_fwd.elapsed();
            drop(batch);
            match side {
                Some(side) => {
                    for (i, g) in side_of.iter().zip(side) {
                        self.running[*i].grammar = Some(g);
                    }
                }
                None => {
                    for &i in &side_of {
                        outcomes.push((i, Outcome::Failed("internal error: the grammar mask computation panicked".into())));
                    }
                    feeds.retain(|(i, _, _)| !side_of.contains(i));
                }
            }
            if self.trace {
                let rows: usize = feeds.iter().map(|&(_, a, b)| b - a).sum();
                eprintln!(
                    "[serve] step: {} seqs, {rows} rows, forward {:.1} ms, {} masks {:.2} ms (beside it)",
                    feeds.len(),
                    fwd.as_secs_f64() * 1e3,
                    side_of.len(),
                    mask_time.as_secs_f64() * 1e3
                );
            }
            let n_vocab = self.sh.n_vocab;
            match result {
                Ok(Ok(logits)) => {
                    let mut row = 0;
                    for &(i, _, end) in &feeds {
                        self.mark_computed(i, end);
                        if end == self.running[i].tokens.len() {
                            let l = logits.get(row * n_vocab..(row + 1) * n_vocab);
                            row += 1;
                            let outcome = match l {
                                Some(l) => self.on_logits(i, l),
                                None => Outcome::Failed("internal error: missing logits".into()),
                            };
                            outcomes.push((i, outcome));
                        }
                    }
                }
                Ok(Err(e)) => outcomes.extend(feeds.iter().map(|&(i, _, _)| (i, Outcome::Failed(format!("forward pass failed: {e}"))))),
                Err(_) => outcomes.extend(feeds.iter().map(|&(i, _, _)| (i, Outcome::Failed("forward pass panicked".into())))),
            }
        }
        // Remove ended sequences, highest index first so indices stay valid.
        outcomes.sort_by_key(|o| std::cmp::Reverse(o.0));
        for (i, o) in outcomes {
            match o {
                Outcome::Continue => {}
                Outcome::Finished => {
                    self.finish(i);
                }
                Outcome::Cancelled => {
                    self.finish(i);
                    self.sh.metrics.update(|c| c.cancelled += 1);
                }
                Outcome::Failed(e) => {
                    let s = self.finish(i);
                    let _ = s.tx.send(GenEvent::Error(e));
                }
            }
        }
    }

    /// Records that positions up to `end` are in the pool and names newly full blocks.
    fn mark_computed(&mut self, i: usize, end: usize) {
        let bs = self.bs();
        let s = &mut self.running[i];
        s.computed = end;
        while s.names.len() < s.computed / bs {
            let k = s.names.len();
            let parent = s.names.last().copied().unwrap_or(ROOT);
            let toks = &s.tokens[k * bs..(k + 1) * bs];
            let h = block_hash(parent, toks);
            self.table.name(s.blocks[k], h, parent, toks);
            s.names.push(h);
        }
    }

    /// Samples sequence `i`'s next token from its logits row and sends its events.
    fn on_logits(&mut self, i: usize, raw: &[f32]) -> Outcome {
        let tokenizer = self.sh.tokenizer.clone();
        let eog = &self.eog;
        let s = &mut self.running[i];
        // A copy of the row (vocabulary-sized) only when it is to be changed.
        let mut l = std::borrow::Cow::Borrowed(raw);
        if let Some(g) = &mut s.grammar {
            if let Err(e) = g.apply(l.to_mut()) {
                return Outcome::Failed(e.to_string());
            }
        }
        if !s.logit_bias.is_empty() || s.ignore_eos {
            let l = l.to_mut();
            for &(id, b) in &s.logit_bias {
                if let Some(v) = l.get_mut(id as usize) {
                    *v += b;
                }
            }
            if s.ignore_eos {
                for &id in eog {
                    if let Some(v) = l.get_mut(id as usize) {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let id = match s.sampler.sample(&l) {
            Ok(id) => id,
            Err(e) => return Outcome::Failed(format!("sampling failed: {e}")),
        };
        let logprob = s.logprobs.map(|k| token_logprob(&tokenizer, raw, id, k));
        let now = Instant::now();
        match s.last_token {
            None => self.sh.metrics.update(|c| c.ttft.observe((now - s.submitted).as_secs_f64())),
            Some(t) => self.sh.metrics.update(|c| c.itl.observe((now - t).as_secs_f64())),
        }
        s.last_token = Some(now);

        if !s.ignore_eos && tokenizer.is_eog(id) {
            let rest = s.decoder.finish();
            let text = s.stops.finish(&rest);
            if !text.is_empty() && s.tx.send(GenEvent::Token { id, text, logprob }).is_err() {
                return Outcome::Cancelled;
            }
            let _ = s.tx.send(GenEvent::Done { finish: FinishReason::Stop, usage: s.usage() });
            return Outcome::Finished;
        }
        self.sh.metrics.update(|c| c.generated_tokens += 1);
        let outcome = take_token(s, id, logprob);
        if !matches!(outcome, Outcome::Continue) || !self.sh.cfg.fast_forward || s.logprobs.is_some() {
            return outcome;
        }
        let forced = match &mut s.grammar {
            Some(g) => g.forced_tokens(),
            None => return outcome,
        };
        for id in forced.into_iter().take(MAX_FORCED) {
            if tokenizer.is_eog(id) {
                break;
            }
            self.sh.metrics.update(|c| {
                c.generated_tokens += 1;
                c.forced_tokens += 1;
            });
            match take_token(s, id, None) {
                Outcome::Continue => {}
                done => return done,
            }
        }
        Outcome::Continue
    }
}

/// Appends a token that is not end of generation (sampled, or forced by the grammar) and
/// sends its text; finishes the sequence at a stop string, a complete grammar or
/// `max_tokens`.
fn take_token(s: &mut Seq, id: u32, logprob: Option<TokenLogprob>) -> Outcome {
    s.generated += 1;
    let mut grammar_done = false;
    if let Some(g) = &mut s.grammar {
        if let Err(e) = g.commit(id) {
            return Outcome::Failed(e.to_string());
        }
        grammar_done = g.is_finished();
    }
    s.sampler.accept(id);
    s.tokens.push(id);
    let piece = match s.decoder.push(id) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(format!("detokenizing failed: {e}")),
    };
    let (mut text, finish) = match s.stops.push(&piece) {
        // A complete grammar allows nothing but end of generation: stop without it.
        Pushed::Emit(t) if grammar_done => (t, Some(FinishReason::Stop)),
        Pushed::Emit(t) => (t, (s.generated >= s.max_tokens).then_some(FinishReason::Length)),
        Pushed::Stopped { emit, .. } => (emit, Some(FinishReason::Stop)),
    };
    if finish == Some(FinishReason::Length) || grammar_done {
        let rest = s.decoder.finish();
        text.push_str(&s.stops.finish(&rest));
    }
    if s.tx.send(GenEvent::Token { id, text, logprob }).is_err() {
        return Outcome::Cancelled;
    }
    match finish {
        Some(finish) => {
            let _ = s.tx.send(GenEvent::Done { finish, usage: s.usage() });
            Outcome::Finished
        }
        None => Outcome::Continue,
    }
}

/// Log-softmax of the raw logits at `id`, and the `k` most likely tokens.
fn token_logprob(tokenizer: &jikji_tokenizer::Tokenizer, raw: &[f32], id: u32, k: usize) -> TokenLogprob {
    let max = raw.iter().copied().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = raw.iter().filter(|v| !v.is_nan()).map(|&v| ((v - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    let lp = |t: u32| (raw.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY) as f64 - lse) as f32;
    let text = |t: u32| {
        let bytes = tokenizer.token_bytes(t, true).unwrap_or_default();
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    // The k largest logits, kept sorted (k ≤ 20).
    let mut top: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (t, &v) in raw.iter().enumerate() {
            if v.is_nan() || (top.len() == k && v <= top[k - 1].0) {
                continue;
            }
            let at = top.partition_point(|&(u, _)| u >= v);
            top.insert(at, (v, t as u32));
            top.truncate(k);
        }
    }
    let (token, bytes) = text(id);
    TokenLogprob {
        token,
        bytes,
        logprob: lp(id),
        top: top
            .into_iter()
            .map(|(_, t)| {
                let (s, b) = text(t);
                (s, b, lp(t))
            })
            .collect(),
    }
}
