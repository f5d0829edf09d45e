//! How forward passes use the KV cache: a batched prompt equals the same tokens fed one by
//! one, truncation rewinds exactly, and `all_logits` only changes which rows come back.

use jikji_models::{KvType, Model};
use jikji_testkit::{max_abs_diff, tiny_gemma3_gguf, tiny_llama_gguf, tiny_qwen2_gguf, tiny_qwen3_gguf, TinyConfig, TinyGguf};
use std::sync::Arc;

fn model(g: TinyGguf) -> Model {
    Model::load(Arc::new(g.to_gguf())).expect("load")
}

fn all_models() -> Vec<Model> {
    let cfg = TinyConfig::default();
    vec![
        model(tiny_llama_gguf(&cfg, 5)),
        model(tiny_qwen2_gguf(&cfg, 5)),
        model(tiny_qwen3_gguf(&cfg, 5)),
        // gemma3's tiny window is 4, so 9 tokens cross it.
        model(tiny_gemma3_gguf(&cfg, 5)),
    ]
}

const PROMPT: [u32; 9] = [5, 17, 3, 42, 9, 9, 60, 1, 33];

#[test]
fn batched_prompt_equals_token_by_token_decoding() {
    for m in all_models() {
        let nv = m.info().n_vocab;
        let mut batch_cache = m.new_cache(16).expect("cache");
        let batch = m.forward(&PROMPT, &mut batch_cache, true).expect("batch");
        let mut step_cache = m.new_cache(16).expect("cache");
        for (i, &t) in PROMPT.iter().enumerate() {
            let row = m.forward(&[t], &mut step_cache, false).expect("step");
            let d = max_abs_diff(&row, &batch[i * nv..(i + 1) * nv]);
            assert!(d <= 1e-4, "{}: position {i} differs by {d}", m.info().arch);
        }
        assert_eq!(step_cache.len(), batch_cache.len());
    }
}

#[test]
fn last_logits_only_is_the_last_row_of_all_logits() {
    for m in all_models() {
        let nv = m.info().n_vocab;
        let all = m.forward(&PROMPT, &mut m.new_cache(16).expect("cache"), true).expect("all");
        let last = m.forward(&PROMPT, &mut m.new_cache(16).expect("cache"), false).expect("last");
        assert_eq!(last.len(), nv);
        assert!(max_abs_diff(&last, &all[(PROMPT.len() - 1) * nv..]) <= 1e-5, "{}", m.info().arch);
    }
}

#[test]
fn truncate_rewinds_to_an_earlier_state() {
    for m in all_models() {
        let mut cache = m.new_cache(16).expect("cache");
        m.forward(&PROMPT[..4], &mut cache, false).expect("prefix");
        let first = m.forward(&PROMPT[4..], &mut cache, false).expect("rest");
        cache.truncate(4);
        assert_eq!(cache.len(), 4);
        m.forward(&[11, 12], &mut cache, false).expect("other branch");
        cache.truncate(4);
        let again = m.forward(&PROMPT[4..], &mut cache, false).expect("rest again");
        assert_eq!(first, again, "{}", m.info().arch);
        cache.clear();
        assert!(cache.is_empty());
    }
}

#[test]
fn f32_cache_stays_close_to_f16_cache() {
    for m in all_models() {
        let a = m.forward(&PROMPT, &mut m.new_cache(16).expect("cache"), false).expect("f16");
        let b = m.forward(&PROMPT, &mut m.new_cache_with(16, KvType::F32).expect("cache"), false).expect("f32");
        let d = max_abs_diff(&a, &b);
        assert!(d > 0.0 && d < 0.05, "{}: f16 vs f32 cache differ by {d}", m.info().arch);
    }
}

#[test]
fn info_reports_the_hyper_parameters() {
    let cfg = TinyConfig::default();
    let m = model(tiny_gemma3_gguf(&TinyConfig { untied_output: false, ..cfg.clone() }, 1));
    let i = m.info();
    assert_eq!((i.arch.as_str(), i.n_vocab, i.n_embd, i.n_layer), ("gemma3", cfg.n_vocab, cfg.n_embd, cfg.n_layer));
    assert_eq!((i.n_head, i.n_head_kv, i.head_dim, i.n_ctx_train), (cfg.n_head, cfg.n_head_kv, cfg.head_dim, cfg.n_ctx_train));
    assert_eq!(i.sliding_window, Some(4));
    assert!(i.tied_output);
    assert!(!model(tiny_llama_gguf(&cfg, 1)).info().tied_output);
}
