//! The wire schema: every JSON body the server writes, as typed [`Serialize`] structs, so
//! the OpenAI shapes are written down in one place.
//!
//! Field order is declaration order and is part of the schema (clients and tests read the
//! bodies as text too). `Option` fields are written as `null` unless they carry
//! `skip_serializing_if`, which marks the fields that are absent rather than `null` when
//! unset (`reasoning_content`, a delta's `role` / `content`, a stream chunk's `usage`).
//!
//! Log-probabilities are `f32` in the engine and are written widened to `f64`, exactly as
//! the `serde_json::Value` bodies that preceded these structs wrote them.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// `system_fingerprint` of every generation reply.
pub const FINGERPRINT: &str = concat!("jikji-", env!("CARGO_PKG_VERSION"));

// ---------------------------------------------------------------------------------------
// Generation replies

/// The envelope every generation reply shares; `C` is the kind of choice it carries.
#[derive(Clone, Debug, Serialize)]
pub struct Envelope<'a, C> {
    pub id: &'a str,
    /// `chat.completion`, `chat.completion.chunk` or `text_completion`.
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    pub choices: Vec<C>,
    #[serde(skip_serializing_if = "UsageField::is_absent")]
    pub usage: UsageField,
}

/// `chat.completion`: the whole reply of a non-streamed chat request.
pub type ChatCompletion<'a> = Envelope<'a, ChatChoice<'a>>;

/// `chat.completion.chunk`: one SSE event of a streamed chat request.
pub type ChatCompletionChunk<'a> = Envelope<'a, ChatChunkChoice<'a>>;

/// `text_completion`: the whole reply of a legacy completion, and each of its SSE chunks
/// (OpenAI uses the same object and choice shape for both).
pub type TextCompletion<'a> = Envelope<'a, TextChoice<'a>>;

/// The `usage` member of a generation reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageField {
    /// Not written: stream chunks when the client did not ask for `include_usage`.
    Absent,
    /// `"usage": null`: the stream chunks before the last when it did.
    Null,
    /// The totals: the non-streamed reply and the stream's last chunk.
    Totals(CompletionUsage),
}

impl UsageField {
    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl Serialize for UsageField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Absent | Self::Null => s.serialize_none(),
            Self::Totals(u) => u.serialize(s),
        }
    }
}

/// `usage`: prompts counted once each, completions summed over the choices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompletionUsage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

impl CompletionUsage {
    pub fn new(prompt_tokens: usize, completion_tokens: usize, cached_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptTokensDetails { cached_tokens },
        }
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose KV came from the prefix cache.
    pub cached_tokens: usize,
}

/// One choice of a `chat.completion`.
#[derive(Clone, Debug, Serialize)]
pub struct ChatChoice<'a> {
    pub index: usize,
    pub message: ChatMessage<'a>,
    /// `null` unless the request asked for `logprobs`.
    pub logprobs: Option<ChatLogprobs<'a>>,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: Option<&'static str>,
}

/// The assistant message of a [`ChatChoice`].
#[derive(Clone, Debug, Serialize)]
pub struct ChatMessage<'a> {
    /// Always `assistant`.
    pub role: &'static str,
    /// `null` when the reply is only tool calls.
    pub content: Option<&'a str>,
    /// The `<think>` text, when the reasoning split found any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// The calls, when the request offered tools and the model called some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// One entry of `message.tool_calls`.
#[derive(Clone, Debug, Serialize)]
pub struct ToolCall<'a> {
    pub id: &'a str,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall<'a>,
}

/// The `function` of a [`ToolCall`]: `arguments` is JSON text, as OpenAI sends it.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionCall<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

/// One entry of a chunk's `delta.tool_calls`: the first of a call carries `id`, `type`
/// and `function.name`, later ones only `function.arguments` pieces.
#[derive(Clone, Debug, Serialize)]
pub struct ToolCallChunk<'a> {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionChunk<'a>,
}

/// The `function` of a [`ToolCallChunk`].
#[derive(Clone, Debug, Serialize)]
pub struct FunctionChunk<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// One choice of a `chat.completion.chunk`.
#[derive(Clone, Debug, Serialize)]
pub struct ChatChunkChoice<'a> {
    pub index: usize,
    pub delta: ChatDelta<'a>,
    pub logprobs: Option<ChatLogprobs<'a>>,
    /// `null` on every chunk but the choice's last.
    pub finish_reason: Option<&'static str>,
}

