//! Hyper-parameters read from GGUF metadata (`{arch}.*` keys) and from the tensors present.
//!
//! Keys read (all prefixed by `general.architecture`):
//! `block_count`, `embedding_length`, `feed_forward_length`, `context_length`,
//! `attention.head_count`, `attention.head_count_kv` (default: head_count),
//! `attention.key_length` / `attention.value_length` (default: embedding_length / head_count),
//! `attention.layer_norm_rms_epsilon`, `attention.sliding_window`, `rope.freq_base`
//! (default 10000), `rope.dimension_count` (default: key_length), `rope.scaling.type`
//! (`none`, `linear` or `yarn`), `rope.scaling.factor`; for YaRN also
//! `rope.scaling.original_context_length`, `rope.scaling.yarn_beta_fast` (default 32),
//! `rope.scaling.yarn_beta_slow` (default 1), `rope.scaling.yarn_log_multiplier` (default 0)
//! and `rope.scaling.attn_factor` (default 1). Architectures that do not implement YaRN
//! reject a file that asks for it.
//! The vocabulary size is the embedding tensor's row count, never a metadata key, so a
//! file whose `vocab_size` key disagrees with its tensors cannot index out of range.
//! Nothing is inferred from the layer count.

use crate::error::ModelError;
use jikji_gguf::{GgufError, GgufFile};

/// How rotary embeddings pair dimensions: `Norm` (adjacent pairs; llama, whose converter
/// permutes q/k for it) or `Neox` (halves; qwen2/3, gemma3).
pub use jikji_backend::RopeMode;

/// Hyper-parameters shared by the decoder-only architectures of this crate.
#[derive(Clone, Debug, PartialEq)]
pub struct HParams {
    pub arch: String,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head width of queries and keys.
    pub head_dim_k: usize,
    /// Per-head width of values.
    pub head_dim_v: usize,
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// `1 / rope.scaling.factor` for linear scaling, else 1.
    pub rope_freq_scale: f32,
    /// Number of rotated dimensions per head.
    pub n_rot: usize,
    /// Sliding-window length (llama.cpp `n_swa`), if the file has one.
    pub sliding_window: Option<usize>,
    /// YaRN context extension (`rope.scaling.type = yarn`); `rope_freq_scale` is then
    /// `1 / factor`.
    pub yarn: Option<YarnParams>,
}

/// YaRN rope-scaling parameters as stored in GGUF (Peng et al. 2023, "YaRN").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YarnParams {
    /// `rope.scaling.factor` (context extension, > 0).
    pub factor: f32,
    /// `rope.scaling.original_context_length` (llama.cpp `n_ctx_orig_yarn`).
    pub orig_ctx: usize,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// `rope.scaling.yarn_log_multiplier` as stored (the converter writes
    /// `0.1 * mscale_all_dim`), 0 when absent.
    pub log_mul: f32,
    /// `rope.scaling.attn_factor` (default 1).
    pub attn_factor: f32,
}

/// Typed metadata access under one architecture prefix, with clear errors.
pub struct Meta<'a> {
    pub file: &'a GgufFile,
    pub arch: &'a str,
}

impl<'a> Meta<'a> {
    pub fn key(&self, suffix: &str) -> String {
        format!("{}.{}", self.arch, suffix)
    }

    /// An unsigned integer stored as u32 or u64.
    pub fn uint(&self, suffix: &str) -> Result<Option<u64>, ModelError> {
        let key = self.key(suffix);
        match self.file.get_u32(&key) {
            Ok(v) => Ok(v.map(u64::from)),
            Err(GgufError::WrongType { .. }) => Ok(self.file.get_u64(&key)?),
            Err(e) => Err(e.into()),
        }
    }

    pub fn req_uint(&self, suffix: &str) -> Result<usize, ModelError> {
        let v = self.uint(suffix)?.ok_or_else(|| ModelError::MissingKey(self.key(suffix)))?;
        to_usize(&self.key(suffix), v)
    }

    pub fn opt_uint(&self, suffix: &str) -> Result<Option<usize>, ModelError> {
        match self.uint(suffix)? {
            Some(v) => Ok(Some(to_usize(&self.key(suffix), v)?)),
            None => Ok(None),
        }
    }

