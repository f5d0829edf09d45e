//! Qwen3 (dense; Qwen team 2025): the llama graph without biases, with per-head RMS norms
//! on queries and keys before the rotation (QK-norm), NEOX rotary pairs, and an explicit
//! head dim (`qwen3.attention.key_length`, which need not equal n_embd / n_head).
//!
//! GGUF keys: `qwen3.*` as listed in `llama.rs` / `hparams.rs`.
//! Tensors: as `llama.rs`, plus required `blk.N.attn_q_norm.weight` and
//! `blk.N.attn_k_norm.weight` (`[head_dim]`).

use super::llama::{FamilyOptions, LlamaFamily};
use super::Architecture;
use crate::error::ModelError;
use crate::hparams::RopeMode;
use jikji_gguf::GgufFile;

pub fn load(file: &GgufFile) -> Result<Box<dyn Architecture>, ModelError> {
    let opts = FamilyOptions { rope_mode: RopeMode::Neox, require_bias: false, require_qk_norm: true };
    Ok(Box::new(LlamaFamily::load(file, "qwen3", opts)?))
}
