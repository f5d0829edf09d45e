//! Encoder (embedding) models: BERT-style bidirectional transformers whose per-token
//! outputs are pooled into one L2-normalised vector per sequence.
//!
//! Architectures (`general.architecture`), as llama.cpp's `bert.cpp` builds them:
//! - `bert` (all-MiniLM, bge): token + position (`position_embd`) + token-type-0 embeddings,
//!   embedding layer norm, then per layer (post-norm)
//!   `x = LN(x + O·attn(Q, K, V))`, `x = LN(x + down·GELU(up·x))`, every projection with
//!   its bias; separate `attn_q`/`attn_k`/`attn_v` or a fused `attn_qkv`.
//! - `nomic-bert` (nomic-embed-text-v1.5): no position table; rotary positions (NeoX
//!   halves, `rope.freq_base`) on Q and K; fused `attn_qkv` without biases; a SwiGLU FFN
//!   (`down · (silu(gate·x) ⊙ up·x)`).
//!
//! Tensors: `token_embd.weight` `[n_vocab, n_embd]`, `token_types.weight` `[2, n_embd]`
//! (row 0 added: every token is "sentence A"), `position_embd.weight` `[n_ctx, n_embd]`,
//! `token_embd_norm.{weight,bias}`, per layer `attn_qkv` `[3 n_embd, n_embd]` or
//! `attn_{q,k,v}` `[n_embd, n_embd]` (+ `.bias`), `attn_output` (+ bias),
//! `attn_output_norm.{weight,bias}`, `ffn_up` `[n_ff, n_embd]` (+ bias), `ffn_gate`
//! (nomic), `ffn_down` `[n_embd, n_ff]` (+ bias), `layer_output_norm.{weight,bias}`.
//!
//! Design choices:
//! - A batch is many sequences at once: all their rows go through every matmul together
//!   (weights stream once per batch), attention runs within each sequence (the backend's
//!   `attention_bidirectional`), positions restart at 0 per sequence. No KV cache: an
//!   encoder sees its whole input in one pass.
//! - A fused `attn_qkv` is loaded as three row slices of the same file tensor, so Q, K and
//!   V come out of one `matmul` call as separate activations (each output element is the
//!   same dot product as in the fused product).
//! - Pooling and normalisation run on the host over the downloaded last layer (`[n, n_embd]`
//!   is small); pooling is what the file declares (`pooling_type`).

mod params;

pub use params::{EncoderParams, Pooling};

use crate::error::ModelError;
use crate::weights::Loader;
use jikji_backend::{trace, AttnShape, Backend, CpuBackend, KvType, Rope, RopeMode, Step};
use jikji_gguf::GgufFile;
use std::sync::Arc;

/// The architectures this module loads.
pub const ARCHITECTURES: &[&str] = &["bert", "nomic-bert"];

/// A layer norm's weight and bias.
struct Norm<B: Backend> {
    w: B::Vector, // [n_embd]
    b: B::Vector, // [n_embd]
}

impl<B: Backend> Norm<B> {
    fn load(ld: &Loader<B>, name: &str, n: usize) -> Result<Self, ModelError> {
        Ok(Norm { w: ld.vector(&format!("{name}.weight"), n)?, b: ld.vector(&format!("{name}.bias"), n)? })
    }

    fn apply(&self, be: &B, x: &mut B::Act, eps: f32) -> Result<(), ModelError> {
        Ok(be.layer_norm_inplace(x, &self.w, &self.b, eps)?)
    }
}

/// A projection with an optional bias.
struct Linear<B: Backend> {
    w: B::Matrix,          // [out, in]
    b: Option<B::Vector>, // [out]
}

impl<B: Backend> Linear<B> {
    fn load(ld: &Loader<B>, name: &str, rows: usize, cols: usize) -> Result<Self, ModelError> {
        Ok(Linear { w: ld.matrix(&format!("{name}.weight"), rows, cols)?, b: opt_bias(ld, &format!("{name}.bias"), rows)? })
    }
}

fn opt_bias<B: Backend>(ld: &Loader<B>, name: &str, n: usize) -> Result<Option<B::Vector>, ModelError> {
    ld.vector_if(name, n, false)
}

