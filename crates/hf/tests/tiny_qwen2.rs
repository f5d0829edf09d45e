//! A tiny random-weight Qwen2 directory as transformers saves one — the real Qwen2.5
//! tokenizer as `tokenizer.json`, Qwen's special tokens and chat template in
//! `tokenizer_config.json`, a shrunk config with tied embeddings, BF16-valued weights
//! (stored as F32, as the GGUF reference tests are) — built by
//! `scripts/make-tiny-qwen2-hf.py` with reference outputs of transformers' Qwen2 code
//! recomputed in float64 numpy. jikji reads the directory without conversion: logits within
//! the tolerance of the GGUF tests, the same greedy tokens, Hugging Face tokenizers' ids,
//! and the vocabulary llama.cpp's converter wrote for the real model.

mod common;

use std::process::Command;
use std::sync::Arc;

use jikji_gguf::{GgmlType, GgufFile};
use jikji_models::Model;
use jikji_testkit::max_abs_diff;
use jikji_tokenizer::Tokenizer;

/// Max |Δ| against the reference (as `crates/models/tests/reference_tiny.rs`).
const TOL: f32 = 1e-2;

#[derive(serde::Deserialize)]
struct Reference {
    prompts: Vec<Prompt>,
}

#[derive(serde::Deserialize)]
struct Prompt {
    text: String,
    ids: Vec<u32>,
    top8: Vec<Vec<(u32, f32)>>,
    last_row: Vec<f32>,
    greedy: Vec<u32>,
}

fn argmax(row: &[f32]) -> u32 {
    (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0) as u32
}

#[test]
fn tiny_qwen2_directory_matches_transformers_code_and_qwen_tokenizer() {
    let Some(qwen) = jikji_testkit::real_model("qwen2.5-coder-0.5b-instruct.gguf") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(common::repo().join("scripts/make-tiny-qwen2-hf.py"))
        .arg(&qwen)
        .arg(dir.path())
        .output()
        .expect("python3 runs (numpy, gguf, tokenizers from pip)");
    assert!(out.status.success(), "make-tiny-qwen2-hf.py: {}", String::from_utf8_lossy(&out.stderr));
    let r: Reference = serde_json::from_slice(&std::fs::read(dir.path().join("reference.json")).unwrap()).unwrap();

    let image = Arc::new(jikji_hf::load_dir(dir.path()).expect("load"));
    assert_eq!(image.get_str("general.architecture").unwrap(), Some("qwen2"));
    assert!(image.tensor("output.weight").is_none(), "tied embeddings need no output matrix");
    assert_eq!(image.tensor("token_embd.weight").unwrap().ggml_type, GgmlType::F32);

    // The tokenizer: the converter's vocabulary, special ids and template for Qwen2.5.
    let real = GgufFile::open(&qwen).unwrap();
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
        assert!(image.get_str_array(key).unwrap() == real.get_str_array(key).unwrap(), "{key} differs");
    }
    assert!(image.get_i32_array("tokenizer.ggml.token_type").unwrap() == real.get_i32_array("tokenizer.ggml.token_type").unwrap());
    for key in ["tokenizer.ggml.pre", "tokenizer.chat_template"] {
        assert_eq!(image.get_str(key).unwrap(), real.get_str(key).unwrap(), "{key}");
    }
    for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"] {
        assert_eq!(image.get_u32(key).unwrap(), real.get_u32(key).unwrap(), "{key}");
    }
    assert_eq!(image.get_bool("tokenizer.ggml.add_bos_token").unwrap(), Some(false));
    let tok = Tokenizer::from_gguf(&image).expect("tokenizer");
    for p in &r.prompts {
        assert_eq!(tok.encode(&p.text, true, true).unwrap(), p.ids, "ids of `{}`", p.text);
    }

    let model = Model::load(image).expect("model");
    let n_vocab = model.info().n_vocab;
    let mut worst = 0.0f32;
    for p in &r.prompts {
        let mut cache = model.new_cache(p.ids.len() + p.greedy.len() + 1).expect("cache");
        let logits = model.forward(&p.ids, &mut cache, true).expect("forward");
        let d = max_abs_diff(&logits[(p.ids.len() - 1) * n_vocab..], &p.last_row);
        worst = worst.max(d);
        assert!(d <= TOL, "`{}`: last row max |Δ| {d}", p.text);
        for (pos, top) in p.top8.iter().enumerate() {
            for &(id, want) in top {
                let got = logits[pos * n_vocab + id as usize];
                assert!((got - want).abs() <= TOL, "`{}` pos {pos} id {id}: {got} vs {want}", p.text);
            }
        }
        let mut next = argmax(&logits[(p.ids.len() - 1) * n_vocab..]);
        let mut seq = vec![next];
        while seq.len() < p.greedy.len() {
            next = argmax(&model.forward(&[next], &mut cache, false).expect("decode"));
            seq.push(next);
        }
        assert_eq!(seq, p.greedy, "`{}`: greedy", p.text);
    }
    eprintln!("tiny qwen2 directory: last-row max |Δ| {worst:.6} vs the float64 reference");
}
