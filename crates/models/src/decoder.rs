//! The one decoder: a token embedding, a stack of [`Block`]s and an output head, run by a
//! single forward loop over a [`Backend`] — every architecture of this crate is an
//! instance of it, as llama.cpp's per-model graphs are made of its shared builders.
//!
//! A block is
//! ```text
//! x ─► [attn_norm] ─► mixer (attention | MLA) ─► wo ─► [post_attn_norm] ─► + x
//!   ─► [ffn_norm] ─► ffn (gated | MoE) ─► [post_ffn_norm] ─► + x
//! ```
//! with every bracketed norm optional (pre-norm llama, Gemma 3's pre- and post-norms,
//! EXAONE 4's post-norms only). Only the requested rows (`out_rows`, llama.cpp's
//! `inp_out_ids`) go on after the last layer's attention, through its output projection,
//! FFN and the vocabulary head.
//!
//! Named intermediates (`trace` points, read back from the backend only while
//! `JIKJI_TRACE` is set): `inp_embd` (or `inp_scaled`), per layer `attn_norm`,
//! `Qcur`/`Kcur`/`Vcur`, `Qcur_normed`/`Kcur_normed`, `Qcur_rope`/`Kcur_rope`, `kqv_out`,
//! `attn_post_norm`, `ffn_inp`, `ffn_norm`, `ffn_act`, `ffn_out` (or `ffn_post_norm`),
//! `l_out`, then `result_norm`, `result_output`.

use crate::blocks::attention::Attention;
use crate::blocks::ffn::GatedFfn;
use crate::blocks::mla::Mla;
use crate::blocks::moe::MoeFfn;
use crate::error::ModelError;
use crate::hparams::HParams;
use crate::trace;
use crate::weights::Loader;
use jikji_backend::{Backend, Step};

/// Traces `x` under `name` when tracing is on (a host copy only then).
pub(crate) fn tr<B: Backend>(be: &B, name: &str, layer: Option<usize>, x: &B::Act) {
    if trace::enabled() {
        trace::trace(name, layer, &be.download(x));
    }
}

/// `x` normalised by `w` into `slot` (traced as `name`), or `x` itself without a norm.
fn pre_norm<'a, B: Backend>(be: &B, x: &'a B::Act, w: Option<&B::Vector>, eps: f32, (name, il): (&str, usize), slot: &'a mut Option<B::Act>) -> Result<&'a B::Act, ModelError> {
    let Some(w) = w else { return Ok(x) };
    let h = slot.insert(be.rms_norm(x, w, eps)?);
    tr(be, name, Some(il), h);
    Ok(h)
}

/// The token mixer of a block.
pub enum Mixer<B: Backend> {
    Attention(Attention<B>),
    Mla(Mla<B>),
}

impl<B: Backend> Mixer<B> {
    fn context(&self, be: &B, step: &mut Step<B>, il: usize, x: &B::Act) -> Result<B::Act, ModelError> {
        match self {
            Mixer::Attention(a) => a.context(be, step, il, x),
            Mixer::Mla(m) => m.context(be, step, il, x),
        }
    }

    fn wo(&self) -> &B::Matrix {
        match self {
            Mixer::Attention(a) => &a.wo,
            Mixer::Mla(m) => &m.wo,
        }
    }
}

/// The feed-forward part of a block.
pub enum Ffn<B: Backend> {
    Gated(GatedFfn<B>),
    Moe(MoeFfn<B>),
}

impl<B: Backend> Ffn<B> {
    fn forward(&self, be: &B, step: &Step<B>, x: &B::Act) -> Result<B::Act, ModelError> {
        match self {
            Ffn::Gated(f) => f.forward(be, step, x),
            Ffn::Moe(m) => m.forward(be, step, x),
        }
    }
}

/// One decoder block (see the module docs for the data flow).
pub struct Block<B: Backend> {
    pub attn_norm: Option<B::Vector>, // [n_embd]
    pub mixer: Mixer<B>,
    pub post_attn_norm: Option<B::Vector>, // [n_embd]
    pub ffn_norm: Option<B::Vector>,       // [n_embd]
    pub ffn: Ffn<B>,
    pub post_ffn_norm: Option<B::Vector>, // [n_embd]
}

fn norm<B: Backend>(ld: &Loader<B>, il: usize, name: &str, n_embd: usize) -> Result<Option<B::Vector>, ModelError> {
    ld.vector(&format!("blk.{il}.{name}.weight"), n_embd).map(Some)
}

impl<B: Backend> Block<B> {
    /// Pre-norm block (llama, qwen, EXAONE 3.5, DeepSeek): `attn_norm`, `ffn_norm`.
    pub fn pre_norm(ld: &Loader<B>, hp: &HParams, il: usize, mixer: Mixer<B>, ffn: Ffn<B>) -> Result<Self, ModelError> {
        Ok(Block {
            attn_norm: norm(ld, il, "attn_norm", hp.n_embd)?,
            mixer,
            post_attn_norm: None,
            ffn_norm: norm(ld, il, "ffn_norm", hp.n_embd)?,
            ffn,
            post_ffn_norm: None,
        })
    }

    /// Pre- and post-norm block (Gemma 3): `attn_norm`, `post_attention_norm`,
    /// `ffn_norm`, `post_ffw_norm`.
    pub fn sandwich(ld: &Loader<B>, hp: &HParams, il: usize, mixer: Mixer<B>, ffn: Ffn<B>) -> Result<Self, ModelError> {
        Ok(Block {
            post_attn_norm: norm(ld, il, "post_attention_norm", hp.n_embd)?,
            post_ffn_norm: norm(ld, il, "post_ffw_norm", hp.n_embd)?,
            ..Self::pre_norm(ld, hp, il, mixer, ffn)?
        })
    }