    pub fn f32(&self, suffix: &str) -> Result<Option<f32>, ModelError> {
        Ok(self.file.get_f32(&self.key(suffix))?)
    }

    pub fn str(&self, suffix: &str) -> Result<Option<&'a str>, ModelError> {
        Ok(self.file.get_str(&self.key(suffix))?)
    }
}

/// Caps that keep a hostile header from asking for absurd allocations.
const MAX_DIM: u64 = 1 << 24;

fn to_usize(key: &str, v: u64) -> Result<usize, ModelError> {
    if v > MAX_DIM {
        return Err(ModelError::BadHparams(format!("`{key}` = {v} is implausibly large")));
    }
    usize::try_from(v).map_err(|_| ModelError::BadHparams(format!("`{key}` = {v} does not fit")))
}

impl HParams {
    /// Reads the common keys. `n_vocab` comes from `token_embd.weight` (rows).
    pub fn from_gguf(file: &GgufFile, arch: &str) -> Result<Self, ModelError> {
        let m = Meta { file, arch };
        let n_embd = m.req_uint("embedding_length")?;
        let n_layer = m.req_uint("block_count")?;
        let n_ff = m.req_uint("feed_forward_length")?;
        let n_head = m.req_uint("attention.head_count")?;
        let n_head_kv = m.opt_uint("attention.head_count_kv")?.unwrap_or(n_head);
        // Absent means unknown (0); present, it must be a usable length.
        let n_ctx_train = match m.opt_uint("context_length")? {
            Some(0) => return Err(ModelError::BadHparams(format!("`{}` is 0", m.key("context_length")))),
            v => v.unwrap_or(0),
        };
        if n_embd == 0 || n_layer == 0 || n_ff == 0 {
            return Err(ModelError::BadHparams(format!(
                "embedding_length={n_embd}, block_count={n_layer}, feed_forward_length={n_ff}: all must be > 0"
            )));
        }
        if n_head == 0 || n_head_kv == 0 {
            return Err(ModelError::BadHparams(format!(
                "head_count={n_head}, head_count_kv={n_head_kv}: both must be > 0"
            )));
        }
        if n_head % n_head_kv != 0 {
            return Err(ModelError::BadHparams(format!(
                "head_count={n_head} is not a multiple of head_count_kv={n_head_kv}"
            )));
        }
        let default_head = if n_embd % n_head == 0 { Some(n_embd / n_head) } else { None };
        let head_dim_k = match m.opt_uint("attention.key_length")?.or(default_head) {
            Some(d) if d > 0 => d,
            _ => {
                return Err(ModelError::BadHparams(format!(
                    "head dim: no key_length and embedding_length={n_embd} is not a multiple of head_count={n_head}"
                )))
            }
        };
        let head_dim_v = match m.opt_uint("attention.value_length")?.or(default_head) {
            Some(d) if d > 0 => d,
            _ => return Err(ModelError::BadHparams("value head dim is zero or unknown".into())),
        };
        let rms_eps = m
            .f32("attention.layer_norm_rms_epsilon")?
            .ok_or_else(|| ModelError::MissingKey(m.key("attention.layer_norm_rms_epsilon")))?;
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(ModelError::BadHparams(format!("rms epsilon {rms_eps} is not a finite non-negative number")));
        }
        let rope_base = m.f32("rope.freq_base")?.unwrap_or(10000.0);
        if !(rope_base.is_finite() && rope_base > 0.0) {
            return Err(ModelError::BadHparams(format!("rope.freq_base {rope_base} must be > 0")));
        }
        let n_rot = m.opt_uint("rope.dimension_count")?.unwrap_or(head_dim_k);
        if n_rot > head_dim_k || n_rot % 2 != 0 {
            return Err(ModelError::BadHparams(format!(
                "rope.dimension_count={n_rot} must be even and at most the head dim {head_dim_k}"
            )));
        }
        let mut yarn = None;
        let rope_freq_scale = match m.str("rope.scaling.type")? {
            None | Some("none") => 1.0,
            Some("yarn") => {
                let factor = match m.f32("rope.scaling.factor")? {
                    Some(f) if f.is_finite() && f > 0.0 => f,
                    Some(f) => return Err(ModelError::BadHparams(format!("rope.scaling.factor {f} must be > 0"))),
                    None => return Err(ModelError::MissingKey(m.key("rope.scaling.factor"))),
                };
                let finite = |name: &str, v: Option<f32>, default: f32| -> Result<f32, ModelError> {
                    match v {
                        None => Ok(default),
                        Some(x) if x.is_finite() => Ok(x),
                        Some(x) => Err(ModelError::BadHparams(format!("{name} {x} is not finite"))),
                    }
                };
                yarn = Some(YarnParams {
                    factor,
                    orig_ctx: m.opt_uint("rope.scaling.original_context_length")?.unwrap_or(n_ctx_train),
                    beta_fast: finite("yarn_beta_fast", m.f32("rope.scaling.yarn_beta_fast")?, 32.0)?,
                    beta_slow: finite("yarn_beta_slow", m.f32("rope.scaling.yarn_beta_slow")?, 1.0)?,
                    log_mul: finite("yarn_log_multiplier", m.f32("rope.scaling.yarn_log_multiplier")?, 0.0)?,
                    attn_factor: finite("attn_factor", m.f32("rope.scaling.attn_factor")?, 1.0)?,
                });
                1.0 / factor
            }
            Some("linear") => match m.f32("rope.scaling.factor")? {
                Some(f) if f.is_finite() && f > 0.0 => 1.0 / f,
                Some(f) => return Err(ModelError::BadHparams(format!("rope.scaling.factor {f} must be > 0"))),
                None => 1.0,
            },
            Some(other) => return Err(ModelError::Unsupported(format!("rope scaling type `{other}`"))),
        };
        let sliding_window = match m.opt_uint("attention.sliding_window")? {
            Some(0) => return Err(ModelError::BadHparams("attention.sliding_window is 0".into())),
            w => w,
        };
        let n_vocab = match file.tensor("token_embd.weight") {
            Some(t) => match t.dims.as_slice() {
                [c, r] if *c as usize == n_embd && *r > 0 => to_usize("token_embd rows", *r)?,
                _ => {
                    return Err(ModelError::BadHparams(format!(
                        "token_embd.weight has shape {:?}, expected [{n_embd}, n_vocab > 0]",
                        t.dims
                    )))
                }
            },
            None => return Err(ModelError::MissingTensor("token_embd.weight".into())),
        };
        Ok(HParams {
            arch: arch.to_string(),
            n_vocab,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_ctx_train,
            rms_eps,
            rope_base,
            rope_freq_scale,
            n_rot,
            sliding_window,
            yarn,
        })
    }

    /// An error for architectures whose graph has no YaRN rope, so a file asking for it
    /// is refused instead of silently run with plain rotations.
    pub fn reject_yarn(&self) -> Result<(), ModelError> {
        match self.yarn {
            Some(_) => Err(ModelError::Unsupported(format!("YaRN rope scaling for `{}`", self.arch))),
            None => Ok(()),
        }
    }

    /// The attention shape of a layer of these dimensions with `kq_scale` and an
    /// optional sliding window.
    pub fn attn_shape(&self, kq_scale: f32, window: Option<usize>) -> jikji_backend::AttnShape {
        jikji_backend::AttnShape {
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim_k: self.head_dim_k,
            head_dim_v: self.head_dim_v,
            kq_scale,
            window,
        }
    }

    /// `1 / sqrt(head_dim_k)`, the usual attention scale.
    pub fn default_kq_scale(&self) -> f32 {
        1.0 / (self.head_dim_k as f32).sqrt()
    }

    /// Width of one token's keys in the cache.
    pub fn n_embd_k_gqa(&self) -> usize {
        self.n_head_kv * self.head_dim_k
    }

    /// Width of one token's values in the cache.
    pub fn n_embd_v_gqa(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }
}

/// A boolean key, `None` when absent; another type is an error naming the key.
pub fn opt_bool(file: &GgufFile, key: &str) -> Result<Option<bool>, ModelError> {
    match file.get(key) {
        None => Ok(None),
        Some(jikji_gguf::Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ModelError::BadHparams(format!("`{key}` must be a boolean"))),
    }
}
