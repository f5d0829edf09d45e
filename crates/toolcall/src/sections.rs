//! Readers of call sections, one per syntax, all incremental: each `read` gets the text
//! not yet consumed, consumes what it has decided, and says whether the section ended.
//! At `eof` a reader must end or fail. A reader fails with the number of bytes of the
//! text it was given that belong to the failed section (they become content).

use serde_json::Value;

use crate::family::{
    Family, DS_CALLS_END, DS_CALL_BEGIN, DS_CALL_END, DS_SEP, MISTRAL_ARGS, MISTRAL_CALL_ID,
    TOOL_CALL_CLOSE,
};
use crate::json_scan::{Scanned, ValueScan};
use crate::parser::Emitter;

/// How far a read got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) consumed: usize,
    pub(crate) done: bool,
}

/// The section is not a call; `.0` bytes of the given text belong to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fail(pub(crate) usize);

pub(crate) trait Section: Send {
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail>;
}

fn need(consumed: usize) -> Result<Progress, Fail> {
    Ok(Progress { consumed, done: false })
}

fn done(consumed: usize) -> Result<Progress, Fail> {
    Ok(Progress { consumed, done: true })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The reader for a section opened by `trigger`.
pub(crate) fn after_trigger(family: Family, trigger: &str) -> Box<dyn Section> {
    match family {
        Family::Hermes | Family::Exaone4 => Box::new(Tagged::new()),
        Family::DeepSeekV3 | Family::DeepSeekR1 => Box::new(DeepSeek::new(trigger == DS_CALL_BEGIN)),
        Family::Mistral => Box::new(Mistral::new()),
        Family::Llama3 => Box::new(PythonTag::new()),
        Family::Generic => Box::new(Generic::new(Vec::new())),
    }
}

/// The reader for a reply that starts with `{` (anchored families).
pub(crate) fn anchored(family: Family, names: Vec<String>) -> Box<dyn Section> {
    match family {
        Family::Generic => Box::new(Generic::new(names)),
        _ => Box::new(ObjCall::new(Some(names))),
    }
}

// ---------------------------------------------------------------------------------------
// A JSON call object: {"name": .., "arguments" | "parameters": ..}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obj {
    Open,
    KeyOrEnd,
    Key,
    Colon,
    Value,
    InValue,
    AfterValue,
}

/// One call object. The header goes out once `name` is complete; `arguments` that follow
/// it stream as they arrive, arguments before the name are held until it comes.
pub(crate) struct ObjCall {
    st: Obj,
    scan: ValueScan,
    tok: String,
    key: String,
    name: Option<String>,
    /// Arguments complete before the name was known.
    pending_args: Option<String>,
    args_done: bool,
    /// Arguments are streaming (or were, if the reply was cut inside them).
    streaming: bool,
    args_seen: bool,
    begun: bool,
    /// Anchored replies: the name must be one of these.
    allowed: Option<Vec<String>>,
}

const ARG_KEYS: [&str; 2] = ["arguments", "parameters"];

impl ObjCall {
    pub(crate) fn new(allowed: Option<Vec<String>>) -> Self {
        Self {
            st: Obj::Open,
            scan: ValueScan::new(),
            tok: String::new(),
            key: String::new(),
            name: None,
            pending_args: None,
            args_done: false,
            streaming: false,
            args_seen: false,
            begun: false,
            allowed,
        }
    }

    fn begin(&mut self, em: &mut Emitter) {
        if !self.begun {
            if let Some(n) = &self.name {
                em.begin(n);
                self.begun = true;
            }
        }
    }

    /// A value is complete (its text in `tok`).
    fn value_done(&mut self, em: &mut Emitter) -> Result<(), ()> {
        let text = std::mem::take(&mut self.tok);
        if self.key == "name" && self.name.is_none() {
            let n: String = serde_json::from_str(&text).map_err(|_| ())?;
            if self.allowed.as_ref().is_some_and(|a| !a.contains(&n)) {
                return Err(());
            }
            self.name = Some(n);
            self.begin(em);
            if let Some(a) = self.pending_args.take() {
                em.args(&a);
                self.args_done = true;
            }
        } else if ARG_KEYS.contains(&self.key.as_str()) && !self.args_done && self.pending_args.is_none() {
            if self.streaming {
                self.streaming = false;
                self.args_done = true;
                return Ok(());
            }
            let trimmed = text.trim();
            let args = if trimmed.starts_with('"') {
                serde_json::from_str::<String>(trimmed).map_err(|_| ())?
            } else {
                serde_json::from_str::<Value>(trimmed).map_err(|_| ())?;
                trimmed.to_string()
            };
            if self.begun {
                em.args(&args);
                self.args_done = true;
            } else {
                self.pending_args = Some(args);
            }
        }
        Ok(())
    }

