//! Tool calling: which syntax a model writes its calls in, a streaming parser per syntax,
//! the tools a request offers, and the grammar that makes a forced call always parse.
//!
//! The crate knows text, not tokens or HTTP: the server feeds it the assistant's content
//! (after the reasoning split) and gets back content and OpenAI-shaped call deltas; the
//! engine compiles the Lark text of [`grammar`] with llguidance.
//!
//! Design choices:
//! - **A family per syntax, picked from the template.** [`Family::detect`] reads the chat
//!   template's source (the text the model was trained to answer in is spelled there) and
//!   the architecture: Hermes/Qwen `<tool_call>{json}</tool_call>`, EXAONE 4 (the same tags
//!   without newlines), Llama 3.x bare JSON with `"parameters"` and `<|python_tag|>`,
//!   DeepSeek's tool-call tokens (V3.1 `name<｜tool▁sep｜>{args}` and R1's
//!   `function<｜tool▁sep｜>name` + a fenced JSON block), Mistral `[TOOL_CALLS][...]`, and a
//!   generic JSON object (`{"tool_calls": [...]}`) for templates with no tool syntax
//!   (EXAONE 3.5, plain ChatML), which [`prompt::generic_system_text`] explains to the model.
//! - **One streaming parser, chunk-invariant.** [`StreamParser`] decides only on the text
//!   received so far, never on where chunks were cut: text that may still become part of
//!   a call (a trigger's prefix, an unfinished call) is held back until it is decided. So
//!   the non-streamed parse ([`parse`], the same parser fed once) assembles to exactly the
//!   streamed deltas; the tests feed every real template output cut at every byte.
//! - **OpenAI's delta order.** A call's first delta carries its index, id and name (sent as
//!   soon as the name is complete), later ones pieces of `arguments` (the raw JSON text
//!   as generated, so the pieces concatenate to the final string). Arguments that arrive
//!   as a JSON string (Mistral Nemo) are decoded and sent whole.
//! - **Ids** are `call_` + 24 alphanumerics, except Mistral's templates, which refuse any
//!   id that is not exactly 9 alphanumerics: those get 9. They derive from a seed the
//!   caller draws, so tests are reproducible.

#![forbid(unsafe_code)]

mod family;
pub mod grammar;
mod json_scan;
mod parser;
pub mod prompt;
mod python_call;
mod sections;
mod tools;

pub use family::{Family, IdStyle};
pub use parser::{parse, Parsed, StreamParser, ToolCall, ToolCallDelta, ToolEvent};
pub use tools::{parse_tool_choice, parse_tools, Tool, ToolChoice, ToolError};
