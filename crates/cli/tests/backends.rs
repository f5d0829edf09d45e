//! `--backend` and `jikji devices` through the binary: the Vulkan backend gives the CPU's
//! greedy continuation end to end on a tiny fixture (`run`) and measures (`bench`);
//! unavailable or unknown backends and models a backend cannot run are clear errors.
//! The Vulkan parts skip, saying so, when `jikji devices` finds no adapter, unless
//! JIKJI_REQUIRE_VULKAN=1 (CI, on lavapipe).

use std::process::{Command, Output, Stdio};

use jikji_testkit::tiny::TinyReference;

fn jikji(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start the jikji binary")
}

fn ok_stdout(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "jikji failed: {err}");
    String::from_utf8(o.stdout.clone()).expect("stdout is not UTF-8")
}

fn failure(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "expected a failure, got success: {}", String::from_utf8_lossy(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Whether `jikji devices` lists a Vulkan adapter (or fails the test when one is required).
fn have_vulkan() -> bool {
    let out = ok_stdout(&jikji(&["devices"]));
    let found = out.lines().any(|l| l.starts_with("vulkan 0:"));
    if !found {
        assert!(std::env::var("JIKJI_REQUIRE_VULKAN").as_deref() != Ok("1"), "JIKJI_REQUIRE_VULKAN=1 but `jikji devices` lists no adapter:\n{out}");
        eprintln!("no Vulkan adapter: skipped (install libvulkan1 and mesa-vulkan-drivers for lavapipe)");
    }
    found
}

fn greedy_ids(backend: &str, path: &str, text: &str) -> Vec<u32> {
    let o = jikji(&["run", "--backend", backend, "-m", path, "--raw", "--temp", "0", "-n", "16", "--json", "--", text]);
    let v: serde_json::Value = serde_json::from_str(ok_stdout(&o).trim()).expect("JSON output");
    serde_json::from_value(v["ids"].clone()).expect("ids")
}

#[test]
fn devices_lists_the_cpu_and_says_what_is_missing() {
    let out = ok_stdout(&jikji(&["devices"]));
    assert!(out.lines().next().is_some_and(|l| l.starts_with("cpu: ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("vulkan")), "a Vulkan line, adapter or none: {out}");
    assert!(out.lines().any(|l| l.starts_with("cuda")), "a CUDA line, device or why not: {out}");
    if out.contains("vulkan 0:") {
        assert!(out.contains("storage binding") && out.contains("largest buffer"), "{out}");
    }
}

#[test]
fn run_on_vulkan_gives_the_cpus_greedy_continuation() {
    if !have_vulkan() {
        return;
    }
    let r = TinyReference::load("qwen3-1");
    let path = r.gguf_path().to_string_lossy().into_owned();
    let p = &r.prompts[0];
    let ours = greedy_ids("vulkan", &path, &p.text);
    assert_eq!(ours, greedy_ids("cpu", &path, &p.text), "`{}`: Vulkan vs CPU", p.text);
    assert_eq!(ours, p.transformers.greedy, "`{}`: Vulkan vs transformers", p.text);
}

#[test]
fn bench_runs_on_vulkan_and_names_the_backend() {
    if !have_vulkan() {
        return;
    }
    let r = TinyReference::load("llama-1");
    let path = r.gguf_path().to_string_lossy().into_owned();
    let o = jikji(&["bench", "--backend", "vulkan", "-m", &path, "-p", "16", "-n", "4", "-r", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(ok_stdout(&o).trim()).expect("JSON output");
    assert_eq!(v["backend"], "vulkan");
    assert!(v["pp_tok_s"].as_f64().is_some_and(|x| x > 0.0) && v["tg_tok_s"].as_f64().is_some_and(|x| x > 0.0), "{v}");
}

#[test]
fn run_on_vulkan_gives_the_cpus_greedy_continuation_for_a_latent_attention_model() {
    if !have_vulkan() {
        return;
    }
    let r = TinyReference::load("deepseek_v2-1");
    let path = r.gguf_path().to_string_lossy().into_owned();
    let p = &r.prompts[0];
    let ours = greedy_ids("vulkan", &path, &p.text);
    assert_eq!(ours, greedy_ids("cpu", &path, &p.text), "`{}`: Vulkan vs CPU", p.text);
    assert_eq!(ours, p.transformers.greedy, "`{}`: Vulkan vs transformers", p.text);
}

#[test]
fn unknown_and_unbuilt_backends_are_clear_errors() {
    let r = TinyReference::load("llama-1");
    let path = r.gguf_path().to_string_lossy().into_owned();
    let e = failure(&jikji(&["run", "--backend", "metal", "-m", &path, "--raw", "-n", "1", "--", "hi"]));
    assert!(e.contains("unknown backend `metal`") && e.contains("cpu, vulkan, cuda, auto"), "{e}");
    let o = jikji(&["bench", "--backend", "cuda", "-m", &path, "-p", "4", "-n", "1", "-r", "1", "--json"]);
    if !o.status.success() {
        // Without the `cuda` feature, or with it on a machine without an NVIDIA driver.
        let e = failure(&o);
        assert!(e.contains("--features cuda") || e.contains("CUDA backend is not available"), "{e}");
    }
}

#[test]
fn auto_runs_the_model_somewhere() {
    let r = TinyReference::load("llama-1");
    let path = r.gguf_path().to_string_lossy().into_owned();
    let p = &r.prompts[0];
    assert_eq!(greedy_ids("auto", &path, &p.text), p.transformers.greedy);
}
