//! Winogrande in llama-perplexity's format and method (`--winogrande`).
//!
//! File: CSV lines `index,sentence,option1,option2,answer` (the sentence may be quoted;
//! `_` marks the blank; answer 1 or 2); lines that do not parse (a header) are skipped
//! with a note, and — as `std::getline` with llama.cpp's loop does — the file's last line
//! counts only when a newline follows it in the text read (`-f` drops one trailing
//! newline, so leave an empty line at the end of the file). `--tasks N` draws N tasks at
//! random (mt19937 seed 1, llama.cpp's float pick).
//!
//! Each option fills the blank; when both continuations after the shared prefix are
//! longer than 3 tokens, only the words after the option are scored (from the token
//! after `first + option`), else everything after the prefix; the last token is left out
//! when more than one remains; the score is the mean f32 log-probability. llama.cpp's
//! second option, when not skipping the option word, takes its first logits from the
//! wrong row (its `FIXME`); that is reproduced, so the scores are its scores.

use std::io::Write;
use std::time::Instant;

use jikji_models::Model;
use jikji_tokenizer::Tokenizer;

use crate::choice::{common_prefix, llama_batches, required_tokens, ChoiceScorer, ChoiceTask, Out};
use crate::error::EvalError;
use crate::mt19937::Mt19937;
use crate::tasks::{check_fits, emit, ScoreResult};

const MIN_TRAILING: usize = 3;

#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub first: String,
    pub second: String,
    pub choices: [String; 2],
    /// 1 or 2.
    pub answer: u8,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses one CSV line, `Err(reason)` for a line llama.cpp skips.
fn parse_line(line: &str) -> Result<Task, String> {
    let b = line.as_bytes();
    let mut commas = Vec::with_capacity(4);
    let mut quoted = false;
    for (i, &c) in b.iter().enumerate() {
        if !quoted {
            if c == b',' {
                commas.push(i);
                if commas.len() == 4 {
                    break;
                }
            } else if c == b'"' {
                quoted = true;
            }
        } else if c == b'"' {
            quoted = false;
        }
    }
    if commas.len() != 4 {
        return Err(format!("failed to find comma separators in <{line}>"));
    }
    let (c0, c1, c2, c3) = (commas[0], commas[1], commas[2], commas[3]);
    let sentence = if b.get(c0 + 1) == Some(&b'"') && c1 >= c0 + 3 { &b[c0 + 2..c1 - 1] } else { &b[c0 + 1..c1] };
    let choice1 = lossy(&b[c1 + 1..c2]);
    let choice2 = lossy(&b[c2 + 1..c3]);
    let answer_text = lossy(&b[c3 + 1..]);
    let Some(at) = sentence.iter().position(|&c| c == b'_') else {
        return Err(format!("no _ in <{}>", lossy(sentence)));
    };
    let t = answer_text.trim_start();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '-' || *c == '+').collect();
    let answer = match digits.parse::<i64>() {
        Ok(a @ 1..=2) => a as u8,
        _ => return Err(format!("failed to parse answer <{answer_text}>")),
    };
    Ok(Task { first: lossy(&sentence[..at]), second: lossy(&sentence[at + 1..]), choices: [choice1, choice2], answer })
}

/// Parses the file; returns the tasks and the notes on skipped lines.
pub fn load(text: &str) -> (Vec<Task>, Vec<String>) {
    let mut tasks = Vec::new();
    let mut notes = Vec::new();
    let pieces: Vec<&str> = text.split('\n').collect();
    // A piece counts only when a '\n' follows it (llama.cpp stops at EOF).
    for line in &pieces[..pieces.len().saturating_sub(1)] {
        match parse_line(line) {
            Ok(t) => tasks.push(t),
            Err(n) => notes.push(n),
        }
    }
    (tasks, notes)
}

/// Draws `n` tasks as llama.cpp does (all of them, in order, for 0 or at least as many).
pub fn select(mut data: Vec<Task>, n: usize) -> Vec<Task> {
    if n == 0 || n >= data.len() {
        return data;
    }
    let mut rng = Mt19937::new(1);
    let mut aux: Vec<usize> = (0..data.len()).collect();
    let mut picked = Vec::with_capacity(n);
    for _ in 0..n {
        let j = rng.float_pick(aux.len());
        picked.push(std::mem::replace(&mut data[aux[j]], Task { first: String::new(), second: String::new(), choices: Default::default(), answer: 1 }));
        aux.swap_remove(j);
    }
    picked
}

