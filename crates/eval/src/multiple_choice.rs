//! Multiple-choice tasks in llama-perplexity's binary format (`--multiple-choice -bf`),
//! read, written (so other sets — MMLU — can be converted and run by both engines) and
//! scored by its method.
//!
//! Format (little-endian): `u32 n_task`, `u32 offset[n_task]` (byte offset of each task),
//! then per task: `string question`, then two answer sets (`mc1`: one correct answer,
//! `mc2`: several; only `mc1` is scored), each `u32 n` (≤ 100), `string answer[n]`,
//! `i32 label[n]` (1 = correct). A `string` is `u32 length` then that many bytes.
//!
//! Scoring: each answer as `question + " " + answer` (BOS as the model asks); the mean
//! log-probability of the tokens after the shared prefix, all in f32 as llama.cpp sums
//! them; the pick is right when its label is 1. `--tasks N` draws N tasks (mt19937 seed 1,
//! float pick, read at their offsets).

use std::io::Write;
use std::time::Instant;

use jikji_models::Model;
use jikji_tokenizer::Tokenizer;

use crate::choice::{common_prefix, llama_batches, required_tokens, ChoiceScorer, ChoiceTask, Out};
use crate::error::EvalError;
use crate::mt19937::Mt19937;
use crate::tasks::{best, check_fits, emit, margin, ScoreResult};

const MAX_ANSWERS: u32 = 100;

/// One task (its `mc1` answers; `mc2` is kept for writing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Task {
    pub question: String,
    pub answers: Vec<String>,
    pub labels: Vec<i32>,
    pub mc2_answers: Vec<String>,
    pub mc2_labels: Vec<i32>,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], EvalError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| EvalError::Format(format!("the multiple-choice file ends inside {what}")))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, EvalError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn string(&mut self, what: &str) -> Result<String, EvalError> {
        let n = self.u32(what)? as usize;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }
    fn answers(&mut self, task: usize) -> Result<(Vec<String>, Vec<i32>), EvalError> {
        let n = self.u32("an answer count")?;
        if n > MAX_ANSWERS {
            return Err(EvalError::Format(format!("task {task} has {n} answers (at most {MAX_ANSWERS})")));
        }
        let answers = (0..n).map(|_| self.string("an answer")).collect::<Result<Vec<_>, _>>()?;
        let labels = (0..n).map(|_| self.u32("the labels").map(|v| v as i32)).collect::<Result<Vec<_>, _>>()?;
        Ok((answers, labels))
    }
    fn task(&mut self, i: usize) -> Result<Task, EvalError> {
        let question = self.string("a question")?;
        let (answers, labels) = self.answers(i)?;
        let (mc2_answers, mc2_labels) = self.answers(i)?;
        Ok(Task { question, answers, labels, mc2_answers, mc2_labels })
    }
}

/// Reads the file and selects `n` tasks (0 = all, in order), as llama.cpp does.
pub fn load(bytes: &[u8], n: usize) -> Result<Vec<Task>, EvalError> {
    let mut c = Cursor { b: bytes, at: 0 };
    let n_task = c.u32("the task count")?;
    if n_task == 0 {
        return Err(EvalError::Format("no tasks in the multiple-choice file".into()));
    }
    let offsets = (0..n_task).map(|_| c.u32("the task offsets")).collect::<Result<Vec<_>, _>>()?;
    if n == 0 || n >= n_task as usize {
        return (0..n_task as usize).map(|i| c.task(i)).collect();
    }
    let mut rng = Mt19937::new(1);
    let mut aux: Vec<usize> = (0..n_task as usize).collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let j = rng.float_pick(aux.len());
        let idx = aux[j];
        aux.swap_remove(j);
        let mut at = Cursor { b: bytes, at: offsets[idx] as usize };
        out.push(at.task(idx)?);
    }
    Ok(out)
}

