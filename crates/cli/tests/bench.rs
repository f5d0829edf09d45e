//! `jikji bench`: the JSON report's shape and sanity on a real model (no timing thresholds:
//! benchmarks are programs, not timed tests). A missing model fails with the command that
//! fetches it, unless `JIKJI_SKIP_REAL_MODELS=1`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const SMOLLM: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The real model, `None` when `JIKJI_SKIP_REAL_MODELS=1`; a missing one fails with the
/// `jikji pull {pull_name}` command (`jikji_testkit::real_model`).
fn model_path(file: &str, pull_name: &str) -> Option<PathBuf> {
    assert_eq!(jikji_testkit::catalog_name(file), pull_name, "testkit's pull name for {file}");
    jikji_testkit::real_model(file)
}

fn jikji(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start the jikji binary")
}

fn positive(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number in {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x} is not positive in {v}");
    x
}

#[test]
fn bench_json_reports_positive_speeds_bytes_and_bandwidth_share() {
    let Some(path) = model_path(SMOLLM, "smollm2-135m") else { return };
    let path = path.to_string_lossy().into_owned();
    let out = jikji(&["bench", "-m", &path, "-p", "16", "-n", "4", "-r", "1", "-t", "2", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jikji bench failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("stdout is not UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line:\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("stdout is not JSON");

    assert_eq!(v["model"], SMOLLM);
    assert_eq!(v["threads"], 2);
    assert_eq!(v["pp"], 16);
    assert_eq!(v["tg"], 4);
    assert_eq!(v["reps"], 1);
    positive(&v, "pp_tok_s");
    let tg = positive(&v, "tg_tok_s");
    let bw = positive(&v, "bandwidth_gb_s");
    let share = positive(&v, "tg_bandwidth_share");
    let bytes = v["model_bytes"].as_u64().expect("model_bytes is an integer");
    // Weights read per token: all of SmolLM2's tensors (tied embedding), so close to the
    // file size and below it.
    let file_len = std::fs::metadata(&path).expect("model file").len();
    assert!(bytes > file_len / 2 && bytes < file_len, "model_bytes {bytes} vs file {file_len}");
    let expect_share = bytes as f64 * tg / (bw * 1e9);
    assert!((share - expect_share).abs() <= 1e-9 * expect_share.max(1.0), "share {share} != {expect_share}");
    assert!(v["peak_rss_bytes"].as_u64().is_some_and(|r| r > bytes / 2), "peak_rss_bytes missing or too small: {v}");
}

#[test]
fn bench_skips_a_test_given_zero_tokens() {
    let Some(path) = model_path(SMOLLM, "smollm2-135m") else { return };
    let path = path.to_string_lossy().into_owned();
    let out = jikji(&["bench", "-m", &path, "-p", "8", "-n", "0", "-r", "1", "--json"]);
    assert!(out.status.success(), "jikji bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is not JSON");
    positive(&v, "pp_tok_s");
    assert!(v["tg_tok_s"].is_null() && v["tg_bandwidth_share"].is_null(), "tg ran with -n 0: {v}");
}

#[test]
fn bench_rejects_zero_threads_and_zero_repetitions_cleanly() {
    for args in [["-t", "0"], ["-r", "0"]] {
        let out = jikji(&["bench", "-m", "nonexistent.gguf", args[0], args[1]]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:") && !err.contains("panicked"), "{err}");
    }
}
