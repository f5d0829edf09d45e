//! `jikji serve` argument and configuration errors: each is a clean failure (non-zero exit,
//! an `error:` line, no panic) before any model is loaded. The server itself is tested end
//! to end by `tests/server/` (pytest) and `crates/server/tests/router.rs`.

use std::process::{Command, Output, Stdio};

fn jikji(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jikji"));
    c.args(args).stdin(Stdio::null()).env_remove("JIKJI_API_KEYS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("cannot start the jikji binary")
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail");
    assert!(!err.contains("panicked"), "panicked:\n{err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
}

#[test]
fn unreadable_tls_files_fail_before_loading_the_model() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").expect("write");
    let c = cert.to_string_lossy().to_string();
    let o = jikji(&["serve", "-m", "no-such-model.gguf", "--tls-cert", &c, "--tls-key", &c], &[]);
    assert_clean_failure(&o, "TLS");
}

#[test]
fn tls_cert_without_key_is_a_usage_error() {
    let o = jikji(&["serve", "-m", "x", "--tls-cert", "c.pem"], &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tls-key"));
}

#[test]
fn empty_api_key_file_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("keys");
    std::fs::write(&f, "# no keys yet\n").expect("write");
    let o = jikji(&["serve", "-m", "x", "--api-key-file", &f.to_string_lossy()], &[]);
    assert_clean_failure(&o, "holds no key");
}

#[test]
fn malformed_key_in_environment_is_refused() {
    let o = jikji(&["serve", "-m", "x"], &[("JIKJI_API_KEYS", "good,bad key")]);
    assert_clean_failure(&o, "JIKJI_API_KEYS");
}

#[test]
fn zero_parallel_is_refused() {
    let o = jikji(&["serve", "-m", "x", "--parallel", "0"], &[]);
    assert_clean_failure(&o, "--parallel");
}
