//! Token ids against llama.cpp's own output for the three real models, plus decoding round
//! trips and the incremental decoder on their texts.

mod common;

use common::{real_tokenizer, reference_json, tokenize_cases, REAL_MODELS};
use jikji_tokenizer::Tokenizer;

/// Every `tokenize` entry must give exactly llama.cpp's ids. `add_special: true` means BOS/EOS
/// per metadata and special tokens parsed; `false` means the bare text.
fn check_reference_ids(tok: &Tokenizer, file: &str) {
    let reference = reference_json(file);
    let cases = tokenize_cases(&reference);
    let mut failures = Vec::new();
    for c in &cases {
        let got = tok
            .encode(&c.text, c.add_special, c.add_special)
            .expect("encode");
        if got != c.ids {
            failures.push(format!(
                "  text {:?} add_special={}\n    want {:?}\n    got  {:?}",
                c.text, c.add_special, c.ids, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Whole-sequence decoding gives back the text: bare ids with special tokens hidden, and
/// `add_special` ids (BOS removed) with special tokens rendered.
fn check_round_trips(tok: &Tokenizer, file: &str) {
    for c in tokenize_cases(&reference_json(file)) {
        if c.add_special {
            let body: &[u32] = match (tok.add_bos(), c.ids.first()) {
                (true, Some(&first)) if Some(first) == tok.bos_id() => &c.ids[1..],
                _ => &c.ids,
            };
            assert_eq!(
                tok.decode(body, true).unwrap(),
                c.text,
                "{file}: rendered decode of {:?}",
                c.text
            );
        } else {
            assert_eq!(
                tok.decode(&c.ids, false).unwrap(),
                c.text,
                "{file}: decode of {:?}",
                c.text
            );
        }
    }
}

/// Streaming the ids of every text (Korean ones above all) never yields U+FFFD or a partial
/// character, and the pieces add up to the whole decode.
fn check_incremental(tok: &Tokenizer, file: &str) {
    let mut korean = 0;
    for c in tokenize_cases(&reference_json(file))
        .iter()
        .filter(|c| !c.add_special)
    {
        if c.text.chars().any(|ch| {
            ('\u{AC00}'..='\u{D7A3}').contains(&ch) || ('\u{3131}'..='\u{318E}').contains(&ch)
        }) {
            korean += 1;
        }
        let mut dec = tok.incremental_decoder();
        let mut streamed = String::new();
        for &id in &c.ids {
            let chunk = dec.push(id).unwrap();
            assert!(
                !chunk.contains('\u{FFFD}'),
                "{file}: U+FFFD streamed for {:?} at id {id}",
                c.text
            );
            streamed.push_str(&chunk);
        }
        assert!(
            dec.pending_bytes().is_empty(),
            "{file}: bytes left over for {:?}",
            c.text
        );
        streamed.push_str(&dec.finish());
        assert_eq!(
            streamed,
            tok.decode(&c.ids, false).unwrap(),
            "{file}: streamed text of {:?}",
            c.text
        );
        assert_eq!(streamed, c.text, "{file}: streamed text of {:?}", c.text);
    }
    assert!(
        korean >= 4,
        "{file}: expected the reference to hold Korean texts, found {korean}"
    );
}

fn run_model(index: usize) {
    let (file, pull) = REAL_MODELS[index];
    let Some(tok) = real_tokenizer(file, pull) else {
        return;
    };
    check_reference_ids(&tok, file);
    check_round_trips(&tok, file);
    check_incremental(&tok, file);
}

#[test]
fn smollm2_ids_round_trips_and_streaming_match_llama_cpp() {
    run_model(0);
}

#[test]
fn gemma3_ids_round_trips_and_streaming_match_llama_cpp() {
    run_model(1);
}

#[test]
fn qwen25_ids_round_trips_and_streaming_match_llama_cpp() {
    run_model(2);
}

/// A deterministic generator of awkward texts: Hangul syllables and jamo, CJK, emoji with
/// joiners and flags, combining marks, every kind of whitespace, digits, punctuation and
/// fragments of special tokens.
fn awkward_texts(seed: u64, count: usize) -> Vec<String> {
    let pool: Vec<&str> = vec![
        "한",
        "국",
        "어",
        "ㄱ",
        "ㅏ",
        "뷁",
        "똠",
        "햏",
        "中",
        "文",
        "の",
        "テ",
        "😀",
        "🚀",
        "🇰🇷",
        "👩\u{200D}💻",
        "e\u{301}",
        "\u{0915}\u{094D}",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\u{3000}",
        "\u{A0}",
        "\u{2028}",
        "0",
        "12",
        "345",
        "½",
        "٣",
        ".",
        ",",
        "!",
        "?",
        "'s",
        "'LL",
        "\"",
        "(",
        ")",
        "{",
        "}",
        "<",
        ">",
        "|",
        "<|",
        "|>",
        "<|im_start|>",
        "<|im_end|>",
        "<start_of_turn>",
        "<eos>",
        "a",
        "Hello",
        " world",
        "def",
        "_",
        "__init__",
        "\\",
        "/",
        "#",
        "$",
        "€",
        "©",
        "\u{7F}",
        "\u{1}",
        "\u{FEFF}",
        "\u{E000}",
        "\u{10FFFF}",
    ];
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = (next() % 40) as usize;
            (0..len)
                .map(|_| pool[(next() % pool.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// Byte-level BPE and SentencePiece with byte fallback are lossless: any text comes back
/// byte for byte (special tokens rendered), and streaming it never shows U+FFFD.
fn check_lossless(tok: &Tokenizer, file: &str) {
    for (i, text) in awkward_texts(0x9E37_79B9_7F4A_7C15, 300).iter().enumerate() {
        for parse_special in [false, true] {
            let ids = tok.encode(text, false, parse_special).expect("encode");
            assert_eq!(
                &tok.decode(&ids, true).unwrap(),
                text,
                "{file}: text #{i} {text:?} (parse_special={parse_special})"
            );
            let mut dec = tok.incremental_decoder_with(true);
            let mut streamed = String::new();
            for &id in &ids {
                let chunk = dec.push(id).unwrap();
                assert!(
                    !chunk.contains('\u{FFFD}'),
                    "{file}: U+FFFD streamed for {text:?}"
                );
                streamed.push_str(&chunk);
            }
            assert!(
                dec.pending_bytes().is_empty(),
                "{file}: bytes left over for {text:?}"
            );
            assert_eq!(&streamed, text, "{file}: streamed {text:?}");
        }
    }
}

#[test]
fn awkward_texts_round_trip_losslessly_on_all_real_models() {
    for (file, pull) in REAL_MODELS {
        let Some(tok) = real_tokenizer(file, pull) else {
            return;
        };
        check_lossless(&tok, file);
    }
}
