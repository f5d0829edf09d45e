//! Mixture-of-experts FFN: the backend's routed experts ([`Backend::moe`]: router,
//! top-k with optional groups and bias, grouped expert matmuls; see
//! [`jikji_backend::Routing`]) plus optional shared experts, a plain gated FFN on every row
//! added after the routed sum (DeepSeek V2/V3). Qwen3-MoE has no shared experts.
//!
//! Tensors: `blk.N.ffn_gate_inp.weight` (`[n_expert, n_embd]`), optional
//! `exp_probs_b.bias`, `ffn_{gate,up,down}_exps.weight` (stacked `[n_expert, …]`),
//! optional `ffn_{gate,up,down}_shexp.weight`.

use super::ffn::GatedFfn;
use crate::decoder::tr;
use crate::error::ModelError;
use crate::weights::Loader;
use jikji_backend::{Activation, Backend, Expert, Experts, Routing, Step};

/// A MoE FFN layer.
pub struct MoeFfn<B: Backend> {
    pub experts: Experts<B>,
    pub shared: Option<GatedFfn<B>>, // [n_ff_exp * n_shared, n_embd] gate/up
}

impl<B: Backend> MoeFfn<B> {
    /// Loads layer `il`'s router and `routing.n_expert` experts of width `n_ff_exp`, and
    /// `n_shared` shared experts (0: none).
    pub fn load(ld: &Loader<B>, il: usize, n_embd: usize, routing: Routing, n_ff_exp: usize, n_shared: usize) -> Result<Self, ModelError> {
        let n = |s: &str| format!("blk.{il}.{s}");
        let ne = routing.n_expert;
        let gates = ld.stacked(&n("ffn_gate_exps.weight"), ne, n_ff_exp, n_embd)?;
        let ups = ld.stacked(&n("ffn_up_exps.weight"), ne, n_ff_exp, n_embd)?;
        let downs = ld.stacked(&n("ffn_down_exps.weight"), ne, n_embd, n_ff_exp)?;
        let experts = gates.into_iter().zip(ups).zip(downs).map(|((gate, up), down)| Expert { gate, up, down }).collect();
        let shared = match n_shared {
            0 => None,
            k => Some(GatedFfn::load(ld, il, "_shexp", n_ff_exp * k, n_embd, Activation::Silu)?),
        };
        Ok(MoeFfn {
            experts: Experts {
                routing,
                gate_inp: ld.matrix(&n("ffn_gate_inp.weight"), ne, n_embd)?,
                exp_probs_b: ld.opt_host_vector(&n("exp_probs_b.bias"), ne)?,
                experts,
                act: Activation::Silu,
            },
            shared,
        })
    }

    /// `x`: `[rows, n_embd]` (normalised) → `[rows, n_embd]`.
    pub fn forward(&self, be: &B, step: &Step<B>, x: &B::Act) -> Result<B::Act, ModelError> {
        let mut out = be.moe(step, x, &self.experts)?;
        if let Some(sh) = &self.shared {
            let s = sh.forward(be, step, x)?;
            tr(be, "ffn_shexp", None, &s);
            be.add(&mut out, &s)?;
        }
        Ok(out)
    }
}
