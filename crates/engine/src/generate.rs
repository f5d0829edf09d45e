//! Generation over one sequence: prefill the prompt in one batch, then decode token by token.
//!
//! Design choices:
//! - A [`Generator`] owns one KV cache and remembers which token ids it holds. A new prompt
//!   reuses the longest common prefix of ids (multi-turn chat re-renders the whole
//!   conversation each turn and only the new tail is evaluated); at least the last prompt
//!   token is always evaluated, since its logits pick the first new token.
//! - The sampler's penalty window is reset and fed the prompt before each generation, as
//!   llama.cpp's CLI feeds it prompt tokens.
//! - Text is streamed through the tokenizer's incremental decoder, so a callback never sees
//!   part of a UTF-8 character. Text that might be the start of a stop string is held back
//!   until it is known not to be one; the stop string itself is never emitted.
//! - Generation stops at an end-of-generation token (not included in `ids` or text), after
//!   `max_tokens`, at a stop string, when the context is full, or when the callback breaks.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use jikji_models::{KvCache, Model};
use jikji_tokenizer::Tokenizer;

use crate::grammar::Constraint;
use crate::sampler::Sampler;
use crate::EngineError;

/// Per-request generation limits.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Most tokens to generate (0 = evaluate the prompt only).
    pub max_tokens: usize,
    /// Generation stops when the text contains one of these (the match is cut off).
    pub stop: Vec<String>,
    /// Render special/control tokens in the streamed text (off: they produce no text).
    pub render_special: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self { max_tokens: 256, stop: Vec::new(), render_special: false }
    }
}

/// Why a generation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced this end-of-generation token.
    Eog(u32),
    MaxTokens,
    /// The text reached this stop string.
    StopString(String),
    /// No room left in the context for another token.
    ContextFull,
    /// The callback asked to stop.
    Cancelled,
    /// The grammar of a constrained generation is complete.
    GrammarComplete,
}

/// Counts and durations of one generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt tokens evaluated (not reused from the cache).
    pub prompt_evaluated: usize,
    /// Prompt tokens whose cache entries were reused.
    pub prompt_reused: usize,
    pub prompt_time: Duration,
    /// Tokens generated (sampled), excluding an end-of-generation token.
    pub generated: usize,
    /// Time from the end of the prefill to the end of generation.
    pub generation_time: Duration,
}

impl Timings {
    pub fn prompt_tokens_per_second(&self) -> f64 {
        per_second(self.prompt_evaluated, self.prompt_time)
    }
    pub fn generation_tokens_per_second(&self) -> f64 {
        per_second(self.generated, self.generation_time)
    }
}

fn per_second(n: usize, t: Duration) -> f64 {
    let s = t.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// The result of [`Generator::generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    /// Generated ids (an end-of-generation token is not included).
    pub ids: Vec<u32>,
    /// The generated text, without a matched stop string.
    pub text: String,
    pub stop: StopReason,
    pub timings: Timings,
}

/// One sequence's generation state over a model and its tokenizer.
pub struct Generator<'m> {
    model: &'m Model,
    tokenizer: &'m Tokenizer,
    cache: KvCache,
    /// Token ids whose keys/values are in `cache`, in position order.
    cached: Vec<u32>,
}

impl<'m> Generator<'m> {
    /// A generator with an empty cache of `n_ctx` positions.
    pub fn new(model: &'m Model, tokenizer: &'m Tokenizer, n_ctx: usize) -> Result<Self, EngineError> {
        if n_ctx == 0 {
            return Err(EngineError::BadContextSize(n_ctx));
        }
        Ok(Self { model, tokenizer, cache: model.new_cache(n_ctx)?, cached: Vec::new() })
    }

    pub fn n_ctx(&self) -> usize {
        self.cache.n_ctx()
    }

    /// Token ids currently held in the cache.
    pub fn cached_ids(&self) -> &[u32] {
        &self.cached
    }

