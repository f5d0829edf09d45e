//! The tiny random-weight DeepSeek (MLA + MoE) and EXAONE 4 models
//! (`tests/fixtures/tiny/{deepseek_v3,deepseek_v2,exaone4}-1.gguf`) against transformers'
//! logits and both references' greedy continuations. The deepseek files run through the
//! latent cache with absorbed queries (the only MLA path jikji has).

mod common;

use common::{argmax, check_against_references, greedy, load_model};
use jikji_models::{BatchSeq, Model};
use jikji_testkit::max_abs_diff;
use jikji_testkit::tiny::TinyReference;

/// Max |Δ| allowed against transformers (the two references agree to 0.011).
const TOL: f32 = 2e-2;

/// Greedy continuation with the prompt fed one token at a time (no batched prefill).
fn greedy_token_by_token(model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = model.new_cache(prompt.len() + n + 1).expect("cache");
    let mut logits = Vec::new();
    for &t in prompt {
        logits = model.forward(&[t], &mut cache, false).expect("forward");
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let next = argmax(&logits);
        out.push(next);
        logits = model.forward(&[next], &mut cache, false).expect("forward");
    }
    out
}

fn batched_matches_single(name: &str) {
    let r = TinyReference::load(name);
    let model = load_model(&r.gguf_path());
    for p in &r.prompts {
        // A longer prompt than the fixtures', so MoE batches route many rows per expert.
        let mut ids = p.ids.clone();
        ids.extend_from_slice(&p.transformers.greedy[..8]);
        assert_eq!(
            greedy(&model, &ids, 12),
            greedy_token_by_token(&model, &ids, 12),
            "{name} `{}`: batched prefill and token-by-token decoding disagree",
            p.text
        );
    }
}

#[test]
fn tiny_deepseek_v3_matches_transformers_logits_and_both_greedy() {
    check_against_references("deepseek_v3-1", TOL);
}

#[test]
fn tiny_deepseek_v2_lite_matches_transformers_logits_and_both_greedy() {
    check_against_references("deepseek_v2-1", TOL);
}

#[test]
fn tiny_exaone4_matches_transformers_logits_and_both_greedy() {
    check_against_references("exaone4-1", TOL);
}

/// Qwen3-MoE (Qwen3-30B-A3B's shape, tiny): QK-norm attention, 8 experts top-2 with
/// softmax routing and renormalised weights in every layer, no shared expert.
#[test]
fn tiny_qwen3moe_matches_transformers_logits_and_both_greedy() {
    check_against_references("qwen3moe-1", TOL);
}

#[test]
fn deepseek_exaone4_and_qwen3moe_batched_prefill_gives_the_same_tokens_as_one_at_a_time() {
    for name in ["deepseek_v3-1", "deepseek_v2-1", "exaone4-1", "qwen3moe-1"] {
        batched_matches_single(name);
    }
}

/// Greedy continuation through `Model::forward_batch` on a paged pool (the serving path),
/// with this prompt batched next to another sequence.
fn greedy_paged(model: &Model, prompt: &[u32], other: &[u32], n: usize) -> Vec<u32> {
    const BS: usize = 4;
    let mut kv = model.new_paged_kv(64, BS).expect("pool");
    let mine: Vec<u32> = (0..32).collect();
    let theirs: Vec<u32> = (32..64).collect();
    let mut out = Vec::new();
    let (mut pos, mut feed) = (0usize, prompt.to_vec());
    let (mut opos, mut ofeed) = (0usize, other.to_vec());
    for _ in 0..n {
        let batch = [
            BatchSeq { tokens: &ofeed, pos0: opos, blocks: &theirs, logits: true },
            BatchSeq { tokens: &feed, pos0: pos, blocks: &mine, logits: true },
        ];
        let logits = model.forward_batch(&batch, &mut kv).expect("forward_batch");
        let n_vocab = model.info().n_vocab;
        let next = argmax(&logits[n_vocab..]);
        let onext = argmax(&logits[..n_vocab]);
        pos += feed.len();
        opos += ofeed.len();
        out.push(next);
        feed = vec![next];
        ofeed = vec![onext];
    }
    out
}

