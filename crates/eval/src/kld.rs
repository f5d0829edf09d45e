//! KL divergence of a model's token distributions against a stored base
//! ([`crate::logits_file`]), with llama-perplexity's statistics and printed blocks.
//!
//! Per scored token (llama.cpp's `log_softmax` with a base row, in its precisions):
//! `nll` of the model, `nll_base` from the stored row, `KLD = Σ_{log p_base > −16}
//! p_base·(log p_base − log p)`, `Δp = p(tok) − p_base(tok)`, and whether both put the
//! same token on top. Sums are kept as llama.cpp keeps them; uncertainties are
//! `sqrt((⟨x²⟩ − ⟨x⟩²)/(n−1))` (0 for 10 values or fewer), percentiles interpolate
//! linearly between sorted values, computed in `f32` as llama.cpp does.

use crate::logits_file::row_params;

/// One token's comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenKld {
    pub nll: f32,
    pub nll_base: f32,
    pub kld: f64,
    pub p_diff: f32,
    pub same_top: bool,
}

/// Compares one row of logits with a stored base row for target `tok`.
pub fn compare_row(logits: &[f32], base: &[u16], tok: usize) -> TokenKld {
    let mut max = logits[0];
    let mut imax = 0;
    for (i, &v) in logits.iter().enumerate().skip(1) {
        if v > max {
            max = v;
            imax = i;
        }
    }
    let sum: f64 = logits.iter().map(|&v| f64::from((v - max).exp())).sum();
    let log_sum = sum.ln() as f32;
    let (scale, min_log_prob) = row_params(base);
    let q = &base[4..4 + logits.len()];
    let nll = max + log_sum - logits[tok];
    let nll_base = -(scale * f32::from(q[tok]) + min_log_prob);
    let top = max + log_sum;
    let mut kld = 0f64;
    let mut imax_base = 0;
    let mut best_base = 0f32;
    for (i, (&qi, &l)) in q.iter().zip(logits).enumerate() {
        let lp_base = scale * f32::from(qi) + min_log_prob;
        if i == 0 || lp_base > best_base {
            best_base = lp_base;
            imax_base = i;
        }
        if lp_base > -16.0 {
            let p_base = lp_base.exp();
            kld += f64::from(p_base * (lp_base - l + top));
        }
    }
    let p_diff = (-nll).exp() - (-nll_base).exp();
    TokenKld { nll, nll_base, kld, p_diff, same_top: imax == imax_base }
}

/// Running sums over every compared token.
#[derive(Clone, Debug, Default)]
pub struct KldStats {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f32,
    n_same_top: usize,
    pub count: usize,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
}

/// `(mean, uncertainty)` as llama.cpp's `mean_and_uncertainty`.
fn mean_unc(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let f = sum / count as f64;
    let df = sum2 / count as f64 - f * f;
    (f, if df > 0.0 && count > 10 { (df / (count as f64 - 1.0)).sqrt() } else { 0.0 })
}

fn covariance(a: f64, b: f64, ab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (ab / n - (a / n) * (b / n)) / (n - 1.0)
}

fn percentile(sorted: &[f32], fraction: f32) -> f32 {
    if fraction <= 0.0 {
        return sorted[0];
    }
    if fraction >= 1.0 {
        return sorted[sorted.len() - 1];
    }
    let mut p = fraction * (sorted.len() - 1) as f32;
    let ip = p as usize;
    p -= ip as f32;
    (1.0 - p) * sorted[ip] + p * sorted[(ip + 1).min(sorted.len() - 1)]
}

fn median(sorted: &[f32]) -> f32 {
    let n = sorted.len();
    if n.is_multiple_of(2) {
        0.5 * (sorted[n / 2] + sorted[n / 2 - 1])
    } else {
        sorted[n / 2]
    }
}

impl KldStats {
    pub fn add(&mut self, t: &TokenKld) {
        self.sum_nll += f64::from(t.nll);
        self.sum_nll2 += f64::from(t.nll * t.nll);
        self.sum_nll_base += f64::from(t.nll_base);
        self.sum_nll_base2 += f64::from(t.nll_base * t.nll_base);
        self.sum_nll_nll_base += f64::from(t.nll * t.nll_base);
        self.sum_kld += t.kld;
        self.sum_kld2 += t.kld * t.kld;
        self.sum_p_diff += f64::from(t.p_diff);
        let d2 = f64::from(t.p_diff * t.p_diff);
        self.sum_p_diff2 += d2;
        self.sum_p_diff4 += d2 * d2;
        self.max_p_diff = self.max_p_diff.max(t.p_diff.abs());
        self.n_same_top += usize::from(t.same_top);
        self.count += 1;
        self.kld_values.push(t.kld as f32);
        self.p_diff_values.push(t.p_diff);
    }

