//! Mixture-of-experts routing, as llama.cpp's `build_moe_ffn` computes it (Dai et al.
//! 2024, "DeepSeekMoE"; DeepSeek-AI 2024, "DeepSeek-V3 Technical Report"; Qwen3-MoE).
//!
//! Per token (`x` already normalised):
//! 1. `logits = gate_inp · x` (`[n_expert]`), `probs = softmax(logits)` or
//!    `sigmoid(logits)` (`expert_gating_func` 1 / 2);
//! 2. selection scores `probs + exp_probs_b` (V3's load-balancing bias; it only steers the
//!    choice, the weights stay unbiased);
//! 3. group-limited routing (`expert_group_count > 1`): experts form equal groups, a
//!    group's score is the sum of its two best selection scores, and only the best
//!    `expert_group_used_count` groups stay eligible;
//! 4. the `expert_used_count` best eligible experts; weights = their `probs`, divided by
//!    their sum when `expert_weights_norm` (the sum clamped at 2⁻¹⁴, as ggml does), then
//!    multiplied by `expert_weights_scale` (when not 0 or 1).
//!
//! [`Routing::route`] is the host reference every backend's routing is checked against
//! (the CPU backend uses it directly: routing is tiny next to the expert matmuls).

/// How router logits become expert probabilities (`{arch}.expert_gating_func`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gating {
    Softmax,
    Sigmoid,
}

impl Gating {
    /// llama.cpp's numbering: 1 = softmax, 2 = sigmoid (0 / absent = softmax); `None` for
    /// another number.
    pub fn from_gguf(v: Option<usize>) -> Option<Self> {
        match v {
            None | Some(0) | Some(1) => Some(Gating::Softmax),
            Some(2) => Some(Gating::Sigmoid),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Gating::Softmax => "softmax",
            Gating::Sigmoid => "sigmoid",
        }
    }
}

/// Routing hyper-parameters shared by every MoE layer of a model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Routing {
    pub n_expert: usize,
    pub n_used: usize,
    /// Expert groups (≤ 1: no group limit).
    pub n_groups: usize,
    pub n_groups_used: usize,
    pub gating: Gating,
    pub norm_weights: bool,
    /// Multiplies the weights when not 0 or 1.
    pub weights_scale: f32,
}

