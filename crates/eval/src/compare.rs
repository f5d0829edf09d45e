//! `jikji eval compare DIR...`: several `results.json` (models, quantizations, engines'
//! settings) side by side — the score of each run and its delta from the first, the score
//! per subject with deltas, and speed and cost per 1M tokens — as Markdown, CSV and charts
//! (score per run; score against cost per 1M tokens).
//!
//! Design choices: the first run is the reference every delta is taken from (list the
//! base model or the larger quantization first). Runs must be of one kind — all
//! perplexity, or all suites — because a perplexity and an accuracy share no scale. The
//! score of a choice suite is `acc` (or `acc_norm` when asked), of a generation suite
//! `match`, of a perplexity run its PPL (lower is better). When every run has a price per
//! 1M tokens the scatter's x axis is that price; otherwise it is seconds per 1M tokens,
//! the machine-time cost that the price is proportional to.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::EvalError;
use crate::report::table;

/// What a run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Perplexity,
    Choice,
    Generation,
}

/// One `results.json`, reduced to what a comparison shows.
#[derive(Clone, Debug)]
pub struct Run {
    pub label: String,
    pub model: String,
    /// Suite name, or `perplexity`.
    pub what: String,
    pub kind: Kind,
    /// Questions (suites) or chunks (perplexity).
    pub n: u64,
    /// acc / match in percent, or PPL.
    pub score: f64,
    pub per_subject: BTreeMap<String, f64>,
    pub tokens_per_second: Option<f64>,
    pub price_per_m: Option<f64>,
    pub kwh_per_m: Option<f64>,
}

impl Run {
    /// Reads a results document written by `jikji eval ... --out DIR`; `label` names it.
    pub fn from_json(label: &str, doc: &Value, metric: &str) -> Result<Run, EvalError> {
        let bad = |why: &str| EvalError::Format(format!("{label}: {why}"));
        let f = |k: &str| doc.get(k).and_then(Value::as_f64);
        let model = doc.get("model").and_then(Value::as_str).unwrap_or("?").to_string();
        if let Some(ppl) = f("ppl") {
            let secs = f("seconds").unwrap_or(0.0);
            let tps = f("tokens_processed").filter(|_| secs > 0.0).map(|t| t / secs);
            return Ok(Run {
                label: label.into(),
                model,
                what: "perplexity".into(),
                kind: Kind::Perplexity,
                n: doc.get("n_chunk").and_then(Value::as_u64).unwrap_or(0),
                score: ppl,
                per_subject: BTreeMap::new(),
                tokens_per_second: tps,
                price_per_m: f("price_per_1m_tokens"),
                kwh_per_m: f("kwh_per_1m_tokens"),
            });
        }
        let suite = doc.get("suite").and_then(Value::as_str).ok_or_else(|| bad("neither a perplexity (\"ppl\") nor a suite (\"suite\") result"))?;
        let details = doc.get("details").ok_or_else(|| bad("no \"details\""))?;
        let kind = match details.get("kind").and_then(Value::as_str) {
            Some("choice") => Kind::Choice,
            Some("generation") => Kind::Generation,
            k => return Err(bad(&format!("unknown result kind {k:?}"))),
        };
        let key = match (kind, metric) {
            (Kind::Choice, "acc" | "acc_norm" | "acc_mean") => metric,
            (Kind::Generation, "exact" | "match" | "includes") => if metric == "match" { "matched" } else { metric },
            (Kind::Choice, _) => "acc",
            _ => "matched",
        };
        let pct = |t: &Value| -> Option<f64> {
            let n = t.get("n")?.as_f64()?;
            Some(if n > 0.0 { 100.0 * t.get(key)?.as_f64()? / n } else { 0.0 })
        };
        let result = details.get("result").ok_or_else(|| bad("no \"details.result\""))?;
        let overall = result.get("overall").ok_or_else(|| bad("no overall tally"))?;
        let score = pct(overall).ok_or_else(|| bad(&format!("the overall tally has no {key:?}")))?;
        let per_subject = result
            .get("per_subject")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(s, t)| pct(t).map(|p| (s.clone(), p))).collect())
            .unwrap_or_default();
        Ok(Run {
            label: label.into(),
            model,
            what: suite.into(),
            kind,
            n: overall.get("n").and_then(Value::as_u64).unwrap_or(0),
            score,
            per_subject,
            tokens_per_second: f("tokens_per_second"),
            price_per_m: f("price_per_1m_tokens"),
            kwh_per_m: f("kwh_per_1m_tokens"),
        })
    }
}

