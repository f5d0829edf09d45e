//! `tests/fixtures/reference/<model stem>.json`: llama.cpp's outputs on the real models
//! (see `tests/fixtures/README.md`).

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Reference {
    pub model: String,
    pub reference: String,
    #[serde(default)]
    pub tokenize: Vec<TokenizeCase>,
    #[serde(default)]
    pub logits: Vec<LogitsCase>,
    #[serde(default)]
    pub greedy: Vec<GreedyCase>,
    #[serde(default)]
    pub chat_template: Vec<ChatCase>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TokenizeCase {
    pub text: String,
    pub add_special: bool,
    pub ids: Vec<u32>,
}

/// A prompt (tokenized with `add_special: true`) and, at each position, the reference's
/// top-8 `(id, logit)` and the log-sum-exp of the full row.
#[derive(Clone, Debug, Deserialize)]
pub struct LogitsCase {
    pub prompt: String,
    pub ids: Vec<u32>,
    pub positions: Vec<PositionLogits>,
    pub mean_nll: f64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PositionLogits {
    pub top: Vec<(u32, f32)>,
    pub logsumexp: f64,
}

impl PositionLogits {
    /// `top[0] - top[1]`, the reference's confidence in its top-1 (infinite if one entry).
    pub fn margin(&self) -> f32 {
        match (self.top.first(), self.top.get(1)) {
            (Some(a), Some(b)) => a.1 - b.1,
            _ => f32::INFINITY,
        }
    }
}

/// A 32-token greedy continuation and the reference's margin at each step.
#[derive(Clone, Debug, Deserialize)]
pub struct GreedyCase {
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub text: String,
    pub margins: Vec<f32>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ChatCase {
    pub messages: Vec<serde_json::Value>,
    pub add_generation_prompt: bool,
    pub rendered: String,
}

impl Reference {
    /// Loads `reference/<file stem>.json` for a model file name such as
    /// `SmolLM2-135M-Instruct.Q4_1.gguf`. Panics with the path on error.
    pub fn for_model(model_file: &str) -> Reference {
        let stem = model_file.strip_suffix(".gguf").unwrap_or(model_file);
        let path = crate::fixtures_dir().join("reference").join(format!("{stem}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
    }
}
