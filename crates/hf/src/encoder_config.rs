//! `config.json` of a transformers encoder → the GGUF hyper-parameters of `bert` and
//! `nomic-bert` (see `jikji_models::encoder`).
//!
//! - `BertModel`: `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
//!   `intermediate_size`, `max_position_embeddings`, `layer_norm_eps` (default 1e-12, as
//!   transformers), `vocab_size`; `hidden_act` must be `gelu` (erf GELU, what the encoder
//!   computes) and `position_embedding_type` `absolute`.
//! - `NomicBertModel`: `n_embd`, `n_layer`, `n_head`, `n_inner`, `n_positions`,
//!   `layer_norm_epsilon`, `rotary_emb_base`, `rotary_emb_fraction`; `activation_function`
//!   must be `swiglu`, `prenorm` false, `rotary_emb_interleaved` false, no
//!   `rotary_scaling_factor`; its bias flags (`qkv_proj_bias`, `mlp_fc1_bias`,
//!   `mlp_fc2_bias`) say which biases must be present.
//! - Pooling: as sentence-transformers loads the directory — the `Pooling` module of
//!   `modules.json` (its `config.json`: `pooling_mode_mean_tokens`, `_cls_token`,
//!   `_lasttoken`), and mean pooling when the directory has no `modules.json` (what
//!   sentence-transformers does for a plain transformers checkpoint).

use std::path::Path;

use jikji_gguf::{GgufWriter, Value};
use serde_json::Value as Json;

use crate::config::{bad, opt_f64, opt_size, size};
use crate::{read_json, HfError};

/// The encoder families read from Hugging Face directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Bert,
    NomicBert,
}

impl Arch {
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Bert => "bert",
            Arch::NomicBert => "nomic-bert",
        }
    }
}

/// Pooling, with llama.cpp's `pooling_type` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Mean = 1,
    Cls = 2,
    Last = 3,
}

/// What the conversion needs from an encoder's `config.json`.
#[derive(Clone, Debug)]
pub struct EncoderConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden: usize,
    pub ff: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_ctx_train: usize,
    pub eps: f32,
    /// Rows of the token-type table (`type_vocab_size`).
    pub n_types: usize,
    pub rope_base: f32,
    pub n_rot: usize,
    /// Which biases exist: q/k/v, FFN up/gate, FFN down (nomic's flags; BERT has all).
    pub qkv_bias: bool,
    pub fc1_bias: bool,
    pub fc2_bias: bool,
    pub pooling: Pooling,
    pub name: String,
}

