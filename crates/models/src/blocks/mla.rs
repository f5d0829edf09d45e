//! Multi-head latent attention of one layer (DeepSeek-AI 2024, "DeepSeek-V2", §2.1): the
//! query projection (direct, or low rank with a norm), the compressed key/value projection
//! `kv_a_mqa`, then the backend's latent attention ([`Backend::mla_attention`]: latent
//! cache of `kv_lora_rank + n_rot` values per token, absorbed decoding).
//!
//! Files whose MLA weights are the older combined `attn_kv_b` (`[n_head · (nope + dv),
//! kv_lora_rank]`) are split at load: the value rows become per-head row slices of the file
//! tensor; the key rows (which the absorbed path applies transposed) are dequantized to f32
//! once.
//!
//! Tensors: `blk.N.attn_q` | `attn_q_a` + `attn_q_a_norm` + `attn_q_b`, `attn_kv_a_mqa`,
//! `attn_kv_a_norm`, `attn_k_b` + `attn_v_b` | `attn_kv_b`, `attn_output`.

use crate::decoder::tr;
use crate::error::ModelError;
use crate::weights::Loader;
use jikji_backend::{Backend, KAbsorb, MlaAttend, MlaShape, Step, YarnRope};

/// Query projection: direct (V2-Lite) or low-rank with a norm (V2, V3, R1).
pub enum QProj<B: Backend> {
    Direct(B::Matrix), // [n_head * dk, n_embd]
    LowRank {
        a: B::Matrix,        // [q_lora, n_embd]
        a_norm: B::Vector,   // [q_lora]
        b: B::Matrix,        // [n_head * dk, q_lora]
    },
}

/// One MLA layer.
pub struct Mla<B: Backend> {
    pub q: QProj<B>,
    /// `q_lora_rank` of a low-rank query projection.
    pub q_lora: Option<usize>,
    pub kv_a: B::Matrix, // [kv_lora + rope, n_embd]
    pub attend: MlaAttend<B>,
    pub wo: B::Matrix, // [n_embd, n_head * dv]
}

impl<B: Backend> Mla<B> {
    /// Loads layer `il`. The query path is chosen by the tensors present, never by the
    /// layer count; a `q_lora_rank` key (`q_lora_key`) must agree with the tensor.
    pub fn load(ld: &Loader<B>, il: usize, n_embd: usize, s: MlaShape, rope: YarnRope, q_lora_key: Option<usize>) -> Result<Self, ModelError> {
        let n = |t: &str| format!("blk.{il}.{t}");
        let (n_head, dk, lora, nope, dv) = (s.n_head, s.dk(), s.kv_lora, s.nope, s.dv);
        let (q, q_lora) = if ld.has(&n("attn_q_a.weight")) {
            let rank = ld.file.tensor(&n("attn_q_a.weight")).and_then(|t| t.dims.get(1).copied()).unwrap_or(0);
            let rank = usize::try_from(rank).unwrap_or(0);
            if rank == 0 || q_lora_key.is_some_and(|r| r != rank) {
                return Err(ModelError::BadHparams(format!("blk.{il}.attn_q_a.weight has rank {rank}, q_lora_rank key says {q_lora_key:?}")));
            }
            let q = QProj::LowRank {
                a: ld.matrix(&n("attn_q_a.weight"), rank, n_embd)?,
                a_norm: ld.vector(&n("attn_q_a_norm.weight"), rank)?,
                b: ld.matrix(&n("attn_q_b.weight"), n_head * dk, rank)?,
            };
            (q, Some(rank))
        } else {
            (QProj::Direct(ld.matrix(&n("attn_q.weight"), n_head * dk, n_embd)?), None)
        };
        let (k_absorb, v_b) = if ld.has(&n("attn_k_b.weight")) {
            (KAbsorb::PerHead(ld.stacked(&n("attn_k_b.weight"), n_head, lora, nope)?), ld.stacked(&n("attn_v_b.weight"), n_head, dv, lora)?)
        } else {
            let kv_b = ld.matrix_ref(&n("attn_kv_b.weight"), n_head * (nope + dv), lora)?;
            let mut kt = Vec::with_capacity(n_head);
            let mut vb = Vec::with_capacity(n_head);
            for h in 0..n_head {
                let first = h * (nope + dv);
                // Key rows [nope, kv_lora] in f32 (applied transposed); value rows stay in
                // the file as a row slice.
                kt.push(Loader::<B>::row_slice(&kv_b, first, nope)?.dequantize()?);
                vb.push(ld.load(&Loader::<B>::row_slice(&kv_b, first + nope, dv)?)?);
            }
            (KAbsorb::Transposed(kt), vb)
        };
        Ok(Mla {
            q,
            q_lora,
            kv_a: ld.matrix(&n("attn_kv_a_mqa.weight"), lora + s.rope, n_embd)?,
            attend: MlaAttend { shape: s, rope, kv_a_norm: ld.vector(&n("attn_kv_a_norm.weight"), lora)?, k_absorb, v_b },
            wo: ld.matrix(&n("attn_output.weight"), n_embd, n_head * dv)?,
        })
    }

    /// MLA for `x` (`[rows, n_embd]`, normalised): returns the per-head outputs
    /// `[rows, n_head * dv]`, before `wo`.
    pub fn context(&self, be: &B, step: &mut Step<B>, il: usize, x: &B::Act) -> Result<B::Act, ModelError> {
        let one = |r: Result<Vec<B::Act>, jikji_backend::BackendError>| -> Result<B::Act, ModelError> {
            r?.pop().ok_or_else(|| ModelError::BadRequest("projection count".into()))
        };
        let q = match &self.q {
            QProj::Direct(w) => one(be.matmul(step, &[w], x))?,
            QProj::LowRank { a, a_norm, b } => {
                let mut qa = one(be.matmul(step, &[a], x))?; // [rows, q_lora]
                be.rms_norm_inplace(&mut qa, a_norm, self.attend.shape.rms_eps)?;
                one(be.matmul(step, &[b], &qa))?
            }
        }; // [rows, n_head * dk]
        tr(be, "q", Some(il), &q);
        let ckv = one(be.matmul(step, &[&self.kv_a], x))?; // [rows, kv_lora + rope]
        Ok(be.mla_attention(step, il, &self.attend, &q, &ckv)?)
    }
}
