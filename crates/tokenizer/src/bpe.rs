//! Byte-level BPE merging of one pre-tokenized word (`tokenizer.ggml.model = gpt2`).
//!
//! The word arrives already mapped to GPT-2's printable byte alphabet. It starts as one
//! symbol per character; the adjacent pair with the lowest merge rank (leftmost on ties) is
//! merged until no pair has a rank. A min-heap of candidate pairs with lazy invalidation
//! keeps this O(n log n) per word. Ranks are keyed by token-id pairs (every merge part is
//! validated to be a token at load time), so no string is built per candidate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::error::TokenizerError;

/// Merge rules: `(left id, right id) → (rank, id of the merged text if it is a token)`.
pub(crate) type MergeMap = FxHashMap<(u32, u32), (u32, Option<u32>)>;

/// Parses `tokenizer.ggml.merges` ("left right", rank = position). The first space at byte
/// 1 or later separates the parts, as in llama.cpp; a repeated pair keeps its first rank.
pub(crate) fn build_merges(
    merges: &[String],
    token_to_id: &FxHashMap<String, u32>,
) -> Result<MergeMap, TokenizerError> {
    let mut map = MergeMap::with_capacity_and_hasher(merges.len(), Default::default());
    let mut joined = String::new();
    for (index, m) in merges.iter().enumerate() {
        let bad = |reason: String| TokenizerError::BadMerge {
            index,
            merge: m.clone(),
            reason,
        };
        let split = m
            .as_bytes()
            .iter()
            .skip(1)
            .position(|&b| b == b' ')
            .map(|p| p + 1);
        let Some(sp) = split else {
            return Err(bad("no space separates the two parts".into()));
        };
        let (left, right) = (&m[..sp], &m[sp + 1..]);
        if right.is_empty() {
            return Err(bad("the right part is empty".into()));
        }
        let l = *token_to_id
            .get(left)
            .ok_or_else(|| bad(format!("left part {left:?} is not a token")))?;
        let r = *token_to_id
            .get(right)
            .ok_or_else(|| bad(format!("right part {right:?} is not a token")))?;
        let rank = u32::try_from(index).map_err(|_| bad("too many merges".into()))?;
        joined.clear();
        joined.push_str(left);
        joined.push_str(right);
        let merged = token_to_id.get(joined.as_str()).copied();
        map.entry((l, r)).or_insert((rank, merged));
    }
    Ok(map)
}

/// A merge candidate: (rank, left, right, left_len, right_len). Ordered by rank, then left
/// position; an entry whose symbols changed length since it was pushed is stale and skipped.
type Candidate = (u32, usize, usize, usize, usize);

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
    id: Option<u32>,
}

/// Encodes one byte-mapped word, appending token ids to `out`.
pub(crate) fn encode_word(
    word: &str,
    token_to_id: &FxHashMap<String, u32>,
    merges: &MergeMap,
    ignore_merges: bool,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges {
        if let Some(&id) = token_to_id.get(word) {
            out.push(id);
            return;
        }
    }
    let mut syms: Vec<Sym> = Vec::with_capacity(word.len());
    for (i, (start, c)) in word.char_indices().enumerate() {
        let len = c.len_utf8();
        syms.push(Sym {
            start,
            len,
            prev: i.checked_sub(1),
            next: None,
            id: token_to_id.get(&word[start..start + len]).copied(),
        });
    }
    let n = syms.len();
    for (i, s) in syms.iter_mut().enumerate() {
        s.next = (i + 1 < n).then_some(i + 1);
    }

    let mut heap: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let (Some(a), Some(b)) = (syms[l].id, syms[r].id) else {
            return;
        };
        if let Some(&(rank, _)) = merges.get(&(a, b)) {
            heap.push(Reverse((rank, l, r, syms[l].len, syms[r].len)));
        }
    };
    for i in 1..n {
        push(&mut heap, &syms, Some(i - 1), Some(i));
    }
    while let Some(Reverse((_, l, r, llen, rlen))) = heap.pop() {
        if syms[l].len != llen
            || syms[r].len != rlen
            || llen == 0
            || rlen == 0
            || syms[l].next != Some(r)
        {
            continue;
        }
        let (Some(a), Some(b)) = (syms[l].id, syms[r].id) else {
            continue;
        };
        let merged = merges.get(&(a, b)).and_then(|&(_, m)| m);
        syms[l].len += rlen;
        syms[l].id = merged;
        syms[r].len = 0;
        let rn = syms[r].next;
        syms[l].next = rn;
        if let Some(rn) = rn {
            syms[rn].prev = Some(l);
        }
        push(&mut heap, &syms, syms[l].prev, Some(l));
        push(&mut heap, &syms, Some(l), syms[l].next);
    }
    for s in syms.iter().filter(|s| s.len > 0) {
        match s.id {
            Some(id) => out.push(id),
            None => {
                // Not a token: llama.cpp looks each byte up as a one-byte token and drops
                // the bytes that are not tokens.
                for &byte in &word.as_bytes()[s.start..s.start + s.len] {
                    if byte.is_ascii() {
                        if let Some(&id) =
                            token_to_id.get(std::str::from_utf8(&[byte]).unwrap_or(""))
                        {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }
}
