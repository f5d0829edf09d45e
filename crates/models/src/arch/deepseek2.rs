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

use crate::blocks::ffn::GatedFfn;
use crate::blocks::mla::Mla;
use crate::blocks::moe::MoeFfn;
use crate::decoder::{Block, Decoder, Ffn, Head, Mixer};
use crate::error::ModelError;
use crate::hparams::{opt_bool, HParams, Meta, RopeMode};
use crate::weights::Loader;
use jikji_backend::{Activation, Backend, Gating, MlaShape, Routing, YarnRope};

/// llama.cpp's `get_mscale`: `1 + 0.1 · mscale · ln(scale)` for `scale > 1`, else 1.
fn get_mscale(scale: f32, mscale: f32) -> f32 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
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

pub fn load<B: Backend>(ld: &Loader<B>) -> Result<Decoder<B>, ModelError> {
    let arch = "deepseek2";
    let file = ld.file;
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
    let q_lora_key = m.opt_uint("attention.q_lora_rank")?.filter(|&r| r > 0);
    let dk = m.opt_uint("attention.key_length_mla")?.unwrap_or(hp.head_dim_k);
    let dv = m.opt_uint("attention.value_length_mla")?.unwrap_or(hp.head_dim_v);
    let n_rot = hp.n_rot;
    if kv_lora == 0 || dv == 0 || n_rot == 0 || dk <= n_rot {
        return Err(ModelError::BadHparams(format!(
            "MLA dims: kv_lora_rank={kv_lora}, key_length_mla={dk}, value_length_mla={dv}, rope dims={n_rot} \
             (need kv_lora_rank > 0, value dims > 0, 0 < rope dims < key dims)"
        )));
    }
    let n_embd = hp.n_embd;
    let n_dense_lead = m.opt_uint("leading_dense_block_count")?.unwrap_or(0).min(hp.n_layer);
    let has_moe = n_dense_lead < hp.n_layer;
    let gating_key = m.opt_uint("expert_gating_func")?;
    let routing = Routing {
        n_expert: m.opt_uint("expert_count")?.unwrap_or(0),
        n_used: m.opt_uint("expert_used_count")?.unwrap_or(0),
        n_groups: m.opt_uint("expert_group_count")?.unwrap_or(0),
        n_groups_used: m.opt_uint("expert_group_used_count")?.unwrap_or(0),
        gating: Gating::from_gguf(gating_key).ok_or_else(|| ModelError::Unsupported(format!("expert_gating_func {}", gating_key.unwrap_or(0))))?,
        norm_weights: opt_bool(file, &m.key("expert_weights_norm"))?.unwrap_or(false),
        weights_scale: m.f32("expert_weights_scale")?.unwrap_or(0.0),
    };
    let n_ff_exp = m.opt_uint("expert_feed_forward_length")?.unwrap_or(0);
    let n_shared = m.opt_uint("expert_shared_count")?.unwrap_or(0);
    if has_moe {
        routing.validate().map_err(ModelError::BadHparams)?;
        if n_ff_exp == 0 {
            return Err(ModelError::MissingKey(m.key("expert_feed_forward_length")));
        }
    }
    let (rope, kq_scale) = rope_and_scale(&hp, dk);
    let shape = MlaShape { n_head: hp.n_head, kv_lora, nope: dk - n_rot, rope: n_rot, dv, kq_scale, rms_eps: hp.rms_eps };

    let head = Head::load(ld, &hp)?;
    let mut blocks = Vec::with_capacity(hp.n_layer);
    for il in 0..hp.n_layer {
        let mixer = Mixer::Mla(Mla::load(ld, il, n_embd, shape, rope, q_lora_key)?);
        let ffn = if il < n_dense_lead {
            Ffn::Gated(GatedFfn::load(ld, il, "", hp.n_ff, n_embd, Activation::Silu)?)
        } else {
            Ffn::Moe(MoeFfn::load(ld, il, n_embd, routing, n_ff_exp, n_shared)?)
        };
        blocks.push(Block::pre_norm(ld, &hp, il, mixer, ffn)?);
    }
    let q_lora = blocks.first().and_then(|b| match &b.mixer {
        Mixer::Mla(m) => m.q_lora,
        Mixer::Attention(_) => None,
    });
    let bias = blocks.iter().any(|b| matches!(&b.ffn, Ffn::Moe(m) if m.experts.exp_probs_b.is_some()));
    let info = Info { shape, q_lora, n_dense_lead, n_ff_exp, n_shared, routing, bias };
    let details = info.details(&hp);
    let mut d = Decoder::new(ld.be, hp, head, blocks);
    d.cache_widths = (shape.cache_width(), 0);
    d.details = details;
    Ok(d)
}

/// What `jikji inspect` shows of a DeepSeek file.
struct Info {
    shape: MlaShape,
    q_lora: Option<usize>,
    n_dense_lead: usize,
    n_ff_exp: usize,
    n_shared: usize,
    routing: Routing,
    bias: bool,
}

impl Info {
    fn details(&self, hp: &HParams) -> Vec<(String, String)> {
        let s = &self.shape;
        let (latent, plain) = s.cache_bytes_per_token(hp.n_layer, 2);
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
        if self.n_dense_lead < hp.n_layer {
            let r = &self.routing;
            d.push(("experts".into(), format!("{} routed, {} used per token, {} shared, ffn {}", r.n_expert, r.n_used, self.n_shared, self.n_ff_exp)));
            d.push(("gating".into(), r.gating.name().to_string()));
            d.push(("expert groups".into(), if r.n_groups > 1 { format!("{} groups, best {} used", r.n_groups, r.n_groups_used) } else { "none".into() }));
            d.push(("expert weights".into(), format!("norm {}, scale {}", r.norm_weights, r.weights_scale)));
            d.push(("routing bias (exp_probs_b)".into(), self.bias.to_string()));
        }
        if let Some(y) = &hp.yarn {
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
}