    /// Forgets the cache.
    pub fn reset(&mut self) {
        self.cache.clear();
        self.cached.clear();
    }

    /// Evaluates `prompt` (reusing the cached common prefix) and generates up to
    /// `params.max_tokens` tokens, calling `on_text` with each newly completed piece of text.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        sampler: &mut Sampler,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, EngineError> {
        self.generate_constrained(prompt, params, sampler, None, on_text)
    }

    /// As [`Generator::generate`], every token kept inside `grammar` (a fresh compiled
    /// [`Constraint`]); stops with [`StopReason::GrammarComplete`] when it is complete.
    pub fn generate_constrained(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        sampler: &mut Sampler,
        mut grammar: Option<&mut Constraint>,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, EngineError> {
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let n_ctx = self.n_ctx();
        if prompt.len() > n_ctx {
            return Err(EngineError::PromptTooLong { n_prompt: prompt.len(), n_ctx });
        }
        let n_vocab = self.model.info().n_vocab;

        // Reuse the common prefix, always re-evaluating at least the last prompt token.
        let mut keep = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        keep = keep.min(prompt.len() - 1);
        self.cache.truncate(keep);
        self.cached.truncate(keep);

        sampler.reset();
        for &id in prompt {
            sampler.accept(id);
        }

        let mut timings = Timings { prompt_reused: keep, ..Timings::default() };
        let t0 = Instant::now();
        let tail = &prompt[keep..];
        let mut logits = self.forward(tail)?;
        self.cached.extend_from_slice(tail);
        timings.prompt_evaluated = tail.len();
        timings.prompt_time = t0.elapsed();
        if logits.len() != n_vocab {
            return Err(EngineError::LogitsShape { expected: n_vocab, got: logits.len() });
        }

        let t1 = Instant::now();
        let mut ids = Vec::new();
        let mut decoder = self.tokenizer.incremental_decoder_with(params.render_special);
        let mut stream = StopStream::new(&params.stop);
        let stop = loop {
            if ids.len() >= params.max_tokens {
                break StopReason::MaxTokens;
            }
            if let Some(g) = grammar.as_deref_mut() {
                g.apply(&mut logits)?;
            }
            let id = sampler.sample(&logits)?;
            if self.tokenizer.is_eog(id) {
                break StopReason::Eog(id);
            }
            ids.push(id);
            sampler.accept(id);
            let mut grammar_done = false;
            if let Some(g) = grammar.as_deref_mut() {
                g.commit(id)?;
                grammar_done = g.is_finished();
            }
            let piece = decoder.push(id)?;
            match stream.push(&piece) {
                Pushed::Emit(out) => {
                    if !out.is_empty() && on_text(&out).is_break() {
                        break StopReason::Cancelled;
                    }
                }
                Pushed::Stopped { emit, stop } => {
                    if !emit.is_empty() {
                        let _ = on_text(&emit);
                    }
                    break StopReason::StopString(stop);
                }
            }
            if grammar_done {
                break StopReason::GrammarComplete;
            }
            if ids.len() >= params.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.cache.len() >= n_ctx {
                break StopReason::ContextFull;
            }
            logits = self.forward(&[id])?;
            self.cached.push(id);
        };
        if !matches!(stop, StopReason::StopString(_)) {
            let rest = decoder.finish();
            let out = stream.finish(&rest);
            if !out.is_empty() && stop != StopReason::Cancelled {
                let _ = on_text(&out);
            }
        }
        timings.generated = ids.len();
        timings.generation_time = t1.elapsed();
        Ok(Generation { prompt_ids: prompt.to_vec(), ids, text: stream.into_text(), stop, timings })
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>, EngineError> {
        match self.model.forward(tokens, &mut self.cache, false) {
            Ok(l) => Ok(l),
            Err(e) => {
                // The cache may hold part of a failed batch: trust only what we recorded.
                self.cache.truncate(self.cached.len());
                Err(e.into())
            }
        }
    }
}

pub(crate) enum Pushed {
    Emit(String),
    Stopped { emit: String, stop: String },
}

/// Accumulates generated text, holding back a tail that could still become a stop string.
pub(crate) struct StopStream {
    stops: Vec<String>,
    text: String,
    /// Bytes of `text` already handed out.
    emitted: usize,
}

impl StopStream {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), text: String::new(), emitted: 0 }
    }

    pub(crate) fn push(&mut self, piece: &str) -> Pushed {
        // A stop string can only end inside the new piece: search from the earliest byte it
        // could start at.
        let longest = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let search_from = floor_char_boundary(&self.text, self.text.len().saturating_sub(longest));
        self.text.push_str(piece);
        let found = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text[search_from..].find(s.as_str()).map(|at| (search_from + at, s)))
            .min_by_key(|(at, _)| *at);
        if let Some((at, stop)) = found {
            let stop = stop.clone();
            self.text.truncate(at);
            let emit = self.text.get(self.emitted..).unwrap_or("").to_string();
            self.emitted = self.text.len();
            return Pushed::Stopped { emit, stop };
        }
        let hold = self.held_back_len();
        let upto = floor_char_boundary(&self.text, self.text.len() - hold).max(self.emitted);
        let emit = self.text[self.emitted..upto].to_string();
        self.emitted = upto;
        Pushed::Emit(emit)
    }

    /// Longest suffix of the text that is a proper prefix of some stop string.
    fn held_back_len(&self) -> usize {
        let mut best = 0;
        for s in &self.stops {
            for k in (1..s.len()).rev() {
                if k <= best {
                    break;
                }
                if s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
                    best = k;
                    break;
                }
            }
        }
        best
    }

    /// Appends the decoder's final bytes and returns everything not yet emitted.
    pub(crate) fn finish(&mut self, rest: &str) -> String {
        self.text.push_str(rest);
        let out = self.text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = self.text.len();
        out
    }

    fn into_text(self) -> String {
        self.text
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, String, Option<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = StopStream::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            match s.push(p) {
                Pushed::Emit(e) => out.push(e),
                Pushed::Stopped { emit, stop } => {
                    out.push(emit);
                    return (out, s.into_text(), Some(stop));
                }
            }
        }
        out.push(s.finish(""));
        (out, s.into_text(), None)
    }

    #[test]
    fn stop_string_split_across_pieces_is_never_emitted() {
        let (out, text, stop) = run(&["</s>"], &["Hello", " wor", "ld<", "/", "s>tail"]);
        assert_eq!(stop.as_deref(), Some("</s>"));
        assert_eq!(text, "Hello world");
        assert_eq!(out.concat(), "Hello world");
        // "<" and "/" were held back, never emitted on their own.
        assert!(out.iter().all(|p| !p.contains('<')));
    }

    #[test]
    fn held_back_prefix_is_released_when_it_does_not_complete() {
        let (out, text, stop) = run(&["STOP"], &["a S", "T", "x", "b"]);
        assert_eq!(stop, None);
        assert_eq!(text, "a STxb");
        assert_eq!(out.concat(), "a STxb");
        assert_eq!(out[0], "a ");
    }

    #[test]
    fn earliest_of_several_stop_strings_wins_and_multibyte_text_is_kept_whole() {
        let (out, text, stop) = run(&["다.", "\n\n"], &["서울입니", "다.\n\n끝"]);
        assert_eq!(stop.as_deref(), Some("다."));
        assert_eq!(text, "서울입니");
        assert_eq!(out.concat(), "서울입니");
    }

    #[test]
    fn no_stop_strings_streams_everything_at_once() {
        let (out, text, _) = run(&[], &["ab", "c"]);
        assert_eq!(out, vec!["ab", "c", ""]);
        assert_eq!(text, "abc");
    }
}
