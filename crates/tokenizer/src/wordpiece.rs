//! WordPiece (`tokenizer.ggml.model = "bert"`), as llama.cpp's WPM tokenizer computes it.
//!
//! GGUF stores a BERT vocabulary with llama.cpp's spelling: a token that starts a word
//! carries the phantom-space prefix `▁` (`▁hello`), a continuation has none (`lo`, BERT's
//! `##lo`). Encoding:
//!
//! 1. normalise each code point when `tokenizer.ggml.normalizer.strip_accents` (default:
//!    the lowercase setting, which defaults to on) — llama.cpp maps a code point to the
//!    *first* code point of its NFD decomposition (so `é` → `e`, and a Hangul syllable →
//!    its leading jamo, exactly as the peer does) and drops accent marks (`\p{M}`);
//! 2. split on whitespace; drop NUL, U+FFFD and `\p{C}`; every punctuation mark, ASCII
//!    symbol and CJK ideograph is a word of its own;
//! 3. lowercase (`tokenizer.ggml.normalizer.lowercase`, default on; simple one-to-one
//!    mappings only);
//! 4. per word `▁word`, greedy longest match from the left; a word that cannot be covered
//!    becomes one `[UNK]`;
//! 5. `[CLS]` (`bos_token_id`) first and `[SEP]` (`seperator_token_id`) last when special
//!    tokens are added.
//!
//! Special-token texts inside the input (`[MASK]`) are not parsed: text is text.

use crate::error::TokenizerError;
use crate::unicode::flags;
use jikji_gguf::GgufFile;
use rustc_hash::FxHashMap;
use unicode_normalization::UnicodeNormalization;

/// A WordPiece tokenizer built from GGUF metadata.
#[derive(Clone, Debug)]
pub struct WordPiece {
    tokens: Vec<String>,
    ids: FxHashMap<String, u32>,
    max_len: usize,
    cls: u32,
    sep: u32,
    unk: u32,
    pad: Option<u32>,
    lowercase: bool,
    strip_accents: bool,
}

fn id_key(file: &GgufFile, key: &'static str, n: usize) -> Result<Option<u32>, TokenizerError> {
    let Some(id) = crate::vocab::int_key(file, key)? else { return Ok(None) };
    if id < 0 || id as usize >= n {
        return Err(TokenizerError::BadValue { key, reason: format!("token id {id} outside the vocabulary of {n}") });
    }
    Ok(Some(id as u32))
}

impl WordPiece {
    /// Reads the vocabulary and the BERT normaliser options; the file must declare
    /// `tokenizer.ggml.model = "bert"` and its `[CLS]`, `[SEP]` and `[UNK]` ids.
    pub fn from_gguf(file: &GgufFile) -> Result<WordPiece, TokenizerError> {
        let model = file.get_str("tokenizer.ggml.model")?.ok_or(TokenizerError::MissingKey("tokenizer.ggml.model"))?;
        if model != "bert" {
            return Err(TokenizerError::BadValue { key: "tokenizer.ggml.model", reason: format!("`{model}` is not a WordPiece (`bert`) vocabulary") });
        }
        let tokens: Vec<String> = file
            .get_str_array("tokenizer.ggml.tokens")?
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.tokens"))?
            .into_iter()
            .map(str::to_string)
            .collect();
        let n = tokens.len();
        let mut ids = FxHashMap::default();
        for (i, t) in tokens.iter().enumerate() {
            // llama.cpp keeps the last id of a duplicated text; so do we.
            ids.insert(t.clone(), i as u32);
        }
        let max_len = tokens.iter().map(String::len).max().unwrap_or(0);
        let need = |key: &'static str| -> Result<u32, TokenizerError> { id_key(file, key, n)?.ok_or(TokenizerError::MissingKey(key)) };
        let lowercase = file.get_bool("tokenizer.ggml.normalizer.lowercase")?.unwrap_or(true);
        let strip_accents = file.get_bool("tokenizer.ggml.normalizer.strip_accents")?.unwrap_or(lowercase);
        Ok(WordPiece {
            cls: need("tokenizer.ggml.bos_token_id")?,
            sep: need("tokenizer.ggml.seperator_token_id").or_else(|_| need("tokenizer.ggml.eos_token_id"))?,
            unk: need("tokenizer.ggml.unknown_token_id")?,
            pad: id_key(file, "tokenizer.ggml.padding_token_id", n)?,
            tokens,
            ids,
            max_len,
            lowercase,
            strip_accents,
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    pub fn cls_id(&self) -> u32 {
        self.cls
    }

    pub fn sep_id(&self) -> u32 {
        self.sep
    }

    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// The text of token `id` as stored (word starts carry `▁`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The words of `text` after normalisation (steps 1–3 of the module docs).
    pub fn words(&self, text: &str) -> Vec<String> {
        let mut words = vec![String::new()];
        for c in text.chars() {
            let c = if self.strip_accents { c.nfd().next().unwrap_or(c) } else { c };
            let cp = c as u32;
            let f = flags(cp);
            if f.is_whitespace() {
                if !words.last().is_some_and(String::is_empty) {
                    words.push(String::new());
                }
                continue;
            }
            let cat = f.category();
            if cp == 0 || cp == 0xFFFD || cat == crate::unicode::CpFlags::CONTROL {
                continue;
            }
            if self.strip_accents && cat == crate::unicode::CpFlags::ACCENT_MARK {
                continue;
            }
            let c = if self.lowercase { simple_lower(c) } else { c };
            let alone = cat == crate::unicode::CpFlags::PUNCTUATION || (cp < 0x7F && cat == crate::unicode::CpFlags::SYMBOL) || is_cjk(cp);
            if alone {
                if !words.last().is_some_and(String::is_empty) {
                    words.push(String::new());
                }
                if let Some(w) = words.last_mut() {
                    w.push(c);
                }
                words.push(String::new());
            } else if let Some(w) = words.last_mut() {
                w.push(c);
            }
        }
        words.retain(|w| !w.is_empty());
        words
    }

    /// Token ids of `text`, with `[CLS]` … `[SEP]` when `add_special`.
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special {
            out.push(self.cls);
        }
        for word in self.words(text) {
            let w = format!("\u{2581}{word}");
            let start = out.len();
            let mut i = 0;
            while i < w.len() {
                let mut j = (i + self.max_len).min(w.len());
                let mut found = None;
                while j > i {
                    if let Some(&id) = w.get(i..j).and_then(|s| self.ids.get(s)) {
                        found = Some(id);
                        break;
                    }
                    j -= 1;
                }
                match found {
                    Some(id) => {
                        out.push(id);
                        i = j;
                    }
                    None => {
                        out.truncate(start);
                        break;
                    }
                }
            }
            if out.len() == start {
                out.push(self.unk);
            }
        }
        if add_special {
            out.push(self.sep);
        }
        out
    }
}

/// A one-to-one lowercase mapping (UnicodeData's simple mapping, as llama.cpp's table):
/// characters whose full lowercase is several characters keep their first.
fn simple_lower(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(a), None) => a,
        // `İ` → `i̇`: the simple mapping is the first character.
        (Some(a), Some(_)) => a,
        _ => c,
    }
}

/// CJK ideograph blocks (llama.cpp's `is_chinese_char`, including its 0x2B920 start).
fn is_cjk(cp: u32) -> bool {
    matches!(cp,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}
