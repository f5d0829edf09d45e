//! Rotary position embeddings of one layer: mode, rotated dims, base, linear scaling and
//! optional per-pair frequency factors (`rope_freqs.weight`), applied by `peer::rope`
//! (ggml's `rope_ext` with `ext_factor = 0`, including the FMA contraction of the peer's
//! build; `jikji_kernels::ops::rope` computes the same formula with separate roundings).

use crate::error::ModelError;
use crate::hparams::RopeMode;
use super::peer;

/// Rotary parameters of one layer.
#[derive(Clone, Copy, Debug)]
pub struct Rope<'a> {
    pub mode: RopeMode,
    pub n_rot: usize,
    pub base: f32,
    pub freq_scale: f32,
    pub freq_factors: Option<&'a [f32]>,
}

impl Rope<'_> {
    /// Rotates `x` = `[n_tokens, n_heads * head_dim]` where token `t` sits at `positions[t]`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, positions: &[usize]) -> Result<(), ModelError> {
        let n_tokens = positions.len();
        if n_tokens == 0 || head_dim == 0 {
            return Ok(());
        }
        if self.n_rot & 1 == 1 || self.n_rot > head_dim || x.len().checked_rem(n_tokens * head_dim) != Some(0) {
            return Err(ModelError::BadRequest(format!(
                "rope: n_rot {} / head_dim {head_dim} / {} values for {n_tokens} tokens",
                self.n_rot,
                x.len()
            )));
        }
        if let Some(f) = self.freq_factors {
            if f.len() < self.n_rot / 2 {
                return Err(ModelError::BadRequest(format!("rope: {} frequency factors for {} pairs", f.len(), self.n_rot / 2)));
            }
        }
        let neox = self.mode == RopeMode::Neox;
        peer::rope(x, head_dim, positions, self.n_rot, neox, self.base, self.freq_scale, self.freq_factors);
        Ok(())
    }
}
