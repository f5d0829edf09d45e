//! transformers tensors → the GGUF tensors (names, shapes, layouts) llama.cpp's converter
//! writes, so `jikji_models` loads them as it loads a converted file.
//!
//! - Every tensor the architecture needs must be present with exactly the shape
//!   `config.json` implies; a tensor nobody reads is an error too (a checkpoint with parts
//!   this crate does not understand is refused rather than half-loaded), except the
//!   buffers and heads transformers saves beside the model (`rotary_emb.inv_freq`,
//!   `position_ids`, BERT's `pooler`, a tied `lm_head`).
//! - Matrices keep their dtype (F32, F16, BF16 are weight types of the kernels); vectors
//!   (norms, biases) become F32, as the converter writes them.
//! - Shapes: transformers' `[out, in]` is GGUF's `dims = [in, out]` (innermost first);
//!   the bytes are the same row-major rows.
//! - llama's q and k rows are permuted per head from transformers' half-split rotary
//!   pairs (`[i, i + d/2]`, NEOX) to GGUF llama's adjacent pairs (`[2i, 2i + 1]`):
//!   row `h·d + 2j + i` of the GGUF tensor is row `h·d + i·d/2 + j` of transformers'
//!   (`i` ∈ {0, 1}, `j` < d/2). qwen2 is NEOX in both and copied as is.

use std::collections::HashSet;

use half::{bf16, f16};
use jikji_gguf::{GgmlType, GgufWriter};

use crate::decoder_config::{Arch as DecArch, DecoderConfig};
use crate::encoder_config::{Arch as EncArch, EncoderConfig};
use crate::st::{SafetensorsSet, StDtype, StTensor};
use crate::HfError;

/// How a tensor's rows are rearranged on the way.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    AsIs,
    /// llama's rotary permutation over heads of `head_dim` rows.
    Rotary { head_dim: usize },
}

struct Conv<'a> {
    st: &'a SafetensorsSet,
    w: &'a mut GgufWriter,
    used: HashSet<String>,
}

fn tensor_err(t: &StTensor<'_>, message: impl Into<String>) -> HfError {
    HfError::Tensor { path: t.file.to_path_buf(), name: t.name.to_string(), message: message.into() }
}

/// `bytes` of `dtype` as F32 values.
fn to_f32(dtype: StDtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        StDtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        StDtype::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        StDtype::BF16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
    }
}

impl<'a> Conv<'a> {
    /// Tensor `hf`, which must exist with `shape`.
    fn need(&mut self, hf: &str, shape: &[usize]) -> Result<StTensor<'a>, HfError> {
        let st: &'a SafetensorsSet = self.st;
        let Some(t) = st.tensor(hf)? else {
            return Err(HfError::Tensor { path: self.st.first_path().to_path_buf(), name: hf.into(), message: "missing from the checkpoint".into() });
        };
        if t.shape != shape {
            return Err(tensor_err(&t, format!("shape {:?}, but config.json implies {shape:?}", t.shape)));
        }
        self.used.insert(hf.to_string());
        Ok(t)
    }

    /// Copies `hf` (shape `shape`, outermost first) to GGUF tensor `gguf`.
    fn put(&mut self, hf: &str, gguf: &str, shape: &[usize], rows: Rows) -> Result<(), HfError> {
        let t = self.need(hf, shape)?;
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        if shape.len() == 1 {
            let data: Vec<u8> = to_f32(t.dtype, t.bytes).iter().flat_map(|x| x.to_le_bytes()).collect();
            self.w.add_tensor(gguf, &dims, GgmlType::F32, data);
            return Ok(());
        }
        let ty = match t.dtype {
            StDtype::F32 => GgmlType::F32,
            StDtype::F16 => GgmlType::F16,
            StDtype::BF16 => GgmlType::BF16,
        };
        let data = match rows {
            Rows::AsIs => t.bytes.to_vec(),
            Rows::Rotary { head_dim } => {
                let row_bytes = t.bytes.len() / shape[0];
                if head_dim == 0 || shape[0] % head_dim != 0 || head_dim % 2 != 0 {
                    return Err(tensor_err(&t, format!("{} rows are not whole heads of {head_dim}", shape[0])));
                }
                let half = head_dim / 2;
                let mut out = Vec::with_capacity(t.bytes.len());
                for h in 0..shape[0] / head_dim {
                    for j in 0..half {
                        for i in 0..2 {
                            let src = h * head_dim + i * half + j;
                            out.extend_from_slice(&t.bytes[src * row_bytes..(src + 1) * row_bytes]);
                        }
                    }
                }
                out
            }
        };
        self.w.add_tensor(gguf, &dims, ty, data);
        Ok(())
    }

    /// A vector (1-D) tensor whose rows follow the rotary permutation (llama q/k biases).
    fn put_rotary_bias(&mut self, hf: &str, gguf: &str, n: usize, head_dim: usize) -> Result<(), HfError> {
        let t = self.need(hf, &[n])?;
        let v = to_f32(t.dtype, t.bytes);
        let half = head_dim / 2;
        let mut out = Vec::with_capacity(n * 4);
        for h in 0..n / head_dim {
            for j in 0..half {
                for i in 0..2 {
                    out.extend_from_slice(&v[h * head_dim + i * half + j].to_le_bytes());
                }
            }
        }
        self.w.add_tensor(gguf, &[n as u64], GgmlType::F32, out);
        Ok(())
    }

    /// Fails on the first tensor nothing read, unless `ignorable` says it may be left.
    fn finish(self, ignorable: impl Fn(&str) -> bool) -> Result<(), HfError> {
        for name in self.st.names() {
            if !self.used.contains(name) && !ignorable(name) {
                return Err(HfError::Tensor {
                    path: self.st.first_path().to_path_buf(),
                    name: name.into(),
                    message: "not part of the architecture config.json declares".into(),
                });
            }
        }
        Ok(())
    }
}