/// Applies `ls` (all of input width) to `x`, one output each, biases added.
fn project<B: Backend>(be: &B, step: &Step<B>, ls: &[&Linear<B>], x: &B::Act) -> Result<Vec<B::Act>, ModelError> {
    let ws: Vec<&B::Matrix> = ls.iter().map(|l| &l.w).collect();
    let mut outs = be.matmul(step, &ws, x)?;
    for (o, l) in outs.iter_mut().zip(ls) {
        if let Some(b) = &l.b {
            be.add_row(o, b)?;
        }
    }
    Ok(outs)
}

struct Layer<B: Backend> {
    q: Linear<B>, // [n_embd, n_embd]
    k: Linear<B>, // [n_head_kv * head_dim, n_embd]
    v: Linear<B>, // [n_head_kv * head_dim, n_embd]
    o: Linear<B>, // [n_embd, n_embd]
    attn_out_norm: Norm<B>,
    up: Linear<B>,           // [n_ff, n_embd]
    gate: Option<Linear<B>>, // [n_ff, n_embd] (SwiGLU)
    down: Linear<B>,         // [n_embd, n_ff]
    layer_out_norm: Norm<B>,
}

/// An encoder on backend `B`.
pub struct Encoder<B: Backend> {
    be: B,
    p: EncoderParams,
    tok_embd: B::Matrix,         // [n_vocab, n_embd]
    type0: Option<B::Vector>,    // [n_embd]: token type 0
    pos_embd: Option<B::Matrix>, // [n_ctx_train, n_embd]
    tok_norm: Norm<B>,
    rope: Option<Rope>,
    layers: Vec<Layer<B>>,
}

impl<B: Backend> Encoder<B> {
    /// Validates every tensor of `file` (architecture `arch`) and loads it onto `be`.
    pub fn load(file: &Arc<GgufFile>, be: &B, arch: &str) -> Result<Self, ModelError> {
        let p = EncoderParams::from_gguf(file, arch)?;
        let ld = Loader::new(file, be);
        let (e, kv) = (p.n_embd, p.n_head_kv * p.head_dim());
        let type0 = match ld.has("token_types.weight") {
            true => {
                let info = file.tensor("token_types.weight").ok_or_else(|| ModelError::MissingTensor("token_types.weight".into()))?;
                let n_types = info.dims.get(1).copied().unwrap_or(1).max(1) as usize;
                let all = ld.matrix_ref("token_types.weight", n_types, e)?.dequantize()?;
                Some(be.load_vector(all[..e].to_vec())?)
            }
            false => None,
        };
        let (pos_embd, rope) = match arch {
            "bert" => (Some(ld.matrix("position_embd.weight", p.n_ctx_train, e)?), None),
            _ => (None, Some(Rope::Plain { mode: RopeMode::Neox, n_rot: p.n_rot, base: p.rope_base, freq_scale: 1.0, freq_factors: None })),
        };
        let mut layers = Vec::with_capacity(p.n_layer);
        for il in 0..p.n_layer {
            let name = |t: &str| format!("blk.{il}.{t}");
            let (q, k, v) = if ld.has(&name("attn_qkv.weight")) {
                let fused = ld.matrix_ref(&name("attn_qkv.weight"), e + 2 * kv, e)?;
                let bias = ld.opt_host_vector(&name("attn_qkv.bias"), e + 2 * kv)?;
                let part = |first: usize, rows: usize| -> Result<Linear<B>, ModelError> {
                    let w = ld.load(&Loader::<B>::row_slice(&fused, first, rows)?)?;
                    let b = match &bias {
                        Some(b) => Some(be.load_vector(b[first..first + rows].to_vec())?),
                        None => None,
                    };
                    Ok(Linear { w, b })
                };
                (part(0, e)?, part(e, kv)?, part(e + kv, kv)?)
            } else {
                (Linear::load(&ld, &name("attn_q"), e, e)?, Linear::load(&ld, &name("attn_k"), kv, e)?, Linear::load(&ld, &name("attn_v"), kv, e)?)
            };
            let gate = match arch {
                "nomic-bert" => Some(Linear::load(&ld, &name("ffn_gate"), p.n_ff, e)?),
                _ => None,
            };
            layers.push(Layer {
                q,
                k,
                v,
                o: Linear::load(&ld, &name("attn_output"), e, e)?,
                attn_out_norm: Norm::load(&ld, &name("attn_output_norm"), e)?,
                up: Linear::load(&ld, &name("ffn_up"), p.n_ff, e)?,
                gate,
                down: Linear::load(&ld, &name("ffn_down"), e, p.n_ff)?,
                layer_out_norm: Norm::load(&ld, &name("layer_output_norm"), e)?,
            });
        }
        Ok(Encoder {
            be: be.clone(),
            tok_embd: ld.matrix("token_embd.weight", p.n_vocab, e)?,
            type0,
            pos_embd,
            tok_norm: Norm::load(&ld, "token_embd_norm", e)?,
            rope,
            layers,
            p,
        })
    }

