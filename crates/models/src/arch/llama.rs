//! The llama family: pre-norm decoder, RMS norm, rotary attention with grouped-query heads,
//! SwiGLU FFN (Touvron et al. 2023, "LLaMA"). `qwen2.rs`, `qwen3.rs` and `exaone.rs` are
//! this family with their own options; `qwen3moe.rs` reuses its attention.
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

use crate::blocks::attention::{AttnRequire, Attention};
use crate::blocks::ffn::GatedFfn;
use crate::decoder::{Block, Decoder, Ffn, Head, Mixer};
use crate::error::ModelError;
use crate::hparams::{HParams, RopeMode};
use crate::weights::Loader;
use jikji_backend::{Activation, Backend, Rope};

/// What distinguishes the members of the family.
#[derive(Clone, Copy, Debug)]
pub struct FamilyOptions {
    pub rope_mode: RopeMode,
    /// Optional attention tensors that must be present (qwen2's biases, qwen3's QK-norm).
    pub require: AttnRequire,
}

/// The family's attention of one layer: rope with optional `rope_freqs.weight` factors
/// (`[n_rot/2]`, llama-3 frequency divisors), `1/sqrt(head_dim)` scaling, global causal.
pub fn attention<B: Backend>(ld: &Loader<B>, hp: &HParams, il: usize, opts: FamilyOptions) -> Result<Attention<B>, ModelError> {
    let shape = hp.attn_shape(hp.default_kq_scale(), None);
    let rope = Rope::Plain {
        mode: opts.rope_mode,
        n_rot: hp.n_rot,
        base: hp.rope_base,
        freq_scale: hp.rope_freq_scale,
        freq_factors: ld.opt_host_vector("rope_freqs.weight", hp.n_rot / 2)?.map(Into::into),
    };
    Attention::load(ld, hp, il, opts.require, shape, rope)
}

/// A llama-family decoder: pre-norm blocks of the family's attention and a SwiGLU FFN.
pub fn build<B: Backend>(ld: &Loader<B>, arch: &str, opts: FamilyOptions) -> Result<Decoder<B>, ModelError> {
    let hp = HParams::from_gguf(ld.file, arch)?;
    hp.reject_yarn()?;
    let head = Head::load(ld, &hp)?;
    let blocks = (0..hp.n_layer)
        .map(|il| {
            let mixer = Mixer::Attention(attention(ld, &hp, il, opts)?);
            let ffn = Ffn::Gated(GatedFfn::load(ld, il, "", hp.n_ff, hp.n_embd, Activation::Silu)?);
            Block::pre_norm(ld, &hp, il, mixer, ffn)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Decoder::new(ld.be, hp, head, blocks))
}

/// Loads a `llama` file.
pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    build(ld, "llama", FamilyOptions { rope_mode: RopeMode::Norm, require: AttnRequire::default() })
}
