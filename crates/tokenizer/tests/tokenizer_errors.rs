//! Damaged or unsupported tokenizer metadata gives a clear error, never a panic. The files
//! are built in memory with the gguf crate's writer.

use jikji_gguf::{GgufFile, GgufWriter, Value};
use jikji_tokenizer::{Tokenizer, TokenizerError, Vocab};

/// A small, valid byte-level BPE vocabulary; `edit` damages it before the file is written.
fn bpe_file(edit: impl FnOnce(&mut Vec<(&'static str, Value)>)) -> GgufFile {
    let mut kvs: Vec<(&'static str, Value)> = vec![
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "gpt-2".into()),
        (
            "tokenizer.ggml.tokens",
            vec!["a", "b", "ab", "Ġ", "<|im_end|>"].into(),
        ),
        ("tokenizer.ggml.token_type", vec![1i32, 1, 1, 1, 3].into()),
        ("tokenizer.ggml.merges", vec!["a b"].into()),
        ("tokenizer.ggml.bos_token_id", Value::U32(4)),
        ("tokenizer.ggml.eos_token_id", Value::U32(4)),
    ];
    edit(&mut kvs);
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.add_kv(k, v);
    }
    GgufFile::from_bytes(w.to_bytes().expect("writer")).expect("reader")
}

fn set(kvs: &mut Vec<(&'static str, Value)>, key: &'static str, v: Value) {
    kvs.retain(|(k, _)| *k != key);
    kvs.push((key, v));
}

fn build(edit: impl FnOnce(&mut Vec<(&'static str, Value)>)) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_gguf(&bpe_file(edit))
}

#[test]
fn the_undamaged_fixture_builds_and_merges() {
    let tok = build(|_| {}).unwrap();
    assert_eq!(tok.encode("ab a", false, false).unwrap(), vec![2, 3, 0]);
    assert!(tok.is_eog(4));
}

#[test]
fn unknown_pre_tokenizer_is_a_clear_error() {
    let err = build(|k| set(k, "tokenizer.ggml.pre", "my-new-pre".into())).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::UnknownPreTokenizer(p) if p == "my-new-pre"),
        "{err}"
    );
    assert!(err.to_string().contains("my-new-pre"));
}

#[test]
fn special_token_id_out_of_range_is_an_error() {
    let err = build(|k| set(k, "tokenizer.ggml.bos_token_id", Value::U32(5))).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::SpecialIdOutOfRange {
                id: 5,
                n_vocab: 5,
                ..
            }
        ),
        "{err}"
    );
    let err = build(|k| set(k, "tokenizer.ggml.eos_token_id", Value::I32(-3))).unwrap_err();
    assert!(
        matches!(err, TokenizerError::SpecialIdOutOfRange { id: -3, .. }),
        "{err}"
    );
    let err = build(|k| set(k, "tokenizer.ggml.eot_token_id", Value::U64(u64::MAX))).unwrap_err();
    assert!(
        matches!(err, TokenizerError::SpecialIdOutOfRange { .. }),
        "{err}"
    );
}

#[test]
fn merge_naming_an_unknown_token_is_an_error() {
    let err = build(|k| set(k, "tokenizer.ggml.merges", vec!["a b", "a zz"].into())).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::BadMerge { index: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("zz"), "{err}");
}

