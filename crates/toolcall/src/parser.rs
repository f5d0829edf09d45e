//! The streaming parser: content outside calls, call sections handed to the family's
//! reader (`sections.rs`), events in OpenAI's delta shape.
//!
//! Text mode looks for the earliest trigger of the family (`<tool_call>`, `[TOOL_CALLS]`,
//! …) and holds back a suffix that could still grow into one; anchored families (Llama
//! 3.x, generic) also read a reply that *starts* with `{` as a call object, held until
//! its `name` is known to be one of the offered tools. A section whose text turns out not
//! to be a call before anything was emitted goes out as content, unchanged.
//!
//! Whitespace: trailing whitespace of content is held until more content follows; it is
//! dropped before a call and after the last one, so a reply of calls only has empty
//! content (the server writes `null`), while a reply without calls keeps its text exactly.

use crate::family::{call_id, Family, IdStyle};
use crate::sections::{self, Fail, Section};

/// One piece of a streamed call, in OpenAI's `delta.tool_calls[]` shape: the first delta
/// of a call carries `id` and `name`, the rest only `arguments` pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCallDelta {
    pub index: usize,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}

/// What the parser emits, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolEvent {
    Content(String),
    Call(ToolCallDelta),
}

/// A whole call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (OpenAI's `function.arguments` string).
    pub arguments: String,
}

/// A whole reply: its content and its calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub content: String,
    pub calls: Vec<ToolCall>,
}

impl Parsed {
    /// Folds events into the reply they describe (what a streaming client assembles).
    pub fn absorb(&mut self, events: &[ToolEvent]) {
        for ev in events {
            match ev {
                ToolEvent::Content(c) => self.content.push_str(c),
                ToolEvent::Call(d) => {
                    if d.index == self.calls.len() {
                        self.calls.push(ToolCall {
                            id: d.id.clone().unwrap_or_default(),
                            name: d.name.clone().unwrap_or_default(),
                            arguments: String::new(),
                        });
                    }
                    if let Some(c) = self.calls.get_mut(d.index) {
                        c.arguments.push_str(&d.arguments);
                    }
                }
            }
        }
    }
}

/// Parses a whole reply (the parser fed once): equal to the assembled stream.
pub fn parse(family: Family, tool_names: &[String], id_seed: u64, text: &str) -> Parsed {
    let mut p = StreamParser::new(family, tool_names.to_vec(), id_seed);
    let mut out = Parsed::default();
    out.absorb(&p.push(text));
    out.absorb(&p.finish());
    out
}

/// Collects a section's calls as deltas.
pub(crate) struct Emitter {
    events: Vec<ToolEvent>,
    n_calls: usize,
    open: Option<usize>,
    style: IdStyle,
    seed: u64,
}

impl Emitter {
    /// Starts a call: its first delta (index, id, name).
    pub(crate) fn begin(&mut self, name: &str) {
        self.end();
        let index = self.n_calls;
        self.n_calls += 1;
        self.open = Some(index);
        let id = call_id(self.style, self.seed, index);
        self.events.push(ToolEvent::Call(ToolCallDelta {
            index,
            id: Some(id),
            name: Some(name.to_string()),
            arguments: String::new(),
        }));
    }

    /// A piece of the open call's arguments (merged into the previous delta when it
    /// belongs to the same call).
    pub(crate) fn args(&mut self, piece: &str) {
        let Some(index) = self.open else { return };
        if piece.is_empty() {
            return;
        }
        if let Some(ToolEvent::Call(d)) = self.events.last_mut() {
            if d.index == index {
                d.arguments.push_str(piece);
                return;
            }
        }
        self.events.push(ToolEvent::Call(ToolCallDelta { index, id: None, name: None, arguments: piece.to_string() }));
    }

    pub(crate) fn end(&mut self) {
        self.open = None;
    }

    pub(crate) fn calls(&self) -> usize {
        self.n_calls
    }

    fn content(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(ToolEvent::Content(c)) = self.events.last_mut() {
            c.push_str(text);
        } else {
            self.events.push(ToolEvent::Content(text.to_string()));
        }
    }
}

enum Mode {
    Text,
    /// A call section: its reader, the text it consumed (trigger included), the calls
    /// before it, and the whitespace dropped in front of it (restored if it is no call).
    Section { reader: Box<dyn Section>, raw: String, calls_before: usize, ws_before: String },
}

/// Incremental tool-call parser for one reply; see the module docs.
pub struct StreamParser {
    family: Family,
    names: Vec<String>,
    buf: String,
    mode: Mode,
    em: Emitter,
    /// Non-whitespace content has been emitted.
    content_started: bool,
    /// Trailing whitespace of the content, not yet emitted.
    held_ws: String,
    finished: bool,
}

