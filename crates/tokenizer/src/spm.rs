//! SentencePiece-style merging (`tokenizer.ggml.model = llama`), as llama.cpp does it.
//!
//! The text (spaces already replaced by `▁`) starts as one symbol per UTF-8 character.
//! Any adjacent pair whose concatenation is a token is a candidate, scored by that token's
//! score; the best candidate (highest score, leftmost on ties) is merged until none is left.
//! Symbols that are not tokens fall back to byte tokens `<0xXX>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::error::TokenizerError;

struct Cand {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    /// Max-heap order: higher score first, then the smaller left index.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Vocabulary view needed by the SentencePiece merger.
pub(crate) struct SpmVocab<'a> {
    pub token_to_id: &'a FxHashMap<String, u32>,
    pub scores: &'a [f32],
    /// `<0xXX>` (or the single ASCII character) token of each byte.
    pub byte_tokens: &'a [Option<u32>; 256],
    pub unk: Option<u32>,
}

/// Encodes `text` (already whitespace-escaped), appending ids to `out`.
pub(crate) fn encode(
    text: &str,
    v: &SpmVocab<'_>,
    out: &mut Vec<u32>,
) -> Result<(), TokenizerError> {
    if text.is_empty() {
        return Ok(());
    }
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        syms.push(Sym {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
    }
    let n = syms.len();
    for (i, s) in syms.iter_mut().enumerate() {
        s.next = (i + 1 < n).then_some(i + 1);
    }
    let mut heap: BinaryHeap<Cand> = BinaryHeap::new();
    let try_add =
        |heap: &mut BinaryHeap<Cand>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (a, b) = (syms[l], syms[r]);
            let piece = &text[a.start..b.start + b.len];
            if let Some(&id) = v.token_to_id.get(piece) {
                let score = v.scores.get(id as usize).copied().unwrap_or(0.0);
                heap.push(Cand {
                    score,
                    left: l,
                    right: r,
                    size: piece.len(),
                });
            }
        };
    for i in 1..n {
        try_add(&mut heap, &syms, Some(i - 1), Some(i));
    }
    while let Some(c) = heap.pop() {
        let (l, r) = (syms[c.left], syms[c.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != c.size {
            continue;
        }
        syms[c.left].len += r.len;
        syms[c.right].len = 0;
        syms[c.left].next = r.next;
        if let Some(rn) = r.next {
            syms[rn].prev = Some(c.left);
        }
        try_add(&mut heap, &syms, syms[c.left].prev, Some(c.left));
        try_add(&mut heap, &syms, Some(c.left), syms[c.left].next);
    }
    for s in syms.iter().filter(|s| s.len > 0) {
        let piece = &text[s.start..s.start + s.len];
        if let Some(&id) = v.token_to_id.get(piece) {
            out.push(id);
            continue;
        }
        for &byte in piece.as_bytes() {
            match v.byte_tokens[byte as usize].or(v.unk) {
                Some(id) => out.push(id),
                None => return Err(TokenizerError::NoByteToken(byte)),
            }
        }
    }
    Ok(())
}
