//! `config.json`: which architecture a directory holds, and the checked readers of its
//! numbers shared by [`crate::decoder_config`] and [`crate::encoder_config`].
//!
//! The architecture is `architectures[0]` (transformers' class name), or `model_type`
//! when a config has no `architectures`:
//!
//! | class / model_type | GGUF architecture |
//! |---|---|
//! | `LlamaForCausalLM` / `llama` | `llama` |
//! | `Qwen2ForCausalLM` / `qwen2` | `qwen2` |
//! | `BertModel` / `bert` | `bert` |
//! | `NomicBertModel` / `nomic_bert` | `nomic-bert` |
//!
//! Anything else is [`HfError::Unsupported`] naming the class and the supported ones.

use std::path::Path;

use serde_json::Value as Json;

use crate::decoder_config::{self, DecoderConfig};
use crate::encoder_config::{self, EncoderConfig};
use crate::{read_json, HfError};

/// What `config.json` describes.
#[derive(Clone, Debug)]
pub enum HfConfig {
    Decoder(DecoderConfig),
    Encoder(EncoderConfig),
}

/// The transformers classes (and `model_type`s) this crate reads.
pub const SUPPORTED: &str = "LlamaForCausalLM, Qwen2ForCausalLM, BertModel, NomicBertModel";

impl HfConfig {
    /// Reads `dir/config.json` (and, for encoders, the sentence-transformers pooling
    /// settings beside it).
    pub fn read(dir: &Path) -> Result<Self, HfError> {
        let v = read_json(&dir.join("config.json"))?;
        let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let class = v.get("architectures").and_then(|a| a.get(0)).and_then(Json::as_str);
        let model_type = v.get("model_type").and_then(Json::as_str);
        let key = match (class, model_type) {
            (Some(c), _) => c,
            (None, Some(t)) => t,
            (None, None) => return Err(bad("neither `architectures` nor `model_type` is present")),
        };
        use decoder_config::Arch as D;
        use encoder_config::Arch as E;
        match key {
            "LlamaForCausalLM" | "llama" => Ok(HfConfig::Decoder(DecoderConfig::parse(&v, D::Llama, dir_name)?)),
            "Qwen2ForCausalLM" | "qwen2" => Ok(HfConfig::Decoder(DecoderConfig::parse(&v, D::Qwen2, dir_name)?)),
            "BertModel" | "bert" => Ok(HfConfig::Encoder(EncoderConfig::parse(&v, E::Bert, dir, dir_name)?)),
            "NomicBertModel" | "nomic_bert" => Ok(HfConfig::Encoder(EncoderConfig::parse(&v, E::NomicBert, dir, dir_name)?)),
            other => Err(HfError::Unsupported(format!("config.json: architecture `{other}` (Hugging Face directories: {SUPPORTED})"))),
        }
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> HfError {
    HfError::Config(msg.into())
}

/// A required positive integer below 2^32.
pub(crate) fn size(v: &Json, key: &str) -> Result<usize, HfError> {
    match v.get(key) {
        Some(x) => match x.as_u64() {
            Some(n) if n > 0 && n <= (1 << 32) => Ok(n as usize),
            _ => Err(bad(format!("`{key}` = {x} is not a positive integer below 2^32"))),
        },
        None => Err(bad(format!("`{key}` is missing"))),
    }
}

/// An optional positive integer (`null` counts as absent).
pub(crate) fn opt_size(v: &Json, key: &str) -> Result<Option<usize>, HfError> {
    match v.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(_) => size(v, key).map(Some),
    }
}

/// An optional finite number (`null` counts as absent).
pub(crate) fn opt_f64(v: &Json, key: &str) -> Result<Option<f64>, HfError> {
    match v.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(x) => match x.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(bad(format!("`{key}` = {x} is not a finite number"))),
        },
    }
}
