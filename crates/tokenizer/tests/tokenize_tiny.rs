//! The tiny random-weight fixtures (`tests/fixtures/tiny/*.gguf`): their prompts were
//! tokenized by Hugging Face (`add_special_tokens=False`, GPT-2 byte-level BPE) and fed to
//! llama.cpp as ids, so our bare encoding must give the same ids.

mod common;

use common::fixtures_dir;
use jikji_gguf::GgufFile;
use jikji_tokenizer::{Tokenizer, TokenizerKind};

#[test]
fn tiny_fixture_prompts_tokenize_to_their_reference_ids() {
    let dir = fixtures_dir().join("tiny");
    let mut n_files = 0;
    let mut n_prompts = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    entries.sort();
    for gguf_path in entries {
        let json_path = gguf_path.with_extension("json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).expect("read tiny json"))
                .expect("tiny json");
        let file = GgufFile::open(&gguf_path).expect("open tiny gguf");
        let tok =
            Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{}: {e}", gguf_path.display()));
        assert_eq!(tok.kind(), TokenizerKind::Bpe);
        for p in json["prompts"].as_array().expect("prompts") {
            let text = p["text"].as_str().expect("prompt text");
            let want: Vec<u32> = p["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().expect("id") as u32)
                .collect();
            let got = tok.encode(text, false, false).unwrap();
            assert_eq!(got, want, "{}: {text:?}", gguf_path.display());
            assert_eq!(
                tok.decode(&got, false).unwrap(),
                text,
                "{}: decode {text:?}",
                gguf_path.display()
            );
            n_prompts += 1;
        }
        n_files += 1;
    }
    assert!(
        n_files >= 5 && n_prompts >= 15,
        "found only {n_files} tiny models / {n_prompts} prompts"
    );
}
