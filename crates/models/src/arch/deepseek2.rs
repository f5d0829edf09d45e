//! DeepSeek V2 / V2-Lite / V3 / R1 (`deepseek2` in GGUF): multi-head latent attention
//! (`blocks::mla`) and a mixture of experts with shared experts (`blocks::moe`) after
//! `leading_dense_block_count` dense layers (DeepSeek-AI 2024, "DeepSeek-V2" and
//! "DeepSeek-V3 Technical Report"). Pre-norm decoder with RMS norms, SwiGLU FFNs.
//!
//! Decisions that differ from keying on the layer count (llama.cpp recognises V2-Lite by
//! 26/27 layers): the query path is chosen by the tensors present — `attn_q_a` present
//! means low rank (`attn_q_a`, `attn_q_a_norm`, `attn_q_b`), else `attn_q`; MLA key/value
//! up-projections are `attn_k_b` / `attn_v_b` or, in older files, the combined
//! `attn_kv_b`, split at load. Either way the model runs with the latent cache and absorbed
//! queries; there is no decompressed path.
//!
//! Rope: NORM (adjacent pairs) on the `n_rot` rope dims only; YaRN when
//! `rope.scaling.type = yarn`. The attention scale and rope magnitude follow llama.cpp
//! exactly: `mscale = (1 + 0.1·ln f)`-style factors computed from `rope.scaling.factor` and
//! `yarn_log_multiplier` (stored as `0.1 · mscale_all_dim`), `kq_scale = mscale² /
//! sqrt(key_length_mla)`, and the rope's own magnitude factor cancels to
//! `get_mscale(f, mscale) / get_mscale(f, mscale_all_dim)`.
//!
//! GGUF keys (prefix `deepseek2.`): the common ones of `hparams.rs`, plus
//! `attention.kv_lora_rank` (required), `attention.q_lora_rank` (informational),
//! `attention.key_length_mla` / `attention.value_length_mla` (per-head q/k and v widths;
//! default `key_length` / `value_length` for files written before MLA caching),
//! `leading_dense_block_count`, `expert_count`, `expert_used_count`,
//! `expert_feed_forward_length`, `expert_shared_count`, `expert_gating_func` (1 softmax,
//! 2 sigmoid; absent = softmax), `expert_weights_norm`, `expert_weights_scale`,
//! `expert_group_count`, `expert_group_used_count`, `nextn_predict_layers` (trailing
//! multi-token-prediction blocks, not run), and the YaRN keys.
//! Tensors: `token_embd`, `output_norm`, optional `output`; per layer `attn_norm`,
//! `attn_q` | `attn_q_a` + `attn_q_a_norm` + `attn_q_b`, `attn_kv_a_mqa`,
//! `attn_kv_a_norm`, `attn_k_b` + `attn_v_b` | `attn_kv_b`, `attn_output`, `ffn_norm`;
//! dense layers `ffn_{gate,up,down}`; MoE layers `ffn_gate_inp`, optional
//! `exp_probs_b.bias`, `ffn_{gate,up,down}_exps`, optional `ffn_{gate,up,down}_shexp`.

use super::Architecture;
use crate::blocks::ffn::{Activation, GatedFfn};
use crate::blocks::layer::{embed, output_head, select_rows};
use crate::blocks::mla::{self, KAbsorb, MlaShape, MlaWeights, QProj};
use crate::blocks::moe::{Expert, Gating, MoeFfn, Routing};
use crate::blocks::rope::YarnRope;
use crate::error::ModelError;
use crate::hparams::{HParams, Meta, RopeMode};
use crate::kv_cache::KvView;
use crate::trace::trace;
use crate::weights::{Loader, Matrix};
use jikji_gguf::{GgufFile, Value};
use jikji_kernels::ops::{rms_norm_weighted, rms_norm_weighted_inplace};

enum Ffn {
    Dense(GatedFfn),
    Moe(MoeFfn),
}

struct Layer {
    attn_norm: Vec<f32>, // [n_embd]
    attn: MlaWeights,
    ffn_norm: Vec<f32>, // [n_embd]
    ffn: Ffn,
}

