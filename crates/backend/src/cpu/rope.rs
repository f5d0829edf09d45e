//! The CPU backend's rotary position embeddings.
//!
//! - [`Rope::Plain`]: applied by `peer::rope` (ggml's `rope_ext` with `ext_factor = 0`,
//!   including the FMA contraction of the peer's build; `jikji_kernels::ops::rope` computes
//!   the same formula with separate roundings), token rows split over the pool.
//! - [`Rope::Yarn`]: ggml's `rope_yarn` cache with the ramp and magnitude factor, then the
//!   same contracted rotation.

use super::peer;
use crate::{BackendError, Rope, RopeMode, YarnRope};

/// Rotates `x` = `[n_tokens, n_heads * head_dim]` where token `t` sits at `positions[t]`.
pub(super) fn apply(rope: &Rope, x: &mut [f32], head_dim: usize, positions: &[usize]) -> Result<(), BackendError> {
    match rope {
        Rope::Plain { mode, n_rot, base, freq_scale, freq_factors } => {
            Plain { mode: *mode, n_rot: *n_rot, base: *base, freq_scale: *freq_scale, freq_factors: freq_factors.as_deref() }.apply(x, head_dim, positions)
        }
        Rope::Yarn(y) => apply_yarn(y, x, head_dim, positions),
    }
}

/// Rotary parameters of one plain layer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plain<'a> {
    pub mode: RopeMode,
    pub n_rot: usize,
    pub base: f32,
    pub freq_scale: f32,
    pub freq_factors: Option<&'a [f32]>,
}

impl Plain<'_> {
    fn apply(&self, x: &mut [f32], head_dim: usize, positions: &[usize]) -> Result<(), BackendError> {
        let n_tokens = positions.len();
        if n_tokens == 0 || head_dim == 0 {
            return Ok(());
        }
        if self.n_rot & 1 == 1 || self.n_rot > head_dim || x.len().checked_rem(n_tokens * head_dim) != Some(0) {
            return Err(BackendError::Shape(format!(
                "rope: n_rot {} / head_dim {head_dim} / {} values for {n_tokens} tokens",
                self.n_rot,
                x.len()
            )));
        }
        if let Some(f) = self.freq_factors {
            if f.len() < self.n_rot / 2 {
                return Err(BackendError::Shape(format!("rope: {} frequency factors for {} pairs", f.len(), self.n_rot / 2)));
            }
        }
        let neox = self.mode == RopeMode::Neox;
        let row = x.len() / n_tokens;
        // Token by token, so the tokens are split over the pool (same bits in any split).
        jikji_kernels::pool::for_rows_mut(x, row, 8, &|first, rows| {
            let pos = &positions[first..first + rows.len() / row];
            peer::rope(rows, head_dim, pos, self.n_rot, neox, self.base, self.freq_scale, self.freq_factors);
        });
        Ok(())
    }
}

/// cos/sin per pair for one position: `[n_rot]` as (cos, sin) pairs.
fn yarn_cache(r: &YarnRope, pos: usize, out: &mut [f32]) {
    let theta_scale = r.base.powf(-2.0 / r.n_rot as f32);
    let mut theta = pos as f32;
    for (k, cs) in out.chunks_exact_mut(2).enumerate() {
        let theta_extrap = theta;
        let theta_interp = r.freq_scale * theta_extrap;
        let mut t = theta_interp;
        let mut mscale = r.mscale;
        if r.ext_factor != 0.0 {
            let y = (k as f32 - r.corr_dims[0]) / (r.corr_dims[1] - r.corr_dims[0]).max(0.001);
            let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * r.ext_factor;
            t = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
            mscale *= 1.0 + 0.1 * (1.0 / r.freq_scale).ln();
        }
        cs[0] = t.cos() * mscale;
        cs[1] = t.sin() * mscale;
        theta *= theta_scale;
    }
}

/// Rotates the first `n_rot` dims of each `head_dim` block of `x` = `[n_tokens, n_heads
/// * head_dim]`, token `t` at position `positions[t]`.
fn apply_yarn(r: &YarnRope, x: &mut [f32], head_dim: usize, positions: &[usize]) -> Result<(), BackendError> {
    let n_tokens = positions.len();
    if n_tokens == 0 || head_dim == 0 || r.n_rot == 0 {
        return Ok(());
    }
    if r.n_rot & 1 == 1 || r.n_rot > head_dim || x.len().checked_rem(n_tokens * head_dim) != Some(0) {
        return Err(BackendError::Shape(format!(
            "rope: n_rot {} / head_dim {head_dim} / {} values for {n_tokens} tokens",
            r.n_rot,
            x.len()
        )));
    }
    let row = x.len() / n_tokens;
    let half = r.n_rot / 2;
    let mut cache = vec![0.0f32; r.n_rot];
    for (tok, &pos) in x.chunks_exact_mut(row).zip(positions) {
        yarn_cache(r, pos, &mut cache);
        for head in tok.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = if r.mode == RopeMode::Neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
                let (c, s) = (cache[2 * i], cache[2 * i + 1]);
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0.mul_add(c, -(x1 * s));
                head[b] = x0.mul_add(s, x1 * c);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yarn_without_extension_is_the_plain_rotation() {
        let plain = Plain { mode: RopeMode::Norm, n_rot: 8, base: 10000.0, freq_scale: 1.0, freq_factors: None };
        let yarn = YarnRope { mode: RopeMode::Norm, n_rot: 8, base: 10000.0, freq_scale: 1.0, ext_factor: 0.0, mscale: 1.0, corr_dims: [0.0, 7.0] };
        let x: Vec<f32> = (0..32).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut a, mut b) = (x.clone(), x);
        plain.apply(&mut a, 16, &[5, 6]).expect("rope");
        apply_yarn(&yarn, &mut b, 16, &[5, 6]).expect("rope");
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
    }

    #[test]
    fn yarn_keeps_fast_pairs_unscaled_and_interpolates_slow_ones() {
        // corr dims [1, 2]: pair 0 extrapolates (original angle), pair 3 interpolates
        // (angle / factor); magnitudes are scaled by mscale.
        let factor = 4.0f32;
        let r = YarnRope { mode: RopeMode::Norm, n_rot: 8, base: 10000.0, freq_scale: 1.0 / factor, ext_factor: 1.0, mscale: 1.0, corr_dims: [1.0, 2.0] };
        let mut cs = vec![0.0; 8];
        yarn_cache(&r, 3, &mut cs);
        let m = 1.0 + 0.1 * factor.ln();
        assert!((cs[0] - 3f32.cos() * m).abs() < 1e-5);
        let theta3 = 3.0 * 10000f32.powf(-6.0 / 8.0);
        assert!((cs[6] - (theta3 / factor).cos() * m).abs() < 1e-5);
        assert_eq!(YarnRope::corr_dims(64, 4096, 10000.0, 32.0, 1.0), [10.0, 23.0]);
    }
}
