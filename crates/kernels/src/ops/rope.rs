//! Rotary position embedding: ggml's `ggml_rope_ext` with `ext_factor = 0`.
//!
//! The rotation cache follows `ggml_rope_cache_init`: `theta_scale = powf(base, -2 /
//! n_rot)`, each pair's angle built by repeated f32 multiplication from the position, with
//! `freq_scale`, optional per-pair frequency factors and `attn_factor`. The rotation itself
//! is independent per pair, so it is one generic body compiled twice (`multiversion!`);
//! the scalar twin recomputes everything its own way as the reference.

use super::size_err;
use crate::KernelError;

/// Which dimensions rotate together (llama.cpp's `rope_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs `(2i, 2i+1)` (llama, mistral; ggml `GGML_ROPE_TYPE_NORM` = 0).
    Norm,
    /// Pairs `(i, i + n_rot/2)` (qwen2, qwen3, gemma3, GPT-NeoX; `GGML_ROPE_TYPE_NEOX`).
    Neox,
}

/// Rotary embedding parameters (ggml's `ggml_rope_ext` with `ext_factor = 0`).
#[derive(Clone, Copy, Debug)]
pub struct RopeParams<'a> {
    pub mode: RopeMode,
    /// Rotated dimensions per head (even, ≤ head_dim); the rest pass through.
    pub n_rot: usize,
    /// `rope.freq_base` (theta base), e.g. 10000.
    pub theta_base: f32,
    /// `1 / rope.scaling.factor` for linear scaling; 1 otherwise.
    pub freq_scale: f32,
    /// Multiplies cos and sin (ggml `attn_factor`); 1 normally.
    pub attn_factor: f32,
    /// Optional per-pair frequency divisors (`rope_freqs.weight`, len `n_rot / 2`).
    pub freq_factors: Option<&'a [f32]>,
}

impl RopeParams<'_> {
    /// Plain rope: no scaling, no frequency factors.
    pub fn new(mode: RopeMode, n_rot: usize, theta_base: f32) -> Self {
        RopeParams { mode, n_rot, theta_base, freq_scale: 1.0, attn_factor: 1.0, freq_factors: None }
    }
}

/// Fills `cos`/`sin` (len n_rot / 2 each) for each pair at position `pos`, exactly as
/// ggml's `ggml_rope_cache_init` does.
fn rope_cache(pos: f32, p: &RopeParams, theta_scale: f32, cos: &mut [f32], sin: &mut [f32]) {
    let mut theta = pos;
    for (k, (c, s)) in cos.iter_mut().zip(sin.iter_mut()).enumerate() {
        let ff = p.freq_factors.and_then(|f| f.get(k).copied()).unwrap_or(1.0);
        let t = p.freq_scale * (theta / ff);
        *c = t.cos() * p.attn_factor;
        *s = t.sin() * p.attn_factor;
        theta *= theta_scale;
    }
}

/// Rotates every head of one token: `tok` = `[n_heads, head_dim]`, the first `2 *
/// cos.len()` dims of each head. Generic body, compiled twice by `multiversion!`.
#[inline(always)]
fn rope_token(tok: &mut [f32], head_dim: usize, neox: bool, cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in tok.chunks_exact_mut(head_dim) {
        if neox {
            let (lo, hi) = head[..2 * half].split_at_mut(half);
            for (((a, b), &c), &s) in lo.iter_mut().zip(hi.iter_mut()).zip(cos).zip(sin) {
                let (x0, x1) = (*a, *b);
                *a = x0 * c - x1 * s;
                *b = x0 * s + x1 * c;
            }
        } else {
            for ((pair, &c), &s) in head[..2 * half].chunks_exact_mut(2).zip(cos).zip(sin) {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * c - x1 * s;
                pair[1] = x0 * s + x1 * c;
            }
        }
    }
}
multiversion!(rope_token_mv, rope_token, (tok: &mut [f32], head_dim: usize, neox: bool, cos: &[f32], sin: &[f32]));