    /// The last layer's output of every row, `[Σ len, n_embd]`, for sequences the caller
    /// has checked (non-empty, ids in range, lengths within the context).
    fn hidden(&self, seqs: &[&[u32]]) -> Result<Vec<f32>, ModelError> {
        let (be, p) = (&self.be, &self.p);
        let tokens: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        let positions: Vec<usize> = seqs.iter().flat_map(|s| 0..s.len()).collect();
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        // The cache-less step: only its positions are read (rope); the matmuls take the
        // single-sequence orders.
        let mut none = be.new_cache(0, 0, 0, 0, KvType::F32)?;
        let step = Step { positions: positions.clone(), kv: jikji_backend::Kv::Contiguous { cache: &mut none, pos0: 0 } };
        let mut x = be.embed(&self.tok_embd, &tokens)?; // [n, n_embd]
        if let Some(t0) = &self.type0 {
            be.add_row(&mut x, t0)?;
        }
        if let Some(pe) = &self.pos_embd {
            let pos: Vec<u32> = positions.iter().map(|&q| q as u32).collect();
            be.add(&mut x, &be.embed(pe, &pos)?)?;
        }
        tr(be, "inp_embd", None, &x);
        self.tok_norm.apply(be, &mut x, p.eps)?;
        tr(be, "inp_norm", None, &x);
        let hd = p.head_dim();
        let shape = AttnShape { n_head: p.n_head, n_head_kv: p.n_head_kv, head_dim_k: hd, head_dim_v: hd, kq_scale: 1.0 / (hd as f32).sqrt(), window: None };
        for (il, l) in self.layers.iter().enumerate() {
            let mut qkv = project(be, &step, &[&l.q, &l.k, &l.v], &x)?.into_iter();
            let (Some(mut q), Some(mut k), Some(v)) = (qkv.next(), qkv.next(), qkv.next()) else {
                return Err(ModelError::BadRequest("projection count".into()));
            };
            if let Some(r) = &self.rope {
                be.rope(&step, &mut q, hd, r)?;
                be.rope(&step, &mut k, hd, r)?;
            }
            let ctx = be.attention_bidirectional(&shape, &q, &k, &v, &lens)?; // [n, n_embd]
            tr(be, "kqv_out", Some(il), &ctx);
            let mut a = project(be, &step, &[&l.o], &ctx)?.remove(0);
            be.add(&mut a, &x)?;
            l.attn_out_norm.apply(be, &mut a, p.eps)?;
            tr(be, "ffn_inp", Some(il), &a);
            let mut up = project(be, &step, &[&l.up], &a)?.remove(0); // [n, n_ff]
            match &l.gate {
                Some(g) => {
                    let mut gate = project(be, &step, &[g], &a)?.remove(0);
                    be.glu(&mut gate, &up, jikji_backend::Activation::Silu)?;
                    up = gate;
                }
                None => be.gelu_inplace(&mut up)?,
            }
            let mut f = project(be, &step, &[&l.down], &up)?.remove(0); // [n, n_embd]
            be.add(&mut f, &a)?;
            l.layer_out_norm.apply(be, &mut f, p.eps)?;
            tr(be, "l_out", Some(il), &f);
            x = f;
        }
        Ok(be.download(&x))
    }
}

