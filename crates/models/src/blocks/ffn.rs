//! The gated MLP `down(act(gate · x) * (up · x))` (SwiGLU with SiLU, GeGLU with tanh-GELU),
//! as llama.cpp's `build_ffn(.., LLM_FFN_PAR)`. The gate and up projections of one input
//! are one backend matmul (the input is quantized once).
//!
//! Tensors: `blk.N.ffn_{gate,up,down}{suffix}.weight` (suffix `""`, or `_shexp` for
//! DeepSeek's shared experts).

use crate::decoder::tr;
use crate::error::ModelError;
use crate::weights::Loader;
use jikji_backend::{Activation, Backend, Step};

/// Weights of a gated FFN.
pub struct GatedFfn<B: Backend> {
    pub gate: B::Matrix, // [n_ff, n_embd]
    pub up: B::Matrix,   // [n_ff, n_embd]
    pub down: B::Matrix, // [n_embd, n_ff]
    pub act: Activation,
}

impl<B: Backend> GatedFfn<B> {
    /// `blk.{il}.ffn_{gate,up,down}{suffix}.weight` for an FFN of width `n_ff`.
    pub fn load(ld: &Loader<B>, il: usize, suffix: &str, n_ff: usize, n_embd: usize, act: Activation) -> Result<Self, ModelError> {
        let n = |s: &str| format!("blk.{il}.ffn_{s}{suffix}.weight");
        Ok(GatedFfn {
            gate: ld.matrix(&n("gate"), n_ff, n_embd)?,
            up: ld.matrix(&n("up"), n_ff, n_embd)?,
            down: ld.matrix(&n("down"), n_embd, n_ff)?,
            act,
        })
    }

    /// `x`: `[rows, n_embd]` (normalised) → `[rows, n_embd]`.
    pub fn forward(&self, be: &B, step: &Step<B>, x: &B::Act) -> Result<B::Act, ModelError> {
        let mut gu = be.matmul(step, &[&self.gate, &self.up], x)?.into_iter();
        let (Some(mut g), Some(u)) = (gu.next(), gu.next()) else {
            return Err(ModelError::BadRequest("projection count".into()));
        };
        be.glu(&mut g, &u, self.act)?;
        tr(be, "ffn_act", None, &g);
        be.matmul(step, &[&self.down], &g)?.pop().ok_or_else(|| ModelError::BadRequest("projection count".into()))
    }
}
