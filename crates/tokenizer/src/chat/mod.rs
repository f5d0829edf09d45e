//! Chat templates: a model's `tokenizer.chat_template` rendered the way Hugging Face
//! transformers renders it, inside a sandbox.
//!
//! # What "the way Hugging Face renders it" means here
//!
//! transformers compiles the template in a sandboxed Jinja2 environment with
//! `trim_blocks=True`, `lstrip_blocks=True` and the loop-controls extension, adds the
//! globals `raise_exception(msg)` and `strftime_now(fmt)`, replaces the `tojson` filter by
//! `json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)` (no HTML
//! escaping, non-ASCII kept as is, Python's default separators `", "` / `": "`), and renders
//! with `messages`, `tools` (default `None`), `documents` (default `None`),
//! `add_generation_prompt`, the special-token strings (`bos_token`, `eos_token`) and any
//! extra keyword arguments (`enable_thinking`, …). This module reproduces that with
//! minijinja:
//! - the same whitespace options and loop controls;
//! - Python string/dict/list methods through `minijinja_contrib::pycompat`, plus a few it
//!   lacks (`rsplit`, `partition`, `rpartition`, `removeprefix`, `removesuffix`, `center`,
//!   `ljust`, `rjust`, `list.index`, `copy`);
//! - a Python-compatible `tojson` (key order kept, `ensure_ascii`, `indent`,
//!   `separators`, `sort_keys` honoured, floats printed as Python's `repr`);
//! - a formatter that prints values as Python's `str()` would (`None`, `True`, `False`,
//!   `['a', 1]`, `{'k': 'v'}`), so `{{ x }}` of a non-string matches Jinja2;
//! - `x is iterable` is false for `None` and true for undefined, as in Jinja2 (minijinja's
//!   own test calls `None` iterable, which broke `tools is iterable and tools | length`);
//! - tool calls reach the template as transformers hands them (see `messages`);
//! - `length` of an undefined value is 0, as in Jinja2; non-finite floats print as
//!   Python does (`inf`, and `Infinity` inside `tojson`);
//! - transformers' `{% generation %}…{% endgeneration %}` tags render their body unchanged;
//! - `strftime_now` from the system clock in UTC (no time-zone database; a server's
//!   local time is usually UTC anyway), supporting the common `strftime` directives.
//!
//! # Sandbox
//!
//! A template comes from a downloaded file, so it is untrusted code. minijinja never
//! exposes host objects; in addition every render runs with a fuel budget
//! ([`DEFAULT_FUEL`](crate::chat::DEFAULT_FUEL) instructions), a recursion limit ([`RECURSION_LIMIT`](crate::chat::RECURSION_LIMIT)) and an output
//! cap ([`MAX_OUTPUT_BYTES`](crate::chat::MAX_OUTPUT_BYTES)). `range()` is capped by minijinja at 100 000 items and
//! `str * n` at 100 MB. Known gap: a loop that repeatedly doubles a string
//! (`s = s ~ s`) can allocate a lot of memory before the fuel runs out, because minijinja
//! has no hook on string concatenation; the output cap stops it from being returned.
//!
//! # Differences from Jinja2 that matter in practice
//!
//! transformers uses Jinja2's *immutable* sandbox, where `list.append` raises a security
//! error; minijinja values are immutable too, so `append` is an error here as well (with a
//! message naming the method). Messages are validated and their `content` normalised
//! before rendering: a string, `null`, or an array of `{"type": "text", "text": …}` parts,
//! which are joined with `"\n"` into one string as OpenAI-compatible servers do.
//!
//! # Fallbacks and BOS
//!
//! [`builtin`](crate::chat::builtin) holds templates for GGUF files without `tokenizer.chat_template`;
//! [`fallback_for_arch`](crate::chat::fallback_for_arch) picks one by architecture and [`ChatTemplate::from_gguf`](crate::chat::ChatTemplate::from_gguf) does the
//! whole choice for a model file. Like the official templates, a rendered prompt may start
//! with the BOS text (`gemma`, Llama 3, DeepSeek emit `{{ bos_token }}`): transformers then
//! tokenizes it without adding special tokens, and llama.cpp strips that leading BOS text
//! when its tokenizer adds BOS itself — the caller must do one of the two, not add a second
//! BOS.
//!
//! # Layout
//!
//! - `template`: [`ChatTemplate`](crate::chat::ChatTemplate) (compile, render, choice for
//!   a model file), [`TemplateOrigin`](crate::chat::TemplateOrigin),
//!   [`ChatTemplateError`](crate::chat::ChatTemplateError);
//! - `fallback`: the built-in templates ([`builtin`](crate::chat::builtin),
//!   [`fallback_for_arch`](crate::chat::fallback_for_arch));
//! - `sandbox`: the environment, its limits and error mapping;
//! - `messages`: validation and flattening of the messages;
//! - `pymethods`: Python methods minijinja lacks;
//! - `pyformat`: Python-style printing of values and numbers;
//! - `tojson`: the Python-compatible `tojson` filter;
//! - `strftime`: `strftime_now` and [`strftime_utc`](crate::chat::strftime_utc).

mod fallback;
mod messages;
mod pyformat;
mod pymethods;
mod sandbox;
mod strftime;
mod template;
mod tojson;

pub use fallback::{builtin, fallback_for_arch};
pub use sandbox::{DEFAULT_FUEL, MAX_OUTPUT_BYTES, RECURSION_LIMIT};
pub use strftime::strftime_utc;
pub use template::{ChatTemplate, ChatTemplateError, TemplateOrigin};
