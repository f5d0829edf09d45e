//! End-to-end tests of the `jikji` binary against the real models and llama.cpp's outputs
//! (`tests/fixtures/reference/*.json`). A missing model fails the test with the command that
//! fetches it, unless `JIKJI_SKIP_REAL_MODELS=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use jikji_testkit::reference::Reference;

const SMOLLM: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";
const QWEN: &str = "qwen2.5-coder-0.5b-instruct.gguf";
const ALL: [&str; 3] = [SMOLLM, GEMMA, QWEN];

fn jikji(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start the jikji binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is not UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed ({}):\n{}", o.status, stderr(o));
    assert!(!stderr(o).contains("panicked"), "{what} panicked:\n{}", stderr(o));
}

/// A clean failure: non-zero exit, an `error:` line, no panic.
fn assert_clean_failure(o: &Output, what: &str, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "{what} should fail, stdout: {}", String::from_utf8_lossy(&o.stdout));
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    assert!(err.contains("error:"), "{what}: no error message:\n{err}");
    assert!(err.contains(needle), "{what}: message lacks {needle:?}:\n{err}");
}

fn model(file: &str) -> Option<String> {
    jikji_testkit::real_model(file).map(|p| p.to_string_lossy().into_owned())
}

fn ids_of(json: &str) -> Vec<u32> {
    serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not a JSON id array: {json:?}: {e}"))
}

#[test]
fn tokenize_prints_the_reference_ids_for_every_fixture_text() {
    for file in ALL {
        let Some(m) = model(file) else { return };
        let r = Reference::for_model(file);
        for case in &r.tokenize {
            let mut args = vec!["tokenize", "-m", &m];
            if case.add_special {
                args.push("--special");
            }
            args.push("--");
            args.push(&case.text);
            let o = jikji(&args);
            assert_ok(&o, "tokenize");
            assert_eq!(ids_of(&stdout(&o)), case.ids, "{file}: {:?} add_special={}", case.text, case.add_special);
        }
    }
}

