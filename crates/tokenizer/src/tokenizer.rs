//! `Tokenizer`: built from a [`Vocab`] exactly as llama.cpp's `llama_vocab::load` builds its
//! vocabulary (defaults, special-token detection, end-of-generation set), then encoding with
//! special-token partitioning and decoding to bytes.

use std::collections::BTreeSet;
use std::sync::Arc;

use jikji_gguf::GgufFile;
use rustc_hash::FxHashMap;

use crate::bpe::{self, MergeMap};
use crate::decode::{self, IncrementalDecoder};
use crate::error::TokenizerError;
use crate::pretokenize::{self, PreTokenizer};
use crate::spm;
use crate::unicode;
use crate::vocab::{TokenAttr, Vocab};

/// The tokenizer family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// SentencePiece-style (`tokenizer.ggml.model = llama`): scores, `▁`, byte fallback.
    Spm,
    /// Byte-level BPE (`tokenizer.ggml.model = gpt2`): pre-tokenizer regexes, merge ranks.
    Bpe,
}

/// EOT candidates by text, in llama.cpp's list order (used when no `eot_token_id` is given).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Tokens llama.cpp treats as end-of-generation by their text.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

pub(crate) struct Inner {
    pub kind: TokenizerKind,
    pub pre_name: String,
    pub tokens: Vec<String>,
    pub attrs: Vec<TokenAttr>,
    pub scores: Vec<f32>,
    /// Fx-hashed (`rustc-hash`): much faster to build for a 150k-token vocabulary than
    /// SipHash, and the keys come from the model file, not from network input.
    pub token_to_id: FxHashMap<String, u32>,
    pub merges: MergeMap,
    pub pre: Option<PreTokenizer>,
    pub ignore_merges: bool,
    pub clean_spaces: bool,
    pub add_space_prefix: bool,
    pub add_bos: bool,
    pub add_eos: bool,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub eog: BTreeSet<u32>,
    /// CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first.
    pub special_cache: Vec<u32>,
    /// Each token's piece with special tokens rendered (llama.cpp's piece cache).
    pub pieces: Vec<Vec<u8>>,
    /// SentencePiece byte-fallback tokens.
    pub byte_tokens: Box<[Option<u32>; 256]>,
}

/// A tokenizer built from GGUF metadata. Cloning is cheap (shared, immutable state).
#[derive(Clone)]
pub struct Tokenizer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.inner.kind)
            .field("pre", &self.inner.pre_name)
            .field("n_vocab", &self.inner.tokens.len())
            .finish()
    }
}

/// A text fragment or an already-recognised special token.
enum Frag {
    Text(usize, usize),
    Token(u32),
}

