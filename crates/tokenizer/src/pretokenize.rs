//! Pre-tokenizers for byte-level BPE: split text into words before merging.
//!
//! `tokenizer.ggml.pre` selects a list of regular expressions, applied one after another:
//! each expression splits every piece produced so far, and the text between matches stays
//! as pieces of its own (nothing is dropped). This is llama.cpp's `unicode_regex_split`,
//! which we reproduce rather than Hugging Face's pre-tokenizers because the reference ids
//! come from llama.cpp.
//!
//! How each expression runs mirrors llama.cpp exactly, quirks included:
//! - The most common expressions (GPT-2's, Llama-3's and Qwen2's) are hand-written scanners
//!   over code-point flags (`split_gpt2`, `split_llama3`), as in llama.cpp.
//! - An expression using `\p{..}` classes runs on a *collapsed* text: ASCII stays as is,
//!   every other code point becomes one stand-in character for its category (letter,
//!   number, punctuation, mark, symbol, other) or U+000B if it is whitespace; each `\p{X}`
//!   becomes `[<stand-in>` + the ASCII members of X`]`. This is how llama.cpp runs such
//!   expressions with `std::regex`, and it decides the fine points (e.g. what `[^a-z]` does
//!   to a Hangul syllable).
//! - Other expressions run on the code points with non-ASCII whitespace replaced by U+000B.
//!
//! The regular expressions are the facts of each model family (from llama.cpp's
//! `llama-vocab.cpp`); the engine is `fancy-regex` (backtracking, leftmost-first, with
//! look-ahead), which has the same match semantics as ECMAScript `std::regex`.

use crate::error::TokenizerError;
use crate::unicode::{self, CpFlags};

