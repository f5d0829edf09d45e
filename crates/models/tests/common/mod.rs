//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use jikji_models::{GgufFile, KvCache, Model};
use jikji_testkit::max_abs_diff;
use jikji_testkit::tiny::TinyReference;
use std::path::Path;
use std::sync::Arc;

pub fn load_model(path: &Path) -> Model {
    let file = GgufFile::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    Model::load(Arc::new(file)).unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Runs the prompt as one batch, then `n` greedy steps one token at a time.
pub fn greedy(model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache: KvCache = model.new_cache(prompt.len() + n + 1).expect("cache");
    let mut logits = model.forward(prompt, &mut cache, false).expect("prompt forward");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let next = argmax(&logits);
        out.push(next);
        if out.len() == n {
            break;
        }
        logits = model.forward(&[next], &mut cache, false).expect("decode forward");
    }
    out
}

/// A tiny fixture (`tests/fixtures/tiny/NAME.json`) against its references: last-row
/// logits and every recorded top-8 logit within `tol` of transformers', the top-8 ranks
/// wherever transformers separates neighbours by more than `tol`, and the greedy
/// continuation equal to both transformers' and llama.cpp's.
pub fn check_against_references(name: &str, tol: f32) {
    let r = TinyReference::load(name);
    let model = load_model(&r.gguf_path());
    let n_vocab = model.info().n_vocab;
    assert_eq!(n_vocab, r.prompts[0].transformers.last_row.len());
    let mut worst_row = 0.0f32;
    let mut worst_top8 = 0.0f32;
    for p in &r.prompts {
        let mut cache = model.new_cache(p.ids.len() + 20).expect("cache");
        let logits = model.forward(&p.ids, &mut cache, true).expect("forward");
        assert_eq!(logits.len(), p.ids.len() * n_vocab);
        let last = &logits[(p.ids.len() - 1) * n_vocab..];
        let d = max_abs_diff(last, &p.transformers.last_row);
        worst_row = worst_row.max(d);
        assert!(d <= tol, "{name} `{}`: last row max |Δ| {d} > {tol}", p.text);
        for (pos, top) in p.transformers.top8.iter().enumerate() {
            let row = &logits[pos * n_vocab..(pos + 1) * n_vocab];
            for &(id, want) in top {
                let got = row[id as usize];
                worst_top8 = worst_top8.max((got - want).abs());
                assert!((got - want).abs() <= tol, "{name} `{}` pos {pos} id {id}: {got} vs {want}", p.text);
            }
            // Top-8 ids agree wherever the reference separates neighbours by more than tol.
            let mut ours: Vec<u32> = (0..n_vocab as u32).collect();
            ours.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]));
            for k in 0..top.len() {
                let clear_above = k == 0 || top[k - 1].1 - top[k].1 > tol;
                let clear_below = k + 1 >= top.len() || top[k].1 - top[k + 1].1 > tol;
                if clear_above && clear_below {
                    assert_eq!(ours[k], top[k].0, "{name} `{}` pos {pos}: rank {k} differs", p.text);
                }
            }
        }
        let ours = greedy(&model, &p.ids, p.transformers.greedy.len());
        assert_eq!(ours, p.transformers.greedy, "{name} `{}`: greedy differs from transformers", p.text);
        assert_eq!(ours, p.llama_cpp.greedy, "{name} `{}`: greedy differs from llama.cpp", p.text);
    }
    eprintln!("{name}: last-row max |Δ| {worst_row:.5}, top-8 max |Δ| {worst_top8:.5} vs transformers");
}