/// The decoder's tensors (llama, qwen2).
pub fn write_decoder(cfg: &DecoderConfig, st: &SafetensorsSet, w: &mut GgufWriter) -> Result<(), HfError> {
    let mut c = Conv { st, w, used: HashSet::new() };
    let (e, hd, v, ff) = (cfg.hidden, cfg.head_dim, cfg.vocab_size, cfg.ff);
    let (qd, kd) = (cfg.n_head * hd, cfg.n_head_kv * hd);
    let llama = cfg.arch == DecArch::Llama;
    let rot = |on: bool| if on { Rows::Rotary { head_dim: hd } } else { Rows::AsIs };
    c.put("model.embed_tokens.weight", "token_embd.weight", &[v, e], Rows::AsIs)?;
    c.put("model.norm.weight", "output_norm.weight", &[e], Rows::AsIs)?;
    if !cfg.tied {
        c.put("lm_head.weight", "output.weight", &[v, e], Rows::AsIs)?;
    }
    if let Some(f) = cfg.rope_freqs() {
        let data: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
        c.w.add_tensor("rope_freqs.weight", &[f.len() as u64], GgmlType::F32, data);
    }
    for il in 0..cfg.n_layer {
        let hf = |t: &str| format!("model.layers.{il}.{t}");
        let gg = |t: &str| format!("blk.{il}.{t}");
        c.put(&hf("input_layernorm.weight"), &gg("attn_norm.weight"), &[e], Rows::AsIs)?;
        c.put(&hf("self_attn.q_proj.weight"), &gg("attn_q.weight"), &[qd, e], rot(llama))?;
        c.put(&hf("self_attn.k_proj.weight"), &gg("attn_k.weight"), &[kd, e], rot(llama))?;
        c.put(&hf("self_attn.v_proj.weight"), &gg("attn_v.weight"), &[kd, e], Rows::AsIs)?;
        c.put(&hf("self_attn.o_proj.weight"), &gg("attn_output.weight"), &[e, qd], Rows::AsIs)?;
        if cfg.attn_bias {
            for (p, n) in [("q", qd), ("k", kd), ("v", kd)] {
                let (h, g) = (hf(&format!("self_attn.{p}_proj.bias")), gg(&format!("attn_{p}.bias")));
                if llama && p != "v" {
                    c.put_rotary_bias(&h, &g, n, hd)?;
                } else {
                    c.put(&h, &g, &[n], Rows::AsIs)?;
                }
            }
        }
        c.put(&hf("post_attention_layernorm.weight"), &gg("ffn_norm.weight"), &[e], Rows::AsIs)?;
        c.put(&hf("mlp.gate_proj.weight"), &gg("ffn_gate.weight"), &[ff, e], Rows::AsIs)?;
        c.put(&hf("mlp.up_proj.weight"), &gg("ffn_up.weight"), &[ff, e], Rows::AsIs)?;
        c.put(&hf("mlp.down_proj.weight"), &gg("ffn_down.weight"), &[e, ff], Rows::AsIs)?;
    }
    let tied = cfg.tied;
    c.finish(|n| n.ends_with("rotary_emb.inv_freq") || (tied && n == "lm_head.weight"))
}

