//! Tiny random-weight GGUF models for fast and damage tests.
//!
//! `tiny_llama_gguf(&cfg, seed)` and friends return a `TinyGguf`: the metadata and tensors
//! of a complete, loadable model (F32 weights from a seeded generator, norm weights near 1),
//! still editable — drop a tensor, reshape one, change a key — before `to_bytes()` encodes
//! it with `jikji_gguf::GgufWriter`. The weights are random, so outputs mean nothing; these
//! files test structure (loading, validation, shapes, cache handling), not accuracy.

use jikji_gguf::{GgmlType, GgufFile, GgufWriter, Value};

/// Shape of a tiny model.
#[derive(Clone, Debug)]
pub struct TinyConfig {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// Write `output.weight` (false = tied to the embedding).
    pub untied_output: bool,
}

impl Default for TinyConfig {
    fn default() -> Self {
        TinyConfig {
            n_vocab: 64,
            n_embd: 32,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 8,
            n_ff: 48,
            n_ctx_train: 128,
            rope_base: 10000.0,
            rms_eps: 1e-6,
            untied_output: true,
        }
    }
}

/// One tensor of a `TinyGguf`.
#[derive(Clone, Debug)]
pub struct TinyTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub data: Vec<u8>,
}

/// An editable model description; `to_bytes()` encodes it.
#[derive(Clone, Debug)]
pub struct TinyGguf {
    pub kvs: Vec<(String, Value)>,
    pub tensors: Vec<TinyTensor>,
    rng: SplitMix,
}

/// Seeded generator (splitmix64): deterministic without external crates.
#[derive(Clone, Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl TinyGguf {
    fn new(seed: u64) -> Self {
        TinyGguf { kvs: Vec::new(), tensors: Vec::new(), rng: SplitMix(seed) }
    }

    /// Sets (or replaces) a metadata key.
    pub fn set_kv(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key.to_string(), value)),
        }
        self
    }

    pub fn remove_kv(&mut self, key: &str) -> &mut Self {
        self.kvs.retain(|(k, _)| k != key);
        self
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensors.iter().any(|t| t.name == name)
    }

    /// Removes a tensor; panics if it is not there (a test typo should fail loudly).
    pub fn remove_tensor(&mut self, name: &str) -> &mut Self {
        assert!(self.has_tensor(name), "no tensor `{name}` to remove");
        self.tensors.retain(|t| t.name != name);
        self
    }

    /// Adds (or replaces) an F32 tensor of random values scaled by `scale`, plus `offset`.
    pub fn put_random(&mut self, name: &str, dims: &[u64], scale: f32, offset: f32) -> &mut Self {
        let n: u64 = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| offset + scale * self.rng.unit()).collect();
        let t = TinyTensor { name: name.to_string(), dims: dims.to_vec(), ggml_type: GgmlType::F32, data: f32_bytes(&v) };
        match self.tensors.iter_mut().find(|x| x.name == name) {
            Some(slot) => *slot = t,
            None => self.tensors.push(t),
        }
        self
    }

    /// Replaces a tensor by a random F32 one of another shape (a mis-shaped tensor).
    pub fn reshape_tensor(&mut self, name: &str, dims: &[u64]) -> &mut Self {
        assert!(self.has_tensor(name), "no tensor `{name}` to reshape");
        self.put_random(name, dims, 0.1, 0.0)
    }

    /// Encodes the file; panics if the writer rejects it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = GgufWriter::new();
        for (k, v) in &self.kvs {
            w.add_kv(k.clone(), v.clone());
        }
        for t in &self.tensors {
            w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, t.data.clone());
        }
        w.to_bytes().unwrap_or_else(|e| panic!("tiny GGUF does not encode: {e}"))
    }

    /// Encodes and re-opens the file.
    pub fn to_gguf(&self) -> GgufFile {
        GgufFile::from_bytes(self.to_bytes()).unwrap_or_else(|e| panic!("tiny GGUF does not read back: {e}"))
    }
}

/// Flags of the decoder variants below.
struct Variant {
    arch: &'static str,
    bias: bool,
    qk_norm: bool,
    post_norms: bool,
}

