//! Feed-forward blocks: the gated MLP `down(act(gate(x)) * up(x))` (SwiGLU with SiLU, GeGLU
//! with tanh-GELU), as llama.cpp's `build_ffn(.., LLM_FFN_PAR)`.

use super::linear::{self, project_many};
use super::peer;
use crate::error::ModelError;
use crate::weights::Matrix;
use jikji_gguf::GgufFile;
use jikji_kernels::pool::for_rows_mut;

/// Activation applied to the gate branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

/// Weights of a gated FFN.
#[derive(Clone, Debug)]
pub struct GatedFfn {
    pub gate: Matrix, // [n_ff, n_embd]
    pub up: Matrix,   // [n_ff, n_embd]
    pub down: Matrix, // [n_embd, n_ff]
    pub act: Activation,
}

impl GatedFfn {
    /// `x`: `[n_tokens, n_embd]` (already normalised) → `out`: `[n_tokens, n_embd]`.
    /// `batch_invariant`: see `linear::project_many`.
    pub fn forward(&self, file: &GgufFile, x: &[f32], n_tokens: usize, out: &mut [f32], batch_invariant: bool) -> Result<(), ModelError> {
        let mut gu = project_many(file, &[&self.gate, &self.up], x, n_tokens, batch_invariant)?.into_iter();
        let (mut g, u) = match (gu.next(), gu.next()) {
            (Some(g), Some(u)) => (g, u), // [n_tokens, n_ff] each
            _ => return Err(ModelError::BadRequest("projection count".into())),
        };
        let n_ff = self.gate.rows;
        let act = self.act;
        // Row-wise, so the rows are split over the pool (same bits in any split).
        for_rows_mut(&mut g, n_ff, 4, &|first, rows| {
            for (k, gr) in rows.chunks_exact_mut(n_ff).enumerate() {
                let ur = &u[(first + k) * n_ff..][..n_ff];
                match act {
                    Activation::Silu => peer::swiglu_row(gr, ur),
                    Activation::GeluTanh => peer::geglu_row(gr, ur),
                }
            }
        });
        crate::trace::trace("ffn_act", None, &g);
        out.copy_from_slice(&linear::matmul(file, &self.down, &g, n_tokens, batch_invariant)?);
        Ok(())
    }
}