/// GPT-2's expression; runs through the hand-written scanner.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama-3's expression (case-insensitive contractions spelled out); hand-written scanner.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const SET_DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"];
const SET_LLAMA3: &[&str] = &[LLAMA3];
const SET_DEEPSEEK_LLM: &[&str] = &[
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u{1F7D}ᾀ-ᾴᾶ-ᾼ\u{1FBE}ῂ-ῄῆ-ῌῐ-\u{1FD3}ῖ-\u{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u{2126}ℨ\u{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
];
const SET_DEEPSEEK_CODER: &[&str] = &[
    "[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    "[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];
const SET_DEEPSEEK3: &[&str] = &[
    r"\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];
const SET_FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"];
const SET_STARCODER: &[&str] = &[r"\p{N}", GPT2];
const SET_GPT2: &[&str] = &[GPT2];
const SET_QWEN2: &[&str] = &[QWEN2];
const SET_PORO: &[&str] = &[" ?[^(\\s|.,!?…。，、।۔،)]+"];
const SET_TEKKEN: &[&str] = &[
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const SET_GPT4O: &[&str] = &[
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const SET_BAILINGMOE: &[&str] = &[
    r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
];
const SET_SEED_CODER: &[&str] = &[
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+",
];

/// What `tokenizer.ggml.pre` selects: the expressions and the flags llama.cpp ties to it.
#[derive(Clone, Debug)]
pub(crate) struct PreSpec {
    pub regexes: &'static [&'static str],
    /// A word that is already a whole token is emitted as is, without merging (Llama-3).
    pub ignore_merges: bool,
    /// llama.cpp turns `add_bos` on for these families unless the metadata says otherwise.
    pub add_bos_default: bool,
    /// Hugging Face's `clean_up_tokenization_spaces`, applied by whole-text decoding.
    pub clean_spaces: bool,
    /// The family has no default BOS id (ChatGLM / GLM-4).
    pub no_default_bos: bool,
}

/// The pre-tokenizer for a `tokenizer.ggml.pre` value (`None` = key absent → `default`).
pub(crate) fn pre_spec(pre: Option<&str>) -> Result<PreSpec, TokenizerError> {
    let spec = |regexes, ignore_merges, add_bos_default, clean_spaces| PreSpec {
        regexes,
        ignore_merges,
        add_bos_default,
        clean_spaces,
        no_default_bos: false,
    };
    let Some(name) = pre else {
        return Ok(spec(SET_DEFAULT, false, false, true));
    };
    Ok(match name {
        "default" => spec(SET_DEFAULT, false, false, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => spec(SET_LLAMA3, true, true, true),
        "dbrx" | "smaug-bpe" => spec(SET_LLAMA3, false, false, true),
        "chatglm-bpe" => PreSpec {
            no_default_bos: true,
            ..spec(SET_LLAMA3, false, false, true)
        },
        "glm4" | "glm5" => PreSpec {
            no_default_bos: true,
            ..spec(SET_LLAMA3, true, false, true)
        },
        "deepseek-llm" => spec(SET_DEEPSEEK_LLM, false, false, false),
        "deepseek-coder" => spec(SET_DEEPSEEK_CODER, false, false, false),
        "deepseek-v3" | "hunyuan-dense" | "joyai-llm" => spec(SET_DEEPSEEK3, false, false, false),
        "falcon" => spec(SET_FALCON, false, false, true),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            spec(SET_STARCODER, false, false, true)
        }
        "command-r" | "smollm" => spec(SET_STARCODER, false, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4"
        | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => spec(SET_GPT2, false, false, true),
        "trillion" | "granite-docling" => spec(SET_GPT2, false, false, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
            spec(SET_QWEN2, false, false, false)
        }
        "stablelm2" | "megrez" => spec(SET_QWEN2, false, false, true),
        "poro-chat" => spec(SET_PORO, false, false, false),
        "bloom" | "gpt3-finnish" => spec(SET_PORO, false, false, true),
        "tekken" => spec(SET_TEKKEN, true, true, false),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => {
            spec(SET_GPT4O, false, false, false)
        }
        "bailingmoe" | "bailingmoe2" | "llada-moe" => spec(SET_BAILINGMOE, false, false, false),
        "seed-coder" => spec(SET_SEED_CODER, false, false, false),
        other => return Err(TokenizerError::UnknownPreTokenizer(other.to_string())),
    })
}

/// One compiled step of a pre-tokenizer.
enum Step {
    Gpt2,
    /// Llama-3's scanner; the digit-run length is 3 (Llama-3) or 1 (Qwen2).
    Llama3 {
        max_digits: usize,
    },
    /// Runs on the collapsed text (the expression used `\p{..}`).
    Collapsed(fancy_regex::Regex),
    /// Runs on the code points, non-ASCII whitespace replaced by U+000B.
    Wide(fancy_regex::Regex),
}

/// A compiled pre-tokenizer.
pub(crate) struct PreTokenizer {
    steps: Vec<Step>,
}

/// Stand-in characters of the collapsed text, by category.
const COLLAPSED_OTHER: char = '\u{D0}';
const COLLAPSED_NUMBER: char = '\u{D1}';
const COLLAPSED_LETTER: char = '\u{D2}';
const COLLAPSED_PUNCT: char = '\u{D3}';
const COLLAPSED_MARK: char = '\u{D4}';
const COLLAPSED_SYMBOL: char = '\u{D5}';

/// Rewrites `\p{N}`, `\p{L}`, `\p{P}`, `\p{M}`, `\p{S}` (and the `\p{L?}` subclasses, which
/// llama.cpp treats as `\p{L}`) into classes over the collapsed text.
fn collapse_pattern(pat: &str) -> Option<String> {
    let classes: [(&str, char, &str); 10] = [
        (r"\p{N}", COLLAPSED_NUMBER, "0-9"),
        (r"\p{L}", COLLAPSED_LETTER, "A-Za-z"),
        (r"\p{P}", COLLAPSED_PUNCT, r"!-#%-*,-/:-;?-@\[-\]_\{\}"),
        (r"\p{M}", COLLAPSED_MARK, ""),
        (r"\p{S}", COLLAPSED_SYMBOL, r"\$\+<->\^`\|"),
        (r"\p{Lu}", COLLAPSED_LETTER, "A-Za-z"),
        (r"\p{Ll}", COLLAPSED_LETTER, "A-Za-z"),
        (r"\p{Lt}", COLLAPSED_LETTER, "A-Za-z"),
        (r"\p{Lm}", COLLAPSED_LETTER, "A-Za-z"),
        (r"\p{Lo}", COLLAPSED_LETTER, "A-Za-z"),
    ];
    if !classes.iter().any(|(p, _, _)| pat.contains(p)) {
        return None;
    }
    let bytes = pat.as_bytes();
    let mut out = String::with_capacity(pat.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < pat.len() {
        let c = bytes[i];
        let prev_backslash = i > 0 && bytes[i - 1] == b'\\';
        if c == b'[' && !prev_backslash {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && c == b']' && !prev_backslash {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if c == b'\\' && pat[i..].starts_with("\\p{") {
            if let Some(&(p, ch, ascii)) = classes.iter().find(|(p, _, _)| pat[i..].starts_with(p))
            {
                if !inside {
                    out.push('[');
                }
                out.push_str(&format!("\\x{{{:X}}}", ch as u32));
                out.push_str(ascii);
                if !inside {
                    out.push(']');
                }
                i += p.len();
                continue;
            }
        }
        // Copy one whole character (the pattern is ASCII when it uses categories, but be safe).
        let len = unicode::utf8_len(c).max(1);
        let end = (i + len).min(pat.len());
        out.push_str(pat.get(i..end).unwrap_or(""));
        i = end;
    }
    Some(out)
}

fn compile(pat: &str) -> Result<fancy_regex::Regex, TokenizerError> {
    fancy_regex::RegexBuilder::new(pat)
        .backtrack_limit(10_000_000)
        .build()
        .map_err(|e| TokenizerError::Regex(format!("{pat:?}: {e}")))
}

impl PreTokenizer {
    pub fn new(regexes: &[&str]) -> Result<Self, TokenizerError> {
        let mut steps = Vec::with_capacity(regexes.len());
        for &r in regexes {
            let step = if r == GPT2 {
                Step::Gpt2
            } else if r == LLAMA3 {
                Step::Llama3 { max_digits: 3 }
            } else if r == QWEN2 {
                Step::Llama3 { max_digits: 1 }
            } else if let Some(collapsed) = collapse_pattern(r) {
                Step::Collapsed(compile(&collapsed)?)
            } else {
                Step::Wide(compile(r)?)
            };
            steps.push(step);
        }
        Ok(PreTokenizer { steps })
    }

    /// Splits `text` into words (as `&str` slices of `text`, in order, covering it exactly).
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TokenizerError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let cps: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let flags: Vec<CpFlags> = cps.iter().map(|&c| unicode::flags(c)).collect();
        // Piece lengths in code points.
        let mut pieces: Vec<usize> = vec![cps.len()];
        for step in &self.steps {
            pieces = match step {
                Step::Gpt2 => {
                    split_pieces(&pieces, |a, b, out| split_gpt2(&cps, &flags, a, b, out))
                }
                Step::Llama3 { max_digits } => split_pieces(&pieces, |a, b, out| {
                    split_llama3(&cps, &flags, *max_digits, a, b, out)
                }),
                Step::Collapsed(re) => {
                    let mapped: String = cps
                        .iter()
                        .zip(&flags)
                        .map(|(&c, &f)| collapse_char(c, f))
                        .collect();
                    split_regex(re, &mapped, &pieces)?
                }
                Step::Wide(re) => {
                    let mapped: String = cps
                        .iter()
                        .zip(&flags)
                        .map(|(&c, &f)| {
                            if c > 0x7F && f.is_whitespace() {
                                '\u{0B}'
                            } else {
                                char::from_u32(c).unwrap_or('\u{FFFD}')
                            }
                        })
                        .collect();
                    split_regex(re, &mapped, &pieces)?
                }
            };
        }
        // Code-point lengths → byte slices of the original text.
        let mut byte_at: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        byte_at.push(text.len());
        let mut out = Vec::with_capacity(pieces.len());
        let mut start = 0usize;
        for len in pieces {
            let end = start + len;
            if len > 0 {
                out.push(&text[byte_at[start]..byte_at[end]]);
            }
            start = end;
        }
        Ok(out)
    }
}

fn collapse_char(c: u32, f: CpFlags) -> char {
    if c < 128 {
        return char::from_u32(c).unwrap_or('\0');
    }
    if f.is_whitespace() {
        return '\u{0B}';
    }
    match f.category() {
        CpFlags::NUMBER => COLLAPSED_NUMBER,
        CpFlags::LETTER => COLLAPSED_LETTER,
        CpFlags::PUNCTUATION => COLLAPSED_PUNCT,
        CpFlags::ACCENT_MARK => COLLAPSED_MARK,
        CpFlags::SYMBOL => COLLAPSED_SYMBOL,
        _ => COLLAPSED_OTHER,
    }
}

/// Applies a scanner to each piece; the scanner pushes sub-piece lengths for `[a, b)`.
fn split_pieces(pieces: &[usize], mut f: impl FnMut(usize, usize, &mut Vec<usize>)) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len() * 2);
    let mut start = 0;
    for &len in pieces {
        f(start, start + len, &mut out);
        start += len;
    }
    out
}

/// Runs a regex over each piece of `mapped` (one char per code point); matches and the gaps
/// between them become pieces.
fn split_regex(
    re: &fancy_regex::Regex,
    mapped: &str,
    pieces: &[usize],
) -> Result<Vec<usize>, TokenizerError> {
    // Byte offset of each code point (and of the end) in `mapped`.
    let mut byte_at: Vec<usize> = mapped.char_indices().map(|(i, _)| i).collect();
    byte_at.push(mapped.len());
    let mut out = Vec::with_capacity(pieces.len() * 2);
    let mut start = 0usize;
    for &len in pieces {
        let (b0, b1) = (byte_at[start], byte_at[start + len]);
        let hay = &mapped[b0..b1];
        // Code-point index (relative to the piece) of each byte offset in `hay`.
        let cp_of = |byte: usize| -> usize {
            byte_at[start..=start + len].partition_point(|&b| b - b0 < byte)
        };
        let mut last = 0usize; // in code points, relative
        for m in re.find_iter(hay) {
            let m = m.map_err(|e| TokenizerError::Regex(e.to_string()))?;
            let (ms, me) = (cp_of(m.start()), cp_of(m.end()));
            if ms > last {
                out.push(ms - last);
            }
            if me > ms {
                out.push(me - ms);
            }
            last = me;
        }
        if last < len {
            out.push(len - last);
        }
        start += len;
    }
    Ok(out)
}

const OUT: u32 = u32::MAX;

/// GPT-2's expression as a scanner over `[a, b)`:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
fn split_gpt2(cps: &[u32], flags: &[CpFlags], a: usize, b: usize, out: &mut Vec<usize>) {
    let cp = |i: usize| if i >= a && i < b { cps[i] } else { OUT };
    let fl = |i: usize| {
        if i >= a && i < b {
            flags[i]
        } else {
            CpFlags::NONE
        }
    };
    let mut prev_end = a;
    let mut emit = |end: usize, out: &mut Vec<usize>| {
        if end > prev_end {
            out.push(end - prev_end);
        }
        prev_end = end;
    };
    let mut pos = a;
    while pos < b {
        let c = cp(pos);
        let f = fl(pos);
        if c == '\'' as u32 && pos + 1 < b {
            let n = cp(pos + 1);
            if [b's', b't', b'm', b'd'].iter().any(|&x| n == x as u32) {
                pos += 2;
                emit(pos, out);
                continue;
            }
            if pos + 2 < b {
                let nn = cp(pos + 2);
                let pair = |x: u8, y: u8| n == x as u32 && nn == y as u32;
                if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                    pos += 3;
                    emit(pos, out);
                    continue;
                }
            }
        }
        let space = c == ' ' as u32;
        let mut f2 = if space { fl(pos + 1) } else { f };
        if f2.is_letter() {
            pos += space as usize;
            while f2.is_letter() {
                pos += 1;
                f2 = fl(pos);
            }
            emit(pos, out);
            continue;
        }
        if f2.is_number() {
            pos += space as usize;
            while f2.is_number() {
                pos += 1;
                f2 = fl(pos);
            }
            emit(pos, out);
            continue;
        }
        let other =
            |f: CpFlags| !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.is_defined();
        if other(f2) {
            pos += space as usize;
            while other(f2) {
                pos += 1;
                f2 = fl(pos);
            }
            emit(pos, out);
            continue;
        }
        let mut n_ws = 0;
        while fl(pos + n_ws).is_whitespace() {
            n_ws += 1;
        }
        if n_ws > 1 && cp(pos + n_ws) != OUT {
            pos += n_ws - 1;
            emit(pos, out);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            emit(pos, out);
            continue;
        }
        pos += 1;
        emit(pos, out);
    }
}

/// Llama-3's expression as a scanner over `[a, b)`:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/// with `max_digits = 1` it is Qwen2's (`\p{N}` instead of `\p{N}{1,3}`).
fn split_llama3(
    cps: &[u32],
    flags: &[CpFlags],
    max_digits: usize,
    a: usize,
    b: usize,
    out: &mut Vec<usize>,
) {
    let cp = |i: usize| if i >= a && i < b { cps[i] } else { OUT };
    let fl = |i: usize| {
        if i >= a && i < b {
            flags[i]
        } else {
            CpFlags::NONE
        }
    };
    let lower = |c: u32| {
        if (b'A' as u32..=b'Z' as u32).contains(&c) {
            c + 32
        } else {
            c
        }
    };
    let is_rn = |c: u32| c == '\r' as u32 || c == '\n' as u32;
    let mut prev_end = a;
    let mut emit = |end: usize, out: &mut Vec<usize>| {
        if end > prev_end {
            out.push(end - prev_end);
        }
        prev_end = end;
    };
    let mut pos = a;
    while pos < b {
        let c = cp(pos);
        let f = fl(pos);
        if c == '\'' as u32 && pos + 1 < b {
            let n = lower(cp(pos + 1));
            if [b's', b't', b'm', b'd'].iter().any(|&x| n == x as u32) {
                pos += 2;
                emit(pos, out);
                continue;
            }
            if pos + 2 < b {
                let nn = lower(cp(pos + 2));
                let pair = |x: u8, y: u8| n == x as u32 && nn == y as u32;
                if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                    pos += 3;
                    emit(pos, out);
                    continue;
                }
            }
        }
        if !(is_rn(c) || f.is_number()) && (f.is_letter() || fl(pos + 1).is_letter()) {
            pos += 1;
            while fl(pos).is_letter() {
                pos += 1;
            }
            emit(pos, out);
            continue;
        }
        if f.is_number() {
            let mut ini = pos;
            while fl(pos).is_number() {
                pos += 1;
                if pos - ini >= max_digits {
                    emit(pos, out);
                    ini = pos;
                }
            }
            emit(pos, out);
            continue;
        }
        let other =
            |f: CpFlags| !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.is_defined();
        let mut f2 = if c == ' ' as u32 { fl(pos + 1) } else { f };
        if !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && f.is_defined() {
            pos += (c == ' ' as u32) as usize;
            while other(f2) {
                pos += 1;
                f2 = fl(pos);
            }
            while is_rn(cp(pos)) {
                pos += 1;
            }
            emit(pos, out);
            continue;
        }
        let mut n_ws = 0;
        let mut last_rn_end = 0;
        while fl(pos + n_ws).is_whitespace() {
            if is_rn(cp(pos + n_ws)) {
                last_rn_end = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        if last_rn_end > 0 {
            pos = last_rn_end;
            emit(pos, out);
            continue;
        }
        if n_ws > 1 && cp(pos + n_ws) != OUT {
            pos += n_ws - 1;
            emit(pos, out);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            emit(pos, out);
            continue;
        }
        pos += 1;
        emit(pos, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: &str, text: &str) -> Vec<String> {
        let spec = pre_spec(Some(pre)).unwrap();
        let p = PreTokenizer::new(spec.regexes).unwrap();
        p.split(text)
            .unwrap()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn gpt2_splits_words_with_leading_space_and_keeps_trailing_space_run() {
        assert_eq!(
            split("gpt-2", "Hello world's  end"),
            ["Hello", " world", "'s", " ", " end"]
        );
        assert_eq!(split("gpt-2", "a  "), ["a", "  "]);
    }

    #[test]
    fn smollm_splits_every_digit() {
        assert_eq!(split("smollm", "x 123"), ["x", " ", "1", "2", "3"]);
    }

    #[test]
    fn qwen2_splits_digits_and_attaches_newlines_to_punctuation() {
        assert_eq!(
            split("qwen2", "ab 12.\n\ncd"),
            ["ab", " ", "1", "2", ".\n\n", "cd"]
        );
        assert_eq!(split("qwen2", "안녕 세계"), ["안녕", " 세계"]);
    }

    #[test]
    fn llama3_groups_digits_by_three() {
        assert_eq!(split("llama-bpe", "12345 I'M"), ["123", "45", " I", "'M"]);
    }

    #[test]
    fn deepseek_v3_splits_cjk_runs() {
        assert_eq!(
            split("deepseek-v3", "abc中文1234"),
            ["abc", "中文", "123", "4"]
        );
    }

    #[test]
    fn collapsed_pattern_rewrites_categories() {
        let c = collapse_pattern(r"[^\s\p{L}]\p{N}").unwrap();
        assert_eq!(c, r"[^\s\x{D2}A-Za-z][\x{D1}0-9]");
        assert!(collapse_pattern("[0-9]").is_none());
    }

    #[test]
    fn every_known_pre_tokenizer_compiles() {
        for name in [
            "default",
            "gpt-2",
            "llama-bpe",
            "qwen2",
            "smollm",
            "deepseek-llm",
            "deepseek-coder",
            "deepseek-v3",
            "deepseek-r1-qwen",
            "exaone",
            "exaone4",
            "falcon",
            "poro-chat",
            "tekken",
            "gpt-4o",
            "bailingmoe",
            "seed-coder",
        ] {
            let spec = pre_spec(Some(name)).unwrap();
            let p = PreTokenizer::new(spec.regexes).unwrap();
            let words = p.split("Hello, 세계! 123 ümlaut\n\n  x").unwrap();
            assert_eq!(words.concat(), "Hello, 세계! 123 ümlaut\n\n  x", "{name}");
        }
    }

    #[test]
    fn unknown_pre_tokenizer_is_an_error() {
        assert!(matches!(
            pre_spec(Some("no-such-pre")),
            Err(TokenizerError::UnknownPreTokenizer(_))
        ));
    }

    /// The hand-written scanners must agree with their expressions run by the regex engine.
    #[test]
    fn scanners_agree_with_their_expressions() {
        let texts = [
            "Hello world's  end",
            "  leading\t\ttabs\n\n\nnewlines   ",
            "I'M 'RE you'll we've 'd",
            "숫자 3.14159! 123456789",
            "emoji 😀🚀🇰🇷 and ©®™ ½",
            "a\r\n\r\nb  \n c",
            "中文和日本語のテキスト",
            "x\u{3000}\u{3000}y\u{a0}z",
            "def f(n):\n    return n - 1  # done\n",
            "'",
            " '",
            "''s",
            "\n",
            " ",
            "tab\there",
            "ㄱㄴㄷ ㅏㅑㅓ 뷁",
            "combining é and e\u{301}",
            "under_score__x",
            "https://e.com/p?q=1&x=2#f",
        ];
        let cases: [(&str, usize); 3] = [(LLAMA3, 3), (QWEN2, 1), (GPT2, 0)];
        for (pat, digits) in cases {
            let pat_full = if digits == 0 {
                format!("{pat}|\\s+")
            } else {
                pat.to_string()
            };
            let re = compile(&collapse_pattern(&pat_full).unwrap()).unwrap();
            let by_regex = PreTokenizer {
                steps: vec![Step::Collapsed(re)],
            };
            let scanner = if digits == 0 {
                Step::Gpt2
            } else {
                Step::Llama3 { max_digits: digits }
            };
            let by_scanner = PreTokenizer {
                steps: vec![scanner],
            };
            for t in texts {
                assert_eq!(
                    by_scanner.split(t).unwrap(),
                    by_regex.split(t).unwrap(),
                    "{pat} on {t:?}"
                );
            }
        }
    }
}