fn build(cfg: &TinyConfig, seed: u64, v: Variant) -> TinyGguf {
    let mut g = TinyGguf::new(seed);
    let a = v.arch;
    let (e, ff, hd) = (cfg.n_embd as u64, cfg.n_ff as u64, cfg.head_dim as u64);
    let (qd, kvd) = ((cfg.n_head * cfg.head_dim) as u64, (cfg.n_head_kv * cfg.head_dim) as u64);
    g.set_kv("general.architecture", a);
    g.set_kv("general.name", format!("tiny-{a}"));
    g.set_kv(&format!("{a}.block_count"), cfg.n_layer as u32);
    g.set_kv(&format!("{a}.context_length"), cfg.n_ctx_train as u32);
    g.set_kv(&format!("{a}.embedding_length"), cfg.n_embd as u32);
    g.set_kv(&format!("{a}.feed_forward_length"), cfg.n_ff as u32);
    g.set_kv(&format!("{a}.attention.head_count"), cfg.n_head as u32);
    g.set_kv(&format!("{a}.attention.head_count_kv"), cfg.n_head_kv as u32);
    g.set_kv(&format!("{a}.attention.key_length"), cfg.head_dim as u32);
    g.set_kv(&format!("{a}.attention.value_length"), cfg.head_dim as u32);
    g.set_kv(&format!("{a}.attention.layer_norm_rms_epsilon"), cfg.rms_eps);
    g.set_kv(&format!("{a}.rope.freq_base"), cfg.rope_base);
    g.set_kv(&format!("{a}.rope.dimension_count"), cfg.head_dim as u32);
    if a == "gemma3" {
        g.set_kv("gemma3.attention.sliding_window", 4u32);
    }
    let w = 1.0 / (cfg.n_embd as f32).sqrt();
    g.put_random("token_embd.weight", &[e, cfg.n_vocab as u64], 1.0, 0.0);
    g.put_random("output_norm.weight", &[e], 0.1, 1.0);
    if cfg.untied_output {
        g.put_random("output.weight", &[e, cfg.n_vocab as u64], w, 0.0);
    }
    for il in 0..cfg.n_layer {
        let n = |s: &str| format!("blk.{il}.{s}");
        g.put_random(&n("attn_norm.weight"), &[e], 0.1, 1.0);
        g.put_random(&n("attn_q.weight"), &[e, qd], w, 0.0);
        g.put_random(&n("attn_k.weight"), &[e, kvd], w, 0.0);
        g.put_random(&n("attn_v.weight"), &[e, kvd], w, 0.0);
        g.put_random(&n("attn_output.weight"), &[qd, e], 1.0 / (qd as f32).sqrt(), 0.0);
        if v.bias {
            g.put_random(&n("attn_q.bias"), &[qd], 0.1, 0.0);
            g.put_random(&n("attn_k.bias"), &[kvd], 0.1, 0.0);
            g.put_random(&n("attn_v.bias"), &[kvd], 0.1, 0.0);
        }
        if v.qk_norm {
            g.put_random(&n("attn_q_norm.weight"), &[hd], 0.1, 1.0);
            g.put_random(&n("attn_k_norm.weight"), &[hd], 0.1, 1.0);
        }
        if v.post_norms {
            g.put_random(&n("post_attention_norm.weight"), &[e], 0.1, 1.0);
            g.put_random(&n("post_ffw_norm.weight"), &[e], 0.1, 1.0);
        }
        g.put_random(&n("ffn_norm.weight"), &[e], 0.1, 1.0);
        g.put_random(&n("ffn_gate.weight"), &[e, ff], w, 0.0);
        g.put_random(&n("ffn_up.weight"), &[e, ff], w, 0.0);
        g.put_random(&n("ffn_down.weight"), &[ff, e], 1.0 / (ff as f32).sqrt(), 0.0);
    }
    g
}

/// A tiny `llama` model.
pub fn tiny_llama_gguf(cfg: &TinyConfig, seed: u64) -> TinyGguf {
    build(cfg, seed, Variant { arch: "llama", bias: false, qk_norm: false, post_norms: false })
}

/// A tiny `qwen2` model (q/k/v biases).
pub fn tiny_qwen2_gguf(cfg: &TinyConfig, seed: u64) -> TinyGguf {
    build(cfg, seed, Variant { arch: "qwen2", bias: true, qk_norm: false, post_norms: false })
}

/// A tiny `qwen3` model (QK-norm).
pub fn tiny_qwen3_gguf(cfg: &TinyConfig, seed: u64) -> TinyGguf {
    build(cfg, seed, Variant { arch: "qwen3", bias: false, qk_norm: true, post_norms: false })
}

/// A tiny `gemma3` model (QK-norm, post-norms, sliding window 4).
pub fn tiny_gemma3_gguf(cfg: &TinyConfig, seed: u64) -> TinyGguf {
    build(cfg, seed, Variant { arch: "gemma3", bias: false, qk_norm: true, post_norms: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_models_encode_and_read_back_with_their_tensors() {
        let cfg = TinyConfig::default();
        for g in [tiny_llama_gguf(&cfg, 1), tiny_qwen2_gguf(&cfg, 1), tiny_qwen3_gguf(&cfg, 1), tiny_gemma3_gguf(&cfg, 1)] {
            let f = g.to_gguf();
            assert_eq!(f.tensors().len(), g.tensors.len());
            assert!(f.tensor("blk.1.ffn_down.weight").is_some());
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let cfg = TinyConfig::default();
        assert_eq!(tiny_llama_gguf(&cfg, 7).to_bytes(), tiny_llama_gguf(&cfg, 7).to_bytes());
        assert_ne!(tiny_llama_gguf(&cfg, 7).to_bytes(), tiny_llama_gguf(&cfg, 8).to_bytes());
    }
}
