//! Chat prompts: render a conversation with the model's template and tokenize it.
//!
//! Design choices:
//! - Loading is the tokenizer crate's [`ChatTemplate::from_gguf`] (one place decides): the
//!   file's `tokenizer.chat_template`, or a built-in when the file has none (Gemma's turn
//!   format for `gemma*`, ChatML otherwise) or names one (`chatml`). [`ChatFormatter::source`]
//!   says which was used.
//! - The rendered text is tokenized as llama.cpp tokenizes chat prompts: special tokens
//!   parsed and BOS added as the metadata asks, except that a BOS is not added a second
//!   time when the template already wrote the BOS string at the start (templates such as
//!   Gemma's begin with `{{ bos_token }}`).

use jikji_gguf::GgufFile;
use jikji_tokenizer::chat::{ChatTemplate, TemplateOrigin};
use jikji_tokenizer::Tokenizer;
use serde_json::Value;

use crate::EngineError;

/// Where a formatter's template came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateSource {
    /// `tokenizer.chat_template` of the file (or a source given to [`ChatFormatter::new`]).
    File,
    /// A built-in template, by name: the file has no template, or names a built-in one.
    Builtin { name: &'static str },
}

/// A compiled chat template bound to a model's BOS/EOS strings.
#[derive(Debug)]
pub struct ChatFormatter {
    template: ChatTemplate,
    source: TemplateSource,
}

impl ChatFormatter {
    /// The file's template, or the built-in one it names or falls back to.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, EngineError> {
        let template = ChatTemplate::from_gguf(file)?;
        let source = match template.origin() {
            TemplateOrigin::Builtin(name) => TemplateSource::Builtin { name },
            TemplateOrigin::Gguf | TemplateOrigin::Provided => TemplateSource::File,
        };
        Ok(Self { template, source })
    }

    /// A formatter over an explicit template source.
    pub fn new(template_src: &str, tokenizer: &Tokenizer) -> Result<Self, EngineError> {
        let bos = tokenizer.bos_text().unwrap_or("");
        let eos = tokenizer.eos_text().unwrap_or("");
        Ok(Self { template: ChatTemplate::new(template_src, bos, eos)?, source: TemplateSource::File })
    }

    pub fn source(&self) -> &TemplateSource {
        &self.source
    }

    /// Renders an OpenAI-style messages array.
    pub fn render(&self, messages: &Value, add_generation_prompt: bool) -> Result<String, EngineError> {
        Ok(self.template.render(messages, add_generation_prompt, None)?)
    }

    /// Renders with further template variables (`tools`, `enable_thinking`, …).
    pub fn render_with(
        &self,
        messages: &Value,
        add_generation_prompt: bool,
        extra: Option<&serde_json::Map<String, Value>>,
    ) -> Result<String, EngineError> {
        Ok(self.template.render(messages, add_generation_prompt, extra)?)
    }

    /// The template's source text.
    pub fn template_source(&self) -> &str {
        self.template.source()
    }
}

/// `{"role": role, "content": content}`
pub fn message(role: &str, content: &str) -> Value {
    serde_json::json!({ "role": role, "content": content })
}

/// Tokenizes a rendered chat prompt: special tokens parsed, BOS/EOS per metadata, but no
/// second BOS when the rendered text already starts with the BOS string.
pub fn tokenize_chat_prompt(tokenizer: &Tokenizer, rendered: &str) -> Result<Vec<u32>, EngineError> {
    let mut ids = tokenizer.encode(rendered, true, true)?;
    let starts_with_bos_text = tokenizer.bos_text().is_some_and(|b| !b.is_empty() && rendered.starts_with(b));
    if let (true, Some(bos)) = (tokenizer.add_bos() && starts_with_bos_text, tokenizer.bos_id()) {
        if ids.len() >= 2 && ids[0] == bos && ids[1] == bos {
            ids.remove(0);
        }
    }
    Ok(ids)
}
