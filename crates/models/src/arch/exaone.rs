//! EXAONE 3.0 / 3.5 and EXAONE Deep (LG AI Research 2024/2025): mathematically the llama
//! graph — pre-norm RMS norms, grouped-query rotary attention without biases, SwiGLU —
//! with NEOX rotary pairs (llama.cpp's `exaone` graph; its converter renames the Hugging
//! Face `transformer.h.N.attn.attention.{q,k,v,out}_proj`, `mlp.c_fc_0/1`, `mlp.c_proj`,
//! `ln_1/ln_2` tensors to the standard GGUF names and writes `rope_freqs.weight` for the
//! llama-3-style rope scaling of EXAONE 3.5).
//!
//! GGUF keys: `exaone.*` as listed in `llama.rs` / `hparams.rs`.
//! Tensors: as `llama.rs` (optional `rope_freqs.weight`, optional `output.weight`).

use super::llama::{build, FamilyOptions};
use crate::blocks::attention::AttnRequire;
use crate::decoder::Decoder;
use crate::error::ModelError;
use crate::hparams::RopeMode;
use crate::weights::Loader;
use jikji_backend::Backend;

pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    build(ld, "exaone", FamilyOptions { rope_mode: RopeMode::Neox, require: AttnRequire::default() })
}