    /// Mean KL divergence and its uncertainty.
    pub fn mean_kld(&self) -> (f64, f64) {
        mean_unc(self.sum_kld, self.sum_kld2, self.count)
    }

    /// Mean PPL of the model and of the base.
    pub fn ppl(&self) -> (f64, f64) {
        (mean_unc(self.sum_nll, self.sum_nll2, self.count).0.exp(), mean_unc(self.sum_nll_base, self.sum_nll_base2, self.count).0.exp())
    }

    /// Share of tokens whose top choice is the base's.
    pub fn same_top(&self) -> f64 {
        self.n_same_top as f64 / self.count as f64
    }

    /// RMS of Δp.
    pub fn rms_p_diff(&self) -> f64 {
        mean_unc(self.sum_p_diff2, self.sum_p_diff4, self.count).0.sqrt()
    }

    /// The table header printed before the first chunk line.
    pub fn table_header() -> &'static str {
        "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p"
    }

    /// The line llama-perplexity prints after chunk `i` (1-based).
    pub fn chunk_line(&self, i: usize) -> String {
        let lp = mean_unc(self.sum_nll, self.sum_nll2, self.count);
        let ppl = lp.0.exp();
        let lpb = mean_unc(self.sum_nll_base, self.sum_nll_base2, self.count);
        let cov = covariance(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, self.count);
        let ratio = lp.0 - lpb.0;
        let ratio_unc = (lp.1 * lp.1 + lpb.1 * lpb.1 - 2.0 * cov).sqrt();
        let kl = self.mean_kld();
        let mse = mean_unc(self.sum_p_diff2, self.sum_p_diff4, self.count);
        let rms = mse.0.sqrt();
        let rms_unc = 0.5 / rms * mse.1;
        let top = self.same_top();
        let top_unc = (top * (1.0 - top) / (self.count as f64 - 1.0)).sqrt();
        format!(
            "{i:4}    {ppl:9.4} ± {:9.4}    {ratio:10.5} ± {ratio_unc:10.5}    {:10.5} ± {:10.5}    {:6.3} ± {:6.3} %    {:6.3} ± {:6.3} %",
            ppl * lp.1,
            kl.0,
            kl.1,
            100.0 * rms,
            100.0 * rms_unc,
            100.0 * top,
            100.0 * top_unc
        )
    }

    /// The three statistics blocks (empty below 100 tokens, as llama.cpp).
    pub fn report(&self) -> String {
        if self.count < 100 {
            return String::new();
        }
        let mut kv = self.kld_values.clone();
        kv.sort_by(f32::total_cmp);
        let mut pv = self.p_diff_values.clone();
        pv.sort_by(f32::total_cmp);
        let mut o = String::new();
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line("====== Perplexity statistics ======".into());
        let lp = mean_unc(self.sum_nll, self.sum_nll2, self.count);
        let (ppl, ppl_unc) = (lp.0.exp(), lp.0.exp() * lp.1);
        line(format!("Mean PPL(Q)                   : {ppl:10.6} ± {ppl_unc:10.6}"));
        let lpb = mean_unc(self.sum_nll_base, self.sum_nll_base2, self.count);
        let (pplb, pplb_unc) = (lpb.0.exp(), lpb.0.exp() * lpb.1);
        line(format!("Mean PPL(base)                : {pplb:10.6} ± {pplb_unc:10.6}"));
        let cov = covariance(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, self.count);
        line(format!("Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%", 100.0 * cov / (lp.1 * lpb.1)));
        let ratio = lp.0 - lpb.0;
        let ratio_unc = (lp.1 * lp.1 + lpb.1 * lpb.1 - 2.0 * cov).sqrt();
        line(format!("Mean ln(PPL(Q)/PPL(base))     : {ratio:10.6} ± {ratio_unc:10.6}"));
        line(format!("Mean PPL(Q)/PPL(base)         : {:10.6} ± {:10.6}", ratio.exp(), ratio.exp() * ratio_unc));
        let pcov = ppl * pplb * cov;
        line(format!(
            "Mean PPL(Q)-PPL(base)         : {:10.6} ± {:10.6}",
            ppl - pplb,
            (ppl_unc * ppl_unc + pplb_unc * pplb_unc - 2.0 * pcov).sqrt()
        ));
        line(String::new());
        line("====== KL divergence statistics ======".into());
        let kl = self.mean_kld();
        line(format!("Mean    KLD: {:10.6} ± {:10.6}", kl.0, kl.1));
        line(format!("Maximum KLD: {:10.6}", kv[kv.len() - 1]));
        for (label, f) in [("99.9%", 0.999f32), ("99.0%", 0.990), ("95.0%", 0.950), ("90.0%", 0.900)] {
            line(format!("{label}   KLD: {:10.6}", percentile(&kv, f)));
        }
        line(format!("Median  KLD: {:10.6}", median(&kv)));
        for (label, f) in [("10.0%", 0.100f32), (" 5.0%", 0.050), (" 1.0%", 0.010), (" 0.1%", 0.001)] {
            line(format!("{label}   KLD: {:10.6}", percentile(&kv, f)));
        }
        line(format!("Minimum KLD: {:10.6}", kv[0]));
        line(String::new());
        line("====== Token probability statistics ======".into());
        let pd = mean_unc(self.sum_p_diff, self.sum_p_diff2, self.count);
        line(format!("Mean    Δp: {:6.3} ± {:5.3} %", 100.0 * pd.0, 100.0 * pd.1));
        line(format!("Maximum Δp: {:6.3}%", 100.0 * pv[pv.len() - 1]));
        for (label, f) in [("99.9%", 0.999f32), ("99.0%", 0.990), ("95.0%", 0.950), ("90.0%", 0.900), ("75.0%", 0.750)] {
            line(format!("{label}   Δp: {:6.3}%", 100.0 * percentile(&pv, f)));
        }
        line(format!("Median  Δp: {:6.3}%", 100.0 * median(&pv)));
        for (label, f) in [("25.0%", 0.250f32), ("10.0%", 0.100), (" 5.0%", 0.050), (" 1.0%", 0.010), (" 0.1%", 0.001)] {
            line(format!("{label}   Δp: {:6.3}%", 100.0 * percentile(&pv, f)));
        }
        line(format!("Minimum Δp: {:6.3}%", 100.0 * pv[0]));
        let mse = mean_unc(self.sum_p_diff2, self.sum_p_diff4, self.count);
        let rms = mse.0.sqrt();
        line(format!("RMS Δp    : {:6.3} ± {:5.3} %", 100.0 * rms, 100.0 * 0.5 / rms * mse.1));
        let top = self.same_top();
        line(format!("Same top p: {:6.3} ± {:5.3} %", 100.0 * top, 100.0 * (top * (1.0 - top) / (self.count as f64 - 1.0)).sqrt()));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logits_file::{quantize_row, row_len};

    #[test]
    fn a_model_against_its_own_base_has_near_zero_divergence() {
        let mut s = KldStats::default();
        let mut row = vec![0u16; row_len(7)];
        for k in 0..200 {
            let logits: Vec<f32> = (0..7).map(|i| ((i * 37 + k * 11) % 13) as f32 * 0.7 - 3.0).collect();
            quantize_row(&logits, k % 7, &mut row);
            let t = compare_row(&logits, &row, k % 7);
            assert!(t.kld.abs() < 1e-4, "{t:?}");
            assert!(t.same_top);
            s.add(&t);
        }
        assert!(s.mean_kld().0.abs() < 1e-4);
        assert_eq!(s.same_top(), 1.0);
        let r = s.report();
        assert!(r.contains("====== KL divergence statistics ======") && r.contains("Same top p: 100.000 ±"), "{r}");
    }

    #[test]
    fn a_shifted_distribution_diverges() {
        let base = [3.0f32, 0.0, 0.0];
        let mut row = vec![0u16; row_len(3)];
        quantize_row(&base, 0, &mut row);
        let t = compare_row(&[0.0, 3.0, 0.0], &row, 0);
        assert!(t.kld > 1.0 && !t.same_top && t.p_diff < -0.5, "{t:?}");
    }

    #[test]
    fn percentiles_interpolate_between_sorted_values() {
        let v = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.125), 0.5);
        assert_eq!(percentile(&v, 1.0), 4.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
    }
}