#[test]
fn template_prints_the_reference_rendering_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for file in ALL {
        let Some(m) = model(file) else { return };
        let r = Reference::for_model(file);
        for (i, case) in r.chat_template.iter().enumerate() {
            assert!(case.add_generation_prompt);
            let path = dir.path().join(format!("{file}-{i}.json"));
            std::fs::write(&path, serde_json::to_vec(&case.messages).unwrap()).unwrap();
            let o = jikji(&["template", "-m", &m, path.to_str().unwrap()]);
            assert_ok(&o, "template");
            assert_eq!(stdout(&o), case.rendered, "{file} case {i}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "fixtures hold chat renderings for smollm2 and qwen2.5");
}

#[test]
fn template_rejects_a_non_array_messages_file() {
    let Some(m) = model(SMOLLM) else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    std::fs::write(&path, br#"{"role": "user"}"#).unwrap();
    assert_clean_failure(&jikji(&["template", "-m", &m, path.to_str().unwrap()]), "template", "array");
    std::fs::write(&path, b"[not json").unwrap();
    assert_clean_failure(&jikji(&["template", "-m", &m, path.to_str().unwrap()]), "template", "JSON");
}

#[test]
fn run_json_greedy_raw_reproduces_the_reference_continuations() {
    for file in ALL {
        let Some(m) = model(file) else { return };
        let r = Reference::for_model(file);
        for case in &r.greedy {
            // Exact agreement is required before the first step whose margin is < 0.1.
            let upto = case.margins.iter().position(|&x| x < 0.1).unwrap_or(case.ids.len());
            let n = upto.max(1).to_string();
            let o = jikji(&["run", "-m", &m, "--raw", "--temp", "0", "--json", "-n", &n, "--", &case.prompt]);
            assert_ok(&o, "run --json");
            let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
            let prompt_ids: Vec<u32> = serde_json::from_value(v["prompt_ids"].clone()).unwrap();
            let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
            assert!(v["text"].is_string());
            assert_eq!(prompt_ids, case.prompt_ids, "{file}: prompt {:?}", case.prompt);
            assert!(ids.len() >= upto, "{file}: stopped early: {ids:?}");
            assert_eq!(ids[..upto], case.ids[..upto], "{file}: prompt {:?}", case.prompt);
        }
    }
}

#[test]
fn run_streams_valid_utf8_korean_without_replacement_characters() {
    let Some(m) = model(QWEN) else { return };
    let o = jikji(&["run", "-m", &m, "--temp", "0", "-n", "24", "한국의 수도는 어디인가요?"]);
    assert_ok(&o, "run (Korean)");
    let text = String::from_utf8(o.stdout.clone()).expect("stdout must be valid UTF-8");
    assert!(!text.contains('\u{FFFD}'), "replacement character in {text:?}");
    assert!(text.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)), "no Hangul in {text:?}");
    assert!(stderr(&o).contains("tok/s"), "timings go to stderr: {}", stderr(&o));
}

#[test]
fn text_after_double_dash_may_start_with_a_dash_or_be_empty() {
    let Some(m) = model(SMOLLM) else { return };
    let o = jikji(&["run", "-m", &m, "--raw", "--temp", "0", "-n", "2", "--json", "--", "-x"]);
    assert_ok(&o, "run -- -x");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let expected = ids_of(&stdout(&jikji(&["tokenize", "-m", &m, "--special", "--", "-x"])));
    assert_eq!(serde_json::from_value::<Vec<u32>>(v["prompt_ids"].clone()).unwrap(), expected);
    let o = jikji(&["run", "-m", &m, "--temp", "0", "-n", "2", "--", "-x"]);
    assert_ok(&o, "chat-formatted run -- -x");
    let o = jikji(&["tokenize", "-m", &m, "--", ""]);
    assert_ok(&o, "tokenize empty");
    assert_eq!(stdout(&o).trim(), "[]");
    // Empty raw prompt on a model without BOS: no token to evaluate, a clear error.
    let o = jikji(&["run", "-m", &m, "--raw", "-n", "2", "--", ""]);
    assert_clean_failure(&o, "run empty raw prompt", "empty");
}

#[test]
fn missing_or_unknown_model_fails_with_a_clear_message() {
    let o = jikji(&["run", "-m", "/nonexistent/dir/model.gguf", "hello"]);
    assert_clean_failure(&o, "run with a bad path", "smollm2-135m");
    let o = jikji(&["tokenize", "-m", "no-such-model", "hello"]);
    assert_clean_failure(&o, "tokenize with an unknown name", "qwen2.5-0.5b");
    let o = jikji(&["pull", "no-such-model"]);
    assert_clean_failure(&o, "pull of an unknown name", "gemma3-270m");
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(bytes).unwrap();
    p
}

#[test]
fn corrupt_model_files_fail_cleanly_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let mut files = vec![write_file(dir.path(), "garbage.gguf", &garbage), write_file(dir.path(), "empty.gguf", b"")];
    if let Some(m) = model(SMOLLM) {
        // A real header cut short: the index claims data past the end.
        let head = std::fs::read(&m).unwrap()[..1 << 20].to_vec();
        files.push(write_file(dir.path(), "truncated.gguf", &head));
    }
    let msgs = write_file(dir.path(), "m.json", br#"[{"role":"user","content":"hi"}]"#);
    for f in &files {
        let p = f.to_str().unwrap();
        assert_clean_failure(&jikji(&["run", "-m", p, "--temp", "0", "hi"]), "run", p);
        assert_clean_failure(&jikji(&["tokenize", "-m", p, "hi"]), "tokenize", p);
        assert_clean_failure(&jikji(&["inspect", p]), "inspect", p);
        assert_clean_failure(&jikji(&["template", "-m", p, msgs.to_str().unwrap()]), "template", p);
    }
}

#[test]
fn invalid_sampling_options_are_rejected() {
    let Some(m) = model(SMOLLM) else { return };
    assert_clean_failure(&jikji(&["run", "-m", &m, "--top-p", "-0.5", "hi"]), "negative top-p", "top_p");
    assert_clean_failure(&jikji(&["run", "-m", &m, "--min-p", "2", "hi"]), "min-p > 1", "min_p");
    assert_clean_failure(&jikji(&["run", "-m", &m, "--ctx", "0", "hi"]), "zero context", "--ctx");
    // A prompt longer than the context is an error, not a panic.
    assert_clean_failure(
        &jikji(&["run", "-m", &m, "--ctx", "4", "one two three four five six seven"]),
        "prompt longer than the context",
        "context",
    );
}

#[test]
fn seeded_sampling_run_is_reproducible() {
    let Some(m) = model(SMOLLM) else { return };
    let args = ["run", "-m", &m, "--json", "--seed", "1234", "--temp", "1.0", "-n", "12", "Tell me a story."];
    let a = jikji(&args);
    let b = jikji(&args);
    assert_ok(&a, "seeded run");
    assert_eq!(stdout(&a), stdout(&b));
}

#[test]
fn chat_answers_each_piped_line_and_exits_at_eof() {
    let Some(m) = model(SMOLLM) else { return };
    let mut child = Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(["chat", "-m", &m, "--temp", "0", "-n", "24"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jikji chat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all("What is the capital of France?\nAnd of South Korea?\n".as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o, "chat");
    let err = stderr(&o);
    let turns: Vec<&str> = err.lines().filter(|l| l.contains("generated:")).collect();
    assert_eq!(turns.len(), 2, "two replies expected, stderr:\n{err}");
    // The second turn reuses the cached conversation instead of re-evaluating it.
    let reused: usize = turns[1]
        .split('(')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the reused count in {:?}", turns[1]));
    assert!(reused > 10, "second turn reused only {reused} tokens: {}", turns[1]);
    // The first turn is exactly what `run` answers to the same single message.
    let single = jikji(&["run", "-m", &m, "--temp", "0", "-n", "24", "What is the capital of France?"]);
    assert_ok(&single, "run");
    let out = stdout(&o);
    let first = stdout(&single);
    assert!(!first.trim().is_empty());
    assert!(out.starts_with(&format!("{first}\n")), "chat's first reply differs from run's:\n{out}\nvs\n{first}");
    assert!(out.len() > first.len() + 2, "no second reply:\n{out}");
}

#[test]
fn chat_exit_command_quits_before_later_lines() {
    let Some(m) = model(SMOLLM) else { return };
    let mut child = Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(["chat", "-m", &m, "--temp", "0", "-n", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jikji chat");
    child.stdin.take().unwrap().write_all(b"/exit\nHello?\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o, "chat /exit");
    assert!(stdout(&o).is_empty(), "no reply expected after /exit: {}", stdout(&o));
}

#[test]
fn inspect_shows_summarised_metadata_and_the_tensor_table() {
    let Some(m) = model(SMOLLM) else { return };
    let o = jikji(&["inspect", &m]);
    assert_ok(&o, "inspect");
    let out = stdout(&o);
    assert!(out.contains("general.architecture = \"llama\""), "{out}");
    assert!(out.contains("tokenizer.ggml.tokens = ["), "{out}");
    assert!(out.contains("(len 49152)"), "token list summarised with its length");
    assert!(out.contains("tokenizer.chat_template = \"") && out.contains("chars)"), "template truncated");
    let line = out.lines().find(|l| l.trim_start().starts_with("token_embd.weight")).expect("tensor row");
    assert!(line.contains("576 x 49152"), "{line}");
    assert!(out.lines().count() < 400, "inspect output should stay short");
}
