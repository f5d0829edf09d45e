//! Which tool-call syntax a model writes, decided from its chat template.

/// A tool-call syntax (see the crate docs for each one's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Qwen2.5, Qwen3, Hermes 2/3: `<tool_call>\n{"name": .., "arguments": ..}\n</tool_call>`.
    Hermes,
    /// EXAONE 4: `<tool_call>{"name": .., "arguments": ..}</tool_call>`.
    Exaone4,
    /// Llama 3.x: the whole reply is `{"name": .., "parameters": ..}`, or
    /// `<|python_tag|>` followed by such an object, `tool.call(k="v")` or code.
    Llama3,
    /// DeepSeek V3 / V3.1: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>name<｜tool▁sep｜>{..}<｜tool▁call▁end｜>…`.
    DeepSeekV3,
    /// DeepSeek R1 (and its distills): `<｜tool▁call▁begin｜>function<｜tool▁sep｜>name\n```json\n{..}\n```<｜tool▁call▁end｜>`.
    DeepSeekR1,
    /// Mistral: `[TOOL_CALLS][{"name": .., "arguments": ..}, …]` (or `[TOOL_CALLS]name[ARGS]{..}`).
    Mistral,
    /// Templates without a tool syntax: the reply is `{"tool_calls": [{"name": .., "arguments": ..}]}`.
    Generic,
}

/// How call ids are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdStyle {
    /// `call_` + 24 alphanumerics (OpenAI's shape).
    OpenAi,
    /// Exactly 9 alphanumerics (Mistral's templates refuse anything else).
    Nine,
}

pub(crate) const TOOL_CALL_OPEN: &str = "<tool_call>";
pub(crate) const TOOL_CALL_CLOSE: &str = "</tool_call>";
pub(crate) const PYTHON_TAG: &str = "<|python_tag|>";
pub(crate) const DS_CALLS_BEGIN: &str = "<｜tool▁calls▁begin｜>";
pub(crate) const DS_CALLS_END: &str = "<｜tool▁calls▁end｜>";
pub(crate) const DS_CALL_BEGIN: &str = "<｜tool▁call▁begin｜>";
pub(crate) const DS_CALL_END: &str = "<｜tool▁call▁end｜>";
pub(crate) const DS_SEP: &str = "<｜tool▁sep｜>";
pub(crate) const MISTRAL_CALLS: &str = "[TOOL_CALLS]";
pub(crate) const MISTRAL_ARGS: &str = "[ARGS]";
pub(crate) const MISTRAL_CALL_ID: &str = "[CALL_ID]";

impl Family {
    /// The family of a chat template (`ChatTemplate::source()`), with the model's
    /// `general.architecture` as a tie-breaker. Templates that spell no tool syntax get
    /// [`Family::Generic`]; so do the XML-parameter templates (Qwen3-Coder, Nemotron),
    /// whose syntax this crate does not parse yet.
    pub fn detect(template_source: &str, architecture: &str) -> Family {
        let s = template_source;
        if s.contains(MISTRAL_CALLS) {
            return Family::Mistral;
        }
        if s.contains("tool▁call▁begin") {
            // R1's template fences the arguments in a JSON code block.
            return if s.contains("```json") { Family::DeepSeekR1 } else { Family::DeepSeekV3 };
        }
        if s.contains(TOOL_CALL_OPEN) && !s.contains("<function=") {
            let exaone = s.contains("[|assistant|]") || architecture.starts_with("exaone");
            return if exaone { Family::Exaone4 } else { Family::Hermes };
        }
        if s.contains("<|start_header_id|>") && (s.contains(PYTHON_TAG) || s.contains("\"parameters\"")) {
            return Family::Llama3;
        }
        Family::Generic
    }

