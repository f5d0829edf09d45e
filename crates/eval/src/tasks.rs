//! What the multiple-choice modes share: the result of a run, the context check, and
//! writing llama.cpp's lines.

use std::io::Write;

use crate::error::EvalError;

/// The outcome of a multiple-choice run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScoreResult {
    pub n_done: usize,
    pub n_correct: usize,
    /// Accuracy in percent.
    pub accuracy: f64,
    /// Per task: the chosen continuation and whether it was right.
    pub picks: Vec<(usize, bool)>,
    /// Per task: how far the pick's score is ahead of the runner-up (0 for a tie); picks
    /// this close can flip with the rounding of another engine's attention order.
    pub margins: Vec<f64>,
    /// Tokens run through the model (shared prefixes once) and tokens scored.
    pub tokens_processed: usize,
    pub tokens_scored: usize,
    pub seconds: f64,
}

impl ScoreResult {
    pub(crate) fn record(&mut self, pick: usize, correct: bool, margin: f64) {
        self.margins.push(margin);
        self.n_done += 1;
        self.n_correct += usize::from(correct);
        self.accuracy = 100.0 * self.n_correct as f64 / self.n_done as f64;
        self.picks.push((pick, correct));
    }
}

pub(crate) fn check_fits(task: usize, required: usize, n_ctx: usize) -> Result<(), EvalError> {
    if required > n_ctx {
        return Err(EvalError::Format(format!("task {task} does not fit in the context window (requires {required} tokens, context {n_ctx})")));
    }
    Ok(())
}

pub(crate) fn emit(out: &mut dyn Write, s: &str) -> Result<(), EvalError> {
    out.write_all(s.as_bytes()).and_then(|_| out.flush()).map_err(|e| EvalError::io("cannot write the output", e))
}

/// Index of the largest score, the first on a tie (llama.cpp's strict `>`).
pub(crate) fn best<T: PartialOrd + Copy>(scores: &[T]) -> usize {
    let mut at = 0;
    for (i, &s) in scores.iter().enumerate().skip(1) {
        if s > scores[at] {
            at = i;
        }
    }
    at
}

/// Gap between the best and the second-best score.
pub(crate) fn margin(scores: &[f64]) -> f64 {
    let at = best(scores);
    scores.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, &s)| scores[at] - s).fold(f64::INFINITY, f64::min)
}
