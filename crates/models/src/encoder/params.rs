//! Hyper-parameters of an encoder (embedding) model, from `<arch>.*` metadata.
//!
//! Keys read: `block_count`, `embedding_length`, `feed_forward_length`,
//! `attention.head_count`, `attention.head_count_kv` (default: `head_count`),
//! `attention.layer_norm_epsilon`, `context_length`, `attention.causal` (must be false or
//! absent), `pooling_type` (llama.cpp's enum: 1 mean, 2 CLS, 3 last; 0 "none" and 4 "rank"
//! are refused: they are not sentence embeddings), `rope.freq_base` and
//! `rope.dimension_count` (rotary architectures), `tokenizer.ggml.tokens` for the vocabulary.

use crate::error::ModelError;
use crate::hparams::Meta;
use jikji_gguf::GgufFile;

/// How the per-token outputs of a sequence become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The average over the sequence's tokens (llama.cpp `LLAMA_POOLING_TYPE_MEAN`).
    Mean,
    /// The first token's output (`[CLS]`).
    Cls,
    /// The last token's output.
    Last,
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Last => "last",
        }
    }
}

/// What an encoder's forward pass needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderParams {
    /// `general.architecture` (`bert`, `nomic-bert`).
    pub arch: String,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub eps: f32,
    /// Longest sequence the model accepts (`context_length`).
    pub n_ctx_train: usize,
    pub pooling: Pooling,
    /// Rotary base, for rotary encoders (`nomic-bert`).
    pub rope_base: f32,
    /// Rotated dims per head (`rope.dimension_count`, default the head width).
    pub n_rot: usize,
}

impl EncoderParams {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Reads and checks the parameters of architecture `arch`.
    pub fn from_gguf(file: &GgufFile, arch: &str) -> Result<Self, ModelError> {
        let m = Meta { file, arch };
        let n_embd = m.req_uint("embedding_length")?;
        let n_head = m.req_uint("attention.head_count")?;
        let n_head_kv = m.opt_uint("attention.head_count_kv")?.unwrap_or(n_head);
        if n_head == 0 || !n_embd.is_multiple_of(n_head) || n_head_kv == 0 || !n_head.is_multiple_of(n_head_kv) {
            return Err(ModelError::BadHparams(format!("{n_head} heads ({n_head_kv} kv) do not divide {n_embd}")));
        }
        if file.get_bool(&m.key("attention.causal"))? == Some(true) {
            return Err(ModelError::Unsupported(format!("{arch} with causal attention is not an encoder")));
        }
        let pooling = match m.uint("pooling_type")? {
            Some(1) => Pooling::Mean,
            Some(2) => Pooling::Cls,
            Some(3) => Pooling::Last,
            None => Pooling::Cls,
            Some(p) => return Err(ModelError::Unsupported(format!("pooling type {p} (only mean, CLS and last give sentence embeddings)"))),
        };
        let n_vocab = file.get_str_array("tokenizer.ggml.tokens")?.map(|t| t.len()).ok_or_else(|| ModelError::MissingKey("tokenizer.ggml.tokens".into()))?;
        let head_dim = n_embd / n_head;
        let n_rot = m.opt_uint("rope.dimension_count")?.unwrap_or(head_dim);
        if n_rot > head_dim || !n_rot.is_multiple_of(2) {
            return Err(ModelError::BadHparams(format!("{n_rot} rotated dims for heads of {head_dim}")));
        }
        let eps = m.f32("attention.layer_norm_epsilon")?.ok_or_else(|| ModelError::MissingKey(m.key("attention.layer_norm_epsilon")))?;
        Ok(EncoderParams {
            arch: arch.to_string(),
            n_vocab,
            n_embd,
            n_layer: m.req_uint("block_count")?,
            n_head,
            n_head_kv,
            n_ff: m.req_uint("feed_forward_length")?,
            eps,
            n_ctx_train: m.req_uint("context_length")?,
            pooling,
            rope_base: m.f32("rope.freq_base")?.unwrap_or(10_000.0),
            n_rot,
        })
    }
}