fn check_rope(x: &[f32], n_tokens: usize, n_heads: usize, head_dim: usize, positions: &[usize], p: &RopeParams) -> Result<usize, KernelError> {
    let n_rot = p.n_rot;
    if n_rot % 2 != 0 || n_rot > head_dim {
        return Err(size_err("rope", format!("n_rot {n_rot} must be even and at most head_dim {head_dim}")));
    }
    let need = n_tokens
        .checked_mul(n_heads)
        .and_then(|v| v.checked_mul(head_dim))
        .ok_or_else(|| size_err("rope", "shape overflows".into()))?;
    if x.len() != need {
        return Err(size_err("rope", format!("x has {} values, shape [{n_tokens}, {n_heads}, {head_dim}] needs {need}", x.len())));
    }
    if positions.len() != n_tokens {
        return Err(size_err("rope", format!("{} positions for {n_tokens} tokens", positions.len())));
    }
    if let Some(f) = p.freq_factors {
        if f.len() < n_rot / 2 {
            return Err(size_err("rope", format!("{} frequency factors, need {}", f.len(), n_rot / 2)));
        }
    }
    Ok(need)
}

/// Applies rotary position embedding in place to `x` ([n_tokens, n_heads, head_dim]),
/// token `t` at position `positions[t]`; only the first `p.n_rot` dims of each head rotate.
pub fn rope(x: &mut [f32], n_tokens: usize, n_heads: usize, head_dim: usize, positions: &[usize], p: &RopeParams) -> Result<(), KernelError> {
    let need = check_rope(x, n_tokens, n_heads, head_dim, positions, p)?;
    if p.n_rot == 0 || need == 0 {
        return Ok(());
    }
    let theta_scale = p.theta_base.powf(-2.0 / p.n_rot as f32);
    let half = p.n_rot / 2;
    let (mut cos, mut sin) = (vec![0.0f32; half], vec![0.0f32; half]);
    let neox = p.mode == RopeMode::Neox;
    for (tok, &pos) in x.chunks_exact_mut(n_heads * head_dim).zip(positions) {
        rope_cache(pos as f32, p, theta_scale, &mut cos, &mut sin);
        rope_token_mv(tok, head_dim, neox, &cos, &sin);
    }
    Ok(())
}

/// Scalar twins of this file's fast paths (re-exported in [`crate::ops::scalar`]).
pub(super) mod scalar {
    use super::{RopeMode, RopeParams};

    /// Reference of [`super::rope`] (no validation: call with checked shapes).
    pub fn rope(x: &mut [f32], n_heads: usize, head_dim: usize, positions: &[usize], p: &RopeParams) {
        let n_rot = p.n_rot;
        if n_rot == 0 || n_heads * head_dim == 0 {
            return;
        }
        let theta_scale = p.theta_base.powf(-2.0 / n_rot as f32);
        let half = n_rot / 2;
        for (tok, &pos) in x.chunks_exact_mut(n_heads * head_dim).zip(positions) {
            let mut theta = pos as f32;
            let mut cs = vec![(0.0f32, 0.0f32); half];
            for (k, c) in cs.iter_mut().enumerate() {
                let ff = p.freq_factors.and_then(|f| f.get(k).copied()).unwrap_or(1.0);
                let t = p.freq_scale * (theta / ff);
                *c = (t.cos() * p.attn_factor, t.sin() * p.attn_factor);
                theta *= theta_scale;
            }
            for head in tok.chunks_exact_mut(head_dim) {
                for (i, &(c, s)) in cs.iter().enumerate() {
                    let (a, b) = match p.mode {
                        RopeMode::Norm => (2 * i, 2 * i + 1),
                        RopeMode::Neox => (i, i + half),
                    };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * c - x1 * s;
                    head[b] = x0 * s + x1 * c;
                }
            }
        }
    }
}
