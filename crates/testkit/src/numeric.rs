//! Numeric comparisons for tests.

/// Largest `|a[i] - b[i]|`; panics if the lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Normalised mean squared error `Σ(a-b)² / Σb²` (b is the reference).
pub fn nmse(a: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(a.len(), reference.len(), "length mismatch");
    let num: f64 = a.iter().zip(reference).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = reference.iter().map(|y| (*y as f64).powi(2)).sum();
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// Panics with the first offending index if any `|a[i] - b[i]| > tol`.
#[track_caller]
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length {} != {}", a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol || (x.is_nan() && y.is_nan()), "{what}: index {i}: {x} vs {y} (tol {tol}, max |Δ| {})", max_abs_diff(a, b));
    }
}

/// `log Σ exp(x)` in f64.
pub fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(x: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_measure_what_they_say() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert!((nmse(&[1.0, 1.0], &[1.0, 2.0]) - 0.2).abs() < 1e-12);
        assert!((logsumexp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-12);
        assert_eq!(top_k(&[0.1, 3.0, 2.0], 2), vec![1, 2]);
    }

    #[test]
    #[should_panic(expected = "index 1")]
    fn assert_close_reports_the_first_bad_index() {
        assert_close(&[1.0, 2.0], &[1.0, 2.5], 0.1, "x");
    }
}