/// Scores `tasks`, printing llama.cpp's lines (and its final score from 100 tasks on).
pub fn run(model: &Model, tok: &Tokenizer, tasks: &[Task], n_ctx: usize, ubatch: usize, out: &mut dyn Write) -> Result<ScoreResult, EvalError> {
    let mut res = ScoreResult::default();
    let t0 = Instant::now();
    let mut choice = Vec::with_capacity(tasks.len());
    let mut bases = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let seqs = t.choices.iter().map(|c| tok.encode(&format!("{}{c}{}", t.first, t.second), true, false)).collect::<Result<Vec<_>, _>>()?;
        let base = t.choices.iter().map(|c| tok.encode(&format!("{}{c}", t.first), true, false).map(|v| v.len())).collect::<Result<Vec<_>, _>>()?;
        check_fits(i, required_tokens(&seqs, common_prefix(&seqs)), n_ctx)?;
        choice.push(ChoiceTask::new(seqs, Out::All).map_err(|e| EvalError::Format(format!("task {}: {e}", i + 1)))?);
        bases.push(base);
    }
    let batches = llama_batches(&choice, n_ctx, 4)?;
    let mut scorer = ChoiceScorer::new(model, n_ctx, ubatch)?;
    scorer.run(&choice, &batches, |i, rows| {
        let (t, seqs, cp, base) = (&tasks[i], &choice[i].seqs, choice[i].prefix, &bases[i]);
        res.tokens_processed += choice[i].required();
        let (len0, len1) = (seqs[0].len(), seqs[1].len());
        let skip = len0 - cp > MIN_TRAILING && len1 - cp > MIN_TRAILING;
        // The scored (row, token) pairs of both options, at llama.cpp's row offsets.
        let mut pairs = Vec::new();
        let mut spans = [(0usize, 0usize, 0usize); 2]; // (first pair, pairs, divisor)
        #[allow(clippy::needless_range_loop)] // `s` picks llama.cpp's row offsets too
        for s in 0..2 {
            let len = seqs[s].len();
            let nb = if skip { base[s] } else { cp };
            if nb == 0 || nb < cp || nb > len {
                return Err(EvalError::Format(format!("task {}: the option does not end inside the sentence's tokens", i + 1)));
            }
            let last = usize::from(len - nb > 1);
            let li0 = if s == 0 { nb - cp } else { len0 - cp + nb - cp };
            let p0 = pairs.len();
            pairs.extend((li0..).zip(nb - 1..len - 1 - last).map(|(li, j)| (li, seqs[s][j + 1] as usize)));
            spans[s] = (p0, pairs.len() - p0, len - nb - last);
        }
        let lps = rows.logprobs_f32(&pairs);
        res.tokens_scored += pairs.len();
        let mut score = [0f32; 2];
        for (s, &(p0, n, div)) in spans.iter().enumerate() {
            let mut sum = 0f32;
            for &lp in &lps[p0..p0 + n] {
                sum += lp;
            }
            score[s] = sum / div as f32;
        }
        let result = if score[0] > score[1] { 1u8 } else { 2 };
        res.record(usize::from(result - 1), result == t.answer, f64::from((score[0] - score[1]).abs()));
        emit(out, &format!("{}\t{:.4}\t{:10.6}  {:10.6}  {}  {}\n", i + 1, res.accuracy, score[0], score[1], result, t.answer))
    })?;
    emit(out, "\n")?;
    if res.n_done >= 100 {
        let p = res.n_correct as f32 / res.n_done as f32;
        let sigma = 100.0 * (p * (1.0 - p) / (res.n_done - 1) as f32).sqrt();
        emit(out, &format!("Final Winogrande score({} tasks): {:.4} +/- {:.4}\n", res.n_done, 100.0 * p, sigma))?;
    }
    res.seconds = t0.elapsed().as_secs_f64();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_like_llama_cpp_and_the_last_needs_a_newline() {
        let text = "index,sentence,option1,option2,answer\n0,Sarah beat Maria so _ won.,Sarah,Maria,1\n1,\"Quoted, with comma _ here.\",A,B,2\n2,No blank,A,B,1\n3,x _ y,A,B,1";
        let (tasks, notes) = load(text);
        assert_eq!(tasks.len(), 2, "{notes:?}");
        assert_eq!(tasks[0].first, "Sarah beat Maria so ");
        assert_eq!(tasks[0].second, " won.");
        assert_eq!(tasks[1].first, "Quoted, with comma ");
        assert_eq!(tasks[1].answer, 2);
        assert_eq!(notes.len(), 2, "header and the line without _; the unterminated last line is not read");
        assert!(parse_line("0,a _ b,A,B,3").unwrap_err().contains("answer"));
    }

    #[test]
    fn selection_keeps_everything_for_zero_and_draws_distinct_tasks() {
        let data: Vec<Task> = (0..20).map(|i| Task { first: format!("{i}"), second: String::new(), choices: Default::default(), answer: 1 }).collect();
        assert_eq!(select(data.clone(), 0), data);
        let s = select(data.clone(), 5);
        let mut f: Vec<String> = s.iter().map(|t| t.first.clone()).collect();
        f.sort();
        f.dedup();
        assert_eq!(f.len(), 5);
    }
}
