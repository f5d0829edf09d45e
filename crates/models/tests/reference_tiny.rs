//! The tiny random-weight f32 models (`tests/fixtures/tiny/{llama,qwen3}-1.gguf`) against
//! the logits and greedy continuations transformers computed for them.

mod common;

use common::{greedy, load_model};
use jikji_testkit::tiny::TinyReference;
use jikji_testkit::max_abs_diff;

/// Max |Δ| allowed against transformers (the two references agree to 0.011).
const TOL: f32 = 1e-2;

fn check(name: &str) {
    let r = TinyReference::load(name);
    let model = load_model(&r.gguf_path());
    let n_vocab = model.info().n_vocab;
    assert_eq!(n_vocab, r.prompts[0].transformers.last_row.len());
    let mut worst_row = 0.0f32;
    let mut worst_top8 = 0.0f32;
    for p in &r.prompts {
        let mut cache = model.new_cache(p.ids.len() + 20);
        let logits = model.forward(&p.ids, &mut cache, true).expect("forward");
        assert_eq!(logits.len(), p.ids.len() * n_vocab);
        let last = &logits[(p.ids.len() - 1) * n_vocab..];
        let d = max_abs_diff(last, &p.transformers.last_row);
        worst_row = worst_row.max(d);
        assert!(d <= TOL, "{name} `{}`: last row max |Δ| {d} > {TOL}", p.text);
        for (pos, top) in p.transformers.top8.iter().enumerate() {
            let row = &logits[pos * n_vocab..(pos + 1) * n_vocab];
            for &(id, want) in top {
                let got = row[id as usize];
                worst_top8 = worst_top8.max((got - want).abs());
                assert!((got - want).abs() <= TOL, "{name} `{}` pos {pos} id {id}: {got} vs {want}", p.text);
            }
        }
        let ours = greedy(&model, &p.ids, p.transformers.greedy.len());
        assert_eq!(ours, p.transformers.greedy, "{name} `{}`: greedy continuation differs", p.text);
    }
    eprintln!("{name}: last-row max |Δ| {worst_row:.5}, top-8 max |Δ| {worst_top8:.5} vs transformers");
}

#[test]
fn tiny_llama_matches_transformers_logits_and_greedy() {
    check("llama-1");
}

#[test]
fn tiny_qwen3_matches_transformers_logits_and_greedy() {
    check("qwen3-1");
}