impl Routing {
    /// Checks the counts so routing can never pick from an empty set; the message names
    /// the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |m: String| Err(m);
        if self.n_expert == 0 || self.n_used == 0 || self.n_used > self.n_expert {
            return bad(format!("expert_used_count {} must be in 1..={} (expert_count)", self.n_used, self.n_expert));
        }
        if self.n_groups > 1 {
            if !self.n_expert.is_multiple_of(self.n_groups) {
                return bad(format!("expert_count {} is not a multiple of expert_group_count {}", self.n_expert, self.n_groups));
            }
            let per_group = self.n_expert / self.n_groups;
            if self.n_groups_used == 0 || self.n_groups_used > self.n_groups {
                return bad(format!("expert_group_used_count {} must be in 1..={}", self.n_groups_used, self.n_groups));
            }
            if self.n_used > self.n_groups_used * per_group {
                return bad(format!(
                    "expert_used_count {} exceeds the {} experts of the {} groups used",
                    self.n_used,
                    self.n_groups_used * per_group,
                    self.n_groups_used
                ));
            }
        }
        if !self.weights_scale.is_finite() {
            return bad(format!("expert_weights_scale {} is not finite", self.weights_scale));
        }
        Ok(())
    }

    /// The selected experts and their weights for one token's router logits, in
    /// selection order (best first).
    pub fn route(&self, logits: &[f32], bias: Option<&[f32]>) -> Vec<(usize, f32)> {
        let n = self.n_expert;
        let probs: Vec<f32> = match self.gating {
            Gating::Softmax => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
                let sum: f32 = e.iter().sum();
                e.iter().map(|v| v / sum).collect()
            }
            Gating::Sigmoid => logits.iter().map(|&l| 1.0 / (1.0 + (-l).exp())).collect(),
        };
        let mut sel: Vec<f32> = match bias {
            Some(b) => probs.iter().zip(b).map(|(p, b)| p + b).collect(),
            None => probs.clone(),
        };
        if self.n_groups > 1 {
            let per = n / self.n_groups;
            let mut group_scores: Vec<(usize, f32)> = sel
                .chunks_exact(per)
                .enumerate()
                .map(|(g, s)| {
                    let mut best = [f32::NEG_INFINITY; 2];
                    for &v in s {
                        if v > best[0] {
                            best = [v, best[0]];
                        } else if v > best[1] {
                            best[1] = v;
                        }
                    }
                    let top2 = if per >= 2 { best[0] + best[1] } else { best[0] };
                    (g, top2)
                })
                .collect();
            group_scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut keep = vec![false; self.n_groups];
            for &(g, _) in group_scores.iter().take(self.n_groups_used) {
                keep[g] = true;
            }
            for (i, v) in sel.iter_mut().enumerate() {
                if !keep[i / per] {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| sel[b].total_cmp(&sel[a]).then(a.cmp(&b)));
        order.truncate(self.n_used);
        let mut chosen: Vec<(usize, f32)> = order.iter().map(|&e| (e, probs[e])).collect();
        if self.norm_weights {
            let sum: f32 = chosen.iter().map(|c| c.1).sum::<f32>().max(6.103_515_6e-5);
            chosen.iter_mut().for_each(|c| c.1 /= sum);
        }
        if self.weights_scale != 0.0 && self.weights_scale != 1.0 {
            chosen.iter_mut().for_each(|c| c.1 *= self.weights_scale);
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(gating: Gating, groups: usize, groups_used: usize) -> Routing {
        Routing { n_expert: 8, n_used: 2, n_groups: groups, n_groups_used: groups_used, gating, norm_weights: true, weights_scale: 2.5 }
    }

    #[test]
    fn routing_picks_top_experts_and_normalises_then_scales_weights() {
        let r = routing(Gating::Sigmoid, 1, 1);
        let logits = [0.0, 3.0, -1.0, 2.0, 0.5, -2.0, 1.0, 0.0];
        let got = r.route(&logits, None);
        assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
        let s = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (a, b) = (s(3.0), s(2.0));
        assert!((got[0].1 - 2.5 * a / (a + b)).abs() < 1e-6);
        assert!((got[1].1 - 2.5 * b / (a + b)).abs() < 1e-6);
    }

    #[test]
    fn bias_steers_the_choice_but_not_the_weights() {
        let r = Routing { norm_weights: false, weights_scale: 1.0, ..routing(Gating::Softmax, 1, 1) };
        let logits = [0.0, 3.0, -1.0, 2.0, 0.5, -2.0, 1.0, 0.0];
        let mut bias = [0.0f32; 8];
        bias[5] = 10.0;
        let got = r.route(&logits, Some(&bias));
        assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), vec![5, 1]);
        let max = 3.0f32;
        let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
        assert!((got[0].1 - (-2.0f32 - max).exp() / sum).abs() < 1e-6);
    }

    #[test]
    fn group_limit_excludes_experts_outside_the_best_groups() {
        // Groups of two: {0,1} {2,3} {4,5} {6,7}. Expert 1 is the single best, but group
        // {4,5} and {6,7} have the best pair sums; only one group is kept.
        let r = routing(Gating::Sigmoid, 4, 1);
        let logits = [-5.0, 4.0, -5.0, -5.0, 2.5, 2.5, 0.0, 0.0];
        let got = r.route(&logits, None);
        let mut ids: Vec<usize> = got.iter().map(|c| c.0).collect();
        ids.sort();
        assert_eq!(ids, vec![4, 5]);
        // Counts that could select from an empty set are refused.
        assert!(Routing { n_used: 3, ..r }.validate().is_err());
        assert!(Routing { n_groups: 3, ..r }.validate().is_err());
        assert!(r.validate().is_ok());
    }
}
