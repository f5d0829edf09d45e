//! Qwen3-MoE (Qwen team 2025, "Qwen3 Technical Report"; Qwen3-30B-A3B, Qwen3-235B-A22B):
//! Qwen3's attention (QK-norm, NEOX rope, explicit head dim) in pre-norm blocks whose FFN
//! is a mixture of experts in every layer: softmax router, top-k experts
//! (`expert_used_count`), weights renormalised over the chosen experts, no shared expert,
//! no expert groups — llama.cpp's `qwen3moe` graph (`build_moe_ffn` with softmax gating
//! and `norm_w`). Only `expert_used_count` of `expert_count` experts run per token, which
//! is what makes the 30B model fast on CPUs (about 3B active parameters).
//!
//! GGUF keys: `qwen3moe.*` of `hparams.rs`, `expert_count`, `expert_used_count`,
//! `expert_feed_forward_length` (required); `expert_weights_norm` (default true, as
//! llama.cpp and the released configs' `norm_topk_prob`).
//! Tensors: as `qwen3.rs` for attention, per layer `ffn_gate_inp`, `ffn_{gate,up,down}_exps`.

use super::llama::{attention, FamilyOptions};
use crate::blocks::attention::AttnRequire;
use crate::blocks::moe::MoeFfn;
use crate::decoder::{Block, Decoder, Ffn, Head, Mixer};
use crate::error::ModelError;
use crate::hparams::{opt_bool, HParams, Meta, RopeMode};
use crate::weights::Loader;
use jikji_backend::{Backend, Gating, Routing};

pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    let hp = HParams::from_gguf(ld.file, "qwen3moe")?;
    hp.reject_yarn()?;
    let m = Meta { file: ld.file, arch: "qwen3moe" };
    let routing = Routing {
        n_expert: m.req_uint("expert_count")?,
        n_used: m.req_uint("expert_used_count")?,
        n_groups: 0,
        n_groups_used: 0,
        gating: Gating::Softmax,
        norm_weights: opt_bool(ld.file, &m.key("expert_weights_norm"))?.unwrap_or(true),
        weights_scale: 1.0,
    };
    routing.validate().map_err(ModelError::BadHparams)?;
    let n_ff_exp = m.req_uint("expert_feed_forward_length")?;
    let opts = FamilyOptions { rope_mode: RopeMode::Neox, require: AttnRequire { bias: false, qk_norm: true } };
    let head = Head::load(ld, &hp)?;
    let blocks = (0..hp.n_layer)
        .map(|il| {
            let mixer = Mixer::Attention(attention(ld, &hp, il, opts)?);
            let ffn = Ffn::Moe(MoeFfn::load(ld, il, hp.n_embd, routing, n_ff_exp, 0)?);
            Block::pre_norm(ld, &hp, il, mixer, ffn)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut d = Decoder::new(ld.be, hp, head, blocks);
    d.details = vec![
        ("experts".into(), format!("{} routed, {} used per token, no shared expert, ffn {n_ff_exp}", routing.n_expert, routing.n_used)),
        ("gating".into(), format!("softmax, weights normalised over the chosen experts: {}", routing.norm_weights)),
    ];
    Ok(d)
}
