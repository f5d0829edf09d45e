//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use jikji_models::{GgufFile, KvCache, Model};
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
    let mut cache: KvCache = model.new_cache(prompt.len() + n + 1);
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
