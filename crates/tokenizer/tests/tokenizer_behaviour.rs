//! Behaviour pinned on small hand-built vocabularies and on the real models' metadata:
//! SentencePiece merging and byte fallback, space prefix, special-token partitioning,
//! end-of-generation detection, and the incremental decoder's UTF-8 safety.

mod common;

use common::{real_tokenizer, REAL_MODELS};
use jikji_tokenizer::{token_type as tt, Tokenizer, TokenizerKind, Vocab};

/// A SentencePiece vocabulary: specials, byte tokens for every byte, and a few pieces.
fn spm_vocab(add_space_prefix: Option<bool>) -> Vocab {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![tt::UNKNOWN, tt::CONTROL, tt::CONTROL];
    for b in 0..=255u32 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(tt::BYTE);
    }
    let pieces = [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("▁h", -1.5),
        ("he", -1.2),
        ("ll", -1.1),
        ("hell", -0.5),
        ("hello", -0.2),
        ("▁hello", -0.1),
        ("<start_of_turn>", 0.0),
        ("<mark>", 0.0),
    ];
    let mut scores = vec![0.0f32; tokens.len()];
    for (p, s) in pieces {
        tokens.push(p.into());
        scores.push(s);
        types.push(match p {
            "<start_of_turn>" => tt::CONTROL,
            "<mark>" => tt::USER_DEFINED,
            _ => tt::NORMAL,
        });
    }
    Vocab {
        model: "llama".into(),
        tokens,
        scores: Some(scores),
        token_types: Some(types),
        add_space_prefix,
        ..Vocab::default()
    }
}

fn id(tok: &Tokenizer, text: &str) -> u32 {
    tok.token_id(text)
        .unwrap_or_else(|| panic!("no token {text:?}"))
}

#[test]
fn spm_merges_by_score_and_adds_bos_and_space_prefix_by_default() {
    let tok = Tokenizer::from_vocab(spm_vocab(None)).unwrap();
    assert_eq!(tok.kind(), TokenizerKind::Spm);
    assert!(tok.add_bos() && tok.add_space_prefix());
    assert_eq!(
        tok.encode("hello", true, true).unwrap(),
        vec![1, id(&tok, "▁hello")]
    );
    assert_eq!(
        tok.encode("hello", false, false).unwrap(),
        vec![id(&tok, "▁hello")]
    );
    // Whole-sequence decode drops the space the prefix added to the first piece; as in
    // llama.cpp's `llama_detokenize`, a leading BOS takes that place, so the space stays.
    assert_eq!(tok.decode(&[id(&tok, "▁hello")], false).unwrap(), "hello");
    assert_eq!(
        tok.decode(&[1, id(&tok, "▁hello")], false).unwrap(),
        " hello"
    );
}

#[test]
fn spm_falls_back_to_byte_tokens_for_unknown_characters() {
    let tok = Tokenizer::from_vocab(spm_vocab(Some(false))).unwrap();
    let ids = tok.encode("한", false, false).unwrap();
    assert_eq!(
        ids,
        vec![id(&tok, "<0xED>"), id(&tok, "<0x95>"), id(&tok, "<0x9C>")]
    );
    assert_eq!(tok.decode(&ids, false).unwrap(), "한");
    assert_eq!(
        tok.token_bytes(id(&tok, "<0xED>"), false).unwrap(),
        vec![0xED]
    );
}

#[test]
fn spm_space_prefix_follows_metadata() {
    let tok = Tokenizer::from_vocab(spm_vocab(Some(false))).unwrap();
    assert_eq!(
        tok.encode("hello", false, false).unwrap(),
        vec![id(&tok, "hello")]
    );
    assert_eq!(
        tok.encode(" hello", false, false).unwrap(),
        vec![id(&tok, "▁hello")]
    );
}

