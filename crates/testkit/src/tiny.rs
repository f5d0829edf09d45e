//! `tests/fixtures/tiny/<ARCH>-<seed>.{gguf,json}`: tiny random-weight models with
//! transformers' and llama.cpp's outputs (see `tests/fixtures/tiny/README.md`).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
pub struct TinyReference {
    pub arch: String,
    pub seed: u64,
    pub gguf: String,
    pub config: serde_json::Value,
    pub prompts: Vec<TinyPrompt>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TinyPrompt {
    pub text: String,
    pub ids: Vec<u32>,
    pub transformers: TinyOutputs,
    #[serde(rename = "llama.cpp")]
    pub llama_cpp: TinyOutputs,
    pub max_abs_diff_last_row: f32,
}

/// One engine's outputs: top-8 `(id, logit)` at every position, the full last row, and a
/// 16-token greedy continuation.
#[derive(Clone, Debug, Deserialize)]
pub struct TinyOutputs {
    pub top8: Vec<Vec<(u32, f32)>>,
    pub last_row: Vec<f32>,
    pub greedy: Vec<u32>,
}

impl TinyReference {
    /// Loads `tiny/<name>.json` (e.g. `llama-1`). Panics with the path on error.
    pub fn load(name: &str) -> TinyReference {
        let path = crate::fixtures_dir().join("tiny").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
    }

    /// Path of the model file next to the JSON.
    pub fn gguf_path(&self) -> PathBuf {
        crate::fixtures_dir().join("tiny").join(&self.gguf)
    }
}
