//! Rotary position embeddings of one layer: mode, rotated dims, base, linear scaling and
//! optional per-pair frequency factors (`rope_freqs.weight`), applied by
//! `jikji_kernels::ops::rope` (ggml's `rope_ext` with `ext_factor = 0`).

use crate::error::ModelError;
use crate::hparams::RopeMode;
use jikji_kernels::ops::{rope, RopeParams};

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
    /// Rotates `x` = `[n_tokens, n_heads * head_dim]` where token `t` sits at `pos0 + t`.
    pub fn apply(&self, x: &mut [f32], n_tokens: usize, head_dim: usize, pos0: usize) -> Result<(), ModelError> {
        if n_tokens == 0 || head_dim == 0 {
            return Ok(());
        }
        let n_heads = x.len() / (n_tokens * head_dim);
        let positions: Vec<usize> = (pos0..pos0 + n_tokens).collect();
        let p = RopeParams {
            mode: self.mode,
            n_rot: self.n_rot,
            theta_base: self.base,
            freq_scale: self.freq_scale,
            attn_factor: 1.0,
            freq_factors: self.freq_factors,
        };
        rope(x, n_tokens, n_heads, head_dim, &positions, &p)?;
        Ok(())
    }
}