#[test]
fn deepseek_exaone4_and_qwen3moe_serving_path_gives_the_reference_greedy_tokens() {
    for name in ["deepseek_v3-1", "deepseek_v2-1", "exaone4-1", "qwen3moe-1"] {
        let r = TinyReference::load(name);
        let model = load_model(&r.gguf_path());
        let (a, b) = (&r.prompts[0], &r.prompts[1]);
        assert_eq!(greedy_paged(&model, &a.ids, &b.ids, 16), a.transformers.greedy, "{name} `{}` in a batch", a.text);
        assert_eq!(greedy_paged(&model, &b.ids, &a.ids, 16), b.transformers.greedy, "{name} `{}` in a batch", b.text);
    }
}

#[test]
fn deepseek_v3_cache_holds_the_latent_not_full_keys_and_values() {
    let r = TinyReference::load("deepseek_v3-1");
    let model = load_model(&r.gguf_path());
    // kv_lora_rank 16 + rope dims 8 per token per layer, no separate values; a plain cache
    // of this model would hold 4 heads × (24 key + 16 value) = 160.
    assert_eq!(model.cache_widths(), (24, 0));
    let details = model.details();
    let kv = details.iter().find(|(k, _)| k.starts_with("KV cache")).expect("KV cache line");
    assert!(kv.1.starts_with("144 B latent vs 960 B"), "{}", kv.1);
}

/// `exaone-1.json` (made by `scripts/make_tiny_exaone.py`): transformers has no EXAONE 3.5
/// class, so its references are Llama math in numpy float64 and llama.cpp's own logits.
#[derive(serde::Deserialize)]
struct ExaoneFixture {
    gguf: String,
    prompts: Vec<ExaonePrompt>,
}

#[derive(serde::Deserialize)]
struct ExaonePrompt {
    text: String,
    ids: Vec<u32>,
    llama_math: jikji_testkit::tiny::TinyOutputs,
    #[serde(rename = "llama.cpp")]
    llama_cpp: jikji_testkit::tiny::TinyOutputs,
}

#[test]
fn tiny_exaone35_matches_llama_math_and_llama_cpp_logits_and_greedy() {
    let dir = jikji_testkit::fixtures_dir().join("tiny");
    let text = std::fs::read_to_string(dir.join("exaone-1.json")).expect("read exaone-1.json");
    let fx: ExaoneFixture = serde_json::from_str(&text).expect("parse exaone-1.json");
    let model = load_model(&dir.join(&fx.gguf));
    assert_eq!(model.info().arch, "exaone");
    let n_vocab = model.info().n_vocab;
    let mut worst = 0.0f32;
    for p in &fx.prompts {
        let mut cache = model.new_cache(p.ids.len()).expect("cache");
        let logits = model.forward(&p.ids, &mut cache, true).expect("forward");
        for (name, r) in [("llama math", &p.llama_math), ("llama.cpp", &p.llama_cpp)] {
            let d = max_abs_diff(&logits[(p.ids.len() - 1) * n_vocab..], &r.last_row);
            worst = worst.max(d);
            assert!(d <= TOL, "exaone `{}`: last row max |Δ| {d} vs {name}", p.text);
            for (pos, top) in r.top8.iter().enumerate() {
                for &(id, want) in top {
                    let got = logits[pos * n_vocab + id as usize];
                    assert!((got - want).abs() <= TOL, "exaone `{}` pos {pos} id {id}: {got} vs {name} {want}", p.text);
                }
            }
        }
        let ours = greedy(&model, &p.ids, 16);
        assert_eq!(ours, p.llama_math.greedy, "exaone `{}`: greedy vs llama math", p.text);
        assert_eq!(ours, p.llama_cpp.greedy, "exaone `{}`: greedy vs llama.cpp", p.text);
    }
    eprintln!("exaone-1: last-row max |Δ| {worst:.5} vs both references");
}
