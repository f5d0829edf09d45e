//! The CPU backend's mixture-of-experts FFN (routed part; the model adds shared experts).
//!
//! Experts are stacked 3-D tensors sliced per expert without copying, so they stay in the
//! file's (quantized) type and a token touches only its selected experts' weights. A batch
//! is grouped by expert: the rows routed to expert `e` are gathered and run through `e`'s
//! gate/up/down as one matrix product each, then scattered back with their weights
//! (summed in selection order per token). Routing is [`crate::Routing::route`] on the
//! router logits. Each row's products use the same orders whatever rows share its expert
//! when `batch_invariant` (the serving path).

use super::linear::{self, project_many};
use super::{peer, CpuBackend};
use crate::{Activation, BackendError, Experts};

/// `x`: `[n_tokens, n_embd]` (normalised) → `[n_tokens, n_embd]`.
pub(super) fn moe(x: &[f32], n_tokens: usize, experts: &Experts<CpuBackend>, batch_invariant: bool) -> Result<Vec<f32>, BackendError> {
    let n_embd = experts.gate_inp.cols;
    let n_expert = experts.routing.n_expert;
    let logits = linear::matmul(&experts.gate_inp, x, n_tokens, batch_invariant)?; // [n_tokens, n_expert]
    crate::trace::trace("ffn_moe_logits", None, &logits);
    // Per token: selected (expert, weight) in selection order.
    let routes: Vec<Vec<(usize, f32)>> =
    logits.chunks_exact(n_expert).map(|l| experts.routing.route(l, experts.exp_probs_b.as_deref())).collect();
    // Per expert: the (token, slot) pairs routed to it.
    let mut by_expert: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n_expert];
    for (t, r) in routes.iter().enumerate() {
        for (slot, &(e, _)) in r.iter().enumerate() {
            by_expert[e].push((t, slot));
        }
    }
    let n_used = experts.routing.n_used;
    let mut slots = vec![0.0f32; n_tokens * n_used * n_embd]; // [n_tokens, n_used, n_embd]
    for (e, rows) in by_expert.iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let ex = &experts.experts[e];
        let m = rows.len();
        let mut xe = Vec::with_capacity(m * n_embd); // [m, n_embd]
        for &(t, _) in rows {
            xe.extend_from_slice(&x[t * n_embd..(t + 1) * n_embd]);
        }
        let mut gu = project_many(&[&ex.gate, &ex.up], &xe, m, batch_invariant)?.into_iter();
        let (mut g, u) = match (gu.next(), gu.next()) {
            (Some(g), Some(u)) => (g, u), // [m, n_ff_exp] each
            _ => return Err(BackendError::Shape("projection count".into())),
        };
        for (gr, ur) in g.chunks_exact_mut(ex.gate.rows).zip(u.chunks_exact(ex.gate.rows)) {
            match experts.act {
                Activation::Silu => peer::swiglu_row(gr, ur),
                Activation::GeluTanh => peer::geglu_row(gr, ur),
            }
        }
        let d = linear::matmul(&ex.down, &g, m, batch_invariant)?; // [m, n_embd]
        for (&(t, slot), row) in rows.iter().zip(d.chunks_exact(n_embd)) {
            let w = routes[t][slot].1;
            let dst = &mut slots[(t * n_used + slot) * n_embd..][..n_embd];
            dst.iter_mut().zip(row).for_each(|(o, v)| *o = v * w);
        }
    }
    let mut out = vec![0.0f32; n_tokens * n_embd]; // [n_tokens, n_embd]
    for (t, o) in out.chunks_exact_mut(n_embd).enumerate() {
        let k = routes[t].len();
        o.copy_from_slice(&slots[t * n_used * n_embd..][..n_embd]);
        for slot in 1..k {
            let src = &slots[(t * n_used + slot) * n_embd..][..n_embd];
            o.iter_mut().zip(src).for_each(|(a, b)| *a += b);
        }
    }
    crate::trace::trace("ffn_moe_out", None, &out);
    Ok(out)
}
