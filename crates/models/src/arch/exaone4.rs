//! EXAONE 4.0 (LG AI Research 2025, "EXAONE 4.0: Unified Large Language Models Integrating
//! Non-reasoning and Reasoning Modes").
//!
//! Differences from llama, as llama.cpp's `exaone4` graph and transformers' `Exaone4`
//! implement them:
//! - no pre-norms: attention and FFN read the residual stream directly, and their outputs
//!   pass through post-norms (`post_attention_norm`, `post_ffw_norm`) before each add;
//! - per-head RMS norms on q and k (QK-norm) before rope;
//! - hybrid attention when the file has `exaone4.attention.sliding_window_pattern`:
//!   sliding-window layers (pattern `true`) use RoPE and the window
//!   `exaone4.attention.sliding_window`; global layers use neither RoPE nor a window.
//!   Without a pattern every layer is global with RoPE (EXAONE 4.0 1.2B). llama.cpp turns
//!   the hybrid pattern on only for 64-layer files; here the metadata decides.
//! - NEOX rope; optional `rope_freqs.weight` frequency factors; sliding layers use
//!   `rope.freq_base_swa` when present.
//!
//! GGUF keys: the common `exaone4.*` of `hparams.rs`, `attention.sliding_window`,
//! `attention.sliding_window_pattern` (bool per layer, or a period `p`: layer `il` is
//! sliding unless `il % p == p - 1`), `rope.freq_base_swa`.
//! Tensors: `token_embd`, `output_norm`, optional `output`, optional `rope_freqs`; per
//! layer `attn_{q,k,v,output}`, `attn_{q,k}_norm`, `post_attention_norm`,
//! `ffn_{gate,up,down}`, `post_ffw_norm`.

use super::Architecture;
use crate::blocks::attention::AttnShape;
use crate::blocks::ffn::{Activation, GatedFfn};
use crate::blocks::layer::{embed, output_head, select_rows, AttnWeights};
use crate::blocks::rope::Rope;
use crate::error::ModelError;
use crate::hparams::{HParams, Meta, RopeMode};
use crate::kv_cache::KvView;
use crate::trace::trace;
use crate::weights::{Loader, Matrix};
use jikji_gguf::{GgufFile, Value};
use jikji_kernels::ops::rms_norm_weighted_inplace;

struct Layer {
    attn: AttnWeights,
    post_attn_norm: Vec<f32>, // [n_embd]
    ffn: GatedFfn,
    post_ffn_norm: Vec<f32>, // [n_embd]
    /// Sliding-window layer (with RoPE); else global.
    sliding: bool,
}

pub struct Exaone4 {
    hp: HParams,
    /// Whether the file has a sliding-window pattern (hybrid attention).
    hybrid: bool,
    swa_base: f32,
    rope_freqs: Option<Vec<f32>>, // [n_rot / 2]
    tok_embd: Matrix,             // [n_vocab, n_embd]
    output_norm: Vec<f32>,        // [n_embd]
    output: Matrix,               // [n_vocab, n_embd]
    tied: bool,
    layers: Vec<Layer>,
}

