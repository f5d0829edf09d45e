//! What a new user sees in the terminal: the default model, statistics on a line of their
//! own, and a token limit that cuts a Hangul syllable printing no U+FFFD. Real binary, real
//! model (qwen2.5-0.5b, the default).

use std::process::{Command, Output, Stdio};

use jikji_gguf::GgufFile;
use jikji_tokenizer::Tokenizer;

const QWEN: &str = "qwen2.5-coder-0.5b-instruct.gguf";
/// Rare syllables that Qwen's vocabulary spells in bytes, one syllable over several tokens.
const RARE: &str = "다음 글자를 그대로 따라 쓰세요: 뷁 햏 똠 꿻 쀍";

fn jikji(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jikji"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start the jikji binary")
}

fn ok(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "{what} failed ({}):\n{err}", o.status);
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

fn ids(v: &serde_json::Value, key: &str) -> Vec<u32> {
    serde_json::from_value(v[key].clone()).expect("ids")
}

/// The first token count after which the streamed text ends inside a character, and the
/// text complete up to there.
fn first_cut(tok: &Tokenizer, generated: &[u32]) -> Option<(usize, String)> {
    let mut dec = tok.incremental_decoder();
    let mut text = String::new();
    for (i, &id) in generated.iter().enumerate() {
        text.push_str(&dec.push(id).expect("known id"));
        if !dec.pending_bytes().is_empty() {
            return Some((i + 1, text));
        }
    }
    None
}

#[test]
fn run_without_model_uses_the_catalogs_korean_default() {
    let Some(path) = jikji_testkit::real_model(QWEN) else { return };
    let path = path.to_string_lossy().into_owned();
    let default = jikji(&["run", "--temp", "0", "-n", "1", "--json", "안녕하세요"]);
    ok(&default, "run without -m");
    let qwen = jikji(&["run", "-m", &path, "--temp", "0", "-n", "1", "--json", "안녕하세요"]);
    ok(&qwen, "run -m qwen");
    assert_eq!(ids(&json(&default), "prompt_ids"), ids(&json(&qwen), "prompt_ids"));
    assert_eq!(ids(&json(&default), "ids"), ids(&json(&qwen), "ids"));
}

#[test]
fn token_limit_inside_a_hangul_syllable_prints_no_replacement_character() {
    let Some(path) = jikji_testkit::real_model(QWEN) else { return };
    let path = path.to_string_lossy().into_owned();
    let long = jikji(&["run", "-m", &path, "--temp", "0", "-n", "40", "--json", RARE]);
    ok(&long, "run --json");
    let generated = ids(&json(&long), "ids");
    let file = GgufFile::open(&path).expect("model file");
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let (n, complete) = first_cut(&tok, &generated).expect("no answer token ends inside a syllable: the test has nothing to check");
    let n = n.to_string();
    // Streamed text, JSON text: both end at the last whole character.
    let o = jikji(&["run", "-m", &path, "--temp", "0", "-n", &n, RARE]);
    ok(&o, "run -n N");
    let text = String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8");
    assert!(!text.contains('\u{FFFD}'), "U+FFFD in {text:?}");
    assert_eq!(text, complete);
    let o = jikji(&["run", "-m", &path, "--temp", "0", "-n", &n, "--json", RARE]);
    ok(&o, "run -n N --json");
    let v = json(&o);
    assert_eq!(ids(&v, "ids").len().to_string(), n);
    assert_eq!(v["text"].as_str(), Some(complete.as_str()));
}

#[test]
fn statistics_go_to_stderr_on_a_line_of_their_own() {
    let Some(path) = jikji_testkit::real_model(QWEN) else { return };
    let path = path.to_string_lossy().into_owned();
    // One pipe for both streams, as `jikji run … 2>&1 | less` gives.
    let o = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" run -m \"$1\" --temp 0 -n 5 \"$2\" 2>&1")
        .args([env!("CARGO_BIN_EXE_jikji"), &path, RARE])
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    ok(&o, "run 2>&1");
    let both = String::from_utf8(o.stdout).expect("UTF-8");
    let stats: Vec<&str> = both.lines().filter(|l| l.contains("[prompt:")).collect();
    assert_eq!(stats.len(), 1, "{both:?}");
    assert!(stats[0].starts_with("[prompt:") && stats[0].ends_with(']'), "glued to the answer: {both:?}");
    assert!(!both.contains('\u{FFFD}'), "{both:?}");
    // Apart, stdout has only the answer and stderr only the statistics.
    let o = jikji(&["run", "-m", &path, "--temp", "0", "-n", "5", RARE]);
    ok(&o, "run");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("tok/s"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().any(|l| l.starts_with("[prompt:") && l.contains("tok/s")), "{err}");
}
