//! Mixture-of-experts on the device, routed on the host.
//!
//! The router logits (`[rows, n_expert]`, small) come back to the host, where
//! [`jikji_backend::Routing::route`] (the reference the CPU backend also uses) picks each
//! row's experts and weights. The rows of each used expert are then gathered on the device,
//! run through its gate/up/down as one batch and added back into the output with their
//! weights. One host round trip per MoE layer: simple and exact in routing; a device-side
//! top-k would remove it.

use crate::{dev, flat, CudaAct, CudaBackend};
use cudarc::driver::PushKernelArg;
use jikji_backend::{BackendError, Experts, Step};

pub(crate) fn moe(be: &CudaBackend, _step: &Step<CudaBackend>, x: &CudaAct, e: &Experts<CudaBackend>) -> Result<CudaAct, BackendError> {
    let n_expert = e.routing.n_expert;
    if e.gate_inp.cols != x.width || e.experts.len() != n_expert || e.gate_inp.rows != n_expert {
        return Err(BackendError::Shape(format!("moe: router of {} columns and {} experts for input {} wide", e.gate_inp.cols, e.experts.len(), x.width)));
    }
    let n = x.rows();
    let logits = be.mm(&e.gate_inp, x)?;
    let logits = be.stream().clone_dtoh(&logits.data).map_err(dev)?;
    let mut by_expert: Vec<(Vec<usize>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); n_expert];
    for (t, l) in logits.chunks_exact(n_expert).take(n).enumerate() {
        for (ex, w) in e.routing.route(l, e.exp_probs_b.as_deref()) {
            by_expert[ex].0.push(t);
            by_expert[ex].1.push(w);
        }
    }
    let mut out = be.zeros(n * x.width)?;
    for (ex, (rows, weights)) in by_expert.iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let w = &e.experts[ex];
        let xe = be.gather(x, rows)?;
        let mut g = be.mm(&w.gate, &xe)?;
        let u = be.mm(&w.up, &xe)?;
        be.glu_into(&mut g.data, &u.data, e.act)?;
        let d = be.mm(&w.down, &g)?;
        let idx: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let idx = be.to_dev(&idx)?;
        let wd = be.to_dev(weights)?;
        let (width, m) = (x.width as i32, rows.len() as i32);
        let mut b = be.stream().launch_builder(&be.k().scatter_add_scaled);
        b.arg(&mut out).arg(&d.data).arg(&idx).arg(&wd).arg(&width).arg(&m);
        // SAFETY: matches scatter_add_scaled; idx holds distinct rows of out, d is
        // [rows.len(), width], wd one weight per row.
        unsafe { b.launch(flat(rows.len() * x.width)) }.map_err(dev)?;
    }
    Ok(CudaAct { data: out, width: x.width })
}
