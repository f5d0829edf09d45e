//! Token sampling, in llama.cpp's default chain order:
//! penalties → top-k → top-p → min-p → temperature → seeded draw.
//!
//! Design choices:
//! - Each stage works on a candidate list `(id, logit)` like llama.cpp's
//!   `llama_token_data_array`, so a stage sees only what earlier stages kept.
//! - Penalties follow llama.cpp's `penalties` sampler: over the last `penalty_last_n`
//!   accepted tokens, a token seen `c > 0` times gets its logit divided by
//!   `repeat_penalty` when positive and multiplied when ≤ 0, then
//!   `c * frequency_penalty + presence_penalty` subtracted.
//! - top-p keeps the smallest prefix (by probability, descending) whose cumulative
//!   probability reaches `top_p`, the crossing token included; min-p keeps tokens whose
//!   probability is at least `min_p` times the best one (`logit ≥ max + ln(min_p)`).
//!   Each keeps at least one token.
//! - `temperature <= 0` means greedy: the argmax of the penalised logits, ties going to the
//!   lowest id; the filters are skipped (they never remove the argmax).
//! - The draw uses a small self-contained PRNG (SplitMix64 seeding a xoshiro256**) so that
//!   the same seed gives the same tokens on every platform and crate version.

use std::collections::{HashMap, VecDeque};

/// Sampling parameters. `Default` is llama.cpp's default set.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// ≤ 0 means greedy.
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1.0 disables; must be in (0, 1].
    pub top_p: f32,
    /// 0.0 disables; must be in [0, 1].
    pub min_p: f32,
    /// 1.0 disables; must be > 0.
    pub repeat_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// How many of the most recent tokens the penalties look at (0 disables penalties).
    pub penalty_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding (temperature 0, no penalties).
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), SamplerError> {
        let bad = |name: &'static str, value: f32, expected: &'static str| {
            Err(SamplerError::Invalid { name, value: value.to_string(), expected })
        };
        if !self.temperature.is_finite() {
            return bad("temperature", self.temperature, "a finite number");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p, "in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", self.min_p, "in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty", self.repeat_penalty, "> 0");
        }
        if !self.presence_penalty.is_finite() {
            return bad("presence_penalty", self.presence_penalty, "a finite number");
        }
        if !self.frequency_penalty.is_finite() {
            return bad("frequency_penalty", self.frequency_penalty, "a finite number");
        }
        Ok(())
    }

    fn penalties_active(&self) -> bool {
        self.penalty_last_n > 0
            && (self.repeat_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0)
    }
}

/// Errors from building a sampler or sampling.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("invalid sampler parameter {name} = {value}: expected {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
    #[error("cannot sample from an empty logit vector")]
    Empty,
    #[error("logits contain no finite value")]
    NoFiniteLogit,
}

/// A candidate token and its (possibly adjusted) logit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
}

