//! `config.json` of a transformers decoder (`LlamaForCausalLM`, `Qwen2ForCausalLM`) → the
//! GGUF hyper-parameters llama.cpp's converter writes for it.
//!
//! Read: the sizes, `rms_norm_eps`, the rotary base and scaling — `rope_theta` / `rope_scaling`
//! (transformers 4) or `rope_parameters` (transformers 5) — `max_position_embeddings`,
//! `head_dim`, `tie_word_embeddings`. Every size must be a positive integer and
//! consistent (heads divide evenly); llama-3 rope scaling becomes the `rope_freqs`
//! factors the converter computes, `linear` and `yarn` their GGUF keys.

use jikji_gguf::{GgufWriter, Value};
use serde_json::Value as Json;

use crate::config::{bad, opt_f64, opt_size, size};
use crate::HfError;

/// The decoder families read from Hugging Face directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// Rotary scaling.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    Linear { factor: f32 },
    Yarn { factor: f32, original_ctx: usize },
    /// Llama 3.x: per-frequency factors (`rope_freqs.weight`).
    Llama3 { factor: f64, low: f64, high: f64, original_ctx: f64 },
}

/// What the conversion needs from `config.json`.
#[derive(Clone, Debug)]
pub struct DecoderConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden: usize,
    pub ff: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rms_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub n_ctx_train: usize,
    /// The q/k/v projections carry biases (qwen2).
    pub attn_bias: bool,
    pub tied: bool,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub name: String,
}

/// A token id field (`bos_token_id`): an integer, or a list whose first entry is taken.
fn opt_id(v: &Json, key: &str) -> Option<u32> {
    match v.get(key)? {
        Json::Array(a) => a.first()?.as_u64().and_then(|x| u32::try_from(x).ok()),
        x => x.as_u64().and_then(|x| u32::try_from(x).ok()),
    }
}

impl DecoderConfig {
    pub fn parse(v: &Json, arch: Arch, dir_name: Option<String>) -> Result<Self, HfError> {
        let hidden = size(v, "hidden_size")?;
        let n_head = size(v, "num_attention_heads")?;
        let n_head_kv = opt_size(v, "num_key_value_heads")?.unwrap_or(n_head);
        if n_head % n_head_kv != 0 {
            return Err(bad(format!("num_attention_heads {n_head} is not a multiple of num_key_value_heads {n_head_kv}")));
        }
        let head_dim = match opt_size(v, "head_dim")? {
            Some(h) => h,
            None if hidden % n_head == 0 => hidden / n_head,
            None => return Err(bad(format!("hidden_size {hidden} is not a multiple of num_attention_heads {n_head}"))),
        };
        if head_dim % 2 != 0 {
            return Err(bad(format!("head dimension {head_dim} is odd; rotary embeddings need pairs")));
        }
        let rms_eps = opt_f64(v, "rms_norm_eps")?.unwrap_or(1e-6);
        if rms_eps < 0.0 {
            return Err(bad(format!("rms_norm_eps {rms_eps} is negative")));
        }
        // transformers 5 nests the rotary settings in `rope_parameters`.
        let rope = v.get("rope_parameters").filter(|r| r.is_object());
        let rope_theta = match rope {
            Some(r) => opt_f64(r, "rope_theta")?,
            None => None,
        }
        .or(opt_f64(v, "rope_theta")?)
        .unwrap_or(10000.0);
        if rope_theta <= 0.0 {
            return Err(bad(format!("rope_theta {rope_theta} must be > 0")));
        }
        let n_ctx_train = opt_size(v, "max_position_embeddings")?.unwrap_or(0);
        let scaling = rope.or_else(|| v.get("rope_scaling").filter(|r| r.is_object()));
        let rope_scaling = match scaling {
            None => RopeScaling::None,
            Some(s) => rope_scaling(s, n_ctx_train)?,
        };
        let act = v.get("hidden_act").and_then(Json::as_str).unwrap_or("silu");
        if act != "silu" {
            return Err(HfError::Unsupported(format!("hidden_act `{act}` (the llama family's FFN is SwiGLU: silu)")));
        }
        let flag = |k: &str| v.get(k).and_then(Json::as_bool).unwrap_or(false);
        if flag("mlp_bias") {
            return Err(HfError::Unsupported("mlp_bias = true (FFN projections with biases)".into()));
        }
        if arch == Arch::Llama && flag("attention_bias") {
            return Err(HfError::Unsupported("llama with attention_bias = true (an output projection bias)".into()));
        }
        if arch == Arch::Qwen2 && flag("use_sliding_window") {
            return Err(HfError::Unsupported("qwen2 with use_sliding_window = true".into()));
        }
        let name = v.get("_name_or_path").and_then(Json::as_str).map(str::to_string).or(dir_name).unwrap_or_default();
        Ok(Self {
            arch,
            vocab_size: size(v, "vocab_size")?,
            hidden,
            ff: size(v, "intermediate_size")?,
            n_layer: size(v, "num_hidden_layers")?,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps: rms_eps as f32,
            rope_theta,
            rope_scaling,
            n_ctx_train,
            attn_bias: arch == Arch::Qwen2,
            tied: v.get("tie_word_embeddings").and_then(Json::as_bool).unwrap_or(false),
            bos_id: opt_id(v, "bos_token_id"),
            eos_id: opt_id(v, "eos_token_id"),
            name,
        })
    }