impl EncoderConfig {
    pub fn parse(v: &Json, arch: Arch, dir: &Path, dir_name: Option<String>) -> Result<Self, HfError> {
        let text = |k: &str, default: &str| v.get(k).and_then(Json::as_str).unwrap_or(default).to_string();
        let flag = |k: &str, default: bool| v.get(k).and_then(Json::as_bool).unwrap_or(default);
        let (hidden, n_layer, n_head, ff, n_ctx, eps) = match arch {
            Arch::Bert => {
                let act = text("hidden_act", "gelu");
                if act != "gelu" {
                    return Err(HfError::Unsupported(format!("bert with hidden_act `{act}` (only `gelu`)")));
                }
                let pos = text("position_embedding_type", "absolute");
                if pos != "absolute" {
                    return Err(HfError::Unsupported(format!("bert with position_embedding_type `{pos}` (only `absolute`)")));
                }
                if flag("is_decoder", false) {
                    return Err(HfError::Unsupported("bert with is_decoder = true is not an encoder".into()));
                }
                let hidden = size(v, "hidden_size")?;
                let eps = opt_f64(v, "layer_norm_eps")?.unwrap_or(1e-12);
                (hidden, size(v, "num_hidden_layers")?, size(v, "num_attention_heads")?, size(v, "intermediate_size")?, size(v, "max_position_embeddings")?, eps)
            }
            Arch::NomicBert => {
                let act = text("activation_function", "swiglu");
                if act != "swiglu" {
                    return Err(HfError::Unsupported(format!("nomic_bert with activation_function `{act}` (only `swiglu`)")));
                }
                if flag("prenorm", false) || flag("rotary_emb_interleaved", false) || !matches!(v.get("rotary_scaling_factor"), None | Some(Json::Null)) {
                    return Err(HfError::Unsupported("nomic_bert with prenorm, interleaved rotary or rotary scaling".into()));
                }
                let hidden = size(v, "n_embd")?;
                let ff = opt_size(v, "n_inner")?.unwrap_or(4 * hidden);
                let eps = opt_f64(v, "layer_norm_epsilon")?.unwrap_or(1e-5);
                (hidden, size(v, "n_layer")?, size(v, "n_head")?, ff, size(v, "n_positions")?, eps)
            }
        };
        if hidden % n_head != 0 {
            return Err(bad(format!("{n_head} attention heads do not divide the width {hidden}")));
        }
        if !(eps > 0.0) {
            return Err(bad(format!("layer norm epsilon {eps} must be > 0")));
        }
        let head_dim = hidden / n_head;
        let (rope_base, n_rot) = match arch {
            Arch::Bert => (10_000.0, head_dim),
            Arch::NomicBert => {
                let base = opt_f64(v, "rotary_emb_base")?.unwrap_or(10_000.0);
                let frac = opt_f64(v, "rotary_emb_fraction")?.unwrap_or(1.0);
                let n_rot = (head_dim as f64 * frac).round() as usize;
                if !(base > 0.0) || !(frac > 0.0 && frac <= 1.0) || n_rot % 2 != 0 {
                    return Err(bad(format!("rotary_emb_base {base} / rotary_emb_fraction {frac} give no valid rotary width for heads of {head_dim}")));
                }
                (base as f32, n_rot)
            }
        };
        let nomic = arch == Arch::NomicBert;
        let name = v.get("_name_or_path").and_then(Json::as_str).map(str::to_string).or(dir_name).unwrap_or_default();
        Ok(Self {
            arch,
            vocab_size: size(v, "vocab_size")?,
            hidden,
            ff,
            n_layer,
            n_head,
            n_ctx_train: n_ctx,
            eps: eps as f32,
            n_types: opt_size(v, "type_vocab_size")?.unwrap_or(2),
            rope_base,
            n_rot,
            qkv_bias: !nomic || flag("qkv_proj_bias", true),
            fc1_bias: !nomic || flag("mlp_fc1_bias", true),
            fc2_bias: !nomic || flag("mlp_fc2_bias", true),
            pooling: pooling(dir)?,
            name,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.hidden / self.n_head
    }

    /// The GGUF metadata of the model (the tokenizer's keys come from [`crate::vocab`]).
    pub fn write_metadata(&self, w: &mut GgufWriter) {
        let a = self.arch.gguf_name();
        let k = |s: &str| format!("{a}.{s}");
        let u = |n: usize| Value::U32(n as u32);
        w.add_kv("general.architecture", a);
        w.add_kv("general.name", self.name.as_str());
        w.add_kv(k("context_length"), u(self.n_ctx_train));
        w.add_kv(k("embedding_length"), u(self.hidden));
        w.add_kv(k("block_count"), u(self.n_layer));
        w.add_kv(k("feed_forward_length"), u(self.ff));
        w.add_kv(k("attention.head_count"), u(self.n_head));
        w.add_kv(k("attention.layer_norm_epsilon"), self.eps);
        w.add_kv(k("attention.causal"), false);
        w.add_kv(k("pooling_type"), Value::U32(self.pooling as u32));
        if self.arch == Arch::NomicBert {
            w.add_kv(k("rope.freq_base"), self.rope_base);
            w.add_kv(k("rope.dimension_count"), u(self.n_rot));
        }
    }
}

/// The sentence-transformers pooling of `dir` (mean without `modules.json`).
fn pooling(dir: &Path) -> Result<Pooling, HfError> {
    let modules = dir.join("modules.json");
    if !modules.is_file() {
        return Ok(Pooling::Mean);
    }
    let list = read_json(&modules)?;
    let pool = list.as_array().and_then(|a| {
        a.iter().find(|m| m.get("type").and_then(Json::as_str).is_some_and(|t| t.ends_with("models.Pooling")))
    });
    let Some(path) = pool.and_then(|m| m.get("path")).and_then(Json::as_str) else { return Ok(Pooling::Mean) };
    if path.contains("..") || Path::new(path).is_absolute() {
        return Err(bad(format!("modules.json: pooling path `{path}` leaves the directory")));
    }
    let cfg_path = dir.join(path).join("config.json");
    let cfg = read_json(&cfg_path)?;
    let on = |k: &str| cfg.get(k).and_then(Json::as_bool).unwrap_or(false);
    let modes: Vec<(&str, Pooling)> =
        [("pooling_mode_mean_tokens", Pooling::Mean), ("pooling_mode_cls_token", Pooling::Cls), ("pooling_mode_lasttoken", Pooling::Last)]
            .into_iter()
            .filter(|(k, _)| on(k))
            .collect();
    let others = ["pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens"];
    if modes.len() != 1 || others.iter().any(|k| on(k)) {
        return Err(HfError::Unsupported(format!("{}: pooling other than exactly one of mean, CLS, last token", cfg_path.display())));
    }
    Ok(modes[0].1)
}