fn tr<B: Backend>(be: &B, name: &str, layer: Option<usize>, x: &B::Act) {
    if trace::enabled() {
        trace::trace(name, layer, &be.download(x));
    }
}

/// An encoder with its backend erased.
pub trait EncoderNet: Send + Sync {
    fn params(&self) -> &EncoderParams;
    /// `[Σ len, n_embd]` last-layer rows of checked sequences.
    fn hidden(&self, seqs: &[&[u32]]) -> Result<Vec<f32>, ModelError>;
}

impl<B: Backend> EncoderNet for Encoder<B> {
    fn params(&self) -> &EncoderParams {
        &self.p
    }

    fn hidden(&self, seqs: &[&[u32]]) -> Result<Vec<f32>, ModelError> {
        Encoder::hidden(self, seqs)
    }
}

/// A loaded embedding model: the mapped file and its validated encoder.
pub struct EmbeddingModel {
    file: Arc<GgufFile>,
    net: Box<dyn EncoderNet>,
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingModel").field("params", self.net.params()).finish()
    }
}

/// Whether `file` holds an encoder architecture this crate loads.
pub fn is_encoder(file: &GgufFile) -> bool {
    matches!(file.get_str("general.architecture"), Ok(Some(a)) if ARCHITECTURES.contains(&a))
}

impl EmbeddingModel {
    /// Loads an encoder file on the CPU backend.
    pub fn load(file: Arc<GgufFile>) -> Result<Self, ModelError> {
        Self::load_on(file, CpuBackend)
    }

    /// Loads an encoder file onto `be`.
    pub fn load_on<B: Backend>(file: Arc<GgufFile>, be: B) -> Result<Self, ModelError> {
        let arch = file.get_str("general.architecture")?.ok_or(ModelError::NoArchitecture)?.to_string();
        if !ARCHITECTURES.contains(&arch.as_str()) {
            return Err(ModelError::UnknownArchitecture(arch, ARCHITECTURES.join(", ")));
        }
        let net: Box<dyn EncoderNet> = Box::new(Encoder::load(&file, &be, &arch)?);
        Ok(EmbeddingModel { file, net })
    }

    pub fn params(&self) -> &EncoderParams {
        self.net.params()
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// One L2-normalised, pooled vector (`n_embd` wide) per sequence, all sequences in
    /// one forward batch. Every sequence must be non-empty, of ids below `n_vocab` and at
    /// most `n_ctx_train` long.
    pub fn embed(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, ModelError> {
        let p = self.net.params();
        if seqs.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        for s in seqs {
            if s.is_empty() {
                return Err(ModelError::EmptyInput);
            }
            if let Some(&token) = s.iter().find(|&&t| t as usize >= p.n_vocab) {
                return Err(ModelError::TokenOutOfRange { token, n_vocab: p.n_vocab });
            }
            if s.len() > p.n_ctx_train {
                return Err(ModelError::ContextOverflow { needed: s.len(), n_ctx: p.n_ctx_train });
            }
        }
        let h = self.net.hidden(seqs)?; // [Σ len, n_embd]
        let e = p.n_embd;
        let mut out = Vec::with_capacity(seqs.len());
        let mut row = 0;
        for s in seqs {
            let rows = &h[row * e..(row + s.len()) * e];
            let mut v = match p.pooling {
                Pooling::Cls => rows[..e].to_vec(),
                Pooling::Last => rows[(s.len() - 1) * e..].to_vec(),
                Pooling::Mean => {
                    let mut acc = vec![0.0f64; e];
                    for r in rows.chunks_exact(e) {
                        acc.iter_mut().zip(r).for_each(|(a, &x)| *a += x as f64);
                    }
                    acc.iter().map(|&a| (a / s.len() as f64) as f32).collect()
                }
            };
            normalize(&mut v);
            out.push(v);
            row += s.len();
        }
        Ok(out)
    }
}

/// Scales `v` to unit L2 norm (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
    if norm > 0.0 {
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}