    fn finish(&mut self, consumed: usize, em: &mut Emitter) -> Result<Progress, Fail> {
        if self.name.is_none() {
            return Err(Fail(consumed));
        }
        self.begin(em);
        if !self.args_done && !self.args_seen {
            em.args("{}");
            self.args_done = true;
        }
        em.end();
        done(consumed)
    }
}

impl Section for ObjCall {
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail> {
        let b = buf.as_bytes();
        let mut i = 0;
        loop {
            if matches!(self.st, Obj::Open | Obj::KeyOrEnd | Obj::Colon | Obj::Value | Obj::AfterValue) {
                i = skip_ws(b, i);
                if i == b.len() {
                    return if eof && self.begun { self.finish(i, em) } else if eof { Err(Fail(i)) } else { need(i) };
                }
            }
            match self.st {
                Obj::Open => {
                    if b[i] != b'{' {
                        return Err(Fail(i));
                    }
                    i += 1;
                    self.st = Obj::KeyOrEnd;
                }
                Obj::KeyOrEnd => match b[i] {
                    b'}' => return self.finish(i + 1, em),
                    b'"' => {
                        self.scan = ValueScan::new();
                        self.tok.clear();
                        self.st = Obj::Key;
                    }
                    _ => return Err(Fail(i)),
                },
                Obj::Key => match self.scan.feed(&buf[i..]) {
                    Scanned::More => {
                        self.tok.push_str(&buf[i..]);
                        return if eof { Err(Fail(b.len())) } else { need(b.len()) };
                    }
                    Scanned::End(n) => {
                        self.tok.push_str(&buf[i..i + n]);
                        i += n;
                        self.key = serde_json::from_str(&self.tok).map_err(|_| Fail(i))?;
                        self.tok.clear();
                        self.st = Obj::Colon;
                    }
                    Scanned::Invalid => return Err(Fail(i)),
                },
                Obj::Colon => {
                    if b[i] != b':' {
                        return Err(Fail(i));
                    }
                    i += 1;
                    self.st = Obj::Value;
                }
                Obj::Value => {
                    self.scan = ValueScan::new();
                    self.tok.clear();
                    let structured = matches!(b[i], b'{' | b'[');
                    self.streaming = structured
                        && self.begun
                        && ARG_KEYS.contains(&self.key.as_str())
                        && !self.args_done
                        && self.pending_args.is_none();
                    self.args_seen |= self.streaming;
                    self.st = Obj::InValue;
                }
                Obj::InValue => {
                    let rest = &buf[i..];
                    let (piece, ended) = match self.scan.feed(rest) {
                        Scanned::More if eof && self.scan.open_scalar() => (rest, true),
                        Scanned::More => (rest, false),
                        Scanned::End(n) => (&rest[..n], true),
                        Scanned::Invalid => return Err(Fail(i)),
                    };
                    self.tok.push_str(piece);
                    if self.streaming {
                        em.args(piece);
                    }
                    i += piece.len();
                    if !ended {
                        return if eof && self.begun { self.finish(i, em) } else if eof { Err(Fail(i)) } else { need(i) };
                    }
                    self.value_done(em).map_err(|_| Fail(i))?;
                    self.st = Obj::AfterValue;
                }
                Obj::AfterValue => match b[i] {
                    b',' => {
                        i += 1;
                        self.st = Obj::KeyOrEnd;
                    }
                    b'}' => return self.finish(i + 1, em),
                    _ => return Err(Fail(i)),
                },
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A literal expected next (after optional whitespace).

enum Lit {
    /// The text starts with it: consumed length (whitespace included).
    Found(usize),
    /// The text so far is a prefix of it.
    Maybe,
    No,
}

fn expect_lit(buf: &str, lit: &str) -> Lit {
    let i = skip_ws(buf.as_bytes(), 0);
    let rest = &buf[i..];
    if rest.starts_with(lit) {
        Lit::Found(i + lit.len())
    } else if lit.starts_with(rest) {
        Lit::Maybe
    } else {
        Lit::No
    }
}

// ---------------------------------------------------------------------------------------
// Hermes / Qwen / EXAONE 4: <tool_call> {obj} </tool_call>

struct Tagged {
    obj: ObjCall,
    obj_done: bool,
}

impl Tagged {
    fn new() -> Self {
        Self { obj: ObjCall::new(None), obj_done: false }
    }
}

impl Section for Tagged {
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail> {
        let mut i = 0;
        if !self.obj_done {
            let p = self.obj.read(buf, eof, em)?;
            i = p.consumed;
            if !p.done {
                return need(i);
            }
            self.obj_done = true;
        }
        match expect_lit(&buf[i..], TOOL_CALL_CLOSE) {
            Lit::Found(n) => done(i + n),
            Lit::Maybe if !eof => need(i),
            // A missing closing tag still ends the call (the next text is content).
            _ => done(i),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Delimited text: arguments up to a terminator, streamed, outer whitespace trimmed.

struct Delimited {
    term: &'static str,
    started: bool,
}

impl Delimited {
    fn new(term: &'static str) -> Self {
        Self { term, started: false }
    }

    /// Streams `buf` up to the terminator into the open call's arguments.
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Progress {
        let mut start = 0;
        if !self.started {
            start = buf.len() - buf.trim_start().len();
        }
        let (end, found) = match buf[start..].find(self.term) {
            Some(p) => (start + p, true),
            None if eof => (buf.len(), false),
            None => {
                let hold = crate::parser::held_suffix(&buf[start..], &[self.term]);
                (buf.len() - hold, false)
            }
        };
        let piece = &buf[start..end];
        // Trailing whitespace waits: it is dropped if the terminator follows.
        let body = piece.trim_end();
        if !body.is_empty() {
            self.started = true;
            em.args(body);
        }
        if found {
            Progress { consumed: end + self.term.len(), done: true }
        } else if eof {
            Progress { consumed: buf.len(), done: true }
        } else {
            Progress { consumed: start + body.len(), done: false }
        }
    }
}

// ---------------------------------------------------------------------------------------
// DeepSeek: [<｜tool▁calls▁begin｜>] (<｜tool▁call▁begin｜> head <｜tool▁sep｜> … <｜tool▁call▁end｜>)+ [<｜tool▁calls▁end｜>]

enum Ds {
    /// Between calls: a call, the end of the calls, or the end of the section.
    Between,
    /// Reading up to the separator.
    Head,
    /// R1: the function name up to the newline.
    R1Name,
    /// R1: the opening fence.
    R1Fence,
    Args(Delimited),
    /// R1: after the closing fence, the call's end token.
    CallEnd,
}

struct DeepSeek {
    st: Ds,
}

impl DeepSeek {
    fn new(in_call: bool) -> Self {
        Self { st: if in_call { Ds::Head } else { Ds::Between } }
    }
}

const MAX_HEAD: usize = 512;

impl Section for DeepSeek {
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail> {
        let mut i = 0;
        loop {
            let rest = &buf[i..];
            match &mut self.st {
                Ds::Between => {
                    match expect_lit(rest, DS_CALL_BEGIN) {
                        Lit::Found(n) => {
                            i += n;
                            self.st = Ds::Head;
                            continue;
                        }
                        Lit::Maybe if !eof && !rest.trim().is_empty() => return need(i),
                        _ => {}
                    }
                    return match expect_lit(rest, DS_CALLS_END) {
                        Lit::Found(n) => done(i + n),
                        Lit::Maybe if !eof => need(i),
                        _ if em.calls() == 0 => Err(Fail(i)),
                        _ => done(i),
                    };
                }
                Ds::Head => match rest.find(DS_SEP) {
                    Some(p) => {
                        let head = rest[..p].trim();
                        i += p + DS_SEP.len();
                        if head == "function" {
                            self.st = Ds::R1Name;
                        } else if head.is_empty() {
                            return Err(Fail(i));
                        } else {
                            em.begin(head);
                            self.st = Ds::Args(Delimited::new(DS_CALL_END));
                        }
                    }
                    None if rest.len() > MAX_HEAD || eof => return Err(Fail(buf.len())),
                    None => return need(i),
                },
                Ds::R1Name => match rest.find('\n') {
                    Some(p) => {
                        let name = rest[..p].trim();
                        if name.is_empty() {
                            return Err(Fail(i));
                        }
                        em.begin(name);
                        i += p + 1;
                        self.st = Ds::R1Fence;
                    }
                    None if rest.len() > MAX_HEAD || eof => return Err(Fail(buf.len())),
                    None => return need(i),
                },
                Ds::R1Fence => match expect_lit(rest, "```json") {
                    Lit::Found(n) => {
                        i += n;
                        self.st = Ds::Args(Delimited::new("```"));
                    }
                    Lit::Maybe if !eof => return need(i),
                    _ => {
                        // No fence: the arguments run to the call's end.
                        self.st = Ds::Args(Delimited::new(DS_CALL_END));
                    }
                },
                Ds::Args(d) => {
                    let term = d.term;
                    let p = d.read(rest, eof, em);
                    i += p.consumed;
                    if !p.done {
                        return need(i);
                    }
                    em.end();
                    self.st = if term == DS_CALL_END { Ds::Between } else { Ds::CallEnd };
                    if eof && i == buf.len() {
                        return done(i);
                    }
                }
                Ds::CallEnd => match expect_lit(rest, DS_CALL_END) {
                    Lit::Found(n) => {
                        i += n;
                        self.st = Ds::Between;
                    }
                    Lit::Maybe if !eof => return need(i),
                    _ => self.st = Ds::Between,
                },
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Arrays of call objects: [ {..}, {..} ]  (Mistral's list, the generic wrapper's list)

enum Arr {
    Open,
    Item(ObjCall),
    AfterItem,
}

struct CallArray {
    st: Arr,
}

impl CallArray {
    fn new() -> Self {
        Self { st: Arr::Open }
    }

    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail> {
        let b = buf.as_bytes();
        let mut i = 0;
        loop {
            if !matches!(self.st, Arr::Item(_)) {
                i = skip_ws(b, i);
                if i == b.len() {
                    return if eof && em.calls() > 0 { done(i) } else if eof { Err(Fail(i)) } else { need(i) };
                }
            }
            match &mut self.st {
                Arr::Open => {
                    if b[i] != b'[' {
                        return Err(Fail(i));
                    }
                    i += 1;
                    self.st = Arr::Item(ObjCall::new(None));
                }
                Arr::Item(obj) => {
                    let p = obj.read(&buf[i..], eof, em).map_err(|Fail(n)| Fail(i + n))?;
                    i += p.consumed;
                    if !p.done {
                        return need(i);
                    }
                    self.st = Arr::AfterItem;
                }
                Arr::AfterItem => match b[i] {
                    b',' => {
                        i += 1;
                        self.st = Arr::Item(ObjCall::new(None));
                    }
                    b']' => return done(i + 1),
                    _ => return Err(Fail(i)),
                },
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Mistral: [TOOL_CALLS] [ .. ]   or   [TOOL_CALLS] name [CALL_ID] id [ARGS] {..}

enum Mis {
    Start,
    List(CallArray),
    Name,
    CallId,
    Args(ValueScan),
}

struct Mistral {
    st: Mis,
}

impl Mistral {
    fn new() -> Self {
        Self { st: Mis::Start }
    }
}

impl Section for Mistral {
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail> {
        let mut i = 0;
        loop {
            let rest = &buf[i..];
            match &mut self.st {
                Mis::Start => {
                    let t = rest.trim_start();
                    if t.is_empty() {
                        return if eof { Err(Fail(buf.len())) } else { need(i) };
                    }
                    self.st = if t.starts_with('[') { Mis::List(CallArray::new()) } else { Mis::Name };
                }
                Mis::List(a) => {
                    let p = a.read(rest, eof, em).map_err(|Fail(n)| Fail(i + n))?;
                    return Ok(Progress { consumed: i + p.consumed, done: p.done });
                }
                Mis::Name => {
                    let at = [MISTRAL_ARGS, MISTRAL_CALL_ID].iter().filter_map(|m| rest.find(m).map(|p| (p, *m))).min();
                    match at {
                        Some((p, marker)) => {
                            let name = rest[..p].trim();
                            if name.is_empty() || name.contains(char::is_whitespace) {
                                return Err(Fail(i));
                            }
                            em.begin(name);
                            i += p + marker.len();
                            self.st = if marker == MISTRAL_ARGS { Mis::Args(ValueScan::new()) } else { Mis::CallId };
                        }
                        None if rest.len() > MAX_HEAD || eof => return Err(Fail(buf.len())),
                        None => return need(i),
                    }
                }
                Mis::CallId => match rest.find(MISTRAL_ARGS) {
                    Some(p) => {
                        i += p + MISTRAL_ARGS.len();
                        self.st = Mis::Args(ValueScan::new());
                    }
                    None if eof => return done(buf.len()),
                    None => return need(i),
                },
                Mis::Args(scan) => {
                    let lead = if scan.started() { 0 } else { rest.len() - rest.trim_start().len() };
                    let body = &rest[lead..];
                    let (piece, ended) = match scan.feed(body) {
                        Scanned::End(n) => (&body[..n], true),
                        Scanned::More => (body, eof),
                        Scanned::Invalid => return Err(Fail(i)),
                    };
                    em.args(piece);
                    i += lead + piece.len();
                    return Ok(Progress { consumed: i, done: ended });
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Llama 3.x <|python_tag|>: a call object, `tool.call(k="v", …)`, or code.

struct PythonTag {
    obj: Option<ObjCall>,
}

impl PythonTag {
    fn new() -> Self {
        Self { obj: None }
    }
}

impl Section for PythonTag {
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail> {
        if self.obj.is_none() {
            let t = buf.trim_start();
            if t.starts_with('{') {
                self.obj = Some(ObjCall::new(None));
            } else if !eof {
                // Code and built-in calls end with the reply.
                return need(0);
            } else {
                let code = buf.trim();
                if code.is_empty() {
                    return Err(Fail(buf.len()));
                }
                match crate::python_call::builtin_call(code) {
                    Some((name, args)) => {
                        em.begin(&name);
                        em.args(&args);
                    }
                    None => {
                        em.begin("python");
                        em.args(&serde_json::json!({ "code": code }).to_string());
                    }
                }
                return done(buf.len());
            }
        }
        match &mut self.obj {
            Some(obj) => obj.read(buf, eof, em),
            None => need(0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generic: {"tool_calls": [ .. ]} or a single {"name": .., "arguments": ..}

enum Gen {
    /// Waiting for the first key.
    Probe,
    Wrapper(CallArray),
    Close,
    Single(ObjCall),
}

struct Generic {
    st: Gen,
    names: Vec<String>,
}

impl Generic {
    fn new(names: Vec<String>) -> Self {
        Self { st: Gen::Probe, names }
    }
}

/// `{ "key" :` at the start of `s`: Some(Ok((key, length))) when complete.
fn first_key(s: &str) -> Option<Result<(String, usize), ()>> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if i == b.len() {
        return None;
    }
    if b[i] != b'{' {
        return Some(Err(()));
    }
    i = skip_ws(b, i + 1);
    if i == b.len() {
        return None;
    }
    if b[i] != b'"' {
        return Some(Err(()));
    }
    let mut scan = ValueScan::new();
    let n = match scan.feed(&s[i..]) {
        Scanned::End(n) => n,
        Scanned::More => return None,
        Scanned::Invalid => return Some(Err(())),
    };
    let key: String = match serde_json::from_str(&s[i..i + n]) {
        Ok(k) => k,
        Err(_) => return Some(Err(())),
    };
    i = skip_ws(b, i + n);
    if i == b.len() {
        return None;
    }
    if b[i] != b':' {
        return Some(Err(()));
    }
    Some(Ok((key, i + 1)))
}

impl Section for Generic {
    fn read(&mut self, buf: &str, eof: bool, em: &mut Emitter) -> Result<Progress, Fail> {
        let mut i = 0;
        loop {
            match &mut self.st {
                Gen::Probe => match first_key(buf) {
                    None if eof => return Err(Fail(buf.len())),
                    None => return need(0),
                    Some(Err(())) => return Err(Fail(0)),
                    Some(Ok((key, n))) if key == "tool_calls" => {
                        i = n;
                        self.st = Gen::Wrapper(CallArray::new());
                    }
                    Some(Ok(_)) => self.st = Gen::Single(ObjCall::new(Some(std::mem::take(&mut self.names)))),
                },
                Gen::Wrapper(a) => {
                    let p = a.read(&buf[i..], eof, em).map_err(|Fail(n)| Fail(i + n))?;
                    i += p.consumed;
                    if !p.done {
                        return need(i);
                    }
                    self.st = Gen::Close;
                }
                Gen::Close => {
                    return match expect_lit(&buf[i..], "}") {
                        Lit::Found(n) => done(i + n),
                        Lit::Maybe if !eof => need(i),
                        _ => done(i),
                    }
                }
                Gen::Single(obj) => return obj.read(buf, eof, em),
            }
        }
    }
}
