//! Test-only helpers shared by the workspace's test suites:
//! - fixture loaders (`reference::Reference` for llama.cpp's outputs on the real models,
//!   `tiny::TinyReference` for the tiny random-weight models) and `fixtures_dir()`;
//! - real-model lookup (`models_dir()`, `real_model(name)`): a missing model is a test
//!   failure with the command that fetches it, unless `JIKJI_SKIP_REAL_MODELS=1`;
//! - numeric comparison (`assert_close`, `max_abs_diff`, `nmse`, `logsumexp`);
//! - `gguf_builder`: tiny random-weight GGUF models (`tiny_llama_gguf`, …) whose parts can
//!   be removed or reshaped, for damage tests.
//!
//! This crate is a dev-dependency only; panicking with a clear message is its way of
//! failing a test.
#![forbid(unsafe_code)]

pub mod gguf_builder;
pub mod numeric;
pub mod reference;
pub mod tiny;

pub use gguf_builder::{tiny_gemma3_gguf, tiny_llama_gguf, tiny_qwen2_gguf, tiny_qwen3_gguf, TinyConfig, TinyGguf};
pub use numeric::{assert_close, logsumexp, max_abs_diff, nmse, top_k};

use std::path::PathBuf;

/// `tests/fixtures` at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Where real models live: `$JIKJI_MODELS`, else `~/.cache/jikji/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JIKJI_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/jikji/models")
}

/// Whether `JIKJI_SKIP_REAL_MODELS=1` asks to skip tests on real models.
pub fn skip_real_models() -> bool {
    std::env::var("JIKJI_SKIP_REAL_MODELS").map(|v| v == "1").unwrap_or(false)
}

/// Catalog name (`jikji pull NAME`) of a real model file.
pub fn catalog_name(file_name: &str) -> &'static str {
    match file_name {
        "SmolLM2-135M-Instruct.Q4_1.gguf" => "smollm2-135m",
        "gemma-3-270m-q4_k_m.gguf" => "gemma3-270m",
        "qwen2.5-coder-0.5b-instruct.gguf" => "qwen2.5-0.5b",
        "all-MiniLM-L6-v2" => "all-minilm-l6-v2",
        _ => "<catalog name>",
    }
}

/// Path of a real model file. `None` only when `JIKJI_SKIP_REAL_MODELS=1`; a missing file
/// otherwise panics with the command to fetch it.
pub fn real_model(file_name: &str) -> Option<PathBuf> {
    if skip_real_models() {
        eprintln!("JIKJI_SKIP_REAL_MODELS=1: skipping the test on {file_name}");
        return None;
    }
    let path = models_dir().join(file_name);
    if !path.is_file() {
        panic!(
            "real model {} is missing; run `jikji pull {}` (or set JIKJI_MODELS to its directory, \
             or JIKJI_SKIP_REAL_MODELS=1 to skip these tests)",
            path.display(),
            catalog_name(file_name)
        );
    }
    Some(path)
}

/// Path of a real model that is a Hugging Face directory (`config.json` inside), as
/// [`real_model`] for files.
pub fn real_model_dir(dir_name: &str) -> Option<PathBuf> {
    if skip_real_models() {
        eprintln!("JIKJI_SKIP_REAL_MODELS=1: skipping the test on {dir_name}");
        return None;
    }
    let path = models_dir().join(dir_name);
    if !path.join("config.json").is_file() {
        panic!(
            "real model directory {} is missing; run `jikji pull {}` (or set JIKJI_MODELS, or \
             JIKJI_SKIP_REAL_MODELS=1 to skip these tests)",
            path.display(),
            catalog_name(dir_name)
        );
    }
    Some(path)
}
