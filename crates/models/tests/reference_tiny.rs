//! The tiny random-weight f32 models (`tests/fixtures/tiny/{llama,qwen3}-1.gguf`) against
//! the logits and greedy continuations transformers and llama.cpp computed for them.

mod common;

use common::check_against_references;

/// Max |Δ| allowed against transformers (the two references agree to 0.011).
const TOL: f32 = 1e-2;

#[test]
fn tiny_llama_matches_transformers_logits_and_greedy() {
    check_against_references("llama-1", TOL);
}

#[test]
fn tiny_qwen3_matches_transformers_logits_and_greedy() {
    check_against_references("qwen3-1", TOL);
}
