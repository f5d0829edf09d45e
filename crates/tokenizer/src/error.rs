//! The tokenizer's error type.

/// Everything that can go wrong while building a tokenizer from metadata or using it.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The GGUF reader refused a key (wrong type, malformed file, ...).
    #[error("GGUF metadata: {0}")]
    Gguf(#[from] jikji_gguf::GgufError),

    /// A required metadata key is absent.
    #[error("missing tokenizer metadata key `{0}`")]
    MissingKey(&'static str),

    /// A metadata key holds a value of a type the tokenizer cannot use.
    #[error("tokenizer metadata key `{key}` has an unusable value: {reason}")]
    BadValue { key: &'static str, reason: String },

    /// `tokenizer.ggml.model` names a tokenizer family jikji does not implement.
    #[error("unsupported tokenizer model `{0}` (tokenizer.ggml.model); supported: `llama` (SentencePiece), `gpt2` (byte-level BPE)")]
    UnknownModel(String),

    /// `tokenizer.ggml.pre` names a pre-tokenizer jikji does not know. Never silently replaced.
    #[error("unknown pre-tokenizer `{0}` (tokenizer.ggml.pre); refusing to guess a replacement because the token ids would silently differ from the model's")]
    UnknownPreTokenizer(String),

    /// The token list is empty.
    #[error("the vocabulary (tokenizer.ggml.tokens) is empty")]
    EmptyVocab,

    /// Too many tokens for 32-bit token ids.
    #[error("the vocabulary has {0} tokens, more than 32-bit token ids allow")]
    VocabTooLarge(usize),

    /// A per-token array does not have one entry per token.
    #[error("`{key}` has {found} entries but the vocabulary has {expected} tokens")]
    LengthMismatch {
        key: &'static str,
        found: usize,
        expected: usize,
    },

    /// Two tokens share the same text.
    #[error("duplicate token text {text:?} at ids {first} and {second}")]
    DuplicateToken {
        text: String,
        first: u32,
        second: u32,
    },

    /// A BPE merge rule is malformed or names a string that is not a token.
    #[error("BPE merge #{index} {merge:?} is invalid: {reason}")]
    BadMerge {
        index: usize,
        merge: String,
        reason: String,
    },

    /// A special-token id in the metadata is outside the vocabulary (or negative).
    #[error("`{key}` = {id} is out of range for a vocabulary of {n_vocab} tokens")]
    SpecialIdOutOfRange {
        key: &'static str,
        id: i64,
        n_vocab: usize,
    },

    /// `add_bos`/`add_eos` is on but the model defines no such token.
    #[error("`{flag}` is true but the model defines no {what} token")]
    MissingSpecialToken {
        flag: &'static str,
        what: &'static str,
    },

    /// A token id passed to decoding is outside the vocabulary.
    #[error("token id {id} is out of range (the vocabulary has {n_vocab} tokens)")]
    InvalidTokenId { id: u32, n_vocab: usize },

    /// SentencePiece byte fallback needed a byte token the vocabulary does not have.
    #[error("no byte-fallback token for byte 0x{0:02X} and no unknown token in the vocabulary")]
    NoByteToken(u8),

    /// A pre-tokenizer regular expression failed to compile or to run.
    #[error("pre-tokenizer regex error: {0}")]
    Regex(String),
}
