//! Log-likelihood scoring of choice items, with the prompt's shared prefix kept in the KV
//! cache from one item to the next (few-shot examples and the subject header are computed
//! once per subject, not once per item).
//!
//! Two prompt styles:
//! - [`Style::Letter`] (MMLU's usual zero/few-shot form): the question, the lettered
//!   choices and `Answer:`; the continuations are ` A`, ` B`, …;
//! - [`Style::Answer`]: `Question: …\nAnswer:` and each choice's text as the continuation
//!   (what llama.cpp's multiple-choice mode scores).
//!
//! Each continuation's log-likelihood is summed over its tokens (the tokens after the
//! prefix all continuations share). Three picks are reported: `acc` (highest sum, as
//! lm-eval's `acc`), `acc_norm` (highest sum per byte of the continuation, as lm-eval's
//! `acc_norm`) and `acc_mean` (highest mean per token, llama.cpp's multiple-choice score).

use std::collections::BTreeMap;
use std::time::Instant;

use jikji_models::{KvCache, Model};
use jikji_tokenizer::Tokenizer;

use super::items::ChoiceItem;
use crate::choice::common_prefix;
use crate::error::EvalError;
use crate::forward::forward_rows;
use crate::logprob::nll_f64;

const LETTERS: [&str; 10] = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"];

/// How questions are put to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Letter,
    Answer,
}

/// Prompt wording.
#[derive(Clone, Debug)]
pub struct Prompting {
    pub style: Style,
    /// Few-shot examples from the same subject (the items next to the asked one).
    pub shots: usize,
    /// The line before the examples; `{subject}` is replaced.
    pub header: String,
    /// The word before the answer (`Answer`, `정답`).
    pub answer_word: String,
}

fn block(item: &ChoiceItem, p: &Prompting) -> String {
    match p.style {
        Style::Letter => {
            let mut s = item.question.trim().to_string();
            for (l, c) in LETTERS.iter().zip(&item.choices) {
                s.push_str(&format!("\n{l}. {}", c.trim()));
            }
            s.push_str(&format!("\n{}:", p.answer_word));
            s
        }
        Style::Answer => format!("Question: {}\n{}:", item.question.trim(), p.answer_word),
    }
}

fn gold(item: &ChoiceItem, p: &Prompting) -> String {
    match p.style {
        Style::Letter => format!(" {}", LETTERS.get(item.answer).unwrap_or(&"?")),
        Style::Answer => format!(" {}", item.choices.get(item.answer).map(|c| c.trim()).unwrap_or("")),
    }
}

/// The context and the continuations of item `i` of `items` (shots from the same subject).
pub fn prompt(items: &[ChoiceItem], i: usize, p: &Prompting) -> (String, Vec<String>) {
    let item = &items[i];
    let mut ctx = p.header.replace("{subject}", &item.subject.replace('_', " "));
    let mut shots = 0;
    let mut j = 0;
    while shots < p.shots && j < items.len() {
        if j != i && items[j].subject == item.subject {
            ctx.push_str(&block(&items[j], p));
            ctx.push_str(&gold(&items[j], p));
            ctx.push_str("\n\n");
            shots += 1;
        }
        j += 1;
    }
    ctx.push_str(&block(item, p));
    let conts = match p.style {
        Style::Letter => LETTERS.iter().take(item.choices.len()).map(|l| format!(" {l}")).collect(),
        Style::Answer => item.choices.iter().map(|c| format!(" {}", c.trim())).collect(),
    };
    (ctx, conts)
}

/// Accuracy counts of a group of items.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    pub n: usize,
    pub acc: usize,
    pub acc_norm: usize,
    pub acc_mean: usize,
}

impl Tally {
    pub fn pct(&self, k: usize) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            100.0 * k as f64 / self.n as f64
        }
    }
}

/// Results of a choice suite.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ChoiceResult {
    pub overall: Tally,
    pub per_subject: BTreeMap<String, Tally>,
    pub tokens_processed: usize,
    pub tokens_scored: usize,
    pub seconds: f64,
}

/// A KV cache that remembers which tokens it holds, so a group sharing a prefix with the
/// previous one reruns only what differs.
pub struct PrefixRunner<'m> {
    model: &'m Model,
    cache: KvCache,
    held: Vec<u32>,
    ubatch: usize,
    pub tokens_processed: usize,
}

impl<'m> PrefixRunner<'m> {
    pub fn new(model: &'m Model, n_ctx: usize, ubatch: usize) -> Result<Self, EvalError> {
        Ok(PrefixRunner { model, cache: model.new_cache(n_ctx)?, held: Vec::new(), ubatch, tokens_processed: 0 })
    }

