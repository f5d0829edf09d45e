//! Log-likelihood scoring of choice items through [`ChoiceScorer`]: consecutive items whose
//! answers are single tokens run as one shared-prefix task (their common header computed
//! once, each question after it), several tasks per forward pass.
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

use jikji_models::Model;
use jikji_tokenizer::Tokenizer;

use super::items::ChoiceItem;
use crate::choice::{common_prefix, ChoiceScorer, ChoiceTask, Out};
use crate::error::EvalError;
use crate::logprob::{nll_f64, nll_f64_many};

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

/// What one [`ChoiceTask`] of a suite scores.
enum Unit {
    /// Items whose continuations are one token each after their prompt, run as one task
    /// over the prompts' shared start (the header and any shots in common): an item's
    /// continuations are scored from its prompt's last row.
    Prompts(std::ops::Range<usize>),
    /// One item, its continuations after their common prefix.
    Item(usize),
}

/// Scores every item, calling `progress(done, total)` after each; `chat` puts each prompt
/// through the model's chat template.
///
/// The items run through [`ChoiceScorer`] with packing: consecutive items whose answers are
/// single tokens (the letter style) form one task of their prompts after the prefix they
/// share, so the header is computed once per group and a forward pass carries several
/// questions; other items are tasks of their own continuations.
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
    let t0 = Instant::now();
    let mut seqs = Vec::with_capacity(items.len());
    let mut conts = Vec::with_capacity(items.len());
    for i in 0..items.len() {
        let (ctx, c) = prompt(items, i, p);
        let s = sequences(tok, &ctx, &c, chat)?;
        if let Some(x) = s.iter().find(|x| x.len() > n_ctx) {
            return Err(EvalError::Format(format!("a prompt of {} tokens does not fit the context of {n_ctx}", x.len())));
        }
        seqs.push(s);
        conts.push(c);
    }
    let cps: Vec<usize> = seqs.iter().map(|s| common_prefix(s)).collect();
    let one_token = |i: usize| cps[i] > 0 && seqs[i].iter().all(|s| s.len() == cps[i] + 1);
    let mut units = Vec::new();
    let mut tasks = Vec::new();
    let mut i = 0;
    while i < items.len() {
        // The longest run of single-token items from i whose prompts fit one pass.
        let mut j = i;
        let mut shared = usize::MAX;
        while j < items.len() && one_token(j) {
            let prompt = &seqs[j][0][..cps[j]];
            let sh = if j == i { cps[j] } else { shared.min(prompt.iter().zip(&seqs[i][0]).take_while(|(a, b)| a == b).count()) };
            let rows = sh + (i..=j).map(|k| cps[k] - sh.min(cps[k])).sum::<usize>();
            if j > i && (rows > ubatch || sh == 0 || (i..=j).any(|k| cps[k] <= sh)) {
                break;
            }
            shared = sh;
            j += 1;
        }
        if j - i >= 2 {
            let prompts: Vec<Vec<u32>> = (i..j).map(|k| seqs[k][0][..cps[k]].to_vec()).collect();
            tasks.push(ChoiceTask::new(prompts, Out::Last)?);
            units.push(Unit::Prompts(i..j));
            i = j;
        } else {
            tasks.push(ChoiceTask::new(seqs[i].clone(), Out::AllButLast)?);
            units.push(Unit::Item(i));
            i += 1;
        }
    }
    let batches: Vec<std::ops::Range<usize>> = (0..tasks.len()).map(|t| t..t + 1).collect();
    let mut scorer = ChoiceScorer::new(model, n_ctx, ubatch)?.packing(true);
    let mut res = ChoiceResult::default();
    let mut done = 0;
    let mut tally = |res: &mut ChoiceResult, i: usize, scores: &[(f64, usize)]| {
        let sums: Vec<f64> = scores.iter().map(|s| s.0).collect();
        let norm: Vec<f64> = scores.iter().zip(&conts[i]).map(|(s, c)| s.0 / c.len().max(1) as f64).collect();
        let mean: Vec<f64> = scores.iter().map(|s| s.0 / s.1 as f64).collect();
        res.tokens_scored += scores.iter().map(|s| s.1).sum::<usize>();
        let a = items[i].answer;
        for t in [&mut res.overall, res.per_subject.entry(items[i].subject.clone()).or_default()] {
            t.n += 1;
            t.acc += usize::from(argmax_by(&sums) == a);
            t.acc_norm += usize::from(argmax_by(&norm) == a);
            t.acc_mean += usize::from(argmax_by(&mean) == a);
        }
        done += 1;
        progress(done, items.len());
    };
    scorer.run(&tasks, &batches, |ti, rows| {
        match &units[ti] {
            Unit::Prompts(r) => {
                for (k, i) in r.clone().enumerate() {
                    let lp = nll_f64_many(rows.row(1 + k), seqs[i].iter().map(|s| s[cps[i]] as usize));
                    let scores: Vec<(f64, usize)> = lp.iter().map(|&n| (-n, 1)).collect();
                    tally(&mut res, i, &scores);
                }
            }
            &Unit::Item(i) => {
                let cp = cps[i];
                let first = nll_f64_many(rows.row(0), seqs[i].iter().map(|s| s[cp] as usize));
                let mut li = 1;
                let mut scores = Vec::with_capacity(seqs[i].len());
                for (s, f) in seqs[i].iter().zip(first) {
                    let mut sum = -f;
                    for j in cp..s.len() - 1 {
                        sum -= nll_f64(rows.row(li), s[j + 1] as usize);
                        li += 1;
                    }
                    scores.push((sum, s.len() - cp));
                }
                tally(&mut res, i, &scores);
            }
        }
        Ok(())
    })?;
    res.tokens_processed = scorer.tokens_processed;
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
