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

use crate::blocks::attention::{AttnRequire, Attention};
use crate::blocks::ffn::GatedFfn;
use crate::blocks::pattern::sliding_layers;
use crate::decoder::{Block, Decoder, Ffn, Head, Mixer};
use crate::error::ModelError;
use crate::hparams::{HParams, Meta, RopeMode};
use crate::weights::Loader;
use jikji_backend::{Activation, Backend, Rope};

pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    let hp = HParams::from_gguf(ld.file, "exaone4")?;
    hp.reject_yarn()?;
    let meta = Meta { file: ld.file, arch: "exaone4" };
    let pattern = sliding_layers(&meta, hp.n_layer)?;
    let hybrid = pattern.as_ref().is_some_and(|p| p.iter().any(|&s| s));
    if hybrid && hp.sliding_window.is_none() {
        return Err(ModelError::MissingKey(meta.key("attention.sliding_window")));
    }
    let sliding = pattern.unwrap_or_else(|| vec![false; hp.n_layer]);
    let swa_base = meta.f32("rope.freq_base_swa")?.unwrap_or(hp.rope_base);
    if !(swa_base.is_finite() && swa_base > 0.0) {
        return Err(ModelError::BadHparams(format!("exaone4.rope.freq_base_swa {swa_base} must be > 0")));
    }
    let rope_freqs: Option<std::sync::Arc<[f32]>> = ld.opt_host_vector("rope_freqs.weight", hp.n_rot / 2)?.map(Into::into);
    let head = Head::load(ld, &hp)?;
    let mut blocks = Vec::with_capacity(hp.n_layer);
    for (il, &sl) in sliding.iter().enumerate() {
        // Hybrid files: sliding layers rotate, global layers use no rope at all.
        let use_rope = sl || !hybrid;
        let rope = Rope::Plain {
            mode: RopeMode::Neox,
            n_rot: if use_rope { hp.n_rot } else { 0 },
            base: if sl { swa_base } else { hp.rope_base },
            freq_scale: hp.rope_freq_scale,
            freq_factors: rope_freqs.clone(),
        };
        let shape = hp.attn_shape(hp.default_kq_scale(), if sl { hp.sliding_window } else { None });
        let attn = Attention::load(ld, &hp, il, AttnRequire { bias: false, qk_norm: true }, shape, rope)?;
        let ffn = Ffn::Gated(GatedFfn::load(ld, il, "", hp.n_ff, hp.n_embd, Activation::Silu)?);
        blocks.push(Block::post_norm(ld, &hp, il, Mixer::Attention(attn), ffn)?);
    }
    let details = details(&hp, hybrid, swa_base, &sliding);
    let mut d = Decoder::new(ld.be, hp, head, blocks);
    d.details = details;
    Ok(d)
}

fn details(hp: &HParams, hybrid: bool, swa_base: f32, sliding: &[bool]) -> Vec<(String, String)> {
    let n_sliding = sliding.iter().filter(|&&s| s).count();
    let mut d = vec![
        ("norms".to_string(), "post-norms (attention, FFN) and per-head QK-norm".to_string()),
    ];
    if hybrid {
        let pattern: String = sliding.iter().take(8).map(|&s| if s { 'S' } else { 'G' }).collect();
        d.push((
            "attention".into(),
            format!(
                "hybrid: {n_sliding} sliding-window layers (window {}, RoPE base {}), {} global layers without RoPE; pattern {pattern}…",
                hp.sliding_window.unwrap_or(0),
                swa_base,
                sliding.len() - n_sliding
            ),
        ));
    } else {
        d.push(("attention".into(), "global on every layer, with RoPE".into()));
    }
    d
}
