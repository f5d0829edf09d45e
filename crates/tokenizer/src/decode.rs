//! From token ids back to bytes and text.
//!
//! Each token's bytes ("piece") are computed once at load (llama.cpp's piece cache). Whole
//! sequences decode lossily; streaming goes through [`IncrementalDecoder`], which holds back
//! the bytes of an unfinished UTF-8 character (byte-level BPE routinely splits a 3-byte
//! Hangul syllable over two or three tokens) so callers never see half a character.

use crate::error::TokenizerError;
use crate::tokenizer::{Tokenizer, TokenizerKind};
use crate::unicode;
use crate::vocab::TokenAttr;

/// `<0xXX>` → the byte.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A token's bytes with special tokens rendered (llama.cpp's `token_to_piece(.., special=true)`).
pub(crate) fn piece_for(kind: TokenizerKind, text: &str, attr: TokenAttr) -> Vec<u8> {
    if attr.has(TokenAttr::UNKNOWN | TokenAttr::CONTROL | TokenAttr::USER_DEFINED) {
        return text.as_bytes().to_vec();
    }
    if attr.is_normal() {
        return match kind {
            TokenizerKind::Spm => text.replace('\u{2581}', " ").into_bytes(),
            TokenizerKind::Bpe => {
                let map = unicode::byte_map();
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match map.byte_of(c) {
                        Some(b) => out.push(b),
                        None => {
                            // llama.cpp writes a marker for characters outside the alphabet.
                            let mut buf = [0u8; 4];
                            let enc = c.encode_utf8(&mut buf);
                            out.extend_from_slice(b"[UNK_BYTE_0x");
                            for b in enc.bytes() {
                                out.extend_from_slice(format!("{b:02x}").as_bytes());
                            }
                            out.extend_from_slice(text.as_bytes());
                            out.push(b']');
                        }
                    }
                }
                out
            }
        };
    }
    if attr.is_byte() {
        return match parse_byte_token(text) {
            Some(b) => vec![b],
            None => text.as_bytes().to_vec(),
        };
    }
    // UNUSED / UNDEFINED tokens render as nothing.
    Vec::new()
}

/// Hugging Face's `clean_up_tokenization_spaces`, as llama.cpp applies it: drop the space
/// before `?!.,`, around a lone `'`, and before the contractions `'s 'm 're 've`.
pub(crate) fn clean_up_spaces(text: &mut Vec<u8>) {
    // Pass 1: " ?", " !", " .", " ,".
    let src = std::mem::take(text);
    let mut out: Vec<u8> = Vec::with_capacity(src.len());
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // Pass 2: " ' " → "'".
    let src = out;
    let mut out: Vec<u8> = Vec::with_capacity(src.len());
    let mut i = 0;
    let mut prev: Option<u8> = None; // the source byte before `i`, as llama.cpp sees it
    while i < src.len() {
        let x = src[i];
        if i > 0 && x == b'\'' && i + 1 < src.len() && prev == Some(b' ') && src[i + 1] == b' ' {
            out.pop();
            out.push(x);
            // The next space is dropped; llama.cpp blanks it, so it no longer counts as a space.
            prev = Some(0);
            i += 2;
            continue;
        }
        out.push(x);
        prev = Some(x);
        i += 1;
    }
    // Pass 3: " 's", " 'm", " 're", " 've" (but not " 't", " 'd", " 'll").
    let src = out;
    let mut out: Vec<u8> = Vec::with_capacity(src.len());
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && x == b'\'' && i + 1 < src.len() {
            let x1 = src[i + 1];
            let x2 = src.get(i + 2).copied();
            let drop = matches!(x1, b's' | b'm')
                || (!matches!(x1, b't' | b'd')
                    && matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e'))));
            if drop {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

/// Streams text from token ids, never splitting a UTF-8 character.
///
/// `push` returns the newly completed characters; the bytes of an unfinished character wait
/// for the next token. Bytes that can never become valid UTF-8 come out as U+FFFD at once.
/// `finish` drops what is left: only the start of a character can be held back, and when
/// generation ends there (a token limit cutting a three-byte Hangul syllable after its
/// first token) a replacement character would be printed as garbage. Unlike whole-sequence [`Tokenizer::decode`], no
/// leading space is stripped and no space clean-up is done: each token's text is streamed
/// as is, as llama.cpp's servers stream `token_to_piece`.
#[derive(Clone, Debug)]
pub struct IncrementalDecoder {
    tokenizer: Tokenizer,
    render_special: bool,
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    pub(crate) fn new(tokenizer: Tokenizer, render_special: bool) -> Self {
        IncrementalDecoder {
            tokenizer,
            render_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        let piece = self.tokenizer.piece(id, self.render_special)?;
        self.pending.extend_from_slice(piece);
        Ok(self.take_complete())
    }

    /// Ends the stream and resets. Returns what is still held back and complete — always
    /// empty, since `push` hands out every complete character — and drops the bytes of an
    /// unfinished character, which the end of generation cut off: the text ends at the last
    /// whole character instead of in U+FFFD.
    pub fn finish(&mut self) -> String {
        let s = self.take_complete();
        self.pending.clear();
        s
    }

    /// Bytes held back because they start an unfinished character.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // `good` is valid by construction.
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        // An unfinished character at the end: keep it for later.
                        None => {
                            rest = bad;
                            break;
                        }
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &bad[n..];
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let start = self.pending.len() - keep;
        self.pending.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xEA>"), Some(0xEA));
        assert_eq!(parse_byte_token("<0x0>"), None);
        assert_eq!(parse_byte_token("hello"), None);
    }

    #[test]
    fn clean_up_spaces_follows_hugging_face() {
        let run = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            clean_up_spaces(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(run("Hello , world !"), "Hello, world!");
        assert_eq!(run("it ' s"), "it's");
        assert_eq!(
            run("he 's and they 're , don 't"),
            "he's and they're, don 't"
        );
    }
}