    /// Post-norm-only block (EXAONE 4): `post_attention_norm`, `post_ffw_norm`.
    pub fn post_norm(ld: &Loader<B>, hp: &HParams, il: usize, mixer: Mixer<B>, ffn: Ffn<B>) -> Result<Self, ModelError> {
        Ok(Block {
            attn_norm: None,
            mixer,
            post_attn_norm: norm(ld, il, "post_attention_norm", hp.n_embd)?,
            ffn_norm: None,
            ffn,
            post_ffn_norm: norm(ld, il, "post_ffw_norm", hp.n_embd)?,
        })
    }
}

/// Token embedding and output head: `token_embd`, `output_norm`, and `output` (absent =
/// tied to the embedding).
pub struct Head<B: Backend> {
    pub tok_embd: B::Matrix,      // [n_vocab, n_embd]
    pub output_norm: B::Vector,   // [n_embd]
    pub output: Option<B::Matrix>, // [n_vocab, n_embd]; None = tied
}

impl<B: Backend> Head<B> {
    pub fn load(ld: &Loader<B>, hp: &HParams) -> Result<Self, ModelError> {
        Ok(Head {
            tok_embd: ld.matrix("token_embd.weight", hp.n_vocab, hp.n_embd)?,
            output_norm: ld.vector("output_norm.weight", hp.n_embd)?,
            output: ld.opt_matrix("output.weight", hp.n_vocab, hp.n_embd)?,
        })
    }
}

/// A decoder on backend `B`.
pub struct Decoder<B: Backend> {
    pub be: B,
    pub hp: HParams,
    pub head: Head<B>,
    /// Multiplies the embeddings (Gemma: `sqrt(n_embd)`).
    pub embed_scale: Option<f32>,
    pub blocks: Vec<Block<B>>,
    /// Values per token per layer the cache stores for keys and for values.
    pub cache_widths: (usize, usize),
    /// Architecture-specific lines for `jikji inspect`.
    pub details: Vec<(String, String)>,
}

impl<B: Backend> Decoder<B> {
    /// A decoder with plain attention's cache widths (`n_head_kv` key and value heads per
    /// token) and no details.
    pub fn new(be: &B, hp: HParams, head: Head<B>, blocks: Vec<Block<B>>) -> Self {
        let cache_widths = (hp.n_embd_k_gqa(), hp.n_embd_v_gqa());
        Decoder { be: be.clone(), hp, head, embed_scale: None, blocks, cache_widths, details: Vec::new() }
    }

    /// Runs `tokens` at the step's positions (the caller has checked ids, capacity and
    /// the cache), writing their keys/values, and returns the logits of the batch rows
    /// `out_rows` (ascending), `[out_rows.len(), n_vocab]`.
    pub fn forward(&self, step: &mut Step<B>, tokens: &[u32], out_rows: &[usize]) -> Result<Vec<f32>, ModelError> {
        let (be, eps) = (&self.be, self.hp.rms_eps);
        let mut x = be.embed(&self.head.tok_embd, tokens)?; // [n, n_embd]
        match self.embed_scale {
            Some(s) => {
                be.scale(&mut x, s)?;
                tr(be, "inp_scaled", None, &x);
            }
            None => tr(be, "inp_embd", None, &x),
        }
        if self.blocks.is_empty() {
            x = be.select_rows(&x, out_rows)?;
        }
        let last = self.blocks.len().saturating_sub(1);
        for (il, b) in self.blocks.iter().enumerate() {
            let mut normed = None;
            let h = pre_norm(be, &x, b.attn_norm.as_ref(), eps, ("attn_norm", il), &mut normed)?;
            let mut ctx = b.mixer.context(be, step, il, h)?; // [n, n_head * head_dim_v]
            if il == last {
                // Only the requested rows go on (llama.cpp's `inp_out_ids`).
                ctx = be.select_rows(&ctx, out_rows)?;
                x = be.select_rows(&x, out_rows)?;
            }
            let mut a = be.matmul(step, &[b.mixer.wo()], &ctx)?.pop().ok_or_else(|| ModelError::BadRequest("projection count".into()))?;
            if let Some(w) = &b.post_attn_norm {
                be.rms_norm_inplace(&mut a, w, eps)?;
                tr(be, "attn_post_norm", Some(il), &a);
            }
            be.add(&mut x, &a)?;
            tr(be, "ffn_inp", Some(il), &x);
            let mut normed = None;
            let h = pre_norm(be, &x, b.ffn_norm.as_ref(), eps, ("ffn_norm", il), &mut normed)?;
            let mut f = b.ffn.forward(be, step, h)?;
            match &b.post_ffn_norm {
                Some(w) => {
                    be.rms_norm_inplace(&mut f, w, eps)?;
                    tr(be, "ffn_post_norm", Some(il), &f);
                }
                None => tr(be, "ffn_out", Some(il), &f),
            }
            be.add(&mut x, &f)?;
            tr(be, "l_out", Some(il), &x);
        }
        be.rms_norm_inplace(&mut x, &self.head.output_norm, eps)?;
        tr(be, "result_norm", None, &x);
        let logits = be.project_vocab(self.head.output.as_ref().unwrap_or(&self.head.tok_embd), &x)?; // [rows, n_vocab]
        tr(be, "result_output", None, &logits);
        Ok(be.download(&logits))
    }
}
