//! Context and benchmark sizes the machine cannot hold are clean errors of the `jikji`
//! binary — exit code 1 and one `error:` line naming the problem — never an abort (a
//! signal), a panic (101) or an out-of-memory kill. Runs on the tiny fixture models.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tiny(name: &str) -> String {
    let p: PathBuf = jikji_testkit::fixtures_dir().join("tiny").join(format!("{name}.gguf"));
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p.to_string_lossy().into_owned()
}

fn jikji(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the jikji binary");
    wait_bounded(child, args)
}

/// Waits at most a minute: a command that should fail at once but starts working (or
/// serving) instead is killed and fails the test rather than hanging it.
fn wait_bounded(mut child: Child, args: &[&str]) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait for jikji").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let o = child.wait_with_output().expect("collect jikji's output");
            panic!("jikji {args:?} still ran after 60 s; stderr:\n{}", String::from_utf8_lossy(&o.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect jikji's output")
}

/// Exit code 1 (not a signal, not a panic's 101), exactly one line on stderr, an `error:`
/// line containing `needle`.
fn assert_clean_error(o: &Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: exit status {} (a signal has no code), stderr:\n{err}", o.status);
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line of error expected:\n{err}");
    assert!(lines[0].starts_with("error:"), "{what}: {err}");
    assert!(err.contains(needle), "{what}: message lacks {needle:?}:\n{err}");
}

#[test]
fn run_with_a_context_too_large_for_memory_says_the_kv_cache_is_too_large() {
    let m = tiny("llama-1");
    let o = jikji(&["run", "-m", &m, "--ctx", "1000000000000", "hi"]);
    assert_clean_error(&o, "run --ctx 10^12", "KV cache too large");
    assert_clean_error(&o, "run --ctx 10^12", "1000000000000");
}

#[test]
fn run_with_the_largest_context_overflows_cleanly_for_every_architecture() {
    for name in ["llama-1", "qwen3-1", "exaone-1", "exaone4-1", "deepseek_v2-1", "deepseek_v3-1"] {
        let m = tiny(name);
        let o = jikji(&["run", "-m", &m, "--ctx", &usize::MAX.to_string(), "hi"]);
        assert_clean_error(&o, &format!("{name}: run --ctx usize::MAX"), "KV cache too large");
        assert_clean_error(&o, &format!("{name}: run --ctx usize::MAX"), "overflows");
    }
}

#[test]
fn zero_context_is_refused_by_run_chat_and_serve() {
    let m = tiny("llama-1");
    assert_clean_error(&jikji(&["run", "-m", &m, "--ctx", "0", "hi"]), "run --ctx 0", "--ctx must be at least 1");
    assert_clean_error(&jikji(&["chat", "-m", &m, "--ctx", "0"]), "chat --ctx 0", "--ctx must be at least 1");
    assert_clean_error(&jikji(&["serve", "-m", &m, "--ctx", "0"]), "serve --ctx 0", "--ctx must be at least 1");
}

#[test]
fn serve_with_an_impossible_context_fails_before_listening() {
    let m = tiny("llama-1");
    let o = jikji(&["serve", "-m", &m, "--port", "0", "--ctx", &usize::MAX.to_string()]);
    assert_clean_error(&o, "serve --ctx usize::MAX", "KV cache too large");
    let o = jikji(&["serve", "-m", &m, "--port", "0", "--ctx", "1000000000000"]);
    assert_clean_error(&o, "serve --ctx 10^12", "KV cache too large");
}

#[test]
fn bench_with_more_tokens_than_a_cache_can_hold_is_refused_before_allocating() {
    let m = tiny("llama-1");
    let o = jikji(&["bench", "-m", &m, "-p", "1000000000", "-r", "1"]);
    assert_clean_error(&o, "bench -p 10^9", "KV cache too large");
    assert_clean_error(&o, "bench -p 10^9", "-p 1000000000");
    let o = jikji(&["bench", "-m", &m, "-p", "0", "-n", "1000000000000", "-r", "1"]);
    assert_clean_error(&o, "bench -n 10^12", "KV cache too large");
    let o = jikji(&["bench", "-m", &m, "-p", &usize::MAX.to_string(), "-r", "1"]);
    assert_clean_error(&o, "bench -p usize::MAX", "KV cache too large");
}

#[test]
fn a_small_bench_on_a_tiny_model_still_reports_its_speeds() {
    let m = tiny("llama-1");
    let o = jikji(&["bench", "-m", &m, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "--json"]);
    assert!(o.status.success(), "bench failed: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert!(v["pp_tok_s"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    assert_eq!(v["pp_tok_s_stddev"].as_f64(), Some(0.0), "one repetition has no spread: {v}");
    assert!(v["tg_tok_s"].is_null(), "{v}");
}