#[test]
fn control_tokens_are_parsed_only_when_asked_but_user_defined_always() {
    let tok = Tokenizer::from_vocab(spm_vocab(Some(false))).unwrap();
    let sot = id(&tok, "<start_of_turn>");
    let mark = id(&tok, "<mark>");
    let parsed = tok
        .encode("<start_of_turn>hello<mark>", false, true)
        .unwrap();
    assert_eq!(parsed, vec![sot, id(&tok, "hello"), mark]);
    let bare = tok
        .encode("<start_of_turn>hello<mark>", false, false)
        .unwrap();
    assert!(!bare.contains(&sot), "{bare:?}");
    assert_eq!(bare.last(), Some(&mark));
    // Control tokens are hidden unless rendered; user-defined ones always show.
    assert_eq!(tok.decode(&parsed, false).unwrap(), "hello<mark>");
    assert_eq!(
        tok.decode(&parsed, true).unwrap(),
        "<start_of_turn>hello<mark>"
    );
}

#[test]
fn longer_special_tokens_win_over_their_prefixes() {
    let tokens: Vec<String> = ["a", "b", "Ġ", "<x>", "<x><y>", "<y>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let v = Vocab {
        model: "gpt2".into(),
        pre: Some("gpt-2".into()),
        tokens,
        token_types: Some(vec![
            tt::NORMAL,
            tt::NORMAL,
            tt::NORMAL,
            tt::CONTROL,
            tt::CONTROL,
            tt::CONTROL,
        ]),
        merges: Some(vec![]),
        ..Vocab::default()
    };
    let tok = Tokenizer::from_vocab(v).unwrap();
    assert_eq!(
        tok.encode("a<x><y>b<y><x>", false, true).unwrap(),
        vec![0, 4, 1, 5, 3]
    );
}

#[test]
fn bpe_merges_lowest_rank_first_and_leftmost_on_ties() {
    let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mk = |merges: &[&str]| {
        Tokenizer::from_vocab(Vocab {
            model: "gpt2".into(),
            pre: Some("gpt-2".into()),
            tokens: tokens.clone(),
            merges: Some(merges.iter().map(|s| s.to_string()).collect()),
            ..Vocab::default()
        })
        .unwrap()
    };
    // "b c" has the better rank: a + bc, then no merge "a bc" exists.
    assert_eq!(
        mk(&["b c", "a b", "ab c"])
            .encode("abc", false, false)
            .unwrap(),
        vec![0, 4]
    );
    // "a b" first, then "ab c".
    assert_eq!(
        mk(&["a b", "b c", "ab c"])
            .encode("abc", false, false)
            .unwrap(),
        vec![5]
    );
    // Same pair twice in a word: both merge.
    assert_eq!(
        mk(&["a b"]).encode("abab", false, false).unwrap(),
        vec![3, 3]
    );
}

#[test]
fn end_of_generation_tokens_are_found_by_text() {
    let tokens: Vec<String> = [
        "a",
        "<|im_end|>",
        "<|endoftext|>",
        "<|fim_pad|>",
        "<|im_start|>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tok = Tokenizer::from_vocab(Vocab {
        model: "gpt2".into(),
        pre: Some("qwen2".into()),
        tokens,
        merges: Some(vec![]),
        eos_id: Some(2),
        ..Vocab::default()
    })
    .unwrap();
    assert!(tok.is_eog(1) && tok.is_eog(2) && tok.is_eog(3));
    assert!(!tok.is_eog(0) && !tok.is_eog(4));
    assert_eq!(tok.eot_id(), Some(1));
    // Detected end tokens become control tokens: parsed in text, hidden in output.
    assert_eq!(tok.encode("a<|im_end|>", false, true).unwrap(), vec![0, 1]);
    assert_eq!(tok.decode(&[0, 1], false).unwrap(), "a");
}