/// The `delta` of a chat chunk: only the members that changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChatDelta<'a> {
    /// `assistant` in a choice's first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallChunk<'a>>>,
}

/// `logprobs` of a chat choice or chunk.
#[derive(Clone, Debug, Serialize)]
pub struct ChatLogprobs<'a> {
    pub content: Vec<ChatLogprob<'a>>,
}

/// One generated token's entry in [`ChatLogprobs`].
#[derive(Clone, Debug, Serialize)]
pub struct ChatLogprob<'a> {
    pub token: &'a str,
    pub logprob: f64,
    pub bytes: &'a [u8],
    /// The most likely alternatives, most likely first.
    pub top_logprobs: Vec<TopLogprob<'a>>,
}

/// One alternative in [`ChatLogprob::top_logprobs`].
#[derive(Clone, Debug, Serialize)]
pub struct TopLogprob<'a> {
    pub token: &'a str,
    pub logprob: f64,
    pub bytes: &'a [u8],
}

/// One choice of a `text_completion` (whole reply or chunk).
#[derive(Clone, Debug, Serialize)]
pub struct TextChoice<'a> {
    pub index: usize,
    pub text: &'a str,
    pub logprobs: Option<LegacyLogprobs<'a>>,
    pub finish_reason: Option<&'static str>,
}

/// `logprobs` of a legacy completion: parallel arrays over the generated tokens.
#[derive(Clone, Debug, Serialize)]
pub struct LegacyLogprobs<'a> {
    pub tokens: Vec<&'a str>,
    pub token_logprobs: Vec<f64>,
    /// Per token, `{alternative text: logprob}`. A JSON object keyed by text, so two
    /// alternatives with the same text make one member (`serde_json::Map` semantics).
    pub top_logprobs: Vec<Map<String, Value>>,
    /// Byte offset of each token in the choice's text.
    pub text_offset: &'a [usize],
}

// ---------------------------------------------------------------------------------------
// Other routes

/// `GET /v1/models`.
#[derive(Clone, Debug, Serialize)]
pub struct ModelList<'a> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject<'a>>,
}

/// `GET /v1/models/{model}` and each entry of [`ModelList`].
#[derive(Clone, Debug, Serialize)]
pub struct ModelObject<'a> {
    pub id: &'a str,
    /// Always `model`.
    pub object: &'static str,
    /// Unix time the server started.
    pub created: u64,
    /// Always `jikji`.
    pub owned_by: &'static str,
}

impl<'a> ModelObject<'a> {
    pub fn new(id: &'a str, created: u64) -> Self {
        Self { id, object: "model", created, owned_by: "jikji" }
    }
}

/// `GET /health`: `ok` or `shutting_down`.
#[derive(Clone, Debug, Serialize)]
pub struct HealthStatus {
    pub status: &'static str,
}

/// `POST /tokenize`.
#[derive(Clone, Debug, Serialize)]
pub struct TokenizeResponse {
    pub tokens: TokenList,
}

/// The `tokens` of a [`TokenizeResponse`]: bare ids, or ids with their pieces.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum TokenList {
    Ids(Vec<u32>),
    WithPieces(Vec<TokenPiece>),
}

/// One token of `/tokenize` with `with_pieces`.
#[derive(Clone, Debug, Serialize)]
pub struct TokenPiece {
    pub id: u32,
    pub piece: Piece,
}

/// A token's text when it is valid UTF-8 on its own, otherwise its bytes (llama.cpp's
/// shape).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Piece {
    Text(String),
    Bytes(Vec<u8>),
}

/// `POST /detokenize`.
#[derive(Clone, Debug, Serialize)]
pub struct DetokenizeResponse {
    pub content: String,
}

// ---------------------------------------------------------------------------------------
// Errors

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorObject<'a>,
}

/// The `error` member of an [`ErrorBody`]; `param` and `code` are `null` when unset.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// A body as compact JSON text (what `axum::Json` and the SSE framing write). The types
/// above always serialize (string keys, no failing `Serialize` impls); the fallback is
/// there so no path can panic.
pub fn to_json_string<T: Serialize + ?Sized>(body: &T) -> String {
    serde_json::to_string(body).unwrap_or_else(|e| {
        format!(
            r#"{{"error":{{"message":"the response could not be serialized: {}","type":"server_error","param":null,"code":"internal_error"}}}}"#,
            e.to_string().replace(['"', '\\'], "'")
        )
    })
}