    /// The family's name (for logs and errors).
    pub fn name(self) -> &'static str {
        match self {
            Family::Hermes => "hermes",
            Family::Exaone4 => "exaone4",
            Family::Llama3 => "llama3",
            Family::DeepSeekV3 => "deepseek_v3",
            Family::DeepSeekR1 => "deepseek_r1",
            Family::Mistral => "mistral",
            Family::Generic => "generic",
        }
    }

    pub fn id_style(self) -> IdStyle {
        match self {
            Family::Mistral => IdStyle::Nine,
            _ => IdStyle::OpenAi,
        }
    }

    /// Texts that open a call section anywhere in the reply.
    pub(crate) fn triggers(self) -> &'static [&'static str] {
        match self {
            Family::Hermes | Family::Exaone4 => &[TOOL_CALL_OPEN],
            Family::Llama3 => &[PYTHON_TAG],
            Family::DeepSeekV3 | Family::DeepSeekR1 => &[DS_CALLS_BEGIN, DS_CALL_BEGIN],
            Family::Mistral => &[MISTRAL_CALLS],
            Family::Generic => &[],
        }
    }

    /// Whether a reply that *is* a JSON call object (nothing before it but whitespace)
    /// counts as a call: Llama 3.x's plain form, the generic form, and the Hermes families,
    /// whose small models (Qwen2.5-Coder above all) often drop the `<tool_call>` tags and
    /// answer `{"name": .., "arguments": ..}` bare, as llama.cpp's Hermes parser also
    /// accepts. Only an object naming an offered tool counts.
    pub(crate) fn anchored_json(self) -> bool {
        matches!(self, Family::Llama3 | Family::Generic | Family::Hermes | Family::Exaone4)
    }

    /// Texts of the family's markers that a tokenizer may hold as single special tokens
    /// (the decoder must render them for the parser to see them).
    pub fn marker_texts(self) -> &'static [&'static str] {
        match self {
            Family::Hermes | Family::Exaone4 => &[TOOL_CALL_OPEN, TOOL_CALL_CLOSE],
            Family::Llama3 => &[PYTHON_TAG],
            Family::DeepSeekV3 | Family::DeepSeekR1 => &[DS_CALLS_BEGIN, DS_CALLS_END, DS_CALL_BEGIN, DS_CALL_END, DS_SEP],
            Family::Mistral => &[MISTRAL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID],
            Family::Generic => &[],
        }
    }

    /// The text a grammar-forced call starts with (the `auto` trigger), if the family has one.
    pub fn opening(self) -> Option<&'static str> {
        match self {
            Family::Hermes | Family::Exaone4 => Some(TOOL_CALL_OPEN),
            Family::DeepSeekV3 | Family::DeepSeekR1 => Some(DS_CALLS_BEGIN),
            Family::Mistral => Some(MISTRAL_CALLS),
            Family::Llama3 | Family::Generic => None,
        }
    }
}

/// A reproducible id for call `index` of a reply whose ids derive from `seed`.
pub(crate) fn call_id(style: IdStyle, seed: u64, index: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (prefix, n) = match style {
        IdStyle::OpenAi => ("call_", 24),
        IdStyle::Nine => ("", 9),
    };
    let mut id = String::with_capacity(prefix.len() + n);
    id.push_str(prefix);
    for _ in 0..n {
        id.push(ALNUM[(next() % ALNUM.len() as u64) as usize] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/../../tests/fixtures/chat_templates/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn each_real_template_maps_to_its_family() {
        for (file, arch, family) in [
            ("Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", Family::Hermes),
            ("Qwen-Qwen3-0.6B.jinja", "qwen3", Family::Hermes),
            ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "llama", Family::Hermes),
            ("LGAI-EXAONE-4.0.jinja", "exaone4", Family::Exaone4),
            ("LGAI-EXAONE-3.5.jinja", "exaone", Family::Generic),
            ("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama", Family::Llama3),
            ("meta-llama-Llama-3.2-3B-Instruct.jinja", "llama", Family::Llama3),
            ("deepseek-ai-DeepSeek-V3.1.jinja", "deepseek2", Family::DeepSeekV3),
            ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "qwen2", Family::DeepSeekR1),
            ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "llama", Family::Mistral),
            ("Qwen3-Coder.jinja", "qwen3moe", Family::Generic),
        ] {
            assert_eq!(Family::detect(&fixture(file), arch), family, "{file}");
        }
    }

    #[test]
    fn ids_are_reproducible_and_shaped_per_style() {
        let a = call_id(IdStyle::OpenAi, 7, 0);
        assert_eq!(a, call_id(IdStyle::OpenAi, 7, 0));
        assert_ne!(a, call_id(IdStyle::OpenAi, 7, 1));
        assert!(a.starts_with("call_") && a.len() == 29 && a[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        let m = call_id(IdStyle::Nine, 7, 0);
        assert!(m.len() == 9 && m.chars().all(|c| c.is_ascii_alphanumeric()), "{m}");
    }
}