/// A stateful sampler: configuration, the recent-token window for penalties, and the PRNG.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    recent: VecDeque<u32>,
    rng: Xoshiro256,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Result<Self, SamplerError> {
        cfg.validate()?;
        let rng = Xoshiro256::seed(cfg.seed);
        Ok(Self { cfg, recent: VecDeque::new(), rng })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Records a token as part of the sequence (prompt or generated) for the penalties.
    pub fn accept(&mut self, id: u32) {
        if self.cfg.penalty_last_n == 0 {
            return;
        }
        if self.recent.len() == self.cfg.penalty_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    /// Clears the penalty window (the PRNG state is kept).
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// Picks the next token from one row of logits (one per vocabulary id).
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SamplerError> {
        if logits.is_empty() {
            return Err(SamplerError::Empty);
        }
        let penalised = self.cfg.penalties_active() && !self.recent.is_empty();
        if self.cfg.temperature <= 0.0 && !penalised {
            // Greedy without penalties: no candidate list (a vocabulary-sized copy per token).
            let it = logits.iter().enumerate().map(|(i, &logit)| Candidate { id: i as u32, logit });
            return argmax(it).ok_or(SamplerError::NoFiniteLogit);
        }
        let mut cands: Vec<Candidate> =
            logits.iter().enumerate().map(|(i, &logit)| Candidate { id: i as u32, logit }).collect();
        self.apply_penalties(&mut cands);
        if self.cfg.temperature <= 0.0 {
            return argmax(cands.iter().copied()).ok_or(SamplerError::NoFiniteLogit);
        }
        // Drop NaN / ±inf candidates: they cannot take part in a softmax.
        cands.retain(|c| c.logit.is_finite());
        if cands.is_empty() {
            return Err(SamplerError::NoFiniteLogit);
        }
        top_k(&mut cands, self.cfg.top_k);
        top_p(&mut cands, self.cfg.top_p);
        min_p(&mut cands, self.cfg.min_p);
        for c in &mut cands {
            c.logit /= self.cfg.temperature;
        }
        let probs = softmax(&cands);
        let r = self.rng.next_f64();
        let mut acc = 0.0f64;
        for (c, p) in cands.iter().zip(&probs) {
            acc += *p;
            if r < acc {
                return Ok(c.id);
            }
        }
        // Rounding left `acc` just under 1: the last candidate takes the remainder.
        cands.last().map(|c| c.id).ok_or(SamplerError::NoFiniteLogit)
    }

    /// Applies the repetition / presence / frequency penalties to `cands` in place.
    pub fn apply_penalties(&self, cands: &mut [Candidate]) {
        if !self.cfg.penalties_active() || self.recent.is_empty() {
            return;
        }
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &id in &self.recent {
            *counts.entry(id).or_insert(0) += 1;
        }
        for c in cands.iter_mut() {
            let Some(&n) = counts.get(&c.id) else { continue };
            if c.logit <= 0.0 {
                c.logit *= self.cfg.repeat_penalty;
            } else {
                c.logit /= self.cfg.repeat_penalty;
            }
            c.logit -= n as f32 * self.cfg.frequency_penalty + self.cfg.presence_penalty;
        }
    }
}

/// Argmax over finite-or-+inf logits; ties go to the lowest id.
fn argmax(cands: impl Iterator<Item = Candidate>) -> Option<u32> {
    let mut best: Option<Candidate> = None;
    for c in cands {
        if c.logit.is_nan() {
            continue;
        }
        match best {
            Some(b) if c.logit > b.logit || (c.logit == b.logit && c.id < b.id) => best = Some(c),
            None if c.logit > f32::NEG_INFINITY => best = Some(c),
            _ => {}
        }
    }
    best.map(|c| c.id)
}

/// Sorts descending by logit (ties: lower id first), the order every filter below relies on.
fn sort_desc(cands: &mut [Candidate]) {
    cands.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
}

/// Keeps the `k` highest logits (0 = keep all).
pub fn top_k(cands: &mut Vec<Candidate>, k: usize) {
    sort_desc(cands);
    if k > 0 && k < cands.len() {
        cands.truncate(k);
    }
}

/// Softmax of the candidates' logits, in f64 for a stable cumulative sum.
fn softmax(cands: &[Candidate]) -> Vec<f64> {
    let max = cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = cands.iter().map(|c| (c.logit as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Nucleus filter: keeps the smallest sorted prefix with cumulative probability ≥ `p`.
pub fn top_p(cands: &mut Vec<Candidate>, p: f32) {
    if p >= 1.0 || cands.is_empty() {
        return;
    }
    sort_desc(cands);
    let probs = softmax(cands);
    let mut cum = 0.0f64;
    let mut keep = cands.len();
    for (i, pr) in probs.iter().enumerate() {
        cum += pr;
        if cum >= p as f64 {
            keep = i + 1;
            break;
        }
    }
    cands.truncate(keep.max(1));
}

/// Keeps tokens whose probability is ≥ `p` × the best token's probability.
pub fn min_p(cands: &mut Vec<Candidate>, p: f32) {
    if p <= 0.0 || cands.is_empty() {
        return;
    }
    let max = cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
    let threshold = max + p.ln();
    let kept: Vec<Candidate> = cands.iter().copied().filter(|c| c.logit >= threshold).collect();
    if !kept.is_empty() {
        *cands = kept;
    }
}

/// xoshiro256** seeded through SplitMix64.
#[derive(Clone, Debug)]
struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    fn seed(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(logits: &[f32]) -> Vec<Candidate> {
        logits.iter().enumerate().map(|(i, &l)| Candidate { id: i as u32, logit: l }).collect()
    }

    fn ids(c: &[Candidate]) -> Vec<u32> {
        let mut v: Vec<u32> = c.iter().map(|c| c.id).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn greedy_picks_argmax_and_breaks_ties_to_lowest_id() {
        let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[0.1, 2.0, -1.0, 1.9]).unwrap(), 1);
        assert_eq!(s.sample(&[0.5, 3.0, 3.0, 1.0]).unwrap(), 1);
        assert_eq!(s.sample(&[f32::NAN, -5.0, -4.0]).unwrap(), 2);
        assert!(matches!(s.sample(&[]), Err(SamplerError::Empty)));
    }

    #[test]
    fn top_k_one_equals_greedy_at_any_temperature() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3 - (i as f32) * 0.001).collect();
        let mut g = Sampler::new(SamplerConfig::greedy()).unwrap();
        let expected = g.sample(&logits).unwrap();
        for seed in 0..20 {
            let cfg = SamplerConfig { temperature: 1.5, top_k: 1, seed, ..SamplerConfig::default() };
            let mut s = Sampler::new(cfg).unwrap();
            assert_eq!(s.sample(&logits).unwrap(), expected);
        }
    }

    fn draw_sequence(seed: u64, n: usize) -> Vec<u32> {
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..SamplerConfig::default()
        };
        let mut s = Sampler::new(cfg).unwrap();
        let flat = vec![0.0f32; 100];
        (0..n).map(|_| s.sample(&flat).unwrap()).collect()
    }

    #[test]
    fn same_seed_same_sequence_different_seed_differs() {
        let a = draw_sequence(42, 64);
        assert_eq!(a, draw_sequence(42, 64));
        assert_ne!(a, draw_sequence(43, 64));
        // A flat distribution actually spreads: many distinct ids.
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert!(distinct.len() > 30, "{distinct:?}");
    }

    #[test]
    fn top_p_keeps_smallest_prefix_reaching_p() {
        // probabilities 0.5, 0.25, 0.125, 0.125 (logits are log-probs)
        let l = [0.5f32.ln(), 0.25f32.ln(), 0.125f32.ln(), 0.125f32.ln()];
        let mut c = cands(&l);
        top_p(&mut c, 0.7);
        assert_eq!(ids(&c), vec![0, 1]);
        let mut c = cands(&l);
        top_p(&mut c, 0.5);
        assert_eq!(ids(&c), vec![0]);
        let mut c = cands(&l);
        top_p(&mut c, 0.8);
        assert_eq!(ids(&c), vec![0, 1, 2]);
        let mut c = cands(&l);
        top_p(&mut c, 1.0);
        assert_eq!(ids(&c), vec![0, 1, 2, 3]);
    }

    #[test]
    fn min_p_drops_tokens_below_fraction_of_best() {
        // probs relative to best: 1, 0.5, 0.1, 0.04
        let l = [0.0f32, 0.5f32.ln(), 0.1f32.ln(), 0.04f32.ln()];
        let mut c = cands(&l);
        min_p(&mut c, 0.05);
        assert_eq!(ids(&c), vec![0, 1, 2]);
        let mut c = cands(&l);
        min_p(&mut c, 0.3);
        assert_eq!(ids(&c), vec![0, 1]);
        let mut c = cands(&l);
        min_p(&mut c, 0.0);
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn top_k_keeps_k_highest() {
        let mut c = cands(&[1.0, 5.0, 3.0, 4.0, 2.0]);
        top_k(&mut c, 2);
        assert_eq!(ids(&c), vec![1, 3]);
        let mut c = cands(&[1.0, 5.0]);
        top_k(&mut c, 0);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn sampling_only_draws_from_survivors_of_the_filters() {
        // top-k 3 leaves {0,1,2}; min-p 0.3 then removes id 2 (prob ratio 0.2).
        let l = [0.0f32, 0.6f32.ln(), 0.2f32.ln(), 0.1f32.ln(), 0.05f32.ln()];
        for seed in 0..200 {
            let cfg = SamplerConfig { temperature: 1.0, top_k: 3, top_p: 1.0, min_p: 0.3, seed, ..Default::default() };
            let id = Sampler::new(cfg).unwrap().sample(&l).unwrap();
            assert!(id == 0 || id == 1, "seed {seed} drew {id}");
        }
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative_logits_of_seen_ids() {
        let cfg = SamplerConfig { repeat_penalty: 2.0, penalty_last_n: 4, ..SamplerConfig::greedy() };
        let mut s = Sampler::new(cfg).unwrap();
        s.accept(1);
        s.accept(2);
        s.accept(2);
        let mut c = cands(&[3.0, 3.0, -3.0, 3.0, -3.0]);
        s.apply_penalties(&mut c);
        let got: Vec<f32> = c.iter().map(|c| c.logit).collect();
        assert_eq!(got, vec![3.0, 1.5, -6.0, 3.0, -3.0]);
    }

    #[test]
    fn presence_and_frequency_penalties_subtract_per_occurrence() {
        let cfg = SamplerConfig {
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            penalty_last_n: 8,
            ..SamplerConfig::greedy()
        };
        let mut s = Sampler::new(cfg).unwrap();
        for id in [0, 0, 0, 2] {
            s.accept(id);
        }
        let mut c = cands(&[1.0, 1.0, 1.0]);
        s.apply_penalties(&mut c);
        let got: Vec<f32> = c.iter().map(|c| c.logit).collect();
        assert_eq!(got, vec![1.0 - 0.75 - 0.5, 1.0, 1.0 - 0.25 - 0.5]);
    }

    #[test]
    fn penalty_window_forgets_tokens_older_than_last_n() {
        let cfg = SamplerConfig { repeat_penalty: 2.0, penalty_last_n: 2, ..SamplerConfig::greedy() };
        let mut s = Sampler::new(cfg).unwrap();
        for id in [0, 1, 2] {
            s.accept(id);
        }
        let mut c = cands(&[4.0, 4.0, 4.0]);
        s.apply_penalties(&mut c);
        let got: Vec<f32> = c.iter().map(|c| c.logit).collect();
        assert_eq!(got, vec![4.0, 2.0, 2.0]);
        // Greedy sees the penalised logits.
        assert_eq!(s.sample(&[4.0, 4.0, 4.0]).unwrap(), 0);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad = [
            SamplerConfig { top_p: -0.1, ..Default::default() },
            SamplerConfig { top_p: 0.0, ..Default::default() },
            SamplerConfig { top_p: 1.5, ..Default::default() },
            SamplerConfig { min_p: -0.01, ..Default::default() },
            SamplerConfig { min_p: 1.01, ..Default::default() },
            SamplerConfig { repeat_penalty: 0.0, ..Default::default() },
            SamplerConfig { temperature: f32::NAN, ..Default::default() },
            SamplerConfig { frequency_penalty: f32::INFINITY, ..Default::default() },
        ];
        for cfg in bad {
            assert!(matches!(Sampler::new(cfg.clone()), Err(SamplerError::Invalid { .. })), "{cfg:?}");
        }
        assert!(Sampler::new(SamplerConfig::default()).is_ok());
    }
}
