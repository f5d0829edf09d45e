//! The `jikji` binary on the tiny DeepSeek V3 and EXAONE 4 reference files: `inspect`
//! shows the architecture's own hyper-parameters, and `run` reproduces the references'
//! greedy continuation end to end (tokenizer, latent-cache MLA, MoE, sampler at temp 0).

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

#[test]
fn inspect_shows_mla_ranks_experts_routing_and_yarn_for_deepseek() {
    let r = TinyReference::load("deepseek_v3-1");
    let out = ok_stdout(&jikji(&["inspect", &r.gguf_path().to_string_lossy()]));
    for needle in [
        "multi-head latent attention",
        "q_lora_rank 32",
        "kv_lora_rank               16",
        "nope 16 + rope 8",
        "144 B latent vs 960 B as plain multi-head",
        "8 routed, 2 used per token, 1 shared",
        "sigmoid",
        "4 groups, best 2 used",
        "norm true, scale 2.5",
        "YaRN factor 4, original context 1024",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
}

#[test]
fn inspect_shows_the_sliding_window_pattern_for_exaone4() {
    let r = TinyReference::load("exaone4-1");
    let out = ok_stdout(&jikji(&["inspect", &r.gguf_path().to_string_lossy()]));
    assert!(out.contains("hybrid: 48 sliding-window layers (window 8"), "{out}");
    assert!(out.contains("16 global layers without RoPE; pattern SSSGSSSG"), "{out}");
}

#[test]
fn run_reproduces_the_reference_greedy_continuation_for_deepseek_and_exaone4() {
    for name in ["deepseek_v3-1", "deepseek_v2-1", "exaone4-1"] {
        let r = TinyReference::load(name);
        let path = r.gguf_path().to_string_lossy().into_owned();
        for p in &r.prompts {
            let o = jikji(&["run", "-m", &path, "--raw", "--temp", "0", "-n", "16", "--json", "--", &p.text]);
            let v: serde_json::Value = serde_json::from_str(ok_stdout(&o).trim()).expect("JSON output");
            let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).expect("ids");
            let prompt_ids: Vec<u32> = serde_json::from_value(v["prompt_ids"].clone()).expect("prompt ids");
            assert_eq!(prompt_ids, p.ids, "{name} `{}`: tokenization", p.text);
            assert_eq!(ids, p.llama_cpp.greedy, "{name} `{}`: greedy continuation", p.text);
        }
    }
}