pub struct DeepSeek2 {
    hp: HParams,
    shape: MlaShape,
    rope: YarnRope,
    q_lora: Option<usize>,
    n_dense_lead: usize,
    n_ff_exp: usize,
    n_shared: usize,
    routing: Routing,
    tok_embd: Matrix,      // [n_vocab, n_embd]
    output_norm: Vec<f32>, // [n_embd]
    output: Matrix,        // [n_vocab, n_embd]
    tied: bool,
    layers: Vec<Layer>,
}

/// llama.cpp's `get_mscale`: `1 + 0.1 · mscale · ln(scale)` for `scale > 1`, else 1.
fn get_mscale(scale: f32, mscale: f32) -> f32 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

fn opt_bool(file: &GgufFile, key: &str) -> Result<Option<bool>, ModelError> {
    match file.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ModelError::BadHparams(format!("`{key}` must be a boolean"))),
    }
}

/// Rope and attention scale as llama.cpp derives them for `deepseek2`.
fn rope_and_scale(hp: &HParams, dk: usize) -> (YarnRope, f32) {
    let freq_scale = hp.rope_freq_scale;
    let (ext_factor, mut attn_factor, log_mul, corr_dims, orig) = match hp.yarn {
        Some(y) => {
            let factor = 1.0 / freq_scale;
            // The converter stores 0.1 · mscale_all_dim; llama.cpp divides it back.
            let log_mul = y.log_mul / 0.1;
            let af = if y.log_mul != 0.0 {
                let mscale_all = log_mul;
                let mscale = if mscale_all != 1.0 { mscale_all } else { 1.0 };
                get_mscale(factor, mscale) / get_mscale(factor, mscale_all)
            } else {
                get_mscale(factor, 1.0)
            };
            let af = af * (1.0 / (1.0 + 0.1 * factor.ln()));
            let corr = YarnRope::corr_dims(hp.n_rot, y.orig_ctx, hp.rope_base, y.beta_fast, y.beta_slow);
            (1.0, af * y.attn_factor, log_mul, corr, y.orig_ctx)
        }
        None => (0.0, 1.0, 0.0, [0.0, 0.0], hp.n_ctx_train),
    };
    let _ = orig;
    if !attn_factor.is_finite() {
        attn_factor = 1.0;
    }
    let attn_factor_org = attn_factor * (1.0 + 0.1 * (1.0 / freq_scale).ln());
    let mscale = attn_factor_org * (1.0 + 0.1 * log_mul * (1.0 / freq_scale).ln());
    let kq_scale = mscale * mscale / (dk as f32).sqrt();
    let rope = YarnRope {
        mode: RopeMode::Norm,
        n_rot: hp.n_rot,
        base: hp.rope_base,
        freq_scale,
        ext_factor,
        mscale: attn_factor,
        corr_dims,
    };
    (rope, kq_scale)
}