/// Per-layer sliding flags from `attention.sliding_window_pattern`, `None` if absent.
fn sliding_pattern(file: &GgufFile, meta: &Meta, n_layer: usize) -> Result<Option<Vec<bool>>, ModelError> {
    let key = meta.key("attention.sliding_window_pattern");
    match file.get(&key) {
        None => Ok(None),
        Some(Value::Array(items)) => {
            if items.len() != n_layer {
                return Err(ModelError::BadHparams(format!("`{key}` has {} entries for {n_layer} layers", items.len())));
            }
            items
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Ok(*b),
                    _ => Err(ModelError::BadHparams(format!("`{key}` must hold booleans"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Some(_) => match meta.opt_uint("attention.sliding_window_pattern")? {
            Some(0) | None => Err(ModelError::BadHparams(format!("`{key}` must be a bool array or a period > 0"))),
            Some(p) => Ok(Some((0..n_layer).map(|il| il % p < p - 1).collect())),
        },
    }
}

pub fn load(file: &GgufFile) -> Result<Box<dyn Architecture>, ModelError> {
    let hp = HParams::from_gguf(file, "exaone4")?;
    hp.reject_yarn()?;
    let meta = Meta { file, arch: "exaone4" };
    let pattern = sliding_pattern(file, &meta, hp.n_layer)?;
    let hybrid = pattern.as_ref().is_some_and(|p| p.iter().any(|&s| s));
    if hybrid && hp.sliding_window.is_none() {
        return Err(ModelError::MissingKey(meta.key("attention.sliding_window")));
    }
    let sliding = pattern.unwrap_or_else(|| vec![false; hp.n_layer]);
    let swa_base = meta.f32("rope.freq_base_swa")?.unwrap_or(hp.rope_base);
    if !(swa_base.is_finite() && swa_base > 0.0) {
        return Err(ModelError::BadHparams(format!("exaone4.rope.freq_base_swa {swa_base} must be > 0")));
    }
    let ld = Loader::new(file);
    let rope_freqs = ld.opt_vector("rope_freqs.weight", hp.n_rot / 2)?;
    let tok_embd = ld.matrix("token_embd.weight", hp.n_vocab, hp.n_embd)?;
    let output_norm = ld.vector("output_norm.weight", hp.n_embd)?;
    let (output, tied) = match ld.opt_matrix("output.weight", hp.n_vocab, hp.n_embd)? {
        Some(m) => (m, false),
        None => (tok_embd.clone(), true),
    };
    let mut layers = Vec::with_capacity(hp.n_layer);
    for (il, &sl) in sliding.iter().enumerate() {
        let n = |s: &str| format!("blk.{il}.{s}");
        layers.push(Layer {
            attn: AttnWeights::load(&ld, &hp, il, false, true)?,
            post_attn_norm: ld.vector(&n("post_attention_norm.weight"), hp.n_embd)?,
            ffn: GatedFfn {
                gate: ld.matrix(&n("ffn_gate.weight"), hp.n_ff, hp.n_embd)?,
                up: ld.matrix(&n("ffn_up.weight"), hp.n_ff, hp.n_embd)?,
                down: ld.matrix(&n("ffn_down.weight"), hp.n_embd, hp.n_ff)?,
                act: Activation::Silu,
            },
            post_ffn_norm: ld.vector(&n("post_ffw_norm.weight"), hp.n_embd)?,
            sliding: sl,
        });
    }
    Ok(Box::new(Exaone4 { hp, hybrid, swa_base, rope_freqs, tok_embd, output_norm, output, tied, layers }))
}

impl Architecture for Exaone4 {
    fn hparams(&self) -> &HParams {
        &self.hp
    }

    fn tied_output(&self) -> bool {
        self.tied
    }

    fn details(&self) -> Vec<(String, String)> {
        let n_sliding = self.layers.iter().filter(|l| l.sliding).count();
        let mut d = vec![
            ("norms".to_string(), "post-norms (attention, FFN) and per-head QK-norm".to_string()),
        ];
        if self.hybrid {
            let pattern: String = self.layers.iter().take(8).map(|l| if l.sliding { 'S' } else { 'G' }).collect();
            d.push((
                "attention".into(),
                format!(
                    "hybrid: {n_sliding} sliding-window layers (window {}, RoPE base {}), {} global layers without RoPE; pattern {pattern}…",
                    self.hp.sliding_window.unwrap_or(0),
                    self.swa_base,
                    self.layers.len() - n_sliding
                ),
            ));
        } else {
            d.push(("attention".into(), "global on every layer, with RoPE".into()));
        }
        d
    }

    fn forward(&self, file: &GgufFile, tokens: &[u32], kv: &mut KvView, out_rows: &[usize]) -> Result<Vec<f32>, ModelError> {
        let hp = &self.hp;
        let (n, n_embd) = (tokens.len(), hp.n_embd);
        let positions = kv.positions(n);
        let inv = kv.batch_invariant();
        let mut x = embed(file, &self.tok_embd, tokens)?; // [n, n_embd]
        trace("inp_embd", None, &x);
        let mut rows = n;
        for (il, l) in self.layers.iter().enumerate() {
            let use_rope = l.sliding || !self.hybrid;
            let rope = Rope {
                mode: RopeMode::Neox,
                n_rot: if use_rope { hp.n_rot } else { 0 },
                base: if l.sliding { self.swa_base } else { hp.rope_base },
                freq_scale: hp.rope_freq_scale,
                freq_factors: self.rope_freqs.as_deref(),
            };
            let shape = AttnShape {
                n_head: hp.n_head,
                n_head_kv: hp.n_head_kv,
                head_dim_k: hp.head_dim_k,
                head_dim_v: hp.head_dim_v,
                kq_scale: 1.0 / (hp.head_dim_k as f32).sqrt(),
                window: if l.sliding { hp.sliding_window } else { None },
            };
            let mut ctx = l.attn.context(file, hp, &shape, &rope, None, &x, &positions, kv, il)?;
            if il + 1 == self.layers.len() {
                ctx = select_rows(&ctx, hp.n_head * hp.head_dim_v, out_rows);
                x = select_rows(&x, n_embd, out_rows);
                rows = out_rows.len();
            }
            let mut attn_out = l.attn.project_out(file, &ctx, rows, inv)?;
            rms_norm_weighted_inplace(&mut attn_out, &l.post_attn_norm, hp.rms_eps)?;
            trace("attn_post_norm", Some(il), &attn_out);
            x.iter_mut().zip(&attn_out).for_each(|(a, b)| *a += b);
            trace("ffn_inp", Some(il), &x);
            let mut f = vec![0.0f32; rows * n_embd];
            l.ffn.forward(file, &x, rows, &mut f, inv)?;
            rms_norm_weighted_inplace(&mut f, &l.post_ffn_norm, hp.rms_eps)?;
            trace("ffn_post_norm", Some(il), &f);
            x.iter_mut().zip(&f).for_each(|(a, b)| *a += b);
            trace("l_out", Some(il), &x);
        }
        output_head(file, x, rows, &self.output_norm, hp.rms_eps, &self.output)
    }
}
