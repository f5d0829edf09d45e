//! Qwen2 / Qwen2.5 (Qwen team 2024): the llama graph with q/k/v biases (always present)
//! and NEOX rotary pairs (halves).
//!
//! GGUF keys: `qwen2.*` as listed in `llama.rs` / `hparams.rs`.
//! Tensors: as `llama.rs`, plus required `blk.N.attn_{q,k,v}.bias`; `output.weight` is
//! absent in tied-embedding checkpoints.

use super::llama::{FamilyOptions, LlamaFamily};
use super::Architecture;
use crate::error::ModelError;
use crate::hparams::RopeMode;
use jikji_gguf::GgufFile;

pub fn load(file: &GgufFile) -> Result<Box<dyn Architecture>, ModelError> {
    let opts = FamilyOptions { rope_mode: RopeMode::Neox, require_bias: true, require_qk_norm: false };
    Ok(Box::new(LlamaFamily::load(file, "qwen2", opts)?))
}
