//! Unicode facts the pre-tokenizers need: one general-category flag per code point,
//! the whitespace set, and GPT-2's byte ↔ printable-character mapping.
//!
//! llama.cpp classifies code points with a table generated from Python's `regex` module
//! (`\p{N}`, `\p{L}`, `\p{Z}`, `\p{M}`, `\p{P}`, `\p{S}`, `\p{C}`, and `\s` for whitespace).
//! We build the same classification once, at first use, from the Unicode tables that ship
//! with `regex-syntax` (the `regex` crate's parser), so no table is copied into this crate.
//! Unassigned code points are `\p{C}` (Cn), exactly as in the generated table.

use std::sync::OnceLock;

/// General-category flags of one code point (exactly one category bit is set; whitespace is
/// an extra bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpFlags(u16);

impl CpFlags {
    pub const NUMBER: u16 = 1 << 1;
    pub const LETTER: u16 = 1 << 2;
    pub const SEPARATOR: u16 = 1 << 3;
    pub const ACCENT_MARK: u16 = 1 << 4;
    pub const PUNCTUATION: u16 = 1 << 5;
    pub const SYMBOL: u16 = 1 << 6;
    pub const CONTROL: u16 = 1 << 7;
    pub const WHITESPACE: u16 = 1 << 8;

    /// Flags for "no code point here" (outside the fragment being split).
    pub const NONE: CpFlags = CpFlags(0);

    pub fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    pub fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    pub fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    /// True for every real code point (a category bit is always set), false for `NONE`.
    pub fn is_defined(self) -> bool {
        self.0 != 0
    }
    /// The category bit alone (whitespace bit removed).
    pub fn category(self) -> u16 {
        self.0 & !Self::WHITESPACE
    }
}

struct Tables {
    /// Flags of code points 0..128, for speed.
    ascii: [CpFlags; 128],
    /// Sorted, non-overlapping `(start, end_inclusive, flags)` for all categorised ranges.
    ranges: Vec<(u32, u32, u16)>,
    /// Sorted whitespace ranges.
    whitespace: Vec<(u32, u32)>,
}

fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    // The patterns below are fixed and valid; a failure here would be a bug in this file,
    // so fall back to an empty class rather than panicking.
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        _ => Vec::new(),
    }
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let cats: [(&str, u16); 6] = [
            (r"\p{N}", CpFlags::NUMBER),
            (r"\p{L}", CpFlags::LETTER),
            (r"\p{Z}", CpFlags::SEPARATOR),
            (r"\p{M}", CpFlags::ACCENT_MARK),
            (r"\p{P}", CpFlags::PUNCTUATION),
            (r"\p{S}", CpFlags::SYMBOL),
        ];
        let mut ranges: Vec<(u32, u32, u16)> = Vec::new();
        for (pat, flag) in cats {
            for (a, b) in class_ranges(pat) {
                ranges.push((a, b, flag));
            }
        }
        ranges.sort_unstable();
        let whitespace = class_ranges(r"\s");
        let mut t = Tables {
            ascii: [CpFlags::NONE; 128],
            ranges,
            whitespace,
        };
        for c in 0u32..128 {
            t.ascii[c as usize] = lookup(&t, c);
        }
        t
    })
}

fn lookup(t: &Tables, cp: u32) -> CpFlags {
    if cp > 0x10FFFF {
        return CpFlags::NONE;
    }
    let idx = t.ranges.partition_point(|r| r.0 <= cp);
    let mut bits = CpFlags::CONTROL; // unassigned / Cc / Cf / Co / Cs
    if idx > 0 {
        let (a, b, f) = t.ranges[idx - 1];
        if a <= cp && cp <= b {
            bits = f;
        }
    }
    let w = t.whitespace.partition_point(|r| r.0 <= cp);
    if w > 0 {
        let (a, b) = t.whitespace[w - 1];
        if a <= cp && cp <= b {
            bits |= CpFlags::WHITESPACE;
        }
    }
    CpFlags(bits)
}

/// Flags of a code point.
pub(crate) fn flags(cp: u32) -> CpFlags {
    let t = tables();
    if cp < 128 {
        t.ascii[cp as usize]
    } else {
        lookup(t, cp)
    }
}

/// Whether `c` is a nonspacing mark (`Mn`): the accents Hugging Face's BERT normaliser
/// strips after NFD (spacing and enclosing marks stay).
pub(crate) fn is_nonspacing_mark(c: char) -> bool {
    static MN: OnceLock<Vec<(u32, u32)>> = OnceLock::new();
    let ranges = MN.get_or_init(|| class_ranges(r"\p{Mn}"));
    let cp = c as u32;
    let i = ranges.partition_point(|r| r.0 <= cp);
    i > 0 && ranges[i - 1].1 >= cp
}

/// Length of a UTF-8 sequence from its first byte, as llama.cpp computes it (by the high
/// nibble; continuation bytes count as 1).
pub(crate) fn utf8_len(first: u8) -> usize {
    match first >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}

/// GPT-2's byte-level alphabet: every byte maps to one printable character. Bytes that are
/// printable Latin-1 (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) map to themselves; the other 68 map, in
/// byte order, to U+0100, U+0101, ...
pub(crate) struct ByteMap {
    pub to_char: [char; 256],
    /// Indexed by code point; only code points < 0x144 can be byte characters.
    from_char: Vec<Option<u8>>,
}

impl ByteMap {
    pub fn byte_of(&self, c: char) -> Option<u8> {
        self.from_char.get(c as usize).copied().flatten()
    }
}

pub(crate) fn byte_map() -> &'static ByteMap {
    static MAP: OnceLock<ByteMap> = OnceLock::new();
    MAP.get_or_init(|| {
        let printable = |b: u32| {
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
        };
        let mut to_char = ['\0'; 256];
        let mut from_char = vec![None; 0x200];
        let mut next = 0u32;
        for b in 0u32..256 {
            let cp = if printable(b) {
                b
            } else {
                next += 1;
                255 + next
            };
            // All values are < 0x200, valid scalar values.
            let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
            to_char[b as usize] = c;
            from_char[cp as usize] = Some(b as u8);
        }
        ByteMap { to_char, from_char }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_match_unicode() {
        assert!(flags('a' as u32).is_letter());
        assert!(flags('한' as u32).is_letter());
        assert!(flags('7' as u32).is_number());
        assert!(flags('½' as u32).is_number());
        assert!(flags(' ' as u32).is_whitespace());
        assert!(flags('\u{3000}' as u32).is_whitespace());
        assert_eq!(flags(',' as u32).category(), CpFlags::PUNCTUATION);
        assert_eq!(flags('+' as u32).category(), CpFlags::SYMBOL);
        assert_eq!(flags('\u{301}' as u32).category(), CpFlags::ACCENT_MARK);
        assert_eq!(flags(0x0378).category(), CpFlags::CONTROL); // unassigned
        assert!(!flags('\u{1C}' as u32).is_whitespace());
        assert!(is_nonspacing_mark('\u{301}'));
        assert!(!is_nonspacing_mark('\u{903}')); // Mc: a spacing mark
        assert!(!is_nonspacing_mark('\u{1161}')); // a Hangul vowel jamo is a letter
    }

    #[test]
    fn gpt2_byte_map_is_a_bijection() {
        let m = byte_map();
        assert_eq!(m.to_char[b' ' as usize], 'Ġ');
        assert_eq!(m.to_char[b'\n' as usize], 'Ċ');
        assert_eq!(m.to_char[b'a' as usize], 'a');
        for b in 0..=255u8 {
            assert_eq!(m.byte_of(m.to_char[b as usize]), Some(b));
        }
    }
}
