//! Model-level damage: files that are valid GGUF but not valid models, and requests a
//! model cannot serve. Each must give a clear `ModelError`, never a panic.

use jikji_models::{Model, ModelError};
use jikji_testkit::{tiny_gemma3_gguf, tiny_llama_gguf, tiny_qwen2_gguf, tiny_qwen3_gguf, TinyConfig, TinyGguf};
use std::sync::Arc;

fn load(g: &TinyGguf) -> Result<Model, ModelError> {
    Model::load(Arc::new(g.to_gguf()))
}

fn llama() -> TinyGguf {
    tiny_llama_gguf(&TinyConfig::default(), 3)
}

fn load_err(g: &TinyGguf) -> ModelError {
    match load(g) {
        Ok(_) => panic!("damaged model loaded"),
        Err(e) => {
            // The message must be readable on its own.
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

#[test]
fn undamaged_tiny_models_of_every_architecture_load_and_run() {
    let cfg = TinyConfig::default();
    for g in [tiny_llama_gguf(&cfg, 1), tiny_qwen2_gguf(&cfg, 1), tiny_qwen3_gguf(&cfg, 1), tiny_gemma3_gguf(&cfg, 1)] {
        let m = load(&g).expect("tiny model loads");
        let mut cache = m.new_cache(8).expect("cache");
        let logits = m.forward(&[1, 2, 3], &mut cache, true).expect("forward");
        assert_eq!(logits.len(), 3 * cfg.n_vocab);
        assert!(logits.iter().all(|v| v.is_finite()));
        assert_eq!(cache.len(), 3);
    }
}

#[test]
fn missing_tensor_is_named_in_the_error() {
    let mut g = llama();
    g.remove_tensor("blk.1.ffn_up.weight");
    match load_err(&g) {
        ModelError::MissingTensor(name) => assert_eq!(name, "blk.1.ffn_up.weight"),
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn missing_embedding_is_an_error() {
    let mut g = llama();
    g.remove_tensor("token_embd.weight");
    assert!(matches!(load_err(&g), ModelError::MissingTensor(n) if n == "token_embd.weight"));
}

#[test]
fn mis_shaped_projection_is_an_error() {
    let mut g = llama();
    g.reshape_tensor("blk.0.attn_q.weight", &[32, 16]);
    match load_err(&g) {
        ModelError::TensorShape { name, expected, found } => {
            assert_eq!(name, "blk.0.attn_q.weight");
            assert_eq!(expected, vec![32, 32]);
            assert_eq!(found, vec![32, 16]);
        }
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn mis_shaped_norm_and_transposed_ffn_are_errors() {
    let mut g = llama();
    g.reshape_tensor("blk.1.attn_norm.weight", &[31]);
    assert!(matches!(load_err(&g), ModelError::TensorShape { .. }));
    let mut g = llama();
    g.reshape_tensor("blk.0.ffn_down.weight", &[32, 48]);
    assert!(matches!(load_err(&g), ModelError::TensorShape { .. }));
}

#[test]
fn zero_heads_is_an_error() {
    let mut g = llama();
    g.set_kv("llama.attention.head_count", 0u32);
    assert!(matches!(load_err(&g), ModelError::BadHparams(_)));
    let mut g = llama();
    g.set_kv("llama.attention.head_count_kv", 0u32);
    assert!(matches!(load_err(&g), ModelError::BadHparams(_)));
}

#[test]
fn head_count_not_a_multiple_of_kv_heads_is_an_error() {
    let mut g = llama();
    g.set_kv("llama.attention.head_count_kv", 3u32);
    let e = load_err(&g);
    assert!(matches!(e, ModelError::BadHparams(_)), "{e}");
    assert!(e.to_string().contains("multiple"), "{e}");
}

#[test]
fn head_dim_disagreeing_with_tensors_is_an_error() {
    let mut g = llama();
    g.set_kv("llama.attention.key_length", 16u32);
    g.set_kv("llama.rope.dimension_count", 16u32);
    assert!(matches!(load_err(&g), ModelError::TensorShape { .. }));
}

#[test]
fn rope_dims_larger_than_head_dim_is_an_error() {
    let mut g = llama();
    g.set_kv("llama.rope.dimension_count", 12u32);
    assert!(matches!(load_err(&g), ModelError::BadHparams(_)));
}

#[test]
fn missing_required_key_is_named() {
    let mut g = llama();
    g.remove_kv("llama.block_count");
    assert!(matches!(load_err(&g), ModelError::MissingKey(k) if k == "llama.block_count"));
}

#[test]
fn zero_context_length_is_refused_naming_the_key() {
    let mut g = llama();
    g.set_kv("llama.context_length", 0u32);
    let e = load_err(&g);
    assert!(matches!(&e, ModelError::BadHparams(m) if m.contains("llama.context_length")), "{e}");
}

#[test]
fn a_cache_too_large_to_allocate_is_an_error_not_an_abort() {
    let m = load(&llama()).expect("tiny llama loads");
    for n_ctx in [usize::MAX, usize::MAX / 2, 1usize << 50] {
        assert!(matches!(m.new_cache(n_ctx), Err(ModelError::CacheTooLarge(_))), "n_ctx {n_ctx}");
    }
}

#[test]
fn wrongly_typed_key_is_an_error() {
    let mut g = llama();
    g.set_kv("llama.embedding_length", "thirty-two");
    assert!(matches!(load_err(&g), ModelError::Gguf(_)));
}

#[test]
fn unknown_architecture_is_named_with_the_supported_list() {
    let mut g = llama();
    g.set_kv("general.architecture", "mamba9");
    match load_err(&g) {
        ModelError::UnknownArchitecture(name, supported) => {
            assert_eq!(name, "mamba9");
            assert!(supported.contains("llama") && supported.contains("gemma3"));
        }
        e => panic!("unexpected error {e}"),
    }
    let mut g = llama();
    g.remove_kv("general.architecture");
    assert!(matches!(load_err(&g), ModelError::NoArchitecture));
}

#[test]
fn qwen2_without_biases_and_qwen3_without_qk_norm_are_errors() {
    let cfg = TinyConfig::default();
    let mut g = tiny_qwen2_gguf(&cfg, 1);
    g.remove_tensor("blk.0.attn_k.bias");
    assert!(matches!(load_err(&g), ModelError::MissingTensor(n) if n == "blk.0.attn_k.bias"));
    let mut g = tiny_qwen3_gguf(&cfg, 1);
    g.remove_tensor("blk.1.attn_q_norm.weight");
    assert!(matches!(load_err(&g), ModelError::MissingTensor(n) if n == "blk.1.attn_q_norm.weight"));
}

#[test]
fn gemma3_without_sliding_window_is_an_error() {
    let mut g = tiny_gemma3_gguf(&TinyConfig::default(), 1);
    g.remove_kv("gemma3.attention.sliding_window");
    assert!(matches!(load_err(&g), ModelError::MissingKey(k) if k == "gemma3.attention.sliding_window"));
}

#[test]
fn token_id_out_of_range_is_an_error_and_leaves_the_cache_alone() {
    let m = load(&llama()).expect("load");
    let n_vocab = m.info().n_vocab as u32;
    let mut cache = m.new_cache(8).expect("cache");
    m.forward(&[1, 2], &mut cache, false).expect("forward");
    match m.forward(&[3, n_vocab], &mut cache, false) {
        Err(ModelError::TokenOutOfRange { token, n_vocab: n }) => {
            assert_eq!(token, n_vocab);
            assert_eq!(n, n_vocab as usize);
        }
        other => panic!("expected TokenOutOfRange, got {other:?}"),
    }
    assert_eq!(cache.len(), 2);
    assert!(matches!(m.forward(&[u32::MAX], &mut cache, false), Err(ModelError::TokenOutOfRange { .. })));
}

#[test]
fn context_overflow_is_an_error_and_leaves_the_cache_alone() {
    let m = load(&llama()).expect("load");
    let mut cache = m.new_cache(4).expect("cache");
    m.forward(&[1, 2, 3], &mut cache, false).expect("forward");
    match m.forward(&[4, 5], &mut cache, false) {
        Err(ModelError::ContextOverflow { needed, n_ctx }) => assert_eq!((needed, n_ctx), (5, 4)),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    assert_eq!(cache.len(), 3);
    m.forward(&[4], &mut cache, false).expect("the last slot still fits");
    assert_eq!(cache.len(), 4);
}

#[test]
fn empty_input_is_an_error() {
    let m = load(&llama()).expect("load");
    let mut cache = m.new_cache(4).expect("cache");
    assert!(matches!(m.forward(&[], &mut cache, true), Err(ModelError::EmptyInput)));
}

#[test]
fn cache_of_another_model_is_rejected() {
    let m = load(&llama()).expect("load");
    let other = load(&tiny_llama_gguf(&TinyConfig { n_layer: 3, ..TinyConfig::default() }, 3)).expect("load");
    let mut cache = other.new_cache(8).expect("cache");
    assert!(matches!(m.forward(&[1], &mut cache, false), Err(ModelError::CacheMismatch(_))));
}