pub fn load(file: &GgufFile) -> Result<Box<dyn Architecture>, ModelError> {
    let arch = "deepseek2";
    let mut hp = HParams::from_gguf(file, arch)?;
    let m = Meta { file, arch };
    // Multi-token-prediction blocks (`nextn_predict_layers`) follow the trunk in
    // `block_count`; they are not part of the next-token forward pass.
    let nextn = m.opt_uint("nextn_predict_layers")?.unwrap_or(0);
    if nextn >= hp.n_layer {
        return Err(ModelError::BadHparams(format!("nextn_predict_layers {nextn} leaves no trunk of {} blocks", hp.n_layer)));
    }
    hp.n_layer -= nextn;
    let kv_lora = m.req_uint("attention.kv_lora_rank")?;
    let q_lora = m.opt_uint("attention.q_lora_rank")?.filter(|&r| r > 0);
    let dk = m.opt_uint("attention.key_length_mla")?.unwrap_or(hp.head_dim_k);
    let dv = m.opt_uint("attention.value_length_mla")?.unwrap_or(hp.head_dim_v);
    let n_rot = hp.n_rot;
    if kv_lora == 0 || dv == 0 || n_rot == 0 || dk <= n_rot {
        return Err(ModelError::BadHparams(format!(
            "MLA dims: kv_lora_rank={kv_lora}, key_length_mla={dk}, value_length_mla={dv}, rope dims={n_rot} \
             (need kv_lora_rank > 0, value dims > 0, 0 < rope dims < key dims)"
        )));
    }
    let nope = dk - n_rot;
    let n_head = hp.n_head;
    let n_embd = hp.n_embd;
    let n_dense_lead = m.opt_uint("leading_dense_block_count")?.unwrap_or(0).min(hp.n_layer);
    let has_moe = n_dense_lead < hp.n_layer;
    let routing = Routing {
        n_expert: m.opt_uint("expert_count")?.unwrap_or(0),
        n_used: m.opt_uint("expert_used_count")?.unwrap_or(0),
        n_groups: m.opt_uint("expert_group_count")?.unwrap_or(0),
        n_groups_used: m.opt_uint("expert_group_used_count")?.unwrap_or(0),
        gating: Gating::from_gguf(m.opt_uint("expert_gating_func")?)?,
        norm_weights: opt_bool(file, &m.key("expert_weights_norm"))?.unwrap_or(false),
        weights_scale: m.f32("expert_weights_scale")?.unwrap_or(0.0),
    };
    let n_ff_exp = m.opt_uint("expert_feed_forward_length")?.unwrap_or(0);
    let n_shared = m.opt_uint("expert_shared_count")?.unwrap_or(0);
    if has_moe {
        routing.validate()?;
        if n_ff_exp == 0 {
            return Err(ModelError::MissingKey(m.key("expert_feed_forward_length")));
        }
    }
    let (rope, kq_scale) = rope_and_scale(&hp, dk);
    let shape = MlaShape { n_head, kv_lora, nope, rope: n_rot, dv, kq_scale, rms_eps: hp.rms_eps };

    let ld = Loader::new(file);
    let tok_embd = ld.matrix("token_embd.weight", hp.n_vocab, n_embd)?;
    let output_norm = ld.vector("output_norm.weight", n_embd)?;
    let (output, tied) = match ld.opt_matrix("output.weight", hp.n_vocab, n_embd)? {
        Some(mat) => (mat, false),
        None => (tok_embd.clone(), true),
    };
    let mut layers = Vec::with_capacity(hp.n_layer);
    for il in 0..hp.n_layer {
        let n = |s: &str| format!("blk.{il}.{s}");
        let q = if ld.has(&n("attn_q_a.weight")) {
            // The rank comes from the tensor; a `q_lora_rank` key must agree with it.
            let rank = file.tensor(&n("attn_q_a.weight")).and_then(|t| t.dims.get(1).copied()).unwrap_or(0);
            let rank = usize::try_from(rank).unwrap_or(0);
            if rank == 0 || q_lora.is_some_and(|r| r != rank) {
                return Err(ModelError::BadHparams(format!(
                    "blk.{il}.attn_q_a.weight has rank {rank}, q_lora_rank key says {q_lora:?}"
                )));
            }
            let a = ld.matrix(&n("attn_q_a.weight"), rank, n_embd)?;
            let rank = a.rows;
            QProj::LowRank {
                a,
                a_norm: ld.vector(&n("attn_q_a_norm.weight"), rank)?,
                b: ld.matrix(&n("attn_q_b.weight"), n_head * dk, rank)?,
            }
        } else {
            QProj::Direct(ld.matrix(&n("attn_q.weight"), n_head * dk, n_embd)?)
        };
        let (k_absorb, v_b) = if ld.has(&n("attn_k_b.weight")) {
            (
                KAbsorb::PerHead(ld.stacked(&n("attn_k_b.weight"), n_head, kv_lora, nope)?),
                ld.stacked(&n("attn_v_b.weight"), n_head, dv, kv_lora)?,
            )
        } else {
            let kv_b = ld.matrix(&n("attn_kv_b.weight"), n_head * (nope + dv), kv_lora)?;
            let mut kt = Vec::with_capacity(n_head);
            let mut vb = Vec::with_capacity(n_head);
            for h in 0..n_head {
                let first = h * (nope + dv);
                // Key rows [nope, kv_lora] in f32 (applied transposed); value rows stay in
                // the file as a row slice.
                kt.push(ld.dequantized(&Loader::row_slice(&kv_b, first, nope)?)?);
                vb.push(Loader::row_slice(&kv_b, first + nope, dv)?);
            }
            (KAbsorb::Transposed(kt), vb)
        };
        let attn = MlaWeights {
            q,
            kv_a: ld.matrix(&n("attn_kv_a_mqa.weight"), kv_lora + n_rot, n_embd)?,
            kv_a_norm: ld.vector(&n("attn_kv_a_norm.weight"), kv_lora)?,
            k_absorb,
            v_b,
            wo: ld.matrix(&n("attn_output.weight"), n_embd, n_head * dv)?,
        };
        let ffn = if il < n_dense_lead {
            Ffn::Dense(GatedFfn {
                gate: ld.matrix(&n("ffn_gate.weight"), hp.n_ff, n_embd)?,
                up: ld.matrix(&n("ffn_up.weight"), hp.n_ff, n_embd)?,
                down: ld.matrix(&n("ffn_down.weight"), n_embd, hp.n_ff)?,
                act: Activation::Silu,
            })
        } else {
            let ne = routing.n_expert;
            let gates = ld.stacked(&n("ffn_gate_exps.weight"), ne, n_ff_exp, n_embd)?;
            let ups = ld.stacked(&n("ffn_up_exps.weight"), ne, n_ff_exp, n_embd)?;
            let downs = ld.stacked(&n("ffn_down_exps.weight"), ne, n_embd, n_ff_exp)?;
            let experts = gates
                .into_iter()
                .zip(ups)
                .zip(downs)
                .map(|((gate, up), down)| Expert { gate, up, down })
                .collect();
            let shared = if n_shared > 0 {
                let w = n_ff_exp * n_shared;
                Some(GatedFfn {
                    gate: ld.matrix(&n("ffn_gate_shexp.weight"), w, n_embd)?,
                    up: ld.matrix(&n("ffn_up_shexp.weight"), w, n_embd)?,
                    down: ld.matrix(&n("ffn_down_shexp.weight"), n_embd, w)?,
                    act: Activation::Silu,
                })
            } else {
                None
            };
            Ffn::Moe(MoeFfn {
                routing,
                gate_inp: ld.matrix(&n("ffn_gate_inp.weight"), ne, n_embd)?,
                exp_probs_b: ld.opt_vector(&n("exp_probs_b.bias"), ne)?,
                experts,
                shared,
            })
        };
        layers.push(Layer {
            attn_norm: ld.vector(&n("attn_norm.weight"), n_embd)?,
            attn,
            ffn_norm: ld.vector(&n("ffn_norm.weight"), n_embd)?,
            ffn,
        });
    }
    let q_lora = layers.first().and_then(|l| match &l.attn.q {
        QProj::LowRank { a, .. } => Some(a.rows),
        QProj::Direct(_) => None,
    });
    Ok(Box::new(DeepSeek2 {
        hp,
        shape,
        rope,
        q_lora,
        n_dense_lead,
        n_ff_exp,
        n_shared,
        routing,
        tok_embd,
        output_norm,
        output,
        tied,
        layers,
    }))
}