impl StreamParser {
    /// A parser for `family`'s syntax; `tool_names` are the offered tools (anchored JSON
    /// replies count as calls only when they name one), `id_seed` derives the call ids.
    pub fn new(family: Family, tool_names: Vec<String>, id_seed: u64) -> Self {
        Self {
            family,
            names: tool_names,
            buf: String::new(),
            mode: Mode::Text,
            em: Emitter { events: Vec::new(), n_calls: 0, open: None, style: family.id_style(), seed: id_seed },
            content_started: false,
            held_ws: String::new(),
            finished: false,
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Calls begun so far.
    pub fn calls(&self) -> usize {
        self.em.calls()
    }

    /// Feeds the next piece of content; returns the events now certain.
    pub fn push(&mut self, text: &str) -> Vec<ToolEvent> {
        if self.finished {
            return Vec::new();
        }
        self.buf.push_str(text);
        self.run(false);
        std::mem::take(&mut self.em.events)
    }

    /// Ends the reply: what was held back is decided and emitted.
    pub fn finish(&mut self) -> Vec<ToolEvent> {
        if self.finished {
            return Vec::new();
        }
        self.run(true);
        if self.em.calls() == 0 {
            let ws = std::mem::take(&mut self.held_ws);
            self.em.content(&ws);
        }
        self.finished = true;
        std::mem::take(&mut self.em.events)
    }

    fn run(&mut self, eof: bool) {
        loop {
            let progressed = match self.mode {
                Mode::Text => self.text_step(eof),
                Mode::Section { .. } => self.section_step(eof),
            };
            if !progressed {
                break;
            }
        }
    }

    /// Emits content, holding its trailing whitespace (see the module docs).
    fn content(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let body_end = text.trim_end().len();
        if body_end == 0 {
            self.held_ws.push_str(text);
            return;
        }
        let ws = std::mem::take(&mut self.held_ws);
        // Whitespace between the last call and new content is layout.
        if self.content_started || self.em.calls() == 0 {
            self.em.content(&ws);
        }
        let body = if !self.content_started && self.em.calls() > 0 { text[..body_end].trim_start() } else { &text[..body_end] };
        self.em.content(body);
        self.content_started = true;
        self.held_ws.push_str(&text[body_end..]);
    }

    fn enter(&mut self, reader: Box<dyn Section>, raw: String) {
        let ws_before = std::mem::take(&mut self.held_ws);
        self.mode = Mode::Section { reader, raw, calls_before: self.em.calls(), ws_before };
    }

    fn text_step(&mut self, eof: bool) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        if self.family.anchored_json() && !self.content_started && self.em.calls() == 0 {
            let trimmed = self.buf.trim_start();
            let ws_len = self.buf.len() - trimmed.len();
            if trimmed.starts_with('{') {
                let ws: String = self.buf.drain(..ws_len).collect();
                self.content(&ws);
                self.enter(sections::anchored(self.family, self.names.clone()), String::new());
                return true;
            }
            if trimmed.is_empty() && !eof {
                return false;
            }
        }
        let found = self
            .family
            .triggers()
            .iter()
            .filter_map(|t| self.buf.find(t).map(|p| (p, *t)))
            .min_by_key(|&(p, t)| (p, std::cmp::Reverse(t.len())));
        if let Some((p, trigger)) = found {
            let before: String = self.buf.drain(..p).collect();
            self.content(&before);
            self.buf.drain(..trigger.len());
            self.enter(sections::after_trigger(self.family, trigger), trigger.to_string());
            return true;
        }
        let hold = if eof { 0 } else { held_suffix(&self.buf, self.family.triggers()) };
        let take = self.buf.len() - hold;
        if take == 0 {
            return false;
        }
        let text: String = self.buf.drain(..take).collect();
        self.content(&text);
        true
    }

    fn section_step(&mut self, eof: bool) -> bool {
        let Mode::Section { reader, raw, calls_before, ws_before } = &mut self.mode else { return false };
        match reader.read(&self.buf, eof, &mut self.em) {
            Ok(progress) => {
                let consumed: String = self.buf.drain(..progress.consumed).collect();
                raw.push_str(&consumed);
                if progress.done {
                    self.em.end();
                    self.mode = Mode::Text;
                    return true;
                }
                progress.consumed > 0
            }
            Err(Fail(at)) => {
                let emitted = self.em.calls() > *calls_before;
                let mut raw = std::mem::take(raw);
                let ws = std::mem::take(ws_before);
                self.em.end();
                self.mode = Mode::Text;
                // The failing byte and what follows are scanned as text again; the
                // section's own trigger (at the start of `raw`) is not.
                let at = at.min(self.buf.len());
                raw.extend(self.buf.drain(..at));
                if !emitted {
                    // Not a call after all: its text is content, and anchored probing ends.
                    self.held_ws = ws;
                    self.content(&raw);
                    self.content_started = true;
                }
                true
            }
        }
    }
}

/// Length of the longest suffix of `s` that is a proper prefix of a trigger.
pub(crate) fn held_suffix(s: &str, triggers: &[&str]) -> usize {
    let mut best = 0;
    for t in triggers {
        for (i, _) in t.char_indices().skip(1) {
            if i > best && s.ends_with(&t[..i]) {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
