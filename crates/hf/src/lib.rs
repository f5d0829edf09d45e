//! Hugging Face model directories (`config.json`, `model.safetensors` or its shards,
//! `tokenizer.json`, `tokenizer_config.json`) opened as the GGUF image the rest of jikji
//! reads, so a checkpoint saved by transformers (a fine-tuned model, say) is served
//! without a conversion step.
//!
//! Design choices:
//! - One seam: [`load_dir`] turns a directory into an in-memory [`GgufFile`] with the
//!   metadata keys and tensor names llama.cpp's converter would write, so the models,
//!   the tokenizers, the chat template and every check downstream are the GGUF ones and
//!   no architecture file knows where its weights came from. The price is a copy of the
//!   weights in memory (the safetensors files are memory-mapped, read once and unmapped;
//!   the image is built, then copied once into the aligned buffer `GgufFile` owns, so
//!   the peak is about twice the weights). F32, F16 and BF16 are kept as they are.
//! - Every file is validated before use ([`st`]): the `safetensors` crate's header
//!   checks (lengths, offsets contiguous and inside the file, shape × dtype = bytes), then
//!   every tensor the architecture needs must be present with a supported dtype and
//!   exactly the shape `config.json` implies, and nothing unknown may be left over
//!   ([`tensors`]). A corrupt or inconsistent directory is a typed [`HfError`] naming the
//!   file and the tensor, never a panic.
//! - Architectures ([`config`]): `LlamaForCausalLM`, `Qwen2ForCausalLM` (decoders),
//!   `BertModel`, `NomicBertModel` (encoders). transformers' llama rotates half-split
//!   pairs where GGUF's llama rotates adjacent ones, so llama's q and k rows are permuted
//!   as llama.cpp's converter does; qwen2 is NEOX in both.
//! - Tokenizers ([`vocab`]): byte-level BPE and BERT WordPiece `tokenizer.json` files
//!   whose normaliser and pre-tokenizer our tokenizer reproduces exactly; anything else
//!   is refused by name rather than approximated.

pub mod config;
pub mod decoder_config;
pub mod encoder_config;
pub mod st;
pub mod tensors;
pub mod vocab;

use std::path::{Path, PathBuf};

use jikji_gguf::{GgufError, GgufFile, GgufWriter};

pub use config::HfConfig;

/// Why a Hugging Face directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not valid JSON: {source}", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{}: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },
    #[error("config.json: {0}")]
    Config(String),
    #[error("{0}")]
    Tokenizer(String),
    #[error("{}: tensor `{name}`: {message}", path.display())]
    Tensor { path: PathBuf, name: String, message: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("cannot build the model image: {0}")]
    Gguf(#[from] GgufError),
}

/// True when `path` is a directory holding a `config.json` (a Hugging Face checkpoint).
pub fn is_hf_dir(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, HfError> {
    let text = std::fs::read(path).map_err(|source| HfError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&text).map_err(|source| HfError::Json { path: path.to_path_buf(), source })
}

/// Reads the directory and builds the GGUF image of its model and tokenizer.
pub fn load_dir(dir: &Path) -> Result<GgufFile, HfError> {
    let cfg = HfConfig::read(dir)?;
    let mut w = GgufWriter::new();
    let files = st::SafetensorsSet::open(dir)?;
    match &cfg {
        HfConfig::Decoder(c) => {
            c.write_metadata(&mut w);
            vocab::write_bpe(dir, c.vocab_size, c.bos_id, c.eos_id, &mut w)?;
            tensors::write_decoder(c, &files, &mut w)?;
        }
        HfConfig::Encoder(c) => {
            c.write_metadata(&mut w);
            vocab::write_wordpiece(dir, c.vocab_size, &mut w)?;
            tensors::write_encoder(c, &files, &mut w)?;
        }
    }
    drop(files);
    let bytes = w.to_bytes()?;
    drop(w);
    Ok(GgufFile::from_bytes(bytes)?)
}