/// Checks that the runs can be compared: at least two, one kind.
pub fn check(runs: &[Run]) -> Result<(), EvalError> {
    if runs.len() < 2 {
        return Err(EvalError::Format(format!("compare needs two or more results, got {}", runs.len())));
    }
    if let Some(r) = runs.iter().find(|r| (r.kind == Kind::Perplexity) != (runs[0].kind == Kind::Perplexity)) {
        return Err(EvalError::Mismatch(format!("{} is a {} result and {} a {} result: compare perplexity with perplexity and suites with suites", r.label, r.what, runs[0].label, runs[0].what)));
    }
    Ok(())
}

/// The score's name in tables and charts.
pub fn score_name(runs: &[Run]) -> &'static str {
    match runs.first().map(|r| r.kind) {
        Some(Kind::Perplexity) => "PPL",
        Some(Kind::Generation) => "match %",
        _ => "acc %",
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "–".into())
}

fn signed(d: f64, digits: usize) -> String {
    format!("{d:+.digits$}")
}

/// The runs' table: label, model, what, n, score, delta from the first, speed and cost.
pub fn runs_table(runs: &[Run]) -> String {
    let name = score_name(runs);
    let delta = format!("Δ {name}");
    let header = ["run", "model", "what", "n", name, delta.as_str(), "tokens/s", "price per 1M", "kWh per 1M"];
    let base = runs[0].score;
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.label.clone(),
                r.model.clone(),
                r.what.clone(),
                r.n.to_string(),
                format!("{:.4}", r.score),
                signed(r.score - base, 4),
                opt(r.tokens_per_second, 1),
                opt(r.price_per_m, 4),
                opt(r.kwh_per_m, 4),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// Subjects every run scored, with each run's score and its delta from the first.
pub fn subjects_table(runs: &[Run]) -> Option<String> {
    let common: Vec<&String> = runs[0].per_subject.keys().filter(|s| runs.iter().all(|r| r.per_subject.contains_key(*s))).collect();
    if common.is_empty() {
        return None;
    }
    let mut header = vec!["subject".to_string(), runs[0].label.clone()];
    header.extend(runs[1..].iter().map(|r| format!("{} (Δ)", r.label)));
    let rows: Vec<Vec<String>> = common
        .iter()
        .map(|s| {
            let b = runs[0].per_subject[*s];
            let mut row = vec![(*s).clone(), format!("{b:.2}")];
            row.extend(runs[1..].iter().map(|r| {
                let v = r.per_subject[*s];
                format!("{v:.2} ({})", signed(v - b, 2))
            }));
            row
        })
        .collect();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    Some(table(&h, &rows))
}

/// One CSV row per run (the runs table's columns).
pub fn csv(runs: &[Run]) -> String {
    let q = |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
    let o = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut s = String::from("run,model,what,n,score,delta,tokens_per_second,price_per_1m_tokens,kwh_per_1m_tokens\n");
    for r in runs {
        s.push_str(&format!("{},{},{},{},{},{},{},{},{}\n", q(&r.label), q(&r.model), q(&r.what), r.n, r.score, r.score - runs[0].score, o(r.tokens_per_second), o(r.price_per_m), o(r.kwh_per_m)));
    }
    s
}

/// The scatter's points `(label, cost, score)` and the x axis' name: price per 1M tokens
/// when every run has one, else seconds per 1M tokens; runs with neither are left out.
pub fn cost_points(runs: &[Run]) -> (String, Vec<(String, f64, f64)>) {
    if runs.iter().all(|r| r.price_per_m.is_some()) {
        return ("price per 1M tokens".into(), runs.iter().map(|r| (r.label.clone(), r.price_per_m.unwrap_or(0.0), r.score)).collect());
    }
    let pts = runs.iter().filter_map(|r| r.tokens_per_second.filter(|t| *t > 0.0).map(|t| (r.label.clone(), 1e6 / t, r.score))).collect();
    ("seconds per 1M tokens".into(), pts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suite(acc: [u64; 2], price: Option<f64>) -> Value {
        json!({
            "suite": "mmlu", "model": "m.gguf", "items": 20, "tokens_per_second": 100.0, "price_per_1m_tokens": price,
            "details": {"kind": "choice", "result": {
                "overall": {"n": 20, "acc": acc[0] + acc[1], "acc_norm": 3, "acc_mean": 4},
                "per_subject": {"law": {"n": 10, "acc": acc[0], "acc_norm": 1, "acc_mean": 1}, "math": {"n": 10, "acc": acc[1], "acc_norm": 2, "acc_mean": 3}}
            }}
        })
    }

    #[test]
    fn deltas_are_taken_from_the_first_run_overall_and_per_subject() {
        let a = Run::from_json("q8", &suite([5, 5], Some(0.1)), "acc").unwrap();
        let b = Run::from_json("q4", &suite([4, 2], Some(0.05)), "acc").unwrap();
        assert_eq!((a.score, b.score), (50.0, 30.0));
        let runs = [a, b];
        check(&runs).unwrap();
        let t = runs_table(&runs);
        assert!(t.contains("| q4 | m.gguf | mmlu | 20 | 30.0000 | -20.0000 |"), "{t}");
        let s = subjects_table(&runs).unwrap();
        assert!(s.contains("| law | 50.00 | 40.00 (-10.00) |") && s.contains("| math | 50.00 | 20.00 (-30.00) |"), "{s}");
        let (x, pts) = cost_points(&runs);
        assert_eq!(x, "price per 1M tokens");
        assert_eq!(pts[1], ("q4".to_string(), 0.05, 30.0));
        assert!(csv(&runs).lines().nth(2).unwrap().starts_with("q4,m.gguf,mmlu,20,30,-20,"));
    }

    #[test]
    fn the_metric_picks_acc_norm_and_cost_falls_back_to_seconds_per_million() {
        let a = Run::from_json("a", &suite([5, 5], None), "acc_norm").unwrap();
        assert_eq!(a.score, 15.0);
        let (x, pts) = cost_points(&[a.clone(), a]);
        assert_eq!(x, "seconds per 1M tokens");
        assert_eq!(pts[0].1, 10_000.0);
    }

    #[test]
    fn perplexity_results_compare_with_each_other_but_not_with_suites() {
        let p = json!({"model": "m", "ppl": 12.5, "n_chunk": 4, "tokens_processed": 2048, "seconds": 2.0, "price_per_1m_tokens": null});
        let r = Run::from_json("p", &p, "acc").unwrap();
        assert_eq!((r.kind, r.score, r.tokens_per_second), (Kind::Perplexity, 12.5, Some(1024.0)));
        let s = Run::from_json("s", &suite([1, 1], None), "acc").unwrap();
        let e = check(&[r.clone(), s]).unwrap_err().to_string();
        assert!(e.contains("compare perplexity with perplexity"), "{e}");
        assert!(check(&[r]).unwrap_err().to_string().contains("two or more"));
    }

    #[test]
    fn a_file_that_is_no_result_is_a_format_error_naming_it() {
        let e = Run::from_json("dir/x", &json!({"hello": 1}), "acc").unwrap_err();
        assert!(matches!(e, EvalError::Format(_)) && e.to_string().starts_with("dir/x:"), "{e}");
    }
}
