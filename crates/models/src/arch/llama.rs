//! The llama family: pre-norm decoder, RMS norm, rotary attention with grouped-query heads,
//! SwiGLU FFN (Touvron et al. 2023, "LLaMA"). `qwen2.rs` and `qwen3.rs` reuse this graph
//! with their own options, as llama.cpp's per-architecture graphs do.
//!
//! GGUF keys: `llama.block_count`, `.embedding_length`, `.feed_forward_length`,
//! `.context_length`, `.attention.head_count`, `.attention.head_count_kv`,
//! `.attention.key_length`, `.attention.value_length`, `.attention.layer_norm_rms_epsilon`,
//! `.rope.freq_base`, `.rope.dimension_count`, `.rope.scaling.type/factor` (see `hparams`).
//! Tensors: `token_embd.weight`, `output_norm.weight`, `output.weight` (absent = tied to
//! `token_embd`), per layer `blk.N.attn_norm.weight`, `attn_{q,k,v,output}.weight`,
//! optional `attn_{q,k,v}.bias`, optional `attn_{q,k}_norm.weight`, `ffn_norm.weight`,
//! `ffn_{gate,up,down}.weight`.
//! Rope is NORM mode (adjacent pairs): llama.cpp's converter permutes q/k rows for it.
//! Optional `rope_freqs.weight` (`[n_rot/2]`, llama-3 frequency divisors) is applied.

use super::Architecture;
use crate::blocks::attention::AttnShape;
use crate::blocks::ffn::{Activation, GatedFfn};
use crate::blocks::layer::{embed, output_head, select_rows, AttnWeights};
use jikji_kernels::ops::{rms_norm_weighted, rms_norm_weighted_inplace};
use crate::blocks::rope::Rope;
use crate::error::ModelError;
use crate::hparams::{HParams, RopeMode};
use crate::kv_cache::KvView;
use crate::trace::trace;
use crate::weights::{Loader, Matrix};
use jikji_gguf::GgufFile;

/// What distinguishes the members of the family.
#[derive(Clone, Copy, Debug)]
pub struct FamilyOptions {
    pub rope_mode: RopeMode,
    /// q/k/v biases must be present (qwen2).
    pub require_bias: bool,
    /// Per-head q/k RMS norms must be present (qwen3).
    pub require_qk_norm: bool,
}

struct Layer {
    attn_norm: Vec<f32>, // [n_embd]
    attn: AttnWeights,
    ffn_norm: Vec<f32>, // [n_embd]
    ffn: GatedFfn,
}

/// A llama-family model's weights.
pub struct LlamaFamily {
    hp: HParams,
    opts: FamilyOptions,
    rope_freqs: Option<Vec<f32>>, // [n_rot / 2], llama-3 style frequency divisors
    tok_embd: Matrix,      // [n_vocab, n_embd]
    output_norm: Vec<f32>, // [n_embd]
    output: Matrix,        // [n_vocab, n_embd] (== tok_embd when tied)
    tied: bool,
    layers: Vec<Layer>,
}

impl LlamaFamily {
    pub fn load(file: &GgufFile, arch: &str, opts: FamilyOptions) -> Result<Self, ModelError> {
        let hp = HParams::from_gguf(file, arch)?;
        hp.reject_yarn()?;
        let ld = Loader::new(file);
        let rope_freqs = ld.opt_vector("rope_freqs.weight", hp.n_rot / 2)?;
        let tok_embd = ld.matrix("token_embd.weight", hp.n_vocab, hp.n_embd)?;
        let output_norm = ld.vector("output_norm.weight", hp.n_embd)?;
        let (output, tied) = match ld.opt_matrix("output.weight", hp.n_vocab, hp.n_embd)? {
            Some(m) => (m, false),
            None => (tok_embd.clone(), true),
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            layers.push(Layer {
                attn_norm: ld.vector(&n("attn_norm.weight"), hp.n_embd)?,
                attn: AttnWeights::load(&ld, &hp, il, opts.require_bias, opts.require_qk_norm)?,
                ffn_norm: ld.vector(&n("ffn_norm.weight"), hp.n_embd)?,
                ffn: GatedFfn {
                    gate: ld.matrix(&n("ffn_gate.weight"), hp.n_ff, hp.n_embd)?,
                    up: ld.matrix(&n("ffn_up.weight"), hp.n_ff, hp.n_embd)?,
                    down: ld.matrix(&n("ffn_down.weight"), hp.n_embd, hp.n_ff)?,
                    act: Activation::Silu,
                },
            });
        }
        Ok(LlamaFamily { hp, opts, rope_freqs, tok_embd, output_norm, output, tied, layers })
    }
}

