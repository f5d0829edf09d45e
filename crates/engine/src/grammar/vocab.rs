//! The model's vocabulary as llguidance sees it: a token trie built once per model.
//!
//! - Every logits row id gets an entry, so masks line up with the model's rows even when
//!   the output layer is padded past the tokenizer (Qwen2's 151,936 rows over 151,665
//!   tokens): the padding ids get no bytes and are never allowed.
//! - CONTROL tokens (`<|im_end|>`, `<|endoftext|>`, …) are marked special (a 0xFF byte in
//!   front of their text), so no grammar can spell them out as text; user-defined added
//!   tokens such as Qwen's `<tool_call>` keep their text and can match it.
//! - Every end-of-generation id counts as llguidance's EOS, so an accepting grammar lets
//!   the model end its turn with whichever EOG token it prefers.
//! - Forced strings are tokenized with jikji's own tokenizer (canonical, as the model saw
//!   in training) instead of the trie's greedy split.

use std::sync::Arc;

use jikji_tokenizer::Tokenizer;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// llguidance's view of a jikji tokenizer.
pub(crate) struct JikjiTokEnv {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for JikjiTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) => match self.tokenizer.encode(text, false, false) {
                Ok(ids) => ids,
                Err(_) => self.trie.greedy_tokenize(s),
            },
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// Builds the trie over `n_rows` logits rows (≥ the tokenizer's vocabulary).
pub(crate) fn tok_env(tokenizer: Arc<Tokenizer>, n_rows: usize) -> Result<TokEnv, String> {
    let n_tok = tokenizer.n_vocab();
    let n_rows = n_rows.max(n_tok);
    let eog = tokenizer.eog_ids();
    let Some(&first_eog) = eog.first() else {
        return Err("the tokenizer has no end-of-generation token".into());
    };
    let mut words: Vec<Vec<u8>> = Vec::with_capacity(n_rows);
    for id in 0..n_rows as u32 {
        if (id as usize) >= n_tok {
            words.push(Vec::new());
            continue;
        }
        let control = tokenizer.token_attr(id).is_some_and(|a| a.is_control()) || tokenizer.is_eog(id);
        if control {
            let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
            w.extend_from_slice(tokenizer.token_text(id).unwrap_or("").as_bytes());
            words.push(w);
        } else {
            words.push(tokenizer.token_bytes(id, false).map_err(|e| e.to_string())?);
        }
    }
    let info = TokRxInfo {
        vocab_size: n_rows as u32,
        tok_eos: tokenizer.eos_id().filter(|e| eog.contains(e)).unwrap_or(first_eog),
        tok_bos: tokenizer.bos_id(),
        tok_pad: tokenizer.pad_id(),
        tok_unk: tokenizer.unk_id(),
        tok_end_of_turn: tokenizer.eot_id(),
    };
    let trie = TokTrie::from(&info, &words).with_eos_tokens(&eog);
    Ok(Arc::new(JikjiTokEnv { trie, tokenizer }))
}