impl DeepSeek2 {
    /// KV-cache bytes per token with the latent cache and with a plain multi-head cache
    /// of the same model, for f16 elements.
    pub fn cache_bytes_per_token_f16(&self) -> (usize, usize) {
        mla::cache_bytes_per_token(&self.shape, self.hp.n_layer, 2)
    }
}

impl Architecture for DeepSeek2 {
    fn hparams(&self) -> &HParams {
        &self.hp
    }

    fn tied_output(&self) -> bool {
        self.tied
    }

    fn cache_widths(&self) -> (usize, usize) {
        (self.shape.cache_width(), 0)
    }

    fn details(&self) -> Vec<(String, String)> {
        let s = &self.shape;
        let (latent, plain) = self.cache_bytes_per_token_f16();
        let mut d = vec![
            ("attention".to_string(), "multi-head latent attention (latent cache, absorbed q/v)".to_string()),
            ("q projection".into(), match self.q_lora {
                Some(r) => format!("low rank, q_lora_rank {r}"),
                None => "direct (attn_q)".into(),
            }),
            ("kv_lora_rank".into(), s.kv_lora.to_string()),
            ("head dims".into(), format!("q/k {} (nope {} + rope {}), v {}", s.dk(), s.nope, s.rope, s.dv)),
            ("kq_scale".into(), format!("{:.6}", s.kq_scale)),
            (
                "KV cache / token (f16)".into(),
                format!("{latent} B latent vs {plain} B as plain multi-head ({:.1}x smaller)", plain as f64 / latent.max(1) as f64),
            ),
            ("dense leading layers".into(), self.n_dense_lead.to_string()),
        ];
        if self.n_dense_lead < self.hp.n_layer {
            let r = &self.routing;
            d.push(("experts".into(), format!("{} routed, {} used per token, {} shared, ffn {}", r.n_expert, r.n_used, self.n_shared, self.n_ff_exp)));
            d.push(("gating".into(), r.gating.name().to_string()));
            d.push(("expert groups".into(), if r.n_groups > 1 { format!("{} groups, best {} used", r.n_groups, r.n_groups_used) } else { "none".into() }));
            d.push(("expert weights".into(), format!("norm {}, scale {}", r.norm_weights, r.weights_scale)));
            let bias = self.layers.iter().any(|l| matches!(&l.ffn, Ffn::Moe(m) if m.exp_probs_b.is_some()));
            d.push(("routing bias (exp_probs_b)".into(), bias.to_string()));
        }
        if let Some(y) = &self.hp.yarn {
            d.push((
                "rope scaling".into(),
                format!(
                    "YaRN factor {}, original context {}, beta fast {} / slow {}, mscale_all_dim {}",
                    y.factor,
                    y.orig_ctx,
                    y.beta_fast,
                    y.beta_slow,
                    y.log_mul / 0.1
                ),
            ));
        }
        d
    }

