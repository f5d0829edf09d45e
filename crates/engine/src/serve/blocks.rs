//! Block bookkeeping for the paged KV pool: reference counts, a free list, and the prefix
//! cache (full blocks named by a chained hash, kept after release until reallocated, least
//! recently used first).
//!
//! A full block's name is `hash(parent name, its tokens)`, so equal names mean equal whole
//! prefixes; a hit is still checked against the stored parent name and tokens, so a hash
//! collision can only cost a cache miss, never another user's keys and values.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

/// The name of the empty prefix (the parent of a sequence's first block).
pub(crate) const ROOT: u64 = 0x6a69_6b6a_6920_6b76;

/// Name of a full block with tokens `tokens` following the prefix named `parent`.
pub(crate) fn block_hash(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

#[derive(Clone, Debug)]
struct Named {
    hash: u64,
    parent: u64,
    tokens: Vec<u32>,
}

/// Reference counts and the prefix cache over blocks `0..n`.
#[derive(Debug)]
pub(crate) struct BlockTable {
    refs: Vec<u32>,
    named: Vec<Option<Named>>,
    by_hash: HashMap<u64, u32>,
    /// Never-named free blocks (a stack: recently freed, still-warm blocks first).
    free: Vec<u32>,
    /// Named blocks with no references, by release time (oldest first).
    lru: BTreeMap<u64, u32>,
    lru_key: Vec<u64>,
    tick: u64,
    used: usize,
}

impl BlockTable {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            refs: vec![0; n],
            named: vec![None; n],
            by_hash: HashMap::new(),
            free: (0..n as u32).rev().collect(),
            lru: BTreeMap::new(),
            lru_key: vec![0; n],
            tick: 0,
            used: 0,
        }
    }

    /// Blocks that can be handed out now (free or cached-but-unreferenced).
    pub(crate) fn available(&self) -> usize {
        self.free.len() + self.lru.len()
    }

    /// Blocks referenced by at least one sequence.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// A block for exclusive use (refcount 1), evicting the oldest cached block if no
    /// free one is left.
    pub(crate) fn alloc(&mut self) -> Option<u32> {
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                let (_, b) = self.lru.pop_first()?;
                if let Some(n) = self.named[b as usize].take() {
                    if self.by_hash.get(&n.hash) == Some(&b) {
                        self.by_hash.remove(&n.hash);
                    }
                }
                b
            }
        };
        self.refs[b as usize] = 1;
        self.used += 1;
        Some(b)
    }

    /// Takes a reference to the cached block named `hash` holding `tokens` after `parent`.
    pub(crate) fn lookup(&mut self, hash: u64, parent: u64, tokens: &[u32]) -> Option<u32> {
        let &b = self.by_hash.get(&hash)?;
        let n = self.named[b as usize].as_ref()?;
        if n.parent != parent || n.tokens != tokens {
            return None;
        }
        if self.refs[b as usize] == 0 {
            self.lru.remove(&self.lru_key[b as usize]);
            self.used += 1;
        }
        self.refs[b as usize] += 1;
        Some(b)
    }

    /// Names a block the caller has just filled, so later prompts can reuse it. A name
    /// already held by another block is left there (the new block stays private).
    pub(crate) fn name(&mut self, b: u32, hash: u64, parent: u64, tokens: &[u32]) {
        if self.by_hash.contains_key(&hash) || self.named[b as usize].is_some() {
            return;
        }
        self.by_hash.insert(hash, b);
        self.named[b as usize] = Some(Named { hash, parent, tokens: tokens.to_vec() });
    }

    /// Drops one reference; an unreferenced named block stays cached, others become free.
    pub(crate) fn release(&mut self, b: u32) {
        let r = &mut self.refs[b as usize];
        if *r == 0 {
            return;
        }
        *r -= 1;
        if *r > 0 {
            return;
        }
        self.used -= 1;
        if self.named[b as usize].is_some() {
            self.tick += 1;
            self.lru_key[b as usize] = self.tick;
            self.lru.insert(self.tick, b);
        } else {
            self.free.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_named_blocks_are_reused_until_evicted_oldest_first() {
        let mut t = BlockTable::new(3);
        let (a, b) = (t.alloc().unwrap(), t.alloc().unwrap());
        let (ha, hb) = (block_hash(ROOT, &[1, 2]), block_hash(ROOT, &[3, 4]));
        t.name(a, ha, ROOT, &[1, 2]);
        t.name(b, hb, ROOT, &[3, 4]);
        t.release(a);
        t.release(b);
        assert_eq!((t.used(), t.available()), (0, 3));
        // A hit takes a reference and leaves the cache's free part.
        assert_eq!(t.lookup(ha, ROOT, &[1, 2]), Some(a));
        assert_eq!((t.used(), t.available()), (1, 2));
        // Wrong tokens under the same name: a miss.
        assert_eq!(t.lookup(hb, ROOT, &[9, 9]), None);
        t.release(a);
        // The never-used block goes first, then the oldest cached one (b, released before a).
        let c = t.alloc().unwrap();
        assert!(c != a && c != b);
        assert_eq!(t.alloc(), Some(b));
        assert_eq!(t.lookup(hb, ROOT, &[3, 4]), None, "evicted");
        assert_eq!(t.lookup(ha, ROOT, &[1, 2]), Some(a));
        assert_eq!(t.alloc(), None);
    }

    #[test]
    fn shared_blocks_count_references() {
        let mut t = BlockTable::new(2);
        let a = t.alloc().unwrap();
        let h = block_hash(ROOT, &[7]);
        t.name(a, h, ROOT, &[7]);
        assert_eq!(t.lookup(h, ROOT, &[7]), Some(a));
        t.release(a);
        assert_eq!(t.used(), 1);
        t.release(a);
        assert_eq!(t.used(), 0);
        assert_eq!(t.available(), 2);
    }
}
