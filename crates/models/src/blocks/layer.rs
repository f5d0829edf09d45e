//! Whole-block helpers shared by architectures: token embedding, the attention block
//! (projections, optional biases, optional per-head QK-norm, rope, cache write, attention),
//! and the output head (final norm + vocabulary projection on the requested rows only).

use super::attention::{attention, attention_paged, AttnShape};
use super::linear::{self, project_many};
use super::rope::Rope;
use crate::error::ModelError;
use crate::hparams::HParams;
use crate::kv_cache::{KvType, KvView};
use crate::trace::trace;
use crate::weights::{Loader, Matrix};
use jikji_gguf::GgufFile;
use jikji_kernels::ops::rms_norm_weighted_inplace;
use jikji_kernels::get_row;

/// Attention weights of one layer; `blk.{il}.attn_*`.
#[derive(Clone, Debug)]
pub struct AttnWeights {
    pub wq: Matrix,               // [n_head * head_dim_k, n_embd]
    pub wk: Matrix,               // [n_head_kv * head_dim_k, n_embd]
    pub wv: Matrix,               // [n_head_kv * head_dim_v, n_embd]
    pub wo: Matrix,               // [n_embd, n_head * head_dim_v]
    pub bq: Option<Vec<f32>>,     // [n_head * head_dim_k]
    pub bk: Option<Vec<f32>>,     // [n_head_kv * head_dim_k]
    pub bv: Option<Vec<f32>>,     // [n_head_kv * head_dim_v]
    pub q_norm: Option<Vec<f32>>, // [head_dim_k]
    pub k_norm: Option<Vec<f32>>, // [head_dim_k]
}

impl AttnWeights {
    /// Loads `blk.{il}.attn_{q,k,v,output}.weight`, biases `attn_{q,k,v}.bias` and
    /// `attn_{q,k}_norm.weight` when present; `require_bias` / `require_qk_norm` make the
    /// optional ones mandatory for architectures that always have them.
    pub fn load(ld: &Loader, hp: &HParams, il: usize, require_bias: bool, require_qk_norm: bool) -> Result<Self, ModelError> {
        let n = |s: &str| format!("blk.{il}.{s}");
        let (qd, kd, vd) = (hp.n_head * hp.head_dim_k, hp.n_embd_k_gqa(), hp.n_embd_v_gqa());
        let vec = |name: String, len: usize, required: bool| -> Result<Option<Vec<f32>>, ModelError> {
            if required {
                ld.vector(&name, len).map(Some)
            } else {
                ld.opt_vector(&name, len)
            }
        };
        let q_norm = vec(n("attn_q_norm.weight"), hp.head_dim_k, require_qk_norm)?;
        let k_norm = vec(n("attn_k_norm.weight"), hp.head_dim_k, require_qk_norm || q_norm.is_some())?;
        Ok(AttnWeights {
            wq: ld.matrix(&n("attn_q.weight"), qd, hp.n_embd)?,
            wk: ld.matrix(&n("attn_k.weight"), kd, hp.n_embd)?,
            wv: ld.matrix(&n("attn_v.weight"), vd, hp.n_embd)?,
            wo: ld.matrix(&n("attn_output.weight"), hp.n_embd, hp.n_head * hp.head_dim_v)?,
            bq: vec(n("attn_q.bias"), qd, require_bias)?,
            bk: vec(n("attn_k.bias"), kd, require_bias)?,
            bv: vec(n("attn_v.bias"), vd, require_bias)?,
            k_norm: if q_norm.is_some() { k_norm } else { None },
            q_norm,
        })
    }