fn special_id(
    key: &'static str,
    default: Option<i64>,
    value: Option<i64>,
    n: usize,
) -> Result<Option<u32>, TokenizerError> {
    if let Some(v) = value {
        if v < 0 || v as u64 >= n as u64 {
            return Err(TokenizerError::SpecialIdOutOfRange {
                key,
                id: v,
                n_vocab: n,
            });
        }
        return Ok(Some(v as u32));
    }
    // A default id outside a small vocabulary is disabled, as in llama.cpp.
    Ok(default
        .filter(|&d| d >= 0 && (d as u64) < n as u64)
        .map(|d| d as u32))
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_vocab(Vocab::from_gguf(file)?)
    }

    /// Builds the tokenizer from raw vocabulary data, validating it.
    pub fn from_vocab(v: Vocab) -> Result<Tokenizer, TokenizerError> {
        let n = v.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        let (kind, bos_default, eos_default, unk_default) = match v.model.as_str() {
            "llama" => (TokenizerKind::Spm, Some(1), Some(2), Some(0)),
            "gpt2" => (TokenizerKind::Bpe, Some(11), Some(11), None),
            other => return Err(TokenizerError::UnknownModel(other.to_string())),
        };

        // Flags that depend on the family and the pre-tokenizer.
        let mut bos_default = bos_default;
        let (
            pre,
            ignore_merges,
            clean_spaces,
            mut add_space_prefix,
            mut add_bos,
            mut add_eos,
            pre_name,
        ) = match kind {
            TokenizerKind::Bpe => {
                let spec = pretokenize::pre_spec(v.pre.as_deref())?;
                if spec.no_default_bos {
                    bos_default = None;
                }
                let pre = PreTokenizer::new(spec.regexes)?;
                let name = v.pre.clone().unwrap_or_else(|| "default".into());
                (
                    Some(pre),
                    spec.ignore_merges,
                    spec.clean_spaces,
                    false,
                    spec.add_bos_default,
                    false,
                    name,
                )
            }
            // SentencePiece vocabularies have no pre-tokenizer; `pre` is not consulted.
            TokenizerKind::Spm => (
                None,
                false,
                false,
                true,
                true,
                false,
                v.pre.clone().unwrap_or_default(),
            ),
        };
        if let Some(p) = v.add_space_prefix {
            add_space_prefix = p;
        }

        if let Some(s) = &v.scores {
            if s.len() != n {
                return Err(TokenizerError::LengthMismatch {
                    key: "tokenizer.ggml.scores",
                    found: s.len(),
                    expected: n,
                });
            }
        }
        if let Some(t) = &v.token_types {
            if t.len() != n {
                return Err(TokenizerError::LengthMismatch {
                    key: "tokenizer.ggml.token_type",
                    found: t.len(),
                    expected: n,
                });
            }
        }

        let mut tokens = v.tokens;
        let mut token_to_id: FxHashMap<String, u32> =
            FxHashMap::with_capacity_and_hasher(n, Default::default());
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
            if let Some(&first) = token_to_id.get(t.as_str()) {
                return Err(TokenizerError::DuplicateToken {
                    text: t.clone(),
                    first,
                    second: i as u32,
                });
            }
            token_to_id.insert(t.clone(), i as u32);
        }
        let scores = v.scores.unwrap_or_else(|| vec![0.0; n]);
        let mut attrs: Vec<TokenAttr> = match &v.token_types {
            Some(t) => t.iter().map(|&x| TokenAttr::from_type(x)).collect(),
            None => vec![TokenAttr(TokenAttr::NORMAL); n],
        };

        let merges = match kind {
            TokenizerKind::Bpe => {
                let m = v
                    .merges
                    .as_ref()
                    .ok_or(TokenizerError::MissingKey("tokenizer.ggml.merges"))?;
                bpe::build_merges(m, &token_to_id)?
            }
            TokenizerKind::Spm => MergeMap::default(),
        };

        let bos = special_id("tokenizer.ggml.bos_token_id", bos_default, v.bos_id, n)?;
        let eos = special_id("tokenizer.ggml.eos_token_id", eos_default, v.eos_id, n)?;
        let mut eot = special_id("tokenizer.ggml.eot_token_id", None, v.eot_id, n)?;
        let mut eom = special_id("tokenizer.ggml.eom_token_id", None, v.eom_id, n)?;
        let unk = special_id("tokenizer.ggml.unknown_token_id", unk_default, v.unk_id, n)?;
        let pad = special_id("tokenizer.ggml.padding_token_id", None, v.pad_id, n)?;
        let _sep = special_id("tokenizer.ggml.seperator_token_id", None, v.sep_id, n)?;
        let mut fim_pad = special_id("tokenizer.ggml.fim_pad_token_id", None, v.fim_pad_id, n)?;
        let mut fim_rep = special_id("tokenizer.ggml.fim_rep_token_id", None, v.fim_rep_id, n)?;
        let mut fim_sep = special_id("tokenizer.ggml.fim_sep_token_id", None, v.fim_sep_id, n)?;

        if let Some(b) = v.add_bos {
            add_bos = b;
        }
        if let Some(e) = v.add_eos {
            add_eos = e;
        }
        if add_bos && bos.is_none() {
            return Err(TokenizerError::MissingSpecialToken {
                flag: "tokenizer.ggml.add_bos_token",
                what: "BOS",
            });
        }
        if add_eos && eos.is_none() {
            return Err(TokenizerError::MissingSpecialToken {
                flag: "tokenizer.ggml.add_eos_token",
                what: "EOS",
            });
        }

        // Detect special tokens by their text when the metadata does not name them; a
        // detected token is made CONTROL so it is parsed and hidden like one.
        let detect = |slot: &mut Option<u32>, texts: &[&str], attrs: &mut Vec<TokenAttr>| {
            if slot.is_some() {
                return;
            }
            if let Some(&id) = texts.iter().find_map(|t| token_to_id.get(*t)) {
                *slot = Some(id);
                attrs[id as usize].0 |= TokenAttr::CONTROL;
            }
        };
        detect(&mut eot, EOT_TEXTS, &mut attrs);
        detect(&mut eom, &["<|eom_id|>"], &mut attrs);
        let (mut fim_pre, mut fim_suf, mut fim_mid) = (None, None, None);
        detect(&mut fim_pre, FIM_PRE_TEXTS, &mut attrs);
        detect(&mut fim_suf, FIM_SUF_TEXTS, &mut attrs);
        detect(&mut fim_mid, FIM_MID_TEXTS, &mut attrs);
        detect(&mut fim_pad, FIM_PAD_TEXTS, &mut attrs);
        detect(&mut fim_rep, FIM_REP_TEXTS, &mut attrs);
        detect(&mut fim_sep, FIM_SEP_TEXTS, &mut attrs);

        let mut eog: BTreeSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        for text in EOG_TEXTS {
            if let Some(&id) = token_to_id.get(*text) {
                eog.insert(id);
                attrs[id as usize].0 |= TokenAttr::CONTROL;
            }
        }
        // gpt-oss renders these always.
        for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(&id) = token_to_id.get(text) {
                attrs[id as usize] = TokenAttr(TokenAttr::USER_DEFINED);
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        // o200k_harmony / solar-open: `<|end|>` ends a message, not the generation.
        let eog_has =
            |eog: &BTreeSet<u32>, t: &str| token_to_id.get(t).is_some_and(|id| eog.contains(id));
        if (eog_has(&eog, "<|return|>") && eog_has(&eog, "<|call|>") && eog_has(&eog, "<|end|>"))
            || (eog_has(&eog, "<|calls|>")
                && eog_has(&eog, "<|flush|>")
                && eog_has(&eog, "<|end|>"))
        {
            if let Some(&id) = token_to_id.get("<|end|>") {
                eog.remove(&id);
                attrs[id as usize] = TokenAttr(TokenAttr::USER_DEFINED);
            }
        }
        if eog_has(&eog, "<|tool_response>") && eog_has(&eog, "</s>") {
            if let Some(&id) = token_to_id.get("</s>") {
                eog.remove(&id);
                attrs[id as usize] = TokenAttr(TokenAttr::NORMAL);
            }
        }

        let special_bits = TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN;
        let mut special_cache: Vec<u32> = (0..n as u32)
            .filter(|&i| attrs[i as usize].has(special_bits))
            .collect();
        special_cache.sort_by(|&a, &b| {
            tokens[b as usize]
                .len()
                .cmp(&tokens[a as usize].len())
                .then(a.cmp(&b))
        });

        let mut byte_tokens: Box<[Option<u32>; 256]> = Box::new([None; 256]);
        if kind == TokenizerKind::Spm {
            for (b, slot) in byte_tokens.iter_mut().enumerate() {
                let hex = format!("<0x{b:02X}>");
                *slot = token_to_id.get(&hex).copied().or_else(|| {
                    let byte = [b as u8];
                    std::str::from_utf8(&byte)
                        .ok()
                        .and_then(|s| token_to_id.get(s).copied())
                });
            }
        }

        let pieces: Vec<Vec<u8>> = (0..n)
            .map(|i| decode::piece_for(kind, &tokens[i], attrs[i]))
            .collect();

        Ok(Tokenizer {
            inner: Arc::new(Inner {
                kind,
                pre_name,
                tokens,
                attrs,
                scores,
                token_to_id,
                merges,
                pre,
                ignore_merges,
                clean_spaces,
                add_space_prefix,
                add_bos,
                add_eos,
                bos,
                eos,
                eot,
                eom,
                unk,
                pad,
                eog,
                special_cache,
                pieces,
                byte_tokens,
            }),
        })
    }

    /// Splits `text` around special tokens (llama.cpp's `tokenizer_st_partition`): longest
    /// special token first, every occurrence, then the next one inside the remaining text.
    /// CONTROL and UNKNOWN tokens are only recognised when `parse_special` is on;
    /// USER_DEFINED tokens always are.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Frag> {
        let inner = &*self.inner;
        let mut frags = vec![Frag::Text(0, text.len())];
        if text.is_empty() {
            return Vec::new();
        }
        let mut present = [false; 256];
        for &b in text.as_bytes() {
            present[b as usize] = true;
        }
        for &id in &inner.special_cache {
            let attr = inner.attrs[id as usize];
            if !parse_special && attr.has(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
                continue;
            }
            let tok = inner.tokens[id as usize].as_str();
            if !present[tok.as_bytes()[0] as usize] || !text.contains(tok) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Frag::Text(s, e) => {
                        let mut cur = s;
                        for (off, _) in text[s..e].match_indices(tok) {
                            let at = s + off;
                            if at > cur {
                                next.push(Frag::Text(cur, at));
                            }
                            next.push(Frag::Token(id));
                            cur = at + tok.len();
                        }
                        if cur < e {
                            next.push(Frag::Text(cur, e));
                        }
                    }
                    t => next.push(t),
                }
            }
            frags = next;
        }
        frags
    }

    /// Tokenizes `text` as llama.cpp's `llama_tokenize` does. `add_special` adds BOS/EOS as
    /// the metadata asks; `parse_special` recognises CONTROL tokens written in the text.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let inner = &*self.inner;
        let frags = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && inner.add_bos {
            out.extend(inner.bos);
        }
        match inner.kind {
            TokenizerKind::Spm => {
                let v = spm::SpmVocab {
                    token_to_id: &inner.token_to_id,
                    scores: &inner.scores,
                    byte_tokens: &inner.byte_tokens,
                    unk: inner.unk,
                };
                let mut prev_special = true;
                for f in frags {
                    match f {
                        Frag::Text(s, e) => {
                            let mut t = String::with_capacity(e - s + 4);
                            if inner.add_space_prefix && prev_special {
                                t.push(' ');
                            }
                            t.push_str(&text[s..e]);
                            let escaped = t.replace(' ', "\u{2581}");
                            spm::encode(&escaped, &v, &mut out)?;
                            prev_special = false;
                        }
                        Frag::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            TokenizerKind::Bpe => {
                let map = unicode::byte_map();
                let mut mapped = String::new();
                for f in frags {
                    match f {
                        Frag::Text(s, e) => {
                            let Some(pre) = &inner.pre else { continue };
                            for word in pre.split(&text[s..e])? {
                                mapped.clear();
                                mapped.extend(word.bytes().map(|b| map.to_char[b as usize]));
                                bpe::encode_word(
                                    &mapped,
                                    &inner.token_to_id,
                                    &inner.merges,
                                    inner.ignore_merges,
                                    &mut out,
                                );
                            }
                        }
                        Frag::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && inner.add_eos {
            out.extend(inner.eos);
        }
        Ok(out)
    }

    fn check_id(&self, id: u32) -> Result<usize, TokenizerError> {
        let n = self.inner.tokens.len();
        if (id as usize) < n {
            Ok(id as usize)
        } else {
            Err(TokenizerError::InvalidTokenId { id, n_vocab: n })
        }
    }

    /// The bytes one token stands for: SentencePiece `▁` → space and `<0xXX>` → the byte,
    /// BPE characters → their bytes. CONTROL/UNKNOWN tokens give nothing unless
    /// `render_special`.
    pub fn token_bytes(&self, id: u32, render_special: bool) -> Result<Vec<u8>, TokenizerError> {
        Ok(self.piece(id, render_special)?.to_vec())
    }

    pub(crate) fn piece(&self, id: u32, render_special: bool) -> Result<&[u8], TokenizerError> {
        let i = self.check_id(id)?;
        if !render_special && self.inner.attrs[i].has(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
            return Ok(&[]);
        }
        Ok(&self.inner.pieces[i])
    }

    /// Decodes a whole sequence as llama.cpp's `llama_detokenize` does (leading space of
    /// the first piece removed when the model adds a space prefix; Hugging Face's space
    /// clean-up where the pre-tokenizer asks for it). Invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut remove_space = self.inner.add_space_prefix;
        for &id in ids {
            let mut p = self.piece(id, render_special)?;
            if remove_space && p.first() == Some(&b' ') {
                p = &p[1..];
            }
            remove_space = false;
            bytes.extend_from_slice(p);
        }
        if self.inner.clean_spaces {
            decode::clean_up_spaces(&mut bytes);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A streaming decoder that only ever returns whole UTF-8 characters.
    pub fn incremental_decoder(&self) -> IncrementalDecoder {
        IncrementalDecoder::new(self.clone(), false)
    }

    /// Like [`Tokenizer::incremental_decoder`], choosing whether special tokens are rendered.
    pub fn incremental_decoder_with(&self, render_special: bool) -> IncrementalDecoder {
        IncrementalDecoder::new(self.clone(), render_special)
    }

    pub fn kind(&self) -> TokenizerKind {
        self.inner.kind
    }
    /// `tokenizer.ggml.pre` (`default` for BPE files without it).
    pub fn pre(&self) -> &str {
        &self.inner.pre_name
    }
    pub fn n_vocab(&self) -> usize {
        self.inner.tokens.len()
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.inner.eos
    }
    pub fn eot_id(&self) -> Option<u32> {
        self.inner.eot
    }
    pub fn eom_id(&self) -> Option<u32> {
        self.inner.eom
    }
    pub fn unk_id(&self) -> Option<u32> {
        self.inner.unk
    }
    pub fn pad_id(&self) -> Option<u32> {
        self.inner.pad
    }
    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.inner.add_bos
    }
    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.inner.add_eos
    }
    pub fn add_space_prefix(&self) -> bool {
        self.inner.add_space_prefix
    }
    /// End of generation: EOS, EOT, EOM, and the tokens llama.cpp recognises by text
    /// (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`, `<|endoftext|>`, FIM pad/repo/sep, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.inner.eog.contains(&id)
    }
    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        self.inner.eog.iter().copied().collect()
    }
    /// The token's text as stored in the vocabulary (`▁`/GPT-2 characters not undone).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.inner.tokens.get(id as usize).map(String::as_str)
    }
    /// The id of the token whose vocabulary text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id.get(text).copied()
    }
    /// The token's attributes (type bits).
    pub fn token_attr(&self, id: u32) -> Option<TokenAttr> {
        self.inner.attrs.get(id as usize).copied()
    }
    /// The token's SentencePiece score (0 when the file has none).
    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.inner.scores.get(id as usize).copied()
    }
    /// CONTROL, USER_DEFINED or UNKNOWN.
    pub fn is_special(&self, id: u32) -> bool {
        self.token_attr(id).is_some_and(|a| {
            a.has(TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN)
        })
    }
    /// BOS token text, for chat templates (`bos_token`).
    pub fn bos_text(&self) -> Option<&str> {
        self.inner.bos.and_then(|id| self.token_text(id))
    }
    /// EOS token text, for chat templates (`eos_token`).
    pub fn eos_text(&self) -> Option<&str> {
        self.inner.eos.and_then(|id| self.token_text(id))
    }
}
