//! `jikji run` and `jikji chat` with `--json-schema`, `--regex` and `--grammar`: the built
//! binary on qwen2.5-0.5b prints output inside the grammar, greedy and seeded-sampled, and
//! refuses bad grammars with one `error:` line and a non-zero exit. A missing model fails
//! with the command that fetches it, unless `JIKJI_SKIP_REAL_MODELS=1`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct.gguf";

fn qwen() -> Option<String> {
    jikji_testkit::real_model(QWEN).map(|p| p.to_string_lossy().into_owned())
}

fn jikji(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the jikji binary");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("collect jikji's output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is not UTF-8")
}

fn assert_ok(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{what} failed ({}):\n{err}", o.status);
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
}

/// Exit code 1, exactly one `error:` line on stderr containing every needle, nothing on
/// stdout.
fn assert_one_line_error(o: &Output, what: &str, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: exit status {}, stderr:\n{err}", o.status);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line of error expected:\n{err}");
    assert!(lines[0].starts_with("error: "), "{what}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{what}: message lacks {n:?}: {err}");
    }
    assert!(o.stdout.is_empty(), "{what}: printed {:?}", stdout(o));
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 24},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "city": {"enum": ["Seoul", "Busan", "Incheon"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 1, "maxItems": 3}
        },
        "required": ["name", "age", "city", "tags"],
        "additionalProperties": false
    })
}

/// The checks `jsonschema` would make for [`person_schema`], spelled out.
fn check_person(text: &str, what: &str) {
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:?}"));
    let o = v.as_object().unwrap_or_else(|| panic!("{what}: not an object: {text}"));
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["age", "city", "name", "tags"], "{what}: {text}");
    let name = o["name"].as_str().unwrap_or_else(|| panic!("{what}: name: {text}"));
    assert!((1..=24).contains(&name.chars().count()), "{what}: name length: {text}");
    let age = o["age"].as_i64().unwrap_or_else(|| panic!("{what}: age: {text}"));
    assert!((0..=120).contains(&age), "{what}: age: {text}");
    assert!(["Seoul", "Busan", "Incheon"].contains(&o["city"].as_str().unwrap_or("")), "{what}: city: {text}");
    let tags = o["tags"].as_array().unwrap_or_else(|| panic!("{what}: tags: {text}"));
    assert!((1..=3).contains(&tags.len()), "{what}: tags count: {text}");
    assert!(tags.iter().all(|t| t.as_str().is_some_and(|s| s.chars().count() <= 12)), "{what}: tags: {text}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write a temp file");
    p.to_string_lossy().into_owned()
}

#[test]
fn run_with_a_json_schema_prints_json_that_validates_greedy_and_seeded() {
    let Some(m) = qwen() else { return };
    let dir = tempfile::tempdir().unwrap();
    let schema = write(dir.path(), "person.json", &person_schema().to_string());
    let prompt = "Invent a person living in Korea and describe them.";
    let greedy = ["--temp", "0"];
    let sampled = ["--temp", "1.0", "--seed", "7"];
    for sampling in [&greedy[..], &sampled[..]] {
        let mut args = vec!["run", "-m", &m, "--json-schema", &schema, "-n", "96"];
        args.extend_from_slice(sampling);
        args.push(prompt);
        let o = jikji(&args, "");
        assert_ok(&o, "run --json-schema");
        check_person(&stdout(&o), &format!("run {sampling:?}"));
        // --json carries the same constrained text.
        args.insert(1, "--json");
        let o = jikji(&args, "");
        assert_ok(&o, "run --json --json-schema");
        let obj: Value = serde_json::from_str(stdout(&o).trim()).expect("run --json prints one JSON object");
        check_person(obj["text"].as_str().expect("text"), &format!("run --json {sampling:?}"));
    }
}

#[test]
fn run_with_a_regex_prints_a_whole_match() {
    let Some(m) = qwen() else { return };
    let o = jikji(&["run", "-m", &m, "--temp", "0", "-n", "32", "--regex", "010-[0-9]{4}-[0-9]{4}", "Make up a phone number."], "");
    assert_ok(&o, "run --regex");
    let out = stdout(&o);
    let b = out.trim_end_matches('\n').as_bytes();
    assert_eq!(b.len(), 13, "{out:?}");
    assert!(b.starts_with(b"010-") && b[8] == b'-', "{out:?}");
    assert!(b.iter().enumerate().all(|(i, c)| i == 3 || i == 8 || c.is_ascii_digit()), "{out:?}");
}