    /// Runs attention for `x` (`[n_tokens, n_embd]`, already normalised; row `t` at
    /// `positions[t]`), writing this batch's keys/values into layer `il` of `kv`. Returns
    /// the per-head context `[n_tokens, n_head * head_dim_v]`, before the output projection.
    #[allow(clippy::too_many_arguments)]
    pub fn context(
        &self,
        file: &GgufFile,
        hp: &HParams,
        shape: &AttnShape,
        rope: &Rope,
        q_prescale: Option<f32>,
        x: &[f32],
        positions: &[usize],
        kv: &mut KvView,
        il: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let n_tokens = positions.len();
        let inv = kv.batch_invariant();
        let mut qkv = project_many(file, &[&self.wq, &self.wk, &self.wv], x, n_tokens, inv)?.into_iter();
        let (mut q, mut k, mut v) = match (qkv.next(), qkv.next(), qkv.next()) {
            (Some(q), Some(k), Some(v)) => (q, k, v), // [n_tokens, n_head * head_dim_k], [n_tokens, kd], [n_tokens, vd]
            _ => return Err(ModelError::BadRequest("projection count".into())),
        };
        for (buf, bias) in [(&mut q, &self.bq), (&mut k, &self.bk), (&mut v, &self.bv)] {
            if let Some(b) = bias {
                for row in buf.chunks_exact_mut(b.len()) {
                    row.iter_mut().zip(b).for_each(|(a, c)| *a += c);
                }
            }
        }
        trace("Qcur", Some(il), &q);
        trace("Kcur", Some(il), &k);
        trace("Vcur", Some(il), &v);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            rms_norm_weighted_inplace(&mut q, qn, hp.rms_eps)?;
            rms_norm_weighted_inplace(&mut k, kn, hp.rms_eps)?;
            trace("Qcur_normed", Some(il), &q);
            trace("Kcur_normed", Some(il), &k);
        }
        rope.apply(&mut q, hp.head_dim_k, positions)?;
        rope.apply(&mut k, hp.head_dim_k, positions)?;
        if let Some(s) = q_prescale {
            q.iter_mut().for_each(|a| *a *= s);
        }
        trace("Qcur_rope", Some(il), &q);
        trace("Kcur_rope", Some(il), &k);
        let mut ctx = vec![0.0f32; n_tokens * hp.n_head * hp.head_dim_v]; // [n_tokens, n_head * head_dim_v]
        store_and_attend(kv, il, shape, &q, &k, &v, &mut ctx);
        trace("kqv_out", Some(il), &ctx);
        Ok(ctx)
    }

    /// Output projection: `ctx` `[n_rows, n_head * head_dim_v]` → `[n_rows, n_embd]`.
    pub fn project_out(&self, file: &GgufFile, ctx: &[f32], n_rows: usize, batch_invariant: bool) -> Result<Vec<f32>, ModelError> {
        linear::matmul(file, &self.wo, ctx, n_rows, batch_invariant)
    }
}

/// Writes this step's keys `k` (`[n_tokens, n_head_kv * head_dim_k]`) and values `v`
/// (`[n_tokens, n_head_kv * head_dim_v]`) into layer `il` of `kv` at the rows' positions,
/// then runs attention for `q` into `ctx` (`[n_tokens, n_head * head_dim_v]`): the peer's
/// orders for a contiguous cache, batch-invariant orders for a paged one. Architectures
/// with their own projections (e.g. MLA) call this directly.
pub fn store_and_attend(kv: &mut KvView, il: usize, shape: &AttnShape, q: &[f32], k: &[f32], v: &[f32], ctx: &mut [f32]) {
    match kv {
        KvView::Contiguous(cache) => {
            let (pos0, kd, vd) = (cache.len(), cache.k_width, cache.v_width);
            let n_tokens = k.len() / kd.max(1);
            let f16_math = cache.kv_type() == KvType::F16;
            let layer = &mut cache.layers[il];
            layer.k.write(pos0 * kd, k);
            layer.v.write(pos0 * vd, v);
            attention(shape, q, layer, pos0, n_tokens, f16_math, ctx);
        }
        KvView::Paged { kv, seqs } => {
            let (kd, vd) = (kv.k_width, kv.v_width);
            let mut row = 0;
            for sq in seqs.iter() {
                for pos in sq.pos0..sq.pos0 + sq.n_tokens {
                    kv.store(il, sq.blocks, pos, &k[row * kd..(row + 1) * kd], &v[row * vd..(row + 1) * vd]);
                    row += 1;
                }
            }
            attention_paged(shape, q, kv, il, seqs, ctx);
        }
    }
}

/// Looks up embedding rows: `[tokens.len(), n_embd]`.
pub fn embed(file: &GgufFile, tok_embd: &Matrix, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
    let n_embd = tok_embd.cols;
    let mut x = vec![0.0f32; tokens.len() * n_embd];
    let view = tok_embd.view(file);
    for (row, &t) in x.chunks_exact_mut(n_embd).zip(tokens) {
        get_row(&view, t as usize, row)?;
    }
    Ok(x)
}

/// Keeps only `rows` (indices into the row-major `[n, width]` buffer `x`).
pub fn select_rows(x: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&x[r * width..(r + 1) * width]);
    }
    out
}

/// Final norm and vocabulary projection: `x` `[n_rows, n_embd]` → logits `[n_rows, n_vocab]`.
pub fn output_head(
    file: &GgufFile,
    mut x: Vec<f32>,
    n_rows: usize,
    norm: &[f32],
    eps: f32,
    output: &Matrix,
) -> Result<Vec<f32>, ModelError> {
    rms_norm_weighted_inplace(&mut x, norm, eps)?;
    trace("result_norm", None, &x);
    let logits = linear::matmul_head(file, output, &x, n_rows)?; // [n_rows, n_vocab]
    trace("result_output", None, &logits);
    Ok(logits)
}
