//! The tokenizer's raw material, read from `tokenizer.ggml.*` metadata into a plain struct.
//!
//! `Vocab` keeps "key absent" distinct from any value (`Option`), because llama.cpp's
//! defaults depend on which keys are present (e.g. `add_bos` defaults to true for
//! SentencePiece models, false for most BPE models). It can also be filled by hand, which is
//! how tests build damaged vocabularies.

use jikji_gguf::{GgufError, GgufFile, Value};

use crate::error::TokenizerError;

/// Token type codes of `tokenizer.ggml.token_type` (llama.cpp's `llama_token_type`).
pub mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Per-token attribute bits (llama.cpp's `llama_token_attr`); a token can carry several,
/// e.g. a NORMAL token that llama.cpp promotes to CONTROL because its text is `<|im_end|>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenAttr(pub u32);

impl TokenAttr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;

    pub fn from_type(t: i32) -> TokenAttr {
        TokenAttr(match t {
            token_type::UNKNOWN => Self::UNKNOWN,
            token_type::UNUSED => Self::UNUSED,
            token_type::NORMAL => Self::NORMAL,
            token_type::CONTROL => Self::CONTROL,
            token_type::USER_DEFINED => Self::USER_DEFINED,
            token_type::BYTE => Self::BYTE,
            _ => Self::UNDEFINED,
        })
    }
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits != 0
    }
    pub fn is_control(self) -> bool {
        self.has(Self::CONTROL)
    }
    pub fn is_user_defined(self) -> bool {
        self.has(Self::USER_DEFINED)
    }
    pub fn is_byte(self) -> bool {
        self.has(Self::BYTE)
    }
    pub fn is_normal(self) -> bool {
        self.has(Self::NORMAL)
    }
}

/// Tokenizer metadata as stored in the file. `None` means "key absent".
#[derive(Clone, Debug, Default)]
pub struct Vocab {
    /// `tokenizer.ggml.model`: `llama` (SentencePiece) or `gpt2` (byte-level BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SentencePiece merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type` (see [`token_type`]).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`: `"left right"` in rank order.
    pub merges: Option<Vec<String>>,
    pub bos_id: Option<i64>,
    pub eos_id: Option<i64>,
    pub eot_id: Option<i64>,
    pub eom_id: Option<i64>,
    pub unk_id: Option<i64>,
    pub pad_id: Option<i64>,
    pub sep_id: Option<i64>,
    pub fim_pad_id: Option<i64>,
    pub fim_rep_id: Option<i64>,
    pub fim_sep_id: Option<i64>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
}

pub(crate) fn int_key(file: &GgufFile, key: &'static str) -> Result<Option<i64>, TokenizerError> {
    let Some(v) = file.get(key) else {
        return Ok(None);
    };
    let n = match *v {
        Value::U8(x) => x as i64,
        Value::I8(x) => x as i64,
        Value::U16(x) => x as i64,
        Value::I16(x) => x as i64,
        Value::U32(x) => x as i64,
        Value::I32(x) => x as i64,
        Value::U64(x) => i64::try_from(x).unwrap_or(i64::MAX),
        Value::I64(x) => x,
        _ => {
            return Err(TokenizerError::BadValue {
                key,
                reason: "expected an integer token id".into(),
            });
        }
    };
    Ok(Some(n))
}

impl Vocab {
    /// Reads every `tokenizer.ggml.*` key the tokenizer uses. Only the presence and types of
    /// keys are checked here; consistency is checked by [`crate::Tokenizer::from_vocab`].
    pub fn from_gguf(file: &GgufFile) -> Result<Vocab, TokenizerError> {
        let model = file
            .get_str("tokenizer.ggml.model")?
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.model"))?
            .to_string();
        let pre = file.get_str("tokenizer.ggml.pre")?.map(str::to_string);
        let tokens: Vec<String> = file
            .get_str_array("tokenizer.ggml.tokens")?
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.tokens"))?
            .into_iter()
            .map(str::to_string)
            .collect();
        let scores = match file.get_f32_array("tokenizer.ggml.scores") {
            Ok(s) => s,
            // llama.cpp also accepts integer scores.
            Err(GgufError::WrongType { .. }) => file
                .get_i32_array("tokenizer.ggml.scores")?
                .map(|v| v.into_iter().map(|x| x as f32).collect()),
            Err(e) => return Err(e.into()),
        };
        let token_types = file.get_i32_array("tokenizer.ggml.token_type")?;
        let merges = file
            .get_str_array("tokenizer.ggml.merges")?
            .map(|v| v.into_iter().map(str::to_string).collect());
        Ok(Vocab {
            model,
            pre,
            tokens,
            scores,
            token_types,
            merges,
            bos_id: int_key(file, "tokenizer.ggml.bos_token_id")?,
            eos_id: int_key(file, "tokenizer.ggml.eos_token_id")?,
            eot_id: int_key(file, "tokenizer.ggml.eot_token_id")?,
            eom_id: int_key(file, "tokenizer.ggml.eom_token_id")?,
            unk_id: int_key(file, "tokenizer.ggml.unknown_token_id")?,
            pad_id: int_key(file, "tokenizer.ggml.padding_token_id")?,
            sep_id: int_key(file, "tokenizer.ggml.seperator_token_id")?,
            fim_pad_id: int_key(file, "tokenizer.ggml.fim_pad_token_id")?,
            fim_rep_id: int_key(file, "tokenizer.ggml.fim_rep_token_id")?,
            fim_sep_id: int_key(file, "tokenizer.ggml.fim_sep_token_id")?,
            add_bos: file.get_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: file.get_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: file.get_bool("tokenizer.ggml.add_space_prefix")?,
        })
    }
}
