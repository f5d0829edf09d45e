//! HellaSwag in llama-perplexity's format and method (`--hellaswag`).
//!
//! File: six lines per task — context, gold ending index, four endings. Tasks are drawn
//! at random (mt19937 seed 1, [`crate::mt19937`]) without replacement, `--tasks N` of them
//! (400 by default, as llama.cpp). Each ending is scored as `context + " " + ending`
//! (tokenized with BOS as the model asks): the mean log-probability of its tokens after
//! the shared prefix, the first from the prefix's last logits through llama.cpp's
//! `softmax` (f64 sum), the rest through `compute_logprobs` (f32 sum), the mean kept in
//! f64 (`acc_norm` by token count). After each task the running accuracy and its 95 %
//! Wilson interval are printed as llama.cpp prints them.

use std::io::Write;
use std::time::Instant;

use jikji_models::Model;
use jikji_tokenizer::Tokenizer;

use crate::choice::{common_prefix, llama_batches, required_tokens, ChoiceScorer, ChoiceTask, Out};
use crate::error::EvalError;
use crate::mt19937::Mt19937;
use crate::tasks::{best, check_fits, emit, margin, ScoreResult};

/// One task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub context: String,
    pub gold: usize,
    pub endings: [String; 4],
}

/// Lines as `std::getline` splits them (a final line without `\n` counts).
pub(crate) fn getlines(text: &str) -> Vec<&str> {
    text.split_terminator('\n').collect()
}

/// Reads the file and draws `n_tasks` tasks in llama.cpp's order.
pub fn select(text: &str, n_tasks: usize) -> Result<Vec<Task>, EvalError> {
    let mut lines = getlines(text);
    if !lines.len().is_multiple_of(6) {
        return Err(EvalError::Format(format!("number of lines in the HellaSwag file ({}) is not a multiple of 6", lines.len())));
    }
    let count = (lines.len() / 6).min(n_tasks);
    let mut rng = Mt19937::new(1);
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let idx = rng.uniform_below((lines.len() / 6) as u32) as usize;
        let l = &lines[idx * 6..idx * 6 + 6];
        // `std::stoi`: leading blanks, a sign and digits; anything after is ignored.
        let gold_text = l[1].trim_start();
        let digits: String = gold_text.chars().take_while(|c| c.is_ascii_digit()).collect();
        let gold: usize = digits.parse().map_err(|_| EvalError::Format(format!("HellaSwag gold label {:?} is not a number", l[1])))?;
        if gold > 3 {
            return Err(EvalError::Format(format!("HellaSwag gold label {gold} is not 0-3")));
        }
        tasks.push(Task { context: l[0].to_string(), gold, endings: [l[2], l[3], l[4], l[5]].map(str::to_string) });
        lines.drain(idx * 6..idx * 6 + 6);
    }
    Ok(tasks)
}

/// The 95 % Wilson interval of `freq` over `n` tasks, as llama.cpp computes it.
pub fn wilson(freq: f64, n: usize) -> (f64, f64) {
    let za = 1.95996398454f64;
    let n = n as f64;
    let z = za * za / n;
    let cnf = z * (n * (4.0 * freq * (1.0 - freq) + z)).sqrt() / (za + za);
    ((freq + z * 0.5 - cnf) / (1.0 + z), (freq + z * 0.5 + cnf) / (1.0 + z))
}

/// Scores `tasks`, printing llama.cpp's table to `out`. `n_ctx` is the context a task must
/// fit in (llama.cpp: 4 × `-c`).
pub fn run(model: &Model, tok: &Tokenizer, tasks: &[Task], n_ctx: usize, ubatch: usize, out: &mut dyn Write) -> Result<ScoreResult, EvalError> {
    let mut res = ScoreResult::default();
    let t0 = Instant::now();
    let mut choice = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let seqs = t.endings.iter().map(|e| tok.encode(&format!("{} {e}", t.context), true, false)).collect::<Result<Vec<_>, _>>()?;
        check_fits(i, required_tokens(&seqs, common_prefix(&seqs)), n_ctx)?;
        choice.push(ChoiceTask::new(seqs, Out::AllButLast).map_err(|e| EvalError::Format(format!("task {}: {e}", i + 1)))?);
    }
    let batches = llama_batches(&choice, n_ctx, 4)?;
    let mut scorer = ChoiceScorer::new(model, n_ctx, ubatch)?;
    emit(out, "\ntask\tacc_norm\t95% confidence interval\n")?;
    scorer.run(&choice, &batches, |i, rows| {
        let t = &tasks[i];
        res.tokens_processed += choice[i].required();
        let mut scores = [0f64; 4];
        for (s, (first, rest)) in rows.answer_logprobs(&choice[i]).into_iter().enumerate() {
            let mut lp = f64::from(first);
            for x in &rest {
                lp += f64::from(*x);
            }
            let count = 1 + rest.len();
            res.tokens_scored += count;
            scores[s] = lp / count as f64;
        }
        let pick = best(&scores);
        res.record(pick, pick == t.gold, margin(&scores));
        let freq = res.n_correct as f64 / res.n_done as f64;
        let (a, b) = wilson(freq, res.n_done);
        emit(out, &format!("{}\t{:3.8}%\t[{:3.4}%, {:3.4}%]\n", i + 1, freq * 100.0, a * 100.0, b * 100.0))
    })?;
    emit(out, "\n")?;
    res.seconds = t0.elapsed().as_secs_f64();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize) -> String {
        (0..n).map(|i| format!("ctx {i}\n{}\na{i}\nb{i}\nc{i}\nd{i}\n", i % 4)).collect()
    }

    #[test]
    fn selection_draws_without_replacement_and_caps_at_the_file() {
        let t = select(&file(10), 400).unwrap();
        assert_eq!(t.len(), 10);
        let mut seen: Vec<&str> = t.iter().map(|x| x.context.as_str()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10);
        assert_eq!(select(&file(10), 3).unwrap().len(), 3);
        assert_eq!(select(&file(10), 3).unwrap(), select(&file(10), 3).unwrap(), "seeded");
    }

    #[test]
    fn a_ragged_file_or_a_bad_label_is_an_error() {
        assert!(select("a\nb\nc\n", 1).unwrap_err().to_string().contains("multiple of 6"));
        assert!(select("c\nx\na\nb\nc\nd\n", 1).unwrap_err().to_string().contains("not a number"));
        assert!(select("c\n7\na\nb\nc\nd\n", 1).unwrap_err().to_string().contains("0-3"));
    }

    #[test]
    fn wilson_interval_brackets_the_frequency() {
        let (a, b) = wilson(0.5, 100);
        assert!(a < 0.5 && b > 0.5 && (0.5 - a - (b - 0.5)).abs() < 1e-12);
        assert!((a - 0.4038).abs() < 1e-3, "{a}");
    }
}