/// The encoder's tensors (bert, nomic-bert). BERT checkpoints saved from a task model
/// carry a `bert.` prefix; it is accepted.
pub fn write_encoder(cfg: &EncoderConfig, st: &SafetensorsSet, w: &mut GgufWriter) -> Result<(), HfError> {
    let mut c = Conv { st, w, used: HashSet::new() };
    let (e, v, ff) = (cfg.hidden, cfg.vocab_size, cfg.ff);
    let pre = if st.contains("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
    let p = |t: &str| format!("{pre}{t}");
    c.put(&p("embeddings.word_embeddings.weight"), "token_embd.weight", &[v, e], Rows::AsIs)?;
    if cfg.n_types > 0 {
        c.put(&p("embeddings.token_type_embeddings.weight"), "token_types.weight", &[cfg.n_types, e], Rows::AsIs)?;
    }
    match cfg.arch {
        EncArch::Bert => {
            c.put(&p("embeddings.position_embeddings.weight"), "position_embd.weight", &[cfg.n_ctx_train, e], Rows::AsIs)?;
            c.put(&p("embeddings.LayerNorm.weight"), "token_embd_norm.weight", &[e], Rows::AsIs)?;
            c.put(&p("embeddings.LayerNorm.bias"), "token_embd_norm.bias", &[e], Rows::AsIs)?;
        }
        EncArch::NomicBert => {
            c.put(&p("emb_ln.weight"), "token_embd_norm.weight", &[e], Rows::AsIs)?;
            c.put(&p("emb_ln.bias"), "token_embd_norm.bias", &[e], Rows::AsIs)?;
        }
    }
    for il in 0..cfg.n_layer {
        let gg = |t: &str| format!("blk.{il}.{t}");
        // (transformers name, GGUF name, shape, has a bias)
        let parts: Vec<(String, &str, [usize; 2], bool)> = match cfg.arch {
            EncArch::Bert => {
                let l = |t: &str| p(&format!("encoder.layer.{il}.{t}"));
                vec![
                    (l("attention.self.query"), "attn_q", [e, e], true),
                    (l("attention.self.key"), "attn_k", [e, e], true),
                    (l("attention.self.value"), "attn_v", [e, e], true),
                    (l("attention.output.dense"), "attn_output", [e, e], true),
                    (l("intermediate.dense"), "ffn_up", [ff, e], true),
                    (l("output.dense"), "ffn_down", [e, ff], true),
                ]
            }
            EncArch::NomicBert => {
                let l = |t: &str| p(&format!("encoder.layers.{il}.{t}"));
                vec![
                    (l("attn.Wqkv"), "attn_qkv", [3 * e, e], cfg.qkv_bias),
                    (l("attn.out_proj"), "attn_output", [e, e], cfg.qkv_bias),
                    (l("mlp.fc11"), "ffn_up", [ff, e], cfg.fc1_bias),
                    (l("mlp.fc12"), "ffn_gate", [ff, e], cfg.fc1_bias),
                    (l("mlp.fc2"), "ffn_down", [e, ff], cfg.fc2_bias),
                ]
            }
        };
        for (hf, g, shape, bias) in parts {
            c.put(&format!("{hf}.weight"), &gg(&format!("{g}.weight")), &shape, Rows::AsIs)?;
            if bias {
                c.put(&format!("{hf}.bias"), &gg(&format!("{g}.bias")), &shape[..1], Rows::AsIs)?;
            }
        }
        let norms = match cfg.arch {
            EncArch::Bert => [format!("encoder.layer.{il}.attention.output.LayerNorm"), format!("encoder.layer.{il}.output.LayerNorm")],
            EncArch::NomicBert => [format!("encoder.layers.{il}.norm1"), format!("encoder.layers.{il}.norm2")],
        };
        for (hf, g) in norms.iter().zip(["attn_output_norm", "layer_output_norm"]) {
            for wb in ["weight", "bias"] {
                c.put(&p(&format!("{hf}.{wb}")), &gg(&format!("{g}.{wb}")), &[e], Rows::AsIs)?;
            }
        }
    }
    c.finish(|n| {
        let n = n.strip_prefix(pre).unwrap_or(n);
        n == "embeddings.position_ids" || n.starts_with("pooler.")
    })
}