#[test]
fn run_with_a_lark_grammar_prints_a_sentence_of_its_language() {
    let Some(m) = qwen() else { return };
    let dir = tempfile::tempdir().unwrap();
    let g = write(dir.path(), "answer.lark", "start: verdict \" (\" NUMBER \"%)\"\nverdict: \"yes\" | \"no\"\nNUMBER: /[0-9]{1,2}/\n");
    let o = jikji(&["run", "-m", &m, "--temp", "0.9", "--seed", "3", "-n", "16", "--grammar", &g, "Is Seoul in Korea?"], "");
    assert_ok(&o, "run --grammar");
    let out = stdout(&o);
    let out = out.trim_end_matches('\n');
    let rest = out.strip_prefix("yes (").or_else(|| out.strip_prefix("no (")).unwrap_or_else(|| panic!("{out:?}"));
    let num = rest.strip_suffix("%)").unwrap_or_else(|| panic!("{out:?}"));
    assert!((1..=2).contains(&num.len()) && num.bytes().all(|c| c.is_ascii_digit()), "{out:?}");
}

#[test]
fn chat_applies_the_schema_to_every_reply() {
    let Some(m) = qwen() else { return };
    let dir = tempfile::tempdir().unwrap();
    let schema = write(dir.path(), "person.json", &person_schema().to_string());
    let o = jikji(
        &["chat", "-m", &m, "--temp", "0", "-n", "96", "--json-schema", &schema],
        "Describe a person from Busan.\nNow another person, older.\n",
    );
    assert_ok(&o, "chat --json-schema");
    let out = stdout(&o);
    let replies: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(replies.len(), 2, "{out:?}");
    for (i, r) in replies.iter().enumerate() {
        check_person(r, &format!("chat reply {i}"));
    }
}

#[test]
fn bad_grammar_inputs_are_one_line_errors_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = write(dir.path(), "broken.json", "{\"type\": \"object\", ");
    let missing = dir.path().join("missing.json").to_string_lossy().into_owned();
    // These fail before any model is opened.
    let o = jikji(&["run", "--json-schema", &not_json, "hi"], "");
    assert_one_line_error(&o, "a schema that is not JSON", &["--json-schema", "broken.json", "not valid JSON"]);
    let o = jikji(&["chat", "--json-schema", &missing], "");
    assert_one_line_error(&o, "a missing schema file", &["--json-schema", "missing.json", "cannot read"]);
    let o = jikji(&["run", "--grammar", &missing, "hi"], "");
    assert_one_line_error(&o, "a missing grammar file", &["--grammar", "missing.json", "cannot read"]);
    // Two constraints at once are a usage error (clap's exit code 2).
    let o = jikji(&["run", "--regex", "a", "--json-schema", &not_json, "hi"], "");
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"), "{}", String::from_utf8_lossy(&o.stderr));

    // These need the model's vocabulary.
    let Some(m) = qwen() else { return };
    let unsupported = write(dir.path(), "if.json", &json!({"type": "object", "if": {"required": ["a"]}}).to_string());
    let o = jikji(&["run", "-m", &m, "--json-schema", &unsupported, "hi"], "");
    assert_one_line_error(&o, "an unsupported keyword", &["--json-schema", "if.json", "if"]);
    let mut deep = String::new();
    for _ in 0..100 {
        deep.push_str("{\"type\": \"array\", \"items\": ");
    }
    deep.push_str("{\"type\": \"string\"}");
    deep.push_str(&"}".repeat(100));
    let deep = write(dir.path(), "deep.json", &deep);
    let o = jikji(&["run", "-m", &m, "--json-schema", &deep, "hi"], "");
    assert_one_line_error(&o, "a deep schema", &["--json-schema", "nests deeper than"]);
    let o = jikji(&["run", "-m", &m, "--regex", "(unclosed", "hi"], "");
    assert_one_line_error(&o, "a bad regex", &["--regex", "regex"]);
    let empty = write(dir.path(), "empty.lark", "start: a\na: a \"x\"\n");
    let o = jikji(&["chat", "-m", &m, "--grammar", &empty], "hello\n");
    assert_one_line_error(&o, "an empty language", &["--grammar", "empty.lark", "matches no output"]);
}