    /// The GGUF metadata of the model (the tokenizer's keys come from [`crate::vocab`]).
    pub fn write_metadata(&self, w: &mut GgufWriter) {
        let a = self.arch.gguf_name();
        let k = |s: &str| format!("{a}.{s}");
        let u = |n: usize| Value::U32(n as u32);
        w.add_kv("general.architecture", a);
        w.add_kv("general.name", self.name.as_str());
        if self.n_ctx_train > 0 {
            w.add_kv(k("context_length"), u(self.n_ctx_train));
        }
        w.add_kv(k("embedding_length"), u(self.hidden));
        w.add_kv(k("block_count"), u(self.n_layer));
        w.add_kv(k("feed_forward_length"), u(self.ff));
        w.add_kv(k("attention.head_count"), u(self.n_head));
        w.add_kv(k("attention.head_count_kv"), u(self.n_head_kv));
        w.add_kv(k("attention.key_length"), u(self.head_dim));
        w.add_kv(k("attention.value_length"), u(self.head_dim));
        w.add_kv(k("attention.layer_norm_rms_epsilon"), self.rms_eps);
        w.add_kv(k("rope.freq_base"), self.rope_theta as f32);
        w.add_kv(k("rope.dimension_count"), u(self.head_dim));
        match &self.rope_scaling {
            RopeScaling::None | RopeScaling::Llama3 { .. } => {}
            RopeScaling::Linear { factor } => {
                w.add_kv(k("rope.scaling.type"), "linear");
                w.add_kv(k("rope.scaling.factor"), *factor);
            }
            RopeScaling::Yarn { factor, original_ctx } => {
                w.add_kv(k("rope.scaling.type"), "yarn");
                w.add_kv(k("rope.scaling.factor"), *factor);
                w.add_kv(k("rope.scaling.original_context_length"), u(*original_ctx));
            }
        }
    }

    /// Llama 3's per-frequency rotary factors (`rope_freqs.weight`, `head_dim / 2`
    /// values), as llama.cpp's converter computes them; `None` without llama-3 scaling.
    pub fn rope_freqs(&self) -> Option<Vec<f32>> {
        let RopeScaling::Llama3 { factor, low, high, original_ctx } = self.rope_scaling else { return None };
        let dim = self.head_dim as f64;
        let (low_wavelen, high_wavelen) = (original_ctx / low, original_ctx / high);
        Some(
            (0..self.head_dim / 2)
                .map(|i| {
                    let freq = 1.0 / self.rope_theta.powf((2 * i) as f64 / dim);
                    let wavelen = 2.0 * std::f64::consts::PI / freq;
                    let f = if wavelen < high_wavelen {
                        1.0
                    } else if wavelen > low_wavelen {
                        factor
                    } else {
                        let smooth = (original_ctx / wavelen - low) / (high - low);
                        1.0 / ((1.0 - smooth) / factor + smooth)
                    };
                    f as f32
                })
                .collect(),
        )
    }
}

fn rope_scaling(s: &Json, n_ctx_train: usize) -> Result<RopeScaling, HfError> {
    let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(Json::as_str).unwrap_or("default");
    let factor = || -> Result<f64, HfError> {
        match opt_f64(s, "factor")? {
            Some(f) if f > 0.0 => Ok(f),
            Some(f) => Err(bad(format!("rope scaling factor {f} must be > 0"))),
            None => Err(bad(format!("rope scaling `{kind}` without a `factor`"))),
        }
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: factor()? as f32 }),
        "yarn" => Ok(RopeScaling::Yarn {
            factor: factor()? as f32,
            original_ctx: opt_size(s, "original_max_position_embeddings")?.unwrap_or(n_ctx_train),
        }),
        "llama3" => {
            let low = opt_f64(s, "low_freq_factor")?.unwrap_or(1.0);
            let high = opt_f64(s, "high_freq_factor")?.unwrap_or(4.0);
            let original_ctx = opt_f64(s, "original_max_position_embeddings")?.unwrap_or(8192.0);
            if !(low > 0.0 && high > low && original_ctx > 0.0) {
                return Err(bad(format!("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got {low}, {high}")));
            }
            Ok(RopeScaling::Llama3 { factor: factor()?, low, high, original_ctx })
        }
        other => Err(HfError::Unsupported(format!("rope scaling type `{other}`"))),
    }
}
