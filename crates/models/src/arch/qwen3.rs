//! Qwen3 (dense; Qwen team 2025): the llama graph without biases, with per-head RMS norms
//! on queries and keys before the rotation (QK-norm), NEOX rotary pairs, and an explicit
//! head dim (`qwen3.attention.key_length`, which need not equal n_embd / n_head).
//!
//! GGUF keys: `qwen3.*` as listed in `llama.rs` / `hparams.rs`.
//! Tensors: as `llama.rs`, plus required `blk.N.attn_q_norm.weight` and
//! `blk.N.attn_k_norm.weight` (`[head_dim]`).

use super::llama::{build, FamilyOptions};
use crate::blocks::attention::AttnRequire;
use crate::decoder::Decoder;
use crate::error::ModelError;
use crate::hparams::RopeMode;
use crate::weights::Loader;
use jikji_backend::Backend;

pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    build(ld, "qwen3", FamilyOptions { rope_mode: RopeMode::Neox, require: AttnRequire { bias: false, qk_norm: true } })
}
