//! Generation items (ko-evals): the chat prompt, a greedy answer, and the answer checked
//! against the ideal ones the way OpenAI's evals check them — `match` (the answer starts
//! with an ideal), `includes` (contains one) — plus `exact` (equal after trimming).
//!
//! Greedy decoding (temperature 0) on the contiguous cache, at most `max_tokens` tokens,
//! stopping at an end-of-generation token or a newline after some text (every ideal
//! answer of these sets is one line).

use std::collections::BTreeMap;
use std::time::Instant;

use jikji_models::Model;
use jikji_tokenizer::Tokenizer;

use super::items::GenItem;
use crate::error::EvalError;
use crate::forward::forward_rows;
use crate::logprob::argmax;

/// Counts of a group of generation items.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct GenTally {
    pub n: usize,
    pub exact: usize,
    #[serde(rename = "match")]
    pub matched: usize,
    pub includes: usize,
}

/// One answer, for the results file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Answer {
    pub subject: String,
    pub output: String,
    pub ideal: Vec<String>,
    pub matched: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenResult {
    pub overall: GenTally,
    pub per_subject: BTreeMap<String, GenTally>,
    pub answers: Vec<Answer>,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_seconds: f64,
    pub generation_seconds: f64,
    pub max_tokens: usize,
}

/// Turns `(role, content)` messages into prompt tokens (the chat template).
pub type Render<'a> = &'a dyn Fn(&[(String, String)]) -> Result<Vec<u32>, String>;

/// Limits of a generation run.
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    pub n_ctx: usize,
    pub max_tokens: usize,
    pub ubatch: usize,
}

/// Runs every item, calling `progress(done, total)` after each.
pub fn run(model: &Model, tok: &Tokenizer, items: &[GenItem], render: Render, o: GenOptions, mut progress: impl FnMut(usize, usize)) -> Result<GenResult, EvalError> {
    let GenOptions { n_ctx, max_tokens, ubatch } = o;
    let mut cache = model.new_cache(n_ctx)?;
    let mut res = GenResult { max_tokens, ..Default::default() };
    for (i, item) in items.iter().enumerate() {
        let prompt = render(&item.messages).map_err(EvalError::Format)?;
        if prompt.is_empty() || prompt.len() + max_tokens > n_ctx {
            return Err(EvalError::Format(format!("item {}: a prompt of {} tokens does not fit the context of {n_ctx}", i + 1, prompt.len())));
        }
        cache.clear();
        let t = Instant::now();
        let mut logits = forward_rows(model, &mut cache, &prompt, &[prompt.len() - 1], ubatch)?;
        res.prompt_seconds += t.elapsed().as_secs_f64();
        res.prompt_tokens += prompt.len();
        let t = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..max_tokens {
            let next = argmax(&logits).1 as u32;
            if tok.is_eog(next) {
                break;
            }
            ids.push(next);
            let text = tok.decode(&ids, false)?;
            if text.trim_start().contains('\n') {
                break;
            }
            logits = model.forward_rows(&[next], &mut cache, &[0])?;
        }
        res.generation_seconds += t.elapsed().as_secs_f64();
        res.generated_tokens += ids.len();
        let output = tok.decode(&ids, false)?.trim().to_string();
        let exact = item.ideal.iter().any(|x| x.trim() == output);
        let matched = item.ideal.iter().any(|x| output.starts_with(x.trim()));
        let includes = item.ideal.iter().any(|x| output.contains(x.trim()));
        for t in [&mut res.overall, res.per_subject.entry(item.subject.clone()).or_default()] {
            t.n += 1;
            t.exact += usize::from(exact);
            t.matched += usize::from(matched);
            t.includes += usize::from(includes);
        }
        res.answers.push(Answer { subject: item.subject.clone(), output, ideal: item.ideal.clone(), matched });
        progress(i + 1, items.len());
    }
    Ok(res)
}
