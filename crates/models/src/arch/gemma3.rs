//! Gemma 3 (Gemma Team 2025, "Gemma 3 Technical Report"), text decoder.
//!
//! Differences from llama, as llama.cpp's `gemma3` graph implements them:
//! - embeddings are multiplied by `sqrt(n_embd)`;
//! - RMS norms everywhere, with the `+1` of Gemma's `(1 + w)` already folded into the GGUF
//!   weights by the converter (the stored norm weights are used as-is);
//! - per-head RMS norms on q and k (`attn_q_norm`, `attn_k_norm`) before rope;
//! - post-attention and post-FFN norms before each residual add;
//! - GeGLU FFN with tanh-GELU;
//! - queries scaled by `1/sqrt(head_dim)` after rope, then `q·k` unscaled; llama.cpp uses
//!   `1/sqrt(n_embd/n_head)` for the 27B model only, which it recognises by its layer
//!   count; we key on metadata alone, so that variant is not reproduced;
//! - interleaved local/global attention: `gemma3.attention.sliding_window_pattern` (a
//!   per-layer bool array, or a period `p`; default 6 as llama.cpp sets) marks layer `il`
//!   local unless `il % p == p - 1`; local layers use the sliding window
//!   `gemma3.attention.sliding_window` and rope base `gemma3.rope.freq_base_swa` (default
//!   10000) without scaling, global layers `gemma3.rope.freq_base` and `rope.scaling`;
//! - NEOX rope; output tied to the embedding when `output.weight` is absent;
//! - no final logit soft-capping (llama.cpp applies it only without sliding windows).
//!
//! GGUF keys: `gemma3.*` of `hparams.rs`, `gemma3.attention.sliding_window` (required),
//! optional `gemma3.attention.sliding_window_pattern`, `gemma3.rope.freq_base_swa`.
//! Tensors: `token_embd.weight`, `output_norm.weight`, optional `output.weight`, per layer
//! `blk.N.attn_norm.weight`, `attn_{q,k,v,output}.weight`, `attn_{q,k}_norm.weight`,
//! `post_attention_norm.weight`, `ffn_norm.weight`, `ffn_{gate,up,down}.weight`,
//! `post_ffw_norm.weight`.

use super::Architecture;
use crate::blocks::attention::AttnShape;
use crate::blocks::ffn::{Activation, GatedFfn};
use crate::blocks::layer::{embed, output_head, select_rows, AttnWeights};
use jikji_kernels::ops::{rms_norm_weighted, rms_norm_weighted_inplace};
use crate::blocks::rope::Rope;
use crate::error::ModelError;
use crate::hparams::{HParams, Meta, RopeMode};
use crate::kv_cache::KvView;
use crate::trace::trace;
use crate::weights::{Loader, Matrix};
use jikji_gguf::{GgufFile, Value};

/// Rope base of local (sliding-window) layers, fixed by the model family.
const LOCAL_ROPE_BASE: f32 = 10000.0;
/// Default local:global period (five local layers, then one global).
const DEFAULT_SWA_PERIOD: usize = 6;

struct Layer {
    attn_norm: Vec<f32>, // [n_embd]
    attn: AttnWeights,
    post_attn_norm: Vec<f32>, // [n_embd]
    ffn_norm: Vec<f32>,       // [n_embd]
    ffn: GatedFfn,
    post_ffn_norm: Vec<f32>, // [n_embd]
    local: bool,
}

pub struct Gemma3 {
    hp: HParams,
    window: usize,
    local_base: f32,
    tok_embd: Matrix,      // [n_vocab, n_embd]
    output_norm: Vec<f32>, // [n_embd]
    output: Matrix,        // [n_vocab, n_embd]
    tied: bool,
    layers: Vec<Layer>,
}

/// Which layers use the sliding window: `attention.sliding_window_pattern` as a per-layer
/// bool array, or as a period `p` (layer `il` is local unless `il % p == p - 1`), else the
/// default period 6.
fn local_layers(file: &GgufFile, meta: &Meta, n_layer: usize) -> Result<Vec<bool>, ModelError> {
    let key = meta.key("attention.sliding_window_pattern");
    if let Some(Value::Array(items)) = file.get(&key) {
        if items.len() != n_layer {
            return Err(ModelError::BadHparams(format!("`{key}` has {} entries for {n_layer} layers", items.len())));
        }
        return items
            .iter()
            .map(|v| match v {
                Value::Bool(b) => Ok(*b),
                _ => Err(ModelError::BadHparams(format!("`{key}` must hold booleans"))),
            })
            .collect();
    }
    let period = meta.opt_uint("attention.sliding_window_pattern")?.unwrap_or(DEFAULT_SWA_PERIOD);
    if period == 0 {
        return Err(ModelError::BadHparams(format!("`{key}` is 0")));
    }
    Ok((0..n_layer).map(|il| il % period < period - 1).collect())
}

