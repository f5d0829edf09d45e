//! Splits a model's streamed text into reasoning ("thinking") and answer, for reasoning
//! models that wrap their thoughts in tags (DeepSeek-R1 and its distills, QwQ, Qwen3,
//! EXAONE Deep: `<think>` … `</think>`).
//!
//! Design choices:
//! - Streaming: [`ReasoningSplitter::push`] takes each decoded piece as it arrives and
//!   returns the [`Part`]s that are certain so far, in order. Text that could be the start
//!   of a tag (`"</th"` at the end of a piece) is held back until the next piece decides,
//!   so a tag cut across tokens is still recognised and never leaks into either stream;
//!   [`ReasoningSplitter::finish`] flushes what is held at the end of generation.
//! - Input pieces are `&str` (the tokenizer's incremental decoder already never splits a
//!   character), and the held-back suffix always starts on a character boundary, so no
//!   output part ever holds a partial UTF-8 character.
//! - Starting inside a thought: DeepSeek-R1 distill templates end the generation prompt
//!   with `<think>\n`, so the model's first tokens are already reasoning and no opening tag
//!   is ever generated. [`ReasoningSplitter::for_prompt`] looks at the rendered prompt and
//!   starts in the thought when it ends with the opening tag (ignoring whitespace).
//! - Whitespace right after an opening or closing tag is dropped (the `"\n\n"` between
//!   `</think>` and the answer is layout, not content), as is whitespace right before a
//!   closing tag; whitespace elsewhere is kept as generated.
//! - Tags toggle the state wherever they appear: an opening tag inside a thought or a
//!   closing tag outside one is kept as ordinary text of the current part, so a model that
//!   merely talks about the tags does not lose text.

/// One piece of the split stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Text inside `<think>` … `</think>`.
    Reasoning(String),
    /// The answer: everything outside the tags.
    Content(String),
}

impl Part {
    pub fn text(&self) -> &str {
        match self {
            Part::Reasoning(s) | Part::Content(s) => s,
        }
    }

    pub fn is_reasoning(&self) -> bool {
        matches!(self, Part::Reasoning(_))
    }
}

/// The default tags.
pub const THINK_OPEN: &str = "<think>";
pub const THINK_CLOSE: &str = "</think>";

/// Streaming splitter of reasoning and content; see the module docs.
#[derive(Clone, Debug)]
pub struct ReasoningSplitter {
    open: String,
    close: String,
    in_thought: bool,
    /// Text not yet emitted: a possible tag prefix at the end, or whitespace that is
    /// dropped if a tag (closing) follows it.
    held: String,
    /// Drop leading whitespace of the next text (just after a tag).
    skip_ws: bool,
}

impl Default for ReasoningSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl ReasoningSplitter {
    /// A splitter for `<think>` / `</think>`, starting outside a thought.
    pub fn new() -> Self {
        Self::with_tags(THINK_OPEN, THINK_CLOSE)
    }

    /// A splitter for other tags (both must be non-empty; empty tags fall back to the
    /// defaults).
    pub fn with_tags(open: &str, close: &str) -> Self {
        let (open, close) = if open.is_empty() || close.is_empty() { (THINK_OPEN, THINK_CLOSE) } else { (open, close) };
        ReasoningSplitter { open: open.to_string(), close: close.to_string(), in_thought: false, held: String::new(), skip_ws: false }
    }

    /// A `<think>` splitter that starts inside a thought when the rendered prompt ends with
    /// the opening tag (whitespace after it ignored), as DeepSeek-R1 distill templates do.
    pub fn for_prompt(rendered_prompt: &str) -> Self {
        let mut s = Self::new();
        if rendered_prompt.trim_end().ends_with(THINK_OPEN) {
            s.in_thought = true;
            s.skip_ws = true;
        }
        s
    }

    /// Whether the text seen so far ends inside a thought.
    pub fn in_thought(&self) -> bool {
        self.in_thought
    }

