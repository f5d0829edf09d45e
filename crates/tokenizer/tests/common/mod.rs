//! Shared helpers for the tokenizer's integration tests: where the fixtures and the real
//! models live, and loading them with clear messages.
#![allow(dead_code)]

use jikji_gguf::GgufFile;
use jikji_tokenizer::Tokenizer;

pub use jikji_testkit::fixtures_dir;

/// The real models: (file name, catalog name for `jikji pull`).
pub const REAL_MODELS: &[(&str, &str)] = &[
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m"),
    ("gemma-3-270m-q4_k_m.gguf", "gemma3-270m"),
    ("qwen2.5-coder-0.5b-instruct.gguf", "qwen2.5-0.5b"),
];

/// Opens a real model's tokenizer. `None` only when `JIKJI_SKIP_REAL_MODELS=1`; a missing
/// file otherwise fails the test with the command that fetches it.
pub fn real_tokenizer(file: &str, pull_name: &str) -> Option<Tokenizer> {
    assert_eq!(jikji_testkit::catalog_name(file), pull_name, "testkit's pull name for {file}");
    let path = jikji_testkit::real_model(file)?;
    let t0 = std::time::Instant::now();
    let gguf =
        GgufFile::open(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let t1 = std::time::Instant::now();
    let tok = Tokenizer::from_gguf(&gguf)
        .unwrap_or_else(|e| panic!("cannot build the tokenizer of {file}: {e}"));
    eprintln!(
        "{file}: gguf opened in {:?}, tokenizer built in {:?}",
        t1 - t0,
        t1.elapsed()
    );
    Some(tok)
}

/// The reference JSON of a real model (`tests/fixtures/reference/<stem>.json`).
pub fn reference_json(file: &str) -> serde_json::Value {
    let stem = file.trim_end_matches(".gguf");
    let path = fixtures_dir()
        .join("reference")
        .join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// One `tokenize` entry of a reference file.
pub struct TokenizeCase {
    pub text: String,
    pub add_special: bool,
    pub ids: Vec<u32>,
}

pub fn tokenize_cases(reference: &serde_json::Value) -> Vec<TokenizeCase> {
    let list = reference["tokenize"]
        .as_array()
        .expect("reference has a `tokenize` array");
    assert!(!list.is_empty(), "reference `tokenize` array is empty");
    list.iter()
        .map(|e| TokenizeCase {
            text: e["text"].as_str().expect("tokenize.text").to_string(),
            add_special: e["add_special"].as_bool().expect("tokenize.add_special"),
            ids: e["ids"]
                .as_array()
                .expect("tokenize.ids")
                .iter()
                .map(|x| x.as_u64().expect("token id") as u32)
                .collect(),
        })
        .collect()
}
