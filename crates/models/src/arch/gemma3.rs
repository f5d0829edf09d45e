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

use crate::blocks::attention::{AttnRequire, Attention};
use crate::blocks::ffn::GatedFfn;
use crate::blocks::pattern::{periodic, sliding_layers};
use crate::decoder::{Block, Decoder, Ffn, Head, Mixer};
use crate::error::ModelError;
use crate::hparams::{HParams, Meta, RopeMode};
use crate::weights::Loader;
use jikji_backend::{Activation, Backend, Rope};

/// Rope base of local (sliding-window) layers, fixed by the model family.
const LOCAL_ROPE_BASE: f32 = 10000.0;
/// Default local:global period (five local layers, then one global).
const DEFAULT_SWA_PERIOD: usize = 6;

pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    let hp = HParams::from_gguf(ld.file, "gemma3")?;
    hp.reject_yarn()?;
    let window = hp.sliding_window.ok_or_else(|| ModelError::MissingKey("gemma3.attention.sliding_window".into()))?;
    let meta = Meta { file: ld.file, arch: "gemma3" };
    let local = sliding_layers(&meta, hp.n_layer)?.unwrap_or_else(|| periodic(DEFAULT_SWA_PERIOD, hp.n_layer));
    let local_base = meta.f32("rope.freq_base_swa")?.unwrap_or(LOCAL_ROPE_BASE);
    if !(local_base.is_finite() && local_base > 0.0) {
        return Err(ModelError::BadHparams(format!("gemma3.rope.freq_base_swa {local_base} must be > 0")));
    }
    let head = Head::load(ld, &hp)?;
    let mut blocks = Vec::with_capacity(hp.n_layer);
    for (il, &is_local) in local.iter().enumerate() {
        let (base, freq_scale) = if is_local { (local_base, 1.0) } else { (hp.rope_base, hp.rope_freq_scale) };
        let rope = Rope::Plain { mode: RopeMode::Neox, n_rot: hp.n_rot, base, freq_scale, freq_factors: None };
        let shape = hp.attn_shape(1.0, is_local.then_some(window));
        let mut attn = Attention::load(ld, &hp, il, AttnRequire { bias: false, qk_norm: true }, shape, rope)?;
        attn.q_scale = Some(1.0 / (hp.head_dim_k as f32).sqrt());
        let ffn = Ffn::Gated(GatedFfn::load(ld, il, "", hp.n_ff, hp.n_embd, Activation::GeluTanh)?);
        blocks.push(Block::sandwich(ld, &hp, il, Mixer::Attention(attn), ffn)?);
    }
    let emb_scale = (hp.n_embd as f32).sqrt();
    let mut d = Decoder::new(ld.be, hp, head, blocks);
    d.embed_scale = Some(emb_scale);
    Ok(d)
}