    fn forward(&self, file: &GgufFile, tokens: &[u32], kv: &mut KvView, out_rows: &[usize]) -> Result<Vec<f32>, ModelError> {
        let hp = &self.hp;
        let (n, n_embd) = (tokens.len(), hp.n_embd);
        let positions = kv.positions(n);
        let inv = kv.batch_invariant();
        let ctx_w = self.shape.n_head * self.shape.dv;
        let mut x = embed(file, &self.tok_embd, tokens)?; // [n, n_embd]
        trace("inp_embd", None, &x);
        let mut rows = n;
        let mut h = vec![0.0f32; n * n_embd]; // [rows, n_embd]
        for (il, l) in self.layers.iter().enumerate() {
            rms_norm_weighted(&x, &l.attn_norm, hp.rms_eps, &mut h[..rows * n_embd])?;
            trace("attn_norm", Some(il), &h[..rows * n_embd]);
            let mut ctx = l.attn.context(file, &self.shape, &self.rope, &h, &positions, kv, il)?;
            if il + 1 == self.layers.len() {
                ctx = select_rows(&ctx, ctx_w, out_rows);
                x = select_rows(&x, n_embd, out_rows);
                rows = out_rows.len();
                h.truncate(rows * n_embd);
            }
            let attn_out = l.attn.project_out(file, &ctx, rows, inv)?;
            x.iter_mut().zip(&attn_out).for_each(|(a, b)| *a += b);
            trace("ffn_inp", Some(il), &x);
            h.copy_from_slice(&x);
            rms_norm_weighted_inplace(&mut h, &l.ffn_norm, hp.rms_eps)?;
            trace("ffn_norm", Some(il), &h);
            let mut f = vec![0.0f32; rows * n_embd];
            match &l.ffn {
                Ffn::Dense(d) => d.forward(file, &h, rows, &mut f, inv)?,
                Ffn::Moe(m) => m.forward(file, &h, rows, &mut f, inv)?,
            }
            trace("ffn_out", Some(il), &f);
            x.iter_mut().zip(&f).for_each(|(a, b)| *a += b);
            trace("l_out", Some(il), &x);
        }
        output_head(file, x, rows, &self.output_norm, hp.rms_eps, &self.output)
    }
}