    /// Feeds the next decoded piece; returns the parts now certain, in stream order.
    pub fn push(&mut self, piece: &str) -> Vec<Part> {
        let mut out = Vec::new();
        self.held.push_str(piece);
        loop {
            let tag = if self.in_thought { self.close.as_str() } else { self.open.as_str() };
            if self.skip_ws {
                let trimmed = self.held.trim_start();
                if trimmed.is_empty() {
                    self.held.clear();
                    return out;
                }
                self.held = trimmed.to_string();
                self.skip_ws = false;
            }
            if let Some(at) = self.held.find(tag) {
                let before = self.held[..at].to_string();
                let after = self.held[at + tag.len()..].to_string();
                // Whitespace before a closing tag is layout.
                let before = if self.in_thought { before.trim_end() } else { before.as_str() };
                self.emit(&mut out, before);
                self.in_thought = !self.in_thought;
                self.skip_ws = true;
                self.held = after;
                continue;
            }
            // Hold back the longest suffix that may begin the tag (on a char boundary).
            let keep_from = partial_tag_start(&self.held, tag);
            // Inside a thought, trailing whitespace may precede the closing tag: hold it too.
            let keep_from = if self.in_thought {
                let trimmed_len = self.held[..keep_from].trim_end().len();
                trimmed_len.min(keep_from)
            } else {
                keep_from
            };
            let ready = self.held[..keep_from].to_string();
            self.held.replace_range(..keep_from, "");
            self.emit(&mut out, &ready);
            return out;
        }
    }

    /// Flushes held-back text at the end of the stream (a tag prefix that never completed
    /// is ordinary text).
    pub fn finish(&mut self) -> Vec<Part> {
        let mut out = Vec::new();
        let held = std::mem::take(&mut self.held);
        let held = if self.skip_ws { held.trim_start().to_string() } else { held };
        let held = if self.in_thought { held.trim_end().to_string() } else { held };
        self.emit(&mut out, &held);
        out
    }

    fn emit(&self, out: &mut Vec<Part>, text: &str) {
        if text.is_empty() {
            return;
        }
        match (out.last_mut(), self.in_thought) {
            (Some(Part::Reasoning(s)), true) | (Some(Part::Content(s)), false) => s.push_str(text),
            (_, true) => out.push(Part::Reasoning(text.to_string())),
            (_, false) => out.push(Part::Content(text.to_string())),
        }
    }
}

/// Byte index where the longest suffix of `s` that is a proper prefix of `tag` starts
/// (`s.len()` if none); always a character boundary.
fn partial_tag_start(s: &str, tag: &str) -> usize {
    let max = tag.len().saturating_sub(1).min(s.len());
    for len in (1..=max).rev() {
        let start = s.len() - len;
        if s.is_char_boundary(start) && tag.starts_with(&s[start..]) {
            return start;
        }
    }
    s.len()
}

