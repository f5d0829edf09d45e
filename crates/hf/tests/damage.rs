//! Damaged Hugging Face directories are refused with an error that names the file and,
//! where there is one, the tensor — never a panic, never a half-loaded model. Each test
//! starts from the tiny llama directory (`scripts/hf-from-gguf.py`) and breaks one thing.

mod common;

use std::fs;
use std::path::Path;

use common::{drop_tensor, hf_dir, read_st, write_st};
use serde_json::{json, Value};

/// The error `load_dir` gives for `dir`, as its message.
fn error_of(dir: &Path) -> String {
    match jikji_hf::load_dir(dir) {
        Ok(_) => panic!("{} loaded despite the damage", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn st_path(dir: &Path) -> std::path::PathBuf {
    dir.join("model.safetensors")
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn assert_names(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "error `{e}` does not mention `{p}`");
    }
}

#[test]
fn truncated_safetensors_is_refused_naming_the_file() {
    let d = hf_dir("llama-1", &[]);
    let b = fs::read(st_path(d.path())).unwrap();
    fs::write(st_path(d.path()), &b[..b.len() - 100]).unwrap();
    assert_names(&error_of(d.path()), &["model.safetensors", "invalid safetensors header", "not fully covered"]);
    // Cut inside the header, and inside the 8-byte length.
    fs::write(st_path(d.path()), &b[..200]).unwrap();
    assert_names(&error_of(d.path()), &["model.safetensors", "header length"]);
    fs::write(st_path(d.path()), &b[..5]).unwrap();
    assert_names(&error_of(d.path()), &["model.safetensors", "header too small"]);
}

#[test]
fn header_length_beyond_the_file_or_the_cap_is_refused() {
    let d = hf_dir("llama-1", &[]);
    let mut b = fs::read(st_path(d.path())).unwrap();
    let past = (b.len() as u64 + 1).to_le_bytes();
    b[..8].copy_from_slice(&past);
    fs::write(st_path(d.path()), &b).unwrap();
    assert_names(&error_of(d.path()), &["model.safetensors", "invalid header length"]);
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(st_path(d.path()), &b).unwrap();
    assert_names(&error_of(d.path()), &["model.safetensors", "header too large"]);
}

#[test]
fn overlapping_and_out_of_range_offsets_are_refused_naming_the_tensor() {
    let d = hf_dir("llama-1", &[]);
    let p = st_path(d.path());
    let (h, data) = read_st(&p);
    // Two tensors sharing bytes: the second starts where the first does.
    let mut by_start: Vec<(String, u64)> = h.iter().filter(|(k, _)| *k != "__metadata__").map(|(k, v)| (k.clone(), v["data_offsets"][0].as_u64().unwrap())).collect();
    by_start.sort_by_key(|x| x.1);
    let (first, second) = (&by_start[0], &by_start[1]);
    let mut bad = h.clone();
    let len = bad[&second.0]["data_offsets"][1].as_u64().unwrap() - second.1;
    bad[&second.0]["data_offsets"] = json!([first.1, first.1 + len]);
    write_st(&p, &bad, &data);
    let e = error_of(d.path());
    assert_names(&e, &["model.safetensors", "invalid offset for tensor"]);
    assert!(e.contains(&format!("`{}`", first.0)) || e.contains(&format!("`{}`", second.0)), "{e}");
    // The last tensor reaching past the data.
    let last = &by_start[by_start.len() - 1];
    let mut bad = h.clone();
    let end = bad[&last.0]["data_offsets"][1].as_u64().unwrap();
    bad[&last.0]["data_offsets"] = json!([last.1, end + 4096]);
    write_st(&p, &bad, &data);
    assert_names(&error_of(d.path()), &["model.safetensors", &format!("`{}`", last.0)]);
}

#[test]
fn a_dtype_jikji_does_not_read_is_refused_naming_the_tensor() {
    let d = hf_dir("llama-1", &[]);
    let p = st_path(d.path());
    let (mut h, data) = read_st(&p);
    h["model.layers.1.self_attn.q_proj.weight"]["dtype"] = json!("I32"); // same size as F32
    write_st(&p, &h, &data);
    assert_names(&error_of(d.path()), &["model.safetensors", "`model.layers.1.self_attn.q_proj.weight`", "dtype I32"]);
}

#[test]
fn a_shape_other_than_config_implies_is_refused_naming_the_tensor() {
    let d = hf_dir("llama-1", &[]);
    let p = st_path(d.path());
    let (mut h, data) = read_st(&p);
    h["model.layers.2.mlp.up_proj.weight"]["shape"] = json!([64, 128]); // config: [128, 64]
    write_st(&p, &h, &data);
    assert_names(&error_of(d.path()), &["model.safetensors", "`model.layers.2.mlp.up_proj.weight`", "[64, 128]", "[128, 64]"]);
    // A shape whose size disagrees with its bytes is caught by the header check, named.
    let (mut h, data) = read_st(&p);
    h["model.layers.2.mlp.up_proj.weight"]["shape"] = json!([128, 65]);
    write_st(&p, &h, &data);
    assert_names(&error_of(d.path()), &["model.safetensors", "`model.layers.2.mlp.up_proj.weight`"]);
}

#[test]
fn a_missing_or_unexpected_tensor_is_refused_by_name() {
    let d = hf_dir("llama-1", &[]);
    drop_tensor(&st_path(d.path()), "model.layers.0.post_attention_layernorm.weight");
    assert_names(&error_of(d.path()), &["model.safetensors", "`model.layers.0.post_attention_layernorm.weight`", "missing"]);

    let d = hf_dir("llama-1", &[]);
    let p = st_path(d.path());
    let (mut h, mut data) = read_st(&p);
    let start = data.len();
    data.extend_from_slice(&[0u8; 16]);
    h.insert("model.layers.0.mystery.weight".into(), json!({"dtype": "F32", "shape": [4], "data_offsets": [start, start + 16]}));
    write_st(&p, &h, &data);
    assert_names(&error_of(d.path()), &["`model.layers.0.mystery.weight`", "not part of the architecture"]);
}

#[test]
fn unknown_architectures_and_inconsistent_configs_are_refused() {
    let d = hf_dir("llama-1", &[]);
    let cfg = d.path().join("config.json");
    edit_json(&cfg, |v| v["architectures"] = json!(["GPTNeoXForCausalLM"]));
    assert_names(&error_of(d.path()), &["config.json", "`GPTNeoXForCausalLM`", "LlamaForCausalLM"]);
    edit_json(&cfg, |v| {
        v["architectures"] = json!(["LlamaForCausalLM"]);
        v["num_key_value_heads"] = json!(3);
    });
    assert_names(&error_of(d.path()), &["config.json", "num_key_value_heads 3"]);
    edit_json(&cfg, |v| {
        v["num_key_value_heads"] = json!(2);
        v["hidden_size"] = json!(-64);
    });
    assert_names(&error_of(d.path()), &["config.json", "`hidden_size`"]);
    fs::write(&cfg, b"{ not json").unwrap();
    assert_names(&error_of(d.path()), &["config.json", "not valid JSON"]);
}

#[test]
fn shard_indexes_that_point_outside_or_disagree_are_refused() {
    let d = hf_dir("llama-1", &["--shards", "2"]);
    let idx = d.path().join("model.safetensors.index.json");
    let original = fs::read(&idx).unwrap();
    edit_json(&idx, |v| v["weight_map"]["model.norm.weight"] = json!("../elsewhere.safetensors"));
    assert_names(&error_of(d.path()), &["model.safetensors.index.json", "`model.norm.weight`", "not a .safetensors file name"]);
    fs::write(&idx, &original).unwrap();
    edit_json(&idx, |v| {
        let other = if v["weight_map"]["model.norm.weight"] == json!("model-00001-of-00002.safetensors") { "model-00002-of-00002.safetensors" } else { "model-00001-of-00002.safetensors" };
        v["weight_map"]["model.norm.weight"] = json!(other);
    });
    assert_names(&error_of(d.path()), &["`model.norm.weight`", "is indexed in"]);
    fs::write(&idx, &original).unwrap();
    fs::remove_file(d.path().join("model-00002-of-00002.safetensors")).unwrap();
    assert_names(&error_of(d.path()), &["model-00002-of-00002.safetensors"]);
}

#[test]
fn tokenizers_our_code_cannot_reproduce_are_refused_by_name() {
    let d = hf_dir("llama-1", &[]);
    let tj = d.path().join("tokenizer.json");
    edit_json(&tj, |v| v["pre_tokenizer"] = json!({"type": "Metaspace", "replacement": "▁"}));
    assert_names(&error_of(d.path()), &["tokenizer.json", "pre-tokenizer", "Metaspace"]);
    edit_json(&tj, |v| v["model"]["type"] = json!("Unigram"));
    assert_names(&error_of(d.path()), &["tokenizer.json", "Unigram"]);
    fs::remove_file(&tj).unwrap();
    assert_names(&error_of(d.path()), &["tokenizer.json"]);
}