#[test]
fn merge_without_a_separator_is_an_error() {
    let err = build(|k| set(k, "tokenizer.ggml.merges", vec!["ab"].into())).unwrap_err();
    assert!(
        matches!(err, TokenizerError::BadMerge { index: 0, .. }),
        "{err}"
    );
    let err = build(|k| set(k, "tokenizer.ggml.merges", vec!["a "].into())).unwrap_err();
    assert!(
        matches!(err, TokenizerError::BadMerge { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn mismatched_array_lengths_are_errors() {
    let err = build(|k| set(k, "tokenizer.ggml.token_type", vec![1i32, 1, 1].into())).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::LengthMismatch {
                key: "tokenizer.ggml.token_type",
                found: 3,
                expected: 5
            }
        ),
        "{err}"
    );
    let err = build(|k| set(k, "tokenizer.ggml.scores", vec![0.0f32; 7].into())).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::LengthMismatch {
                key: "tokenizer.ggml.scores",
                found: 7,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn duplicate_token_text_is_an_error() {
    let err = build(|k| {
        set(
            k,
            "tokenizer.ggml.tokens",
            vec!["a", "b", "ab", "a", "<|im_end|>"].into(),
        )
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::DuplicateToken {
                first: 0,
                second: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_or_mistyped_keys_are_errors() {
    let err = build(|k| k.retain(|(key, _)| *key != "tokenizer.ggml.merges")).unwrap_err();
    assert!(
        matches!(err, TokenizerError::MissingKey("tokenizer.ggml.merges")),
        "{err}"
    );
    let err = build(|k| k.retain(|(key, _)| *key != "tokenizer.ggml.tokens")).unwrap_err();
    assert!(
        matches!(err, TokenizerError::MissingKey("tokenizer.ggml.tokens")),
        "{err}"
    );
    let err = build(|k| k.retain(|(key, _)| *key != "tokenizer.ggml.model")).unwrap_err();
    assert!(
        matches!(err, TokenizerError::MissingKey("tokenizer.ggml.model")),
        "{err}"
    );
    let err = build(|k| set(k, "tokenizer.ggml.tokens", vec![1u32, 2, 3].into())).unwrap_err();
    assert!(matches!(err, TokenizerError::Gguf(_)), "{err}");
    let err = build(|k| set(k, "tokenizer.ggml.bos_token_id", "one".into())).unwrap_err();
    assert!(matches!(err, TokenizerError::BadValue { .. }), "{err}");
    let err = build(|k| set(k, "tokenizer.ggml.add_bos_token", Value::U8(1))).unwrap_err();
    assert!(matches!(err, TokenizerError::Gguf(_)), "{err}");
}

#[test]
fn unsupported_model_family_is_an_error() {
    let err = build(|k| set(k, "tokenizer.ggml.model", "bert".into())).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::UnknownModel(m) if m == "bert"),
        "{err}"
    );
}

#[test]
fn empty_vocabulary_is_an_error() {
    let err = build(|k| set(k, "tokenizer.ggml.tokens", Value::Array(vec![]))).unwrap_err();
    assert!(matches!(err, TokenizerError::EmptyVocab), "{err}");
    let v = Vocab {
        model: "llama".into(),
        ..Vocab::default()
    };
    assert!(matches!(
        Tokenizer::from_vocab(v),
        Err(TokenizerError::EmptyVocab)
    ));
}

#[test]
fn add_bos_without_a_bos_token_is_an_error() {
    // GPT-2's default BOS id (11) is outside this 5-token vocabulary, so there is no BOS.
    let err = build(|k| {
        k.retain(|(key, _)| *key != "tokenizer.ggml.bos_token_id");
        set(k, "tokenizer.ggml.add_bos_token", true.into());
    })
    .unwrap_err();
    assert!(
        matches!(err, TokenizerError::MissingSpecialToken { what: "BOS", .. }),
        "{err}"
    );
}

#[test]
fn out_of_range_ids_in_decoding_are_errors() {
    let tok = build(|_| {}).unwrap();
    assert!(matches!(
        tok.decode(&[0, 5], false),
        Err(TokenizerError::InvalidTokenId { id: 5, n_vocab: 5 })
    ));
    assert!(tok.token_bytes(u32::MAX, true).is_err());
    let mut dec = tok.incremental_decoder();
    assert!(dec.push(99).is_err());
    assert_eq!(tok.token_text(99), None);
}

#[test]
fn damaged_vocab_structs_are_errors_too() {
    let base = Vocab {
        model: "llama".into(),
        tokens: vec!["<unk>".into(), "<s>".into(), "</s>".into(), "▁a".into()],
        ..Vocab::default()
    };
    assert!(Tokenizer::from_vocab(base.clone()).is_ok());
    let v = Vocab {
        unk_id: Some(4),
        ..base.clone()
    };
    assert!(matches!(
        Tokenizer::from_vocab(v),
        Err(TokenizerError::SpecialIdOutOfRange { .. })
    ));
    let v = Vocab {
        scores: Some(vec![0.0; 3]),
        ..base.clone()
    };
    assert!(matches!(
        Tokenizer::from_vocab(v),
        Err(TokenizerError::LengthMismatch { .. })
    ));
    let v = Vocab {
        model: "gpt2".into(),
        pre: Some("gpt-2".into()),
        merges: Some(vec!["▁a <s>".into(), "x y".into()]),
        ..base
    };
    assert!(matches!(
        Tokenizer::from_vocab(v),
        Err(TokenizerError::BadMerge { index: 1, .. })
    ));
}
