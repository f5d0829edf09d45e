//! The tiny random-weight llama fixture (`tests/fixtures/tiny/llama-1`) as the Hugging Face
//! directory transformers saved before conversion (rebuilt by `scripts/hf-from-gguf.py`:
//! llama.cpp's rotary permutation undone, the tokenizer as `tokenizer.json`) gives
//! transformers' logits and greedy continuations, within the tolerance of the GGUF tests.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::hf_dir;

use jikji_gguf::{GgmlType, GgufFile};
use jikji_models::Model;
use jikji_testkit::max_abs_diff;
use jikji_testkit::tiny::TinyReference;
use jikji_tokenizer::Tokenizer;

/// Max |Δ| against transformers (as `crates/models/tests/reference_tiny.rs`).
const TOL: f32 = 1e-2;

fn argmax(row: &[f32]) -> u32 {
    (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0) as u32
}

fn greedy(model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = model.new_cache(prompt.len() + n + 1).expect("cache");
    let mut logits = model.forward(prompt, &mut cache, false).expect("prompt");
    let mut out = Vec::new();
    while out.len() < n {
        let next = argmax(&logits);
        out.push(next);
        logits = model.forward(&[next], &mut cache, false).expect("decode");
    }
    out
}

/// Every prompt's last-row logits and recorded top-8 logits within TOL of transformers',
/// and the greedy continuation equal to transformers'.
fn check_logits(dir: &Path, r: &TinyReference) {
    let image = Arc::new(jikji_hf::load_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())));
    let model = Model::load(image).expect("model");
    let n_vocab = model.info().n_vocab;
    let mut worst = 0.0f32;
    for p in &r.prompts {
        let mut cache = model.new_cache(p.ids.len() + 1).expect("cache");
        let logits = model.forward(&p.ids, &mut cache, true).expect("forward");
        let last = &logits[(p.ids.len() - 1) * n_vocab..];
        let d = max_abs_diff(last, &p.transformers.last_row);
        worst = worst.max(d);
        assert!(d <= TOL, "`{}`: last row max |Δ| {d} > {TOL}", p.text);
        for (pos, top) in p.transformers.top8.iter().enumerate() {
            for &(id, want) in top {
                let got = logits[pos * n_vocab + id as usize];
                assert!((got - want).abs() <= TOL, "`{}` pos {pos} id {id}: {got} vs {want}", p.text);
            }
        }
        assert_eq!(greedy(&model, &p.ids, p.transformers.greedy.len()), p.transformers.greedy, "`{}`: greedy", p.text);
    }
    eprintln!("{}: last-row max |Δ| {worst:.5} vs transformers", dir.display());
}

#[test]
fn llama_directory_gives_transformers_logits_and_greedy_tokens() {
    let r = TinyReference::load("llama-1");
    let dir = hf_dir("llama-1", &[]);
    check_logits(dir.path(), &r);
}

#[test]
fn sharded_llama_directory_gives_the_same_logits() {
    let r = TinyReference::load("llama-1");
    let dir = hf_dir("llama-1", &["--shards", "3"]);
    assert!(dir.path().join("model.safetensors.index.json").is_file());
    check_logits(dir.path(), &r);
}

#[test]
fn directory_tokenizer_and_tensors_equal_what_llama_cpp_converted() {
    let dir = hf_dir("llama-1", &[]);
    let image = jikji_hf::load_dir(dir.path()).expect("image");
    let gguf = GgufFile::open(jikji_testkit::fixtures_dir().join("tiny/llama-1.gguf")).expect("fixture");
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
        assert_eq!(image.get_str_array(key).unwrap(), gguf.get_str_array(key).unwrap(), "{key}");
    }
    assert_eq!(image.get_i32_array("tokenizer.ggml.token_type").unwrap(), gguf.get_i32_array("tokenizer.ggml.token_type").unwrap());
    for key in ["tokenizer.ggml.pre", "tokenizer.ggml.model"] {
        assert_eq!(image.get_str(key).unwrap(), gguf.get_str(key).unwrap(), "{key}");
    }
    assert_eq!(image.get_bool("tokenizer.ggml.add_bos_token").unwrap(), Some(false));
    // The converter's tensors, byte for byte: names, shapes and the q/k permutation.
    assert_eq!(image.tensors().len(), gguf.tensors().len());
    for t in gguf.tensors() {
        let ours = image.tensor(&t.name).unwrap_or_else(|| panic!("{} missing", t.name));
        assert_eq!(ours.dims, t.dims, "{}", t.name);
        assert_eq!(image.tensor_data(ours), gguf.tensor_data(t), "{} bytes", t.name);
    }
    let tok = Tokenizer::from_gguf(&image).expect("tokenizer");
    for p in &TinyReference::load("llama-1").prompts {
        assert_eq!(tok.encode(&p.text, true, false).unwrap(), p.ids, "`{}`", p.text);
    }
}

#[test]
fn bf16_directory_keeps_bf16_weights_and_f32_norms() {
    let dir = hf_dir("llama-1", &["--dtype", "bf16"]);
    let image = jikji_hf::load_dir(dir.path()).expect("image");
    let gguf = GgufFile::open(jikji_testkit::fixtures_dir().join("tiny/llama-1.gguf")).expect("fixture");
    let q = image.tensor("blk.0.attn_q.weight").expect("attn_q");
    assert_eq!(q.ggml_type, GgmlType::BF16);
    assert_eq!(image.tensor("blk.0.attn_norm.weight").expect("norm").ggml_type, GgmlType::F32);
    // Each bf16 value is the fixture's f32 value rounded to 8 significant bits.
    let want: Vec<f32> = gguf.tensor_data_by_name("blk.0.attn_q.weight").unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let got: Vec<f32> = image.tensor_data(q).chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, half::bf16::from_f32(*w).to_f32());
    }
    // And the model runs on them, close to the f32 references.
    let model = Model::load(Arc::new(image)).expect("model");
    let p = &TinyReference::load("llama-1").prompts[1];
    let mut cache = model.new_cache(p.ids.len()).expect("cache");
    let logits = model.forward(&p.ids, &mut cache, false).expect("forward");
    assert!(max_abs_diff(&logits, &p.transformers.last_row) < 0.1);
}