pub fn load(file: &GgufFile) -> Result<Box<dyn Architecture>, ModelError> {
    let hp = HParams::from_gguf(file, "gemma3")?;
    hp.reject_yarn()?;
    let window = hp.sliding_window.ok_or_else(|| ModelError::MissingKey("gemma3.attention.sliding_window".into()))?;
    let meta = Meta { file, arch: "gemma3" };
    let local = local_layers(file, &meta, hp.n_layer)?;
    let local_base = meta.f32("rope.freq_base_swa")?.unwrap_or(LOCAL_ROPE_BASE);
    if !(local_base.is_finite() && local_base > 0.0) {
        return Err(ModelError::BadHparams(format!("gemma3.rope.freq_base_swa {local_base} must be > 0")));
    }
    let ld = Loader::new(file);
    let tok_embd = ld.matrix("token_embd.weight", hp.n_vocab, hp.n_embd)?;
    let output_norm = ld.vector("output_norm.weight", hp.n_embd)?;
    let (output, tied) = match ld.opt_matrix("output.weight", hp.n_vocab, hp.n_embd)? {
        Some(m) => (m, false),
        None => (tok_embd.clone(), true),
    };
    let mut layers = Vec::with_capacity(hp.n_layer);
    for (il, &is_local) in local.iter().enumerate() {
        let n = |s: &str| format!("blk.{il}.{s}");
        layers.push(Layer {
            attn_norm: ld.vector(&n("attn_norm.weight"), hp.n_embd)?,
            attn: AttnWeights::load(&ld, &hp, il, false, true)?,
            post_attn_norm: ld.vector(&n("post_attention_norm.weight"), hp.n_embd)?,
            ffn_norm: ld.vector(&n("ffn_norm.weight"), hp.n_embd)?,
            ffn: GatedFfn {
                gate: ld.matrix(&n("ffn_gate.weight"), hp.n_ff, hp.n_embd)?,
                up: ld.matrix(&n("ffn_up.weight"), hp.n_ff, hp.n_embd)?,
                down: ld.matrix(&n("ffn_down.weight"), hp.n_embd, hp.n_ff)?,
                act: Activation::GeluTanh,
            },
            post_ffn_norm: ld.vector(&n("post_ffw_norm.weight"), hp.n_embd)?,
            local: is_local,
        });
    }
    Ok(Box::new(Gemma3 { hp, window, local_base, tok_embd, output_norm, output, tied, layers }))
}

impl Architecture for Gemma3 {
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
        let q_scale = 1.0 / (hp.head_dim_k as f32).sqrt();

        let mut x = embed(file, &self.tok_embd, tokens)?; // [n, n_embd]
        let emb_scale = (n_embd as f32).sqrt();
        x.iter_mut().for_each(|v| *v *= emb_scale);
        trace("inp_scaled", None, &x);
        let mut rows = n;
        let mut h = vec![0.0f32; n * n_embd]; // [rows, n_embd]
        for (il, l) in self.layers.iter().enumerate() {
            let (rope, window) = if l.local {
                (Rope { mode: RopeMode::Neox, n_rot: hp.n_rot, base: self.local_base, freq_scale: 1.0, freq_factors: None }, Some(self.window))
            } else {
                (Rope { mode: RopeMode::Neox, n_rot: hp.n_rot, base: hp.rope_base, freq_scale: hp.rope_freq_scale, freq_factors: None }, None)
            };
            let shape = AttnShape {
                n_head: hp.n_head,
                n_head_kv: hp.n_head_kv,
                head_dim_k: hp.head_dim_k,
                head_dim_v: hp.head_dim_v,
                kq_scale: 1.0,
                window,
            };
            rms_norm_weighted(&x, &l.attn_norm, hp.rms_eps, &mut h)?;
            trace("attn_norm", Some(il), &h);
            let mut ctx =
                l.attn.context(file, hp, &shape, &rope, Some(q_scale), &h, &positions, kv, il)?;
            if il + 1 == self.layers.len() {
                ctx = select_rows(&ctx, hp.n_head * hp.head_dim_v, out_rows);
                x = select_rows(&x, n_embd, out_rows);
                rows = out_rows.len();
                h.truncate(rows * n_embd);
            }
            let mut attn_out = l.attn.project_out(file, &ctx, rows, inv)?;
            rms_norm_weighted_inplace(&mut attn_out, &l.post_attn_norm, hp.rms_eps)?;
            trace("attn_post_norm", Some(il), &attn_out);
            x.iter_mut().zip(&attn_out).for_each(|(a, b)| *a += b);
            trace("sa_out", Some(il), &x);
            h.copy_from_slice(&x);
            rms_norm_weighted_inplace(&mut h, &l.ffn_norm, hp.rms_eps)?;
            trace("ffn_norm", Some(il), &h);
            let mut f = vec![0.0f32; rows * n_embd];
            l.ffn.forward(file, &h, rows, &mut f, inv)?;
            rms_norm_weighted_inplace(&mut f, &l.post_ffn_norm, hp.rms_eps)?;
            trace("ffn_post_norm", Some(il), &f);
            x.iter_mut().zip(&f).for_each(|(a, b)| *a += b);
            trace("l_out", Some(il), &x);
        }
        output_head(file, x, rows, &self.output_norm, hp.rms_eps, &self.output)
    }
}
