//! Qwen2 / Qwen2.5 (Qwen team 2024): the llama graph with q/k/v biases (always present)
//! and NEOX rotary pairs (halves).
//!
//! GGUF keys: `qwen2.*` as listed in `llama.rs` / `hparams.rs`.
//! Tensors: as `llama.rs`, plus required `blk.N.attn_{q,k,v}.bias`; `output.weight` is
//! absent in tied-embedding checkpoints.

use super::llama::{build, FamilyOptions};
use crate::blocks::attention::AttnRequire;
use crate::decoder::Decoder;
use crate::error::ModelError;
use crate::hparams::RopeMode;
use crate::weights::Loader;
use jikji_backend::Backend;

pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    build(ld, "qwen2", FamilyOptions { rope_mode: RopeMode::Neox, require: AttnRequire { bias: true, qk_norm: false } })
}