fn put_string(b: &mut Vec<u8>, s: &str) -> Result<(), EvalError> {
    let n = u32::try_from(s.len()).map_err(|_| EvalError::Format("a string longer than 4 GiB".into()))?;
    b.extend_from_slice(&n.to_le_bytes());
    b.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_answers(b: &mut Vec<u8>, answers: &[String], labels: &[i32]) -> Result<(), EvalError> {
    if answers.len() != labels.len() || answers.len() > MAX_ANSWERS as usize {
        return Err(EvalError::Format(format!("{} answers with {} labels", answers.len(), labels.len())));
    }
    b.extend_from_slice(&(answers.len() as u32).to_le_bytes());
    for a in answers {
        put_string(b, a)?;
    }
    for l in labels {
        b.extend_from_slice(&l.to_le_bytes());
    }
    Ok(())
}

/// The binary file of `tasks`.
pub fn write(tasks: &[Task]) -> Result<Vec<u8>, EvalError> {
    let mut body = Vec::new();
    let mut offsets = Vec::with_capacity(tasks.len());
    let head = 4 + 4 * tasks.len();
    for t in tasks {
        offsets.push(u32::try_from(head + body.len()).map_err(|_| EvalError::Format("file over 4 GiB".into()))?);
        put_string(&mut body, &t.question)?;
        put_answers(&mut body, &t.answers, &t.labels)?;
        put_answers(&mut body, &t.mc2_answers, &t.mc2_labels)?;
    }
    let mut out = Vec::with_capacity(head + body.len());
    out.extend_from_slice(&(tasks.len() as u32).to_le_bytes());
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// Scores `tasks`, printing llama.cpp's lines; `all_selected` says whether every task of
/// the file was kept (llama.cpp then prints the final lines even below 100 tasks).
pub fn run(model: &Model, tok: &Tokenizer, tasks: &[Task], all_selected: bool, n_ctx: usize, ubatch: usize, out: &mut dyn Write) -> Result<ScoreResult, EvalError> {
    for (i, t) in tasks.iter().enumerate() {
        if t.question.is_empty() || t.answers.is_empty() || t.answers.iter().any(String::is_empty) {
            return Err(EvalError::Format(format!("task {} has an empty question or answer", i + 1)));
        }
    }
    let mut res = ScoreResult::default();
    let mut n_answers = 0usize;
    let t0 = Instant::now();
    let mut choice = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let seqs = t.answers.iter().map(|a| tok.encode(&format!("{} {a}", t.question), true, false)).collect::<Result<Vec<_>, _>>()?;
        check_fits(i, required_tokens(&seqs, common_prefix(&seqs)), n_ctx)?;
        choice.push(ChoiceTask::new(seqs, Out::AllButLast).map_err(|e| EvalError::Format(format!("task {}: {e}", i + 1)))?);
    }
    let batches = llama_batches(&choice, n_ctx, 4)?;
    let mut scorer = ChoiceScorer::new(model, n_ctx, ubatch)?;
    emit(out, "\ntask\tacc_norm\n")?;
    scorer.run(&choice, &batches, |i, rows| {
        let t = &tasks[i];
        res.tokens_processed += choice[i].required();
        let mut scores = Vec::with_capacity(t.answers.len());
        for (first, rest) in rows.answer_logprobs(&choice[i]) {
            let mut lp = first;
            for x in &rest {
                lp += *x;
            }
            let count = 1 + rest.len();
            res.tokens_scored += count;
            scores.push(lp / count as f32);
        }
        let pick = best(&scores);
        n_answers += scores.len();
        res.record(pick, t.labels.get(pick) == Some(&1), margin(&scores.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()));
        emit(out, &format!("{}\t{:.8}\n", res.n_done, res.accuracy))
    })?;
    res.seconds = t0.elapsed().as_secs_f64();
    if res.n_done < 100 && !all_selected {
        return Ok(res);
    }
    let n = res.n_done as f32;
    let p = res.n_correct as f32 / n;
    let sigma = (p * (1.0 - p) / (n - 1.0)).sqrt();
    emit(out, &format!("\nFinal result: {:.4} +/- {:.4}\n", 100.0 * p, 100.0 * sigma))?;
    let p = n / n_answers as f32;
    let sigma = (p * (1.0 - p) / (n - 1.0)).sqrt();
    emit(out, &format!("Random chance: {:.4} +/- {:.4}\n", 100.0 * p, 100.0 * sigma))?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(q: &str) -> Task {
        Task { question: q.into(), answers: vec!["yes".into(), "no".into()], labels: vec![0, 1], ..Default::default() }
    }

    #[test]
    fn a_written_file_reads_back_whole_or_by_offsets() {
        let tasks: Vec<Task> = (0..12).map(|i| task(&format!("question {i}?"))).collect();
        let bytes = write(&tasks).unwrap();
        assert_eq!(load(&bytes, 0).unwrap(), tasks);
        let some = load(&bytes, 4).unwrap();
        assert_eq!(some.len(), 4);
        assert!(some.iter().all(|t| tasks.contains(t)));
    }

    #[test]
    fn truncated_or_absurd_files_are_errors() {
        let bytes = write(&[task("q?")]).unwrap();
        for cut in [0, 3, 7, bytes.len() - 1] {
            assert!(load(&bytes[..cut], 0).is_err(), "cut {cut}");
        }
        let mut many = bytes.clone();
        let at = 8 + 4 + 2; // after n_task, one offset, the question's length and "q?"
        many[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(load(&many, 0).unwrap_err().to_string().contains("1000 answers"));
        assert!(load(&0u32.to_le_bytes(), 0).unwrap_err().to_string().contains("no tasks"));
    }
}