/// Loads a `llama` file.
pub fn load(file: &GgufFile) -> Result<Box<dyn Architecture>, ModelError> {
    let opts = FamilyOptions { rope_mode: RopeMode::Norm, require_bias: false, require_qk_norm: false };
    Ok(Box::new(LlamaFamily::load(file, "llama", opts)?))
}

impl Architecture for LlamaFamily {
    fn hparams(&self) -> &HParams {
        &self.hp
    }

    fn tied_output(&self) -> bool {
        self.tied
    }

    fn forward(&self, file: &GgufFile, tokens: &[u32], kv: &mut KvView, out_rows: &[usize]) -> Result<Vec<f32>, ModelError> {
        let hp = &self.hp;
        let (n, n_embd) = (tokens.len(), hp.n_embd);
        let positions = kv.positions(n);
        let inv = kv.batch_invariant();
        let shape = AttnShape {
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim_k: hp.head_dim_k,
            head_dim_v: hp.head_dim_v,
            kq_scale: 1.0 / (hp.head_dim_k as f32).sqrt(),
            window: None,
        };
        let rope = Rope {
            mode: self.opts.rope_mode,
            n_rot: hp.n_rot,
            base: hp.rope_base,
            freq_scale: hp.rope_freq_scale,
            freq_factors: self.rope_freqs.as_deref(),
        };

        let mut x = embed(file, &self.tok_embd, tokens)?; // [n, n_embd]
        trace("inp_embd", None, &x);
        let mut rows = n;
        let mut h = vec![0.0f32; n * n_embd]; // [rows, n_embd]
        for (il, l) in self.layers.iter().enumerate() {
            rms_norm_weighted(&x, &l.attn_norm, hp.rms_eps, &mut h[..rows * n_embd])?;
            trace("attn_norm", Some(il), &h[..rows * n_embd]);
            let mut ctx = l.attn.context(file, hp, &shape, &rope, None, &h, &positions, kv, il)?;
            if il + 1 == self.layers.len() {
                // Only the requested rows go on (llama.cpp's `inp_out_ids`).
                ctx = select_rows(&ctx, hp.n_head * hp.head_dim_v, out_rows);
                x = select_rows(&x, n_embd, out_rows);
                rows = out_rows.len();
                h.truncate(rows * n_embd);
            }
            let attn_out = l.attn.project_out(file, &ctx, rows, inv)?;
            x.iter_mut().zip(&attn_out).for_each(|(a, b)| *a += b);
            trace("ffn_inp", Some(il), &x);
            h.copy_from_slice(&x);
            rms_norm_weighted_inplace(&mut h, &l.ffn_norm, hp.rms_eps)?;
            trace("ffn_norm", Some(il), &h);
            let mut f = vec![0.0f32; rows * n_embd];
            l.ffn.forward(file, &h, rows, &mut f, inv)?;
            trace("ffn_out", Some(il), &f);
            x.iter_mut().zip(&f).for_each(|(a, b)| *a += b);
            trace("l_out", Some(il), &x);
        }
        output_head(file, x, rows, &self.output_norm, hp.rms_eps, &self.output)
    }
}
