//! Grouped-query self-attention of one layer: `q/k/v` projections of the (normalised)
//! input, optional biases, optional per-head RMS norms on queries and keys (QK-norm,
//! before the rotation), rope, an optional query pre-scale (Gemma 3 scales queries after
//! rope and attends unscaled), then the backend's attention over the step's cache.
//!
//! Tensors: `blk.N.attn_{q,k,v,output}.weight`, optional `attn_{q,k,v}.bias`, optional
//! `attn_{q,k}_norm.weight` (`[head_dim_k]`, both or neither).

use crate::decoder::tr;
use crate::error::ModelError;
use crate::hparams::HParams;
use crate::weights::Loader;
use jikji_backend::{AttnShape, Backend, Rope, Step};

/// What the architecture requires of an attention layer's optional tensors.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttnRequire {
    /// q/k/v biases must be present (qwen2).
    pub bias: bool,
    /// Per-head q/k RMS norms must be present (qwen3, gemma3, exaone4).
    pub qk_norm: bool,
}

/// One attention layer: weights and how to run them.
pub struct Attention<B: Backend> {
    pub wq: B::Matrix,               // [n_head * head_dim_k, n_embd]
    pub wk: B::Matrix,               // [n_head_kv * head_dim_k, n_embd]
    pub wv: B::Matrix,               // [n_head_kv * head_dim_v, n_embd]
    pub wo: B::Matrix,               // [n_embd, n_head * head_dim_v]
    pub bq: Option<B::Vector>,       // [n_head * head_dim_k]
    pub bk: Option<B::Vector>,       // [n_head_kv * head_dim_k]
    pub bv: Option<B::Vector>,       // [n_head_kv * head_dim_v]
    pub qk_norm: Option<(B::Vector, B::Vector)>, // [head_dim_k] each
    pub shape: AttnShape,
    pub rope: Rope,
    /// Multiplies the rotated queries (before `q·k`), when set.
    pub q_scale: Option<f32>,
    pub rms_eps: f32,
}

impl<B: Backend> Attention<B> {
    /// Loads layer `il`'s attention tensors for `shape`/`rope`.
    pub fn load(ld: &Loader<B>, hp: &HParams, il: usize, req: AttnRequire, shape: AttnShape, rope: Rope) -> Result<Self, ModelError> {
        let n = |s: &str| format!("blk.{il}.{s}");
        let (qd, kd, vd) = (hp.n_head * hp.head_dim_k, hp.n_embd_k_gqa(), hp.n_embd_v_gqa());
        let q_norm = ld.vector_if(&n("attn_q_norm.weight"), hp.head_dim_k, req.qk_norm)?;
        let qk_norm = match q_norm {
            Some(qn) => Some((qn, ld.vector(&n("attn_k_norm.weight"), hp.head_dim_k)?)),
            None => None,
        };
        Ok(Attention {
            wq: ld.matrix(&n("attn_q.weight"), qd, hp.n_embd)?,
            wk: ld.matrix(&n("attn_k.weight"), kd, hp.n_embd)?,
            wv: ld.matrix(&n("attn_v.weight"), vd, hp.n_embd)?,
            wo: ld.matrix(&n("attn_output.weight"), hp.n_embd, hp.n_head * hp.head_dim_v)?,
            bq: ld.vector_if(&n("attn_q.bias"), qd, req.bias)?,
            bk: ld.vector_if(&n("attn_k.bias"), kd, req.bias)?,
            bv: ld.vector_if(&n("attn_v.bias"), vd, req.bias)?,
            qk_norm,
            shape,
            rope,
            q_scale: None,
            rms_eps: hp.rms_eps,
        })
    }

    /// Attention for `x` (`[rows, n_embd]`, normalised) at the step's positions, writing
    /// this step's keys/values into layer `il` of its cache. Returns the per-head context
    /// `[rows, n_head * head_dim_v]`, before the output projection.
    pub fn context(&self, be: &B, step: &mut Step<B>, il: usize, x: &B::Act) -> Result<B::Act, ModelError> {
        let mut qkv = be.matmul(step, &[&self.wq, &self.wk, &self.wv], x)?.into_iter();
        let (Some(mut q), Some(mut k), Some(mut v)) = (qkv.next(), qkv.next(), qkv.next()) else {
            return Err(ModelError::BadRequest("projection count".into()));
        };
        for (buf, bias) in [(&mut q, &self.bq), (&mut k, &self.bk), (&mut v, &self.bv)] {
            if let Some(b) = bias {
                be.add_row(buf, b)?;
            }
        }
        tr(be, "Qcur", Some(il), &q);
        tr(be, "Kcur", Some(il), &k);
        tr(be, "Vcur", Some(il), &v);
        if let Some((qn, kn)) = &self.qk_norm {
            be.rms_norm_inplace(&mut q, qn, self.rms_eps)?;
            be.rms_norm_inplace(&mut k, kn, self.rms_eps)?;
            tr(be, "Qcur_normed", Some(il), &q);
            tr(be, "Kcur_normed", Some(il), &k);
        }
        let dk = self.shape.head_dim_k;
        be.rope(step, &mut q, dk, &self.rope)?;
        be.rope(step, &mut k, dk, &self.rope)?;
        if let Some(s) = self.q_scale {
            be.scale(&mut q, s)?;
        }
        tr(be, "Qcur_rope", Some(il), &q);
        tr(be, "Kcur_rope", Some(il), &k);
        Ok(be.attention(step, il, &self.shape, &q, &k, &v)?)
    }
}
