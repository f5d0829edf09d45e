//! Summary statistics of repeated measurements (tokens per second over repetitions,
//! seconds per pass, …): mean, median, sample standard deviation, extremes.
//!
//! Every function takes the samples in any order and returns `None` for no samples, so a
//! test that did not run has no statistics instead of a made-up zero. NaNs sort after
//! every number (`f64::total_cmp`) and otherwise propagate into the mean.

/// Mean of the samples.
pub fn mean(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    Some(samples.iter().sum::<f64>() / samples.len() as f64)
}

/// Median: the middle sample, or the mean of the two middle ones for an even count.
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let s = sorted(samples);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

/// Sample standard deviation (divides by `n − 1`, as llama-bench does); 0 for one sample.
pub fn stddev(samples: &[f64]) -> Option<f64> {
    let m = mean(samples)?;
    let n = samples.len();
    if n < 2 {
        return Some(0.0);
    }
    let var = samples.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(var.sqrt())
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// All the statistics of one set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    /// Sample standard deviation (see [`stddev`]).
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// The summary of `samples`, or `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let s = sorted(samples);
        Some(Summary {
            n: s.len(),
            mean: mean(&s)?,
            median: median(&s)?,
            stddev: stddev(&s)?,
            min: *s.first()?,
            max: *s.last()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn no_samples_have_no_statistics() {
        assert_eq!(mean(&[]), None);
        assert_eq!(median(&[]), None);
        assert_eq!(stddev(&[]), None);
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn one_sample_is_its_own_mean_and_median_with_zero_spread() {
        let s = Summary::of(&[3.5]).unwrap();
        assert_eq!(s, Summary { n: 1, mean: 3.5, median: 3.5, stddev: 0.0, min: 3.5, max: 3.5 });
    }

    #[test]
    fn median_of_odd_and_even_counts_in_any_order() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[2.0, 2.0]), Some(2.0));
    }

    #[test]
    fn mean_and_sample_standard_deviation_match_hand_computed_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32, n − 1 = 7.
        let v = [9.0, 2.0, 4.0, 5.0, 4.0, 7.0, 4.0, 5.0];
        assert_eq!(mean(&v), Some(5.0));
        assert!(close(stddev(&v).unwrap(), (32.0f64 / 7.0).sqrt()));
        let s = Summary::of(&v).unwrap();
        assert_eq!((s.n, s.min, s.max, s.median), (8, 2.0, 9.0, 4.5));
        assert!(close(s.stddev, (32.0f64 / 7.0).sqrt()));
    }

    #[test]
    fn constant_samples_have_zero_spread() {
        assert_eq!(stddev(&[1e9; 5]), Some(0.0));
    }

    #[test]
    fn summary_does_not_depend_on_sample_order() {
        let a = [1.0, 10.0, 3.0, 7.0, 2.0];
        let mut b = a;
        b.reverse();
        assert_eq!(Summary::of(&a), Summary::of(&b));
    }

    #[test]
    fn nan_sorts_last_instead_of_panicking() {
        let s = Summary::of(&[f64::NAN, 1.0, 2.0]).unwrap();
        assert_eq!(s.min, 1.0);
        assert_eq!(s.median, 2.0);
        assert!(s.max.is_nan() && s.mean.is_nan());
    }
}
