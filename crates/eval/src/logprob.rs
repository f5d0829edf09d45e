//! Log-probabilities of tokens under a row of logits, computed in llama-perplexity's
//! precisions so the numbers agree with its to the last printed digit.
//!
//! llama.cpp computes the same quantity three ways, and the differences show in the last
//! digits, so each has its twin here:
//! - [`nll_f64`]: perplexity's `log_softmax` — the maximum in `f32`, `expf` terms summed in
//!   `f64`, the result `max + ln Σ − logit` in `f64`;
//! - [`softmax_prob`]: the `softmax` helper (HellaSwag's and multiple-choice's first token) —
//!   terms summed in `f64`, each probability divided in `f64` and stored as `f32`;
//! - [`logprob_f32`]: `compute_logprobs` (every later token of a choice) — terms summed in
//!   `f32`, in vocabulary order.

/// Largest logit of a row (first one wins a tie) and its index; `(−∞, 0)` for an empty row.
pub fn argmax(logits: &[f32]) -> (f32, usize) {
    let mut best = f32::NEG_INFINITY;
    let mut at = 0;
    for (i, &v) in logits.iter().enumerate() {
        if i == 0 || v > best {
            best = v;
            at = i;
        }
    }
    (best, at)
}

/// Maximum in llama.cpp's `std::max` order (NaNs ignored unless first).
fn max_logit(logits: &[f32]) -> f32 {
    let mut m = logits.first().copied().unwrap_or(f32::NEG_INFINITY);
    for &v in logits.iter().skip(1) {
        m = if m < v { v } else { m };
    }
    m
}

/// `Σ exp(logit − max)` with `f32` terms summed in `f64`.
pub fn sum_exp_f64(logits: &[f32], max: f32) -> f64 {
    logits.iter().map(|&v| f64::from((v - max).exp())).sum()
}

/// Negative log-likelihood of `tok` (perplexity's `log_softmax`, negated).
pub fn nll_f64(logits: &[f32], tok: usize) -> f64 {
    let max = max_logit(logits);
    let sum = sum_exp_f64(logits, max);
    -(f64::from(logits[tok] - max) - sum.ln())
}

/// [`nll_f64`] of several tokens of one row, the sum computed once.
pub fn nll_f64_many(logits: &[f32], toks: impl Iterator<Item = usize>) -> Vec<f64> {
    let max = max_logit(logits);
    let ln_sum = sum_exp_f64(logits, max).ln();
    toks.map(|t| -(f64::from(logits[t] - max) - ln_sum)).collect()
}

/// Probability of `tok` as llama.cpp's `softmax` helper gives it.
pub fn softmax_prob(logits: &[f32], tok: usize) -> f32 {
    let max = max_logit(logits);
    let sum = sum_exp_f64(logits, max);
    (f64::from((logits[tok] - max).exp()) / sum) as f32
}

/// [`softmax_prob`] of several tokens of one row, the sum computed once.
pub fn softmax_probs(logits: &[f32], toks: impl Iterator<Item = usize>) -> Vec<f32> {
    let max = max_logit(logits);
    let sum = sum_exp_f64(logits, max);
    toks.map(|t| (f64::from((logits[t] - max).exp()) / sum) as f32).collect()
}

/// Log-probability of `tok` with an `f32` sum, as `compute_logprobs` does.
pub fn logprob_f32(logits: &[f32], tok: usize) -> f32 {
    let max = max_logit(logits);
    let mut sum = 0f32;
    for &v in logits {
        sum += (v - max).exp();
    }
    logits[tok] - max - sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_precisions_agree_on_a_small_row() {
        let row = [1.0f32, 2.0, 3.0, -1.0];
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp() + (-1f64).exp()).ln();
        assert!((nll_f64(&row, 2) - (lse - 3.0)).abs() < 1e-6);
        assert!((f64::from(softmax_prob(&row, 1)) - (2.0 - lse).exp()).abs() < 1e-6);
        assert_eq!(softmax_probs(&row, [1, 3].into_iter()), vec![softmax_prob(&row, 1), softmax_prob(&row, 3)]);
        assert_eq!(nll_f64_many(&row, [2, 0].into_iter()), vec![nll_f64(&row, 2), nll_f64(&row, 0)]);
        assert!((f64::from(logprob_f32(&row, 0)) - (1.0 - lse)).abs() < 1e-5);
    }

    #[test]
    fn argmax_keeps_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, 1.0]), (2.0, 1));
        assert_eq!(argmax(&[-3.0]), (-3.0, 0));
    }

    #[test]
    fn huge_logits_do_not_overflow() {
        let row = [1000.0f32, 999.0];
        assert!(nll_f64(&row, 0).is_finite() && nll_f64(&row, 0) > 0.0);
        assert!(logprob_f32(&row, 1).is_finite());
    }
}
