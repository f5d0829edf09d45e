//! `jikji eval` end to end through the binary: llama-perplexity's lines on stdout, the
//! results directory, a base file written and compared against, and bad input refused
//! with a clear message and a non-zero exit (never a panic).

use std::process::{Command, Output, Stdio};

const SMOLLM: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn jikji(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jikji")).args(args).stdin(Stdio::null()).output().expect("cannot start the jikji binary")
}

fn fixture(name: &str) -> String {
    jikji_testkit::fixtures_dir().join("eval").join(name).to_string_lossy().into_owned()
}

#[test]
fn perplexity_prints_llama_perplexitys_lines_writes_results_and_a_base_it_can_compare_against() {
    let Some(model) = jikji_testkit::real_model(SMOLLM) else { return };
    let model = model.to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.kld").to_string_lossy().into_owned();
    let out_dir = dir.path().join("out").to_string_lossy().into_owned();
    let text = fixture("text.txt");
    let args = ["eval", "perplexity", "-m", &model, "-f", &text, "-c", "128", "--chunks", "3", "-t", "2", "--kl-divergence-base", &base, "--out", &out_dir];
    let out = jikji(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("[1]") && first.ends_with("[3]25.8850,"), "{stdout}");
    assert!(stdout.contains("Final estimate: PPL = 25.8850 +/- "), "{stdout}");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/results.json")).unwrap()).unwrap();
    assert_eq!(results["n_chunk"], 3);
    assert!(std::fs::read_to_string(dir.path().join("out/ppl-per-chunk.svg")).unwrap().starts_with("<svg"));

    let out = jikji(&["eval", "perplexity", "-m", &model, "--kl-divergence", "--kl-divergence-base", &base, "-t", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Mean PPL(Q)                   :  25.88"), "{stdout}");
    assert!(stdout.contains("Same top p: 100.000 ±"), "{stdout}");
}

#[test]
fn bad_eval_input_is_refused_with_a_message() {
    let model = jikji_testkit::fixtures_dir().join("tiny/llama-1.gguf").to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "only a few words\n").unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"\x05\x00\x00\x00garbage").unwrap();
    let notbase = dir.path().join("not-a-base");
    std::fs::write(&notbase, b"hello, this is text").unwrap();
    let cases: [(Vec<String>, &str); 4] = [
        (vec!["perplexity".into(), "-f".into(), short.to_string_lossy().into_owned(), "-c".into(), "64".into()], "you need at least 128 tokens"),
        (vec!["multiple-choice".into(), "-f".into(), junk.to_string_lossy().into_owned()], "ends inside"),
        (vec!["perplexity".into(), "--kl-divergence".into(), "--kl-divergence-base".into(), notbase.to_string_lossy().into_owned()], "_logits_"),
        (vec!["hellaswag".into(), "-f".into(), short.to_string_lossy().into_owned()], "multiple of 6"),
    ];
    for (rest, want) in cases {
        let mut args = vec!["eval".to_string()];
        args.push(rest[0].clone());
        args.extend(["-m".to_string(), model.clone()]);
        args.extend(rest[1..].iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = jikji(&argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{argv:?} succeeded");
        assert!(err.contains(want) && !err.contains("panicked"), "{argv:?}: {err}");
    }
    let out = jikji(&["eval", "suite", "no-such-suite", "-m", &model]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown suite"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn chat_templated_choice_suites_and_compare_write_deltas_reports_and_png_charts() {
    let Some(model) = jikji_testkit::real_model(SMOLLM) else { return };
    let model = model.to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    // Our multiple-choice fixture's questions as a user file (question, choices, answer).
    let mut jsonl = String::new();
    for line in std::fs::read_to_string(fixture("mc.jsonl")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        jsonl.push_str(&serde_json::json!({"question": v["question"], "choices": v["answers"], "answer": v["correct"]}).to_string());
        jsonl.push('\n');
    }
    let data = dir.path().join("mc.jsonl").to_string_lossy().into_owned();
    std::fs::write(&data, jsonl).unwrap();
    let run = |extra: &[&str], out: &str| {
        let out_dir = dir.path().join(out).to_string_lossy().into_owned();
        let mut args = vec!["eval", "suite", data.as_str(), "-m", model.as_str(), "-t", "2", "--limit", "4", "--out", out_dir.as_str()];
        args.extend_from_slice(extra);
        let o = jikji(&args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(out).join("results.json")).unwrap()).unwrap();
        for f in ["accuracy-per-subject.svg", "accuracy-per-subject.png", "report.md"] {
            assert!(dir.path().join(out).join(f).is_file(), "{out}/{f} missing");
        }
        doc
    };
    let plain = run(&[], "plain");
    let chat = run(&["--chat"], "chat");
    assert_eq!((plain["details"]["chat"].as_bool(), chat["details"]["chat"].as_bool()), (Some(false), Some(true)));
    // The template wraps every question in the system and role markers: far more tokens.
    let (tp, tc) = (plain["tokens_processed"].as_u64().unwrap(), chat["tokens_processed"].as_u64().unwrap());
    assert!(tc > tp + 4 * 10, "chat {tc} tokens, plain {tp}");

    let cmp = dir.path().join("cmp").to_string_lossy().into_owned();
    let (p, c) = (dir.path().join("plain").to_string_lossy().into_owned(), dir.path().join("chat").to_string_lossy().into_owned());
    let o = jikji(&["eval", "compare", &p, &c, "--out", &cmp]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let pct = |d: &serde_json::Value| 100.0 * d["details"]["result"]["overall"]["acc"].as_f64().unwrap() / 4.0;
    let want = format!("| chat | {SMOLLM} | {data} | 4 | {:.4} | {:+.4} |", pct(&chat), pct(&chat) - pct(&plain));
    assert!(stdout.contains(&want), "want {want} in\n{stdout}");
    let report = std::fs::read_to_string(dir.path().join("cmp/report.md")).unwrap();
    assert!(report.contains("![acc % per run](score-per-run.png)"), "{report}");
    let png = std::fs::read(dir.path().join("cmp/score-per-run.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // Perplexity and suites share no scale.
    let ppl = dir.path().join("p.json");
    std::fs::write(&ppl, r#"{"model": "m", "ppl": 10.0, "n_chunk": 1}"#).unwrap();
    let o = jikji(&["eval", "compare", &p, &ppl.to_string_lossy()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("compare perplexity with perplexity"));
}