    /// `(sum of log-probs, tokens)` of each sequence's tokens after their common prefix.
    pub fn score(&mut self, seqs: &[Vec<u32>]) -> Result<Vec<(f64, usize)>, EvalError> {
        let cp = common_prefix(seqs);
        if cp == 0 || seqs.iter().any(|s| s.len() <= cp) {
            return Err(EvalError::Format("the choices share no first token, or one choice is a prefix of another".into()));
        }
        if let Some(s) = seqs.iter().find(|s| s.len() > self.cache.n_ctx()) {
            return Err(EvalError::Format(format!("a prompt of {} tokens does not fit the context of {}", s.len(), self.cache.n_ctx())));
        }
        let keep = self.held.iter().zip(&seqs[0][..cp]).take_while(|(a, b)| a == b).count().min(cp - 1);
        self.cache.truncate(keep);
        let n_vocab = self.model.info().n_vocab;
        let run = &seqs[0][keep..cp];
        let prefix_row = forward_rows(self.model, &mut self.cache, run, &[run.len() - 1], self.ubatch)?;
        self.tokens_processed += run.len();
        self.held = seqs[0][..cp].to_vec();
        let mut out = Vec::with_capacity(seqs.len());
        for s in seqs {
            let mut sum = -nll_f64(&prefix_row, s[cp] as usize);
            let tail = &s[cp..];
            if tail.len() > 1 {
                self.cache.truncate(cp);
                let rows: Vec<usize> = (0..tail.len() - 1).collect();
                let logits = forward_rows(self.model, &mut self.cache, tail, &rows, self.ubatch)?;
                self.tokens_processed += tail.len();
                for (k, row) in logits.chunks_exact(n_vocab).enumerate() {
                    sum -= nll_f64(row, tail[k + 1] as usize);
                }
            }
            out.push((sum, tail.len()));
        }
        self.cache.truncate(cp);
        Ok(out)
    }
}

fn argmax_by(v: &[f64]) -> usize {
    let mut at = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[at] {
            at = i;
        }
    }
    at
}

/// The model's chat template applied to a prompt: the context as one user message
/// (shots included), rendered with the generation prompt and tokenized.
pub type ChatPrompt<'a> = dyn Fn(&str) -> Result<Vec<u32>, String> + 'a;

/// The token sequences of one item's continuations. Plain text: context and continuation
/// tokenized together (BOS first), as lm-eval does. Chat (`--chat`): the templated prompt,
/// then each continuation without its leading space (the answer starts the assistant's
/// turn, so ` A` becomes `A`).
pub fn sequences(tok: &Tokenizer, ctx: &str, conts: &[String], chat: Option<&ChatPrompt<'_>>) -> Result<Vec<Vec<u32>>, EvalError> {
    match chat {
        None => Ok(conts.iter().map(|c| tok.encode(&format!("{ctx}{c}"), true, false)).collect::<Result<Vec<_>, _>>()?),
        Some(render) => {
            let head = render(ctx).map_err(|e| EvalError::Format(format!("chat template: {e}")))?;
            conts
                .iter()
                .map(|c| {
                    let mut s = head.clone();
                    s.extend(tok.encode(c.trim_start(), false, false)?);
                    Ok(s)
                })
                .collect()
        }
    }
}

/// Scores every item, calling `progress(done, total)` after each; `chat` puts each prompt
/// through the model's chat template.
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &Model,
    tok: &Tokenizer,
    items: &[ChoiceItem],
    p: &Prompting,
    n_ctx: usize,
    ubatch: usize,
    chat: Option<&ChatPrompt<'_>>,
    mut progress: impl FnMut(usize, usize),
) -> Result<ChoiceResult, EvalError> {
    let mut runner = PrefixRunner::new(model, n_ctx, ubatch)?;
    let mut res = ChoiceResult::default();
    let t0 = Instant::now();
    for i in 0..items.len() {
        let (ctx, conts) = prompt(items, i, p);
        let seqs = sequences(tok, &ctx, &conts, chat)?;
        let scores = runner.score(&seqs)?;
        let sums: Vec<f64> = scores.iter().map(|s| s.0).collect();
        let norm: Vec<f64> = scores.iter().zip(&conts).map(|(s, c)| s.0 / c.len().max(1) as f64).collect();
        let mean: Vec<f64> = scores.iter().map(|s| s.0 / s.1 as f64).collect();
        res.tokens_scored += scores.iter().map(|s| s.1).sum::<usize>();
        let a = items[i].answer;
        for t in [&mut res.overall, res.per_subject.entry(items[i].subject.clone()).or_default()] {
            t.n += 1;
            t.acc += usize::from(argmax_by(&sums) == a);
            t.acc_norm += usize::from(argmax_by(&norm) == a);
            t.acc_mean += usize::from(argmax_by(&mean) == a);
        }
        progress(i + 1, items.len());
    }
    res.tokens_processed = runner.tokens_processed;
    res.seconds = t0.elapsed().as_secs_f64();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(subject: &str, q: &str, answer: usize) -> ChoiceItem {
        ChoiceItem { subject: subject.into(), question: q.into(), choices: vec!["red".into(), "blue".into()], answer }
    }

    #[test]
    fn prompts_take_shots_from_the_same_subject_only() {
        let items = [item("art", "q0", 0), item("math", "q1", 1), item("art", "q2", 1)];
        let p = Prompting { style: Style::Letter, shots: 1, header: "About {subject}.\n\n".into(), answer_word: "Answer".into() };
        let (ctx, conts) = prompt(&items, 2, &p);
        assert_eq!(ctx, "About art.\n\nq0\nA. red\nB. blue\nAnswer: A\n\nq2\nA. red\nB. blue\nAnswer:");
        assert_eq!(conts, [" A", " B"]);
        let p = Prompting { style: Style::Answer, shots: 0, header: String::new(), answer_word: "Answer".into() };
        let (ctx, conts) = prompt(&items, 1, &p);
        assert_eq!((ctx.as_str(), conts), ("Question: q1\nAnswer:", vec![" red".to_string(), " blue".to_string()]));
    }
}