#[test]
fn incremental_decoder_holds_back_partial_characters() {
    let tok = Tokenizer::from_vocab(spm_vocab(Some(false))).unwrap();
    let mut dec = tok.incremental_decoder();
    assert_eq!(dec.push(id(&tok, "hello")).unwrap(), "hello");
    assert_eq!(dec.push(id(&tok, "<0xED>")).unwrap(), "");
    assert_eq!(dec.push(id(&tok, "<0x95>")).unwrap(), "");
    assert_eq!(dec.pending_bytes(), &[0xED, 0x95]);
    assert_eq!(dec.push(id(&tok, "<0x9C>")).unwrap(), "한");
    // A byte that can never start a character is reported at once, not held back.
    assert_eq!(dec.push(id(&tok, "<0xFF>")).unwrap(), "\u{FFFD}");
    // An unfinished character at the end (generation cut inside it) is dropped, never
    // printed as U+FFFD.
    assert_eq!(dec.push(id(&tok, "<0xEA>")).unwrap(), "");
    assert_eq!(dec.push(id(&tok, "<0xB0>")).unwrap(), "");
    assert_eq!(dec.finish(), "");
    assert!(dec.pending_bytes().is_empty());
    // After finish the decoder starts afresh.
    assert_eq!(dec.push(id(&tok, "<0xED>")).unwrap(), "");
    assert_eq!(dec.push(id(&tok, "<0x95>")).unwrap(), "");
    assert_eq!(dec.push(id(&tok, "<0x9C>")).unwrap(), "한");
}

#[test]
fn real_models_expose_their_special_tokens() {
    type Expect<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        bool,
        &'a [&'a str],
    );
    let expect: [Expect; 3] = [
        (
            REAL_MODELS[0].0,
            Some("<|im_start|>"),
            Some("<|im_end|>"),
            false,
            &["<|im_end|>", "<|endoftext|>"],
        ),
        (
            REAL_MODELS[1].0,
            Some("<bos>"),
            Some("<eos>"),
            true,
            &["<eos>", "<end_of_turn>"],
        ),
        (
            REAL_MODELS[2].0,
            Some("<|endoftext|>"),
            Some("<|im_end|>"),
            false,
            &["<|im_end|>", "<|endoftext|>"],
        ),
    ];
    for (i, (file, bos, eos, add_bos, eog)) in expect.into_iter().enumerate() {
        let Some(tok) = real_tokenizer(file, REAL_MODELS[i].1) else {
            return;
        };
        assert_eq!(tok.bos_text(), bos, "{file}");
        assert_eq!(tok.eos_text(), eos, "{file}");
        assert_eq!(tok.add_bos(), add_bos, "{file}");
        for t in eog {
            let id = tok.token_id(t).unwrap_or_else(|| panic!("{file}: no {t}"));
            assert!(tok.is_eog(id), "{file}: {t} should end generation");
        }
        let hello = tok.token_id("Hello").or_else(|| tok.token_id("▁Hello"));
        assert!(hello.is_some_and(|h| !tok.is_eog(h)), "{file}");
        assert!(tok.n_vocab() > 40_000, "{file}");
    }
}

#[test]
fn long_texts_tokenize_quickly_and_stream_cleanly() {
    let paragraph =
        "대한민국의 수도는 서울입니다. The quick brown fox jumps over the lazy dog 1234567890! \
                     emoji 😀🚀 <|im_start|> 中文和日本語のテキスト\n\n    indented code();\n";
    let text = paragraph.repeat(200); // ~30 KB
    for (file, pull) in REAL_MODELS {
        let Some(tok) = real_tokenizer(file, pull) else {
            return;
        };
        let t0 = std::time::Instant::now();
        let ids = tok.encode(&text, true, true).unwrap();
        let took = t0.elapsed();
        eprintln!("{file}: {} ids in {took:?}", ids.len());
        assert!(
            took.as_secs_f64() < 5.0,
            "{file}: encoding 30 KB took {took:?}"
        );
        let mut dec = tok.incremental_decoder();
        let mut streamed = String::new();
        for &id in &ids {
            let chunk = dec.push(id).unwrap();
            assert!(!chunk.contains('\u{FFFD}'), "{file}: U+FFFD at id {id}");
            streamed.push_str(&chunk);
        }
        streamed.push_str(&dec.finish());
        assert_eq!(streamed, tok.decode(&ids, false).unwrap(), "{file}");
    }
}

#[test]
fn tokenizer_and_decoder_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<jikji_tokenizer::IncrementalDecoder>();
}