/// Splits a whole text at once (the non-streaming case).
pub fn split_all(splitter: &mut ReasoningSplitter, text: &str) -> (String, String) {
    let mut reasoning = String::new();
    let mut content = String::new();
    let mut parts = splitter.push(text);
    parts.extend(splitter.finish());
    for p in parts {
        match p {
            Part::Reasoning(s) => reasoning.push_str(&s),
            Part::Content(s) => content.push_str(&s),
        }
    }
    (reasoning, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one by one and joins the parts of each kind, also checking that
    /// parts arrive in order (no reasoning after content unless a new thought opened).
    fn feed(mut s: ReasoningSplitter, pieces: &[&str]) -> (String, String, Vec<Part>) {
        let mut all = Vec::new();
        for p in pieces {
            all.extend(s.push(p));
        }
        all.extend(s.finish());
        let r: String = all.iter().filter(|p| p.is_reasoning()).map(|p| p.text()).collect();
        let c: String = all.iter().filter(|p| !p.is_reasoning()).map(|p| p.text()).collect();
        (r, c, all)
    }

    #[test]
    fn thought_and_answer_are_separated_and_layout_whitespace_dropped() {
        let (r, c, _) = feed(ReasoningSplitter::new(), &["<think>\nLet me think.\n</think>\n\nThe answer is 4."]);
        assert_eq!(r, "Let me think.");
        assert_eq!(c, "The answer is 4.");
    }

    #[test]
    fn tags_cut_across_tokens_are_recognised_and_never_leak() {
        let text = "<think>\nplan A\n</think>\n\nanswer";
        // Every way of cutting the text into two pieces, and one character at a time.
        for cut in 0..=text.len() {
            let (r, c, _) = feed(ReasoningSplitter::new(), &[&text[..cut], &text[cut..]]);
            assert_eq!((r.as_str(), c.as_str()), ("plan A", "answer"), "cut at {cut}");
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        let (r, c, _) = feed(ReasoningSplitter::new(), &refs);
        assert_eq!((r.as_str(), c.as_str()), ("plan A", "answer"));
    }

    #[test]
    fn prompt_ending_in_think_tag_starts_inside_the_thought() {
        let s = ReasoningSplitter::for_prompt("<｜User｜>hi<｜Assistant｜><think>\n");
        assert!(s.in_thought());
        let (r, c, _) = feed(s, &["Okay, the user", " says hi.", "\n</", "think>\n\n", "Hello!"]);
        assert_eq!(r, "Okay, the user says hi.");
        assert_eq!(c, "Hello!");
        assert!(!ReasoningSplitter::for_prompt("<|im_start|>assistant\n").in_thought());
    }

    #[test]
    fn multibyte_text_is_never_split_inside_a_character() {
        // Korean and emoji around the tags, fed one character at a time and in pairs.
        let text = "<think>생각 중… 🤔</think>답은 사십이입니다 ✓";
        let chars: Vec<String> = text.chars().map(String::from).collect();
        for step in 1..=3 {
            let pieces: Vec<String> = chars.chunks(step).map(|c| c.concat()).collect();
            let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let (r, c, parts) = feed(ReasoningSplitter::new(), &refs);
            assert_eq!(r, "생각 중… 🤔");
            assert_eq!(c, "답은 사십이입니다 ✓");
            // Every part is a valid str by construction; check none is empty.
            assert!(parts.iter().all(|p| !p.text().is_empty()));
        }
    }

    #[test]
    fn text_without_tags_is_all_content_and_streams_without_waiting() {
        let mut s = ReasoningSplitter::new();
        assert_eq!(s.push("Hello"), vec![Part::Content("Hello".into())]);
        assert_eq!(s.push(", world"), vec![Part::Content(", world".into())]);
        // A '<' might begin a tag: held back, then released when it turns out not to.
        assert_eq!(s.push(" a <"), vec![Part::Content(" a ".into())]);
        assert_eq!(s.push("b>"), vec![Part::Content("<b>".into())]);
        assert_eq!(s.push(" <thi"), vec![Part::Content(" ".into())]);
        assert_eq!(s.finish(), vec![Part::Content("<thi".into())]);
    }

    #[test]
    fn reasoning_streams_as_it_arrives() {
        let mut s = ReasoningSplitter::new();
        assert_eq!(s.push("<think>"), vec![]);
        assert_eq!(s.push("step one"), vec![Part::Reasoning("step one".into())]);
        // Trailing whitespace inside a thought waits: it is dropped if `</think>` follows.
        assert_eq!(s.push(", two\n"), vec![Part::Reasoning(", two".into())]);
        assert_eq!(s.push("three"), vec![Part::Reasoning("\nthree".into())]);
    }

    #[test]
    fn unterminated_thought_is_flushed_as_reasoning() {
        let (r, c, _) = feed(ReasoningSplitter::new(), &["<think>still thinking when the limit hit </th"]);
        assert_eq!(r, "still thinking when the limit hit </th");
        assert_eq!(c, "");
    }

    #[test]
    fn parts_keep_stream_order_across_several_thoughts() {
        let (_, _, parts) = feed(ReasoningSplitter::new(), &["a<think>b</think>c<think>d</think>e"]);
        let want = vec![
            Part::Content("a".into()),
            Part::Reasoning("b".into()),
            Part::Content("c".into()),
            Part::Reasoning("d".into()),
            Part::Content("e".into()),
        ];
        assert_eq!(parts, want);
    }

    #[test]
    fn custom_tags_work_and_split_all_joins_each_kind() {
        let mut s = ReasoningSplitter::with_tags("[THINK]", "[/THINK]");
        assert_eq!(split_all(&mut s, "[THINK]x[/THINK]y"), ("x".to_string(), "y".to_string()));
    }
}
