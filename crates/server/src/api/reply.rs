//! Response assembly: the engine's per-token events of every choice turned into the one
//! JSON reply ([`collect`]) or into SSE chunks ([`sse_response`]), through the same
//! [`Choice`] state (reasoning split included), so the concatenated deltas of a stream
//! equal the non-streamed text exactly. The bodies themselves are the typed structs of
//! [`crate::wire`].
//!
//! Streaming bodies own the engine streams: when a client disconnects, hyper drops the
//! body, the [`GenStream`]s are dropped with it, and the engine frees their KV blocks
//! before its next step. [`collect`] behaves the same way, since hyper drops the handler's
//! future on disconnect.

use std::collections::VecDeque;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use jikji_engine::reasoning::{Part, ReasoningSplitter};
use jikji_engine::serve::{FinishReason, GenEvent, GenStream, TokenLogprob, Usage};
use serde::Serialize;

use crate::error::ApiError;
use crate::wire::{
    ChatChoice, ChatChunkChoice, ChatCompletion, ChatCompletionChunk, ChatDelta, ChatLogprob, ChatLogprobs,
    ChatMessage, CompletionUsage, Envelope, LegacyLogprobs, TextChoice, TextCompletion, TopLogprob, UsageField,
    FINGERPRINT,
};
use crate::{sse, ActiveGuard};

/// One choice being generated.
pub(super) struct Choice {
    index: usize,
    splitter: Option<ReasoningSplitter>,
    content: String,
    reasoning: String,
    logprobs: Vec<TokenLogprob>,
    /// Byte offset in `content` of each token (legacy completions `text_offset`).
    offsets: Vec<usize>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl Choice {
    pub(super) fn new(index: usize, splitter: Option<ReasoningSplitter>) -> Self {
        Self {
            index,
            splitter,
            content: String::new(),
            reasoning: String::new(),
            logprobs: Vec::new(),
            offsets: Vec::new(),
            finish: None,
            usage: None,
        }
    }

    /// Feeds a piece of generated text; returns the (reasoning, content) deltas it makes.
    fn push_text(&mut self, text: &str) -> (String, String) {
        let parts = match &mut self.splitter {
            Some(s) => s.push(text),
            None => vec![Part::Content(text.to_string())],
        };
        self.absorb(parts)
    }

    fn finish_text(&mut self) -> (String, String) {
        let parts = match &mut self.splitter {
            Some(s) => s.finish(),
            None => Vec::new(),
        };
        self.absorb(parts)
    }

    fn absorb(&mut self, parts: Vec<Part>) -> (String, String) {
        let (mut r, mut c) = (String::new(), String::new());
        for p in parts {
            match p {
                Part::Reasoning(s) => r.push_str(&s),
                Part::Content(s) => c.push_str(&s),
            }
        }
        self.reasoning.push_str(&r);
        self.content.push_str(&c);
        (r, c)
    }
}

/// What one stream chunk of a choice carries, before it is framed by [`Reply::chunk`].
pub(super) struct Delta {
    index: usize,
    reasoning: String,
    content: String,
    /// Set only when the request asked for logprobs.
    logprob: Option<TokenLogprob>,
    /// Byte offset of this delta in the choice's text (legacy `text_offset`).
    offset: usize,
    finish: Option<FinishReason>,
}

fn finish_str(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn chat_logprob(lp: &TokenLogprob) -> ChatLogprob<'_> {
    ChatLogprob {
        token: &lp.token,
        logprob: f64::from(lp.logprob),
        bytes: &lp.bytes,
        top_logprobs: lp
            .top
            .iter()
            .map(|(t, b, l)| TopLogprob { token: t, logprob: f64::from(*l), bytes: b })
            .collect(),
    }
}

fn legacy_logprobs<'a>(lps: &'a [TokenLogprob], offsets: &'a [usize]) -> LegacyLogprobs<'a> {
    LegacyLogprobs {
        tokens: lps.iter().map(|l| l.token.as_str()).collect(),
        token_logprobs: lps.iter().map(|l| f64::from(l.logprob)).collect(),
        top_logprobs: lps
            .iter()
            .map(|l| l.top.iter().map(|(t, _, p)| (t.clone(), serde_json::Value::from(*p))).collect())
            .collect(),
        text_offset: offsets,
    }
}

/// Which API a generation answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Chat,
    Completion,
}

/// A whole reply: `chat.completion` or `text_completion`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum FinalBody<'a> {
    Chat(ChatCompletion<'a>),
    Completion(TextCompletion<'a>),
}

/// One SSE event: `chat.completion.chunk` or a `text_completion` chunk.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum ChunkBody<'a> {
    Chat(ChatCompletionChunk<'a>),
    Completion(TextCompletion<'a>),
}

/// What a generation reply needs besides the engine streams.
pub(super) struct Reply {
    pub(super) kind: Kind,
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) logprobs: bool,
    pub(super) include_usage: bool,
    /// Prompt length of each choice (index order), for `usage`.
    pub(super) prompt_lens: Vec<usize>,
    /// Which prompt each choice belongs to (completions may send several prompts).
    pub(super) prompt_of: Vec<usize>,
    /// End-of-generation ids: such a token only carries the last held-back text (it is
    /// not part of the completion), so its logprob is not reported.
    pub(super) eog_ids: Vec<u32>,
}

impl Reply {
    /// `usage`: prompts counted once each (not once per choice), completions summed.
    pub(super) fn total_usage(&self, choices: &[Choice]) -> CompletionUsage {
        let mut seen = std::collections::BTreeMap::new();
        for (i, c) in choices.iter().enumerate() {
            let p = self.prompt_of[i];
            let u = c.usage.as_ref();
            let cached = u.map_or(0, |u| u.cached_prompt_tokens);
            let len = u.map_or(self.prompt_lens[i], |u| u.prompt_tokens);
            // Keep the first choice's numbers for each prompt.
            seen.entry(p).or_insert((len, cached));
        }
        let prompt: usize = seen.values().map(|v| v.0).sum();
        let cached: usize = seen.values().map(|v| v.1).sum();
        let completion: usize = choices.iter().map(|c| c.usage.as_ref().map_or(0, |u| u.completion_tokens)).sum();
        CompletionUsage::new(prompt, completion, cached)
    }

    fn object(&self, stream: bool) -> &'static str {
        match (self.kind, stream) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    /// The envelope of a reply (`stream: false`) or of a chunk; chunks carry
    /// `"usage": null` when the client asked for the usage chunk at the end.
    fn envelope<C>(&self, stream: bool, choices: Vec<C>) -> Envelope<'_, C> {
        Envelope {
            id: &self.id,
            object: self.object(stream),
            created: self.created,
            model: &self.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage: if stream && self.include_usage { UsageField::Null } else { UsageField::Absent },
        }
    }

    /// The non-streamed reply once every choice has finished.
    pub(super) fn final_body<'a>(&'a self, choices: &'a [Choice]) -> FinalBody<'a> {
        let usage = UsageField::Totals(self.total_usage(choices));
        match self.kind {
            Kind::Chat => {
                let out = choices
                    .iter()
                    .map(|c| ChatChoice {
                        index: c.index,
                        message: ChatMessage {
                            role: "assistant",
                            content: &c.content,
                            reasoning_content: (!c.reasoning.is_empty()).then_some(c.reasoning.as_str()),
                        },
                        logprobs: self
                            .logprobs
                            .then(|| ChatLogprobs { content: c.logprobs.iter().map(chat_logprob).collect() }),
                        finish_reason: c.finish.as_ref().map(finish_str),
                    })
                    .collect();
                FinalBody::Chat(Envelope { usage, ..self.envelope(false, out) })
            }
            Kind::Completion => {
                let out = choices
                    .iter()
                    .map(|c| TextChoice {
                        index: c.index,
                        text: &c.content,
                        logprobs: self.logprobs.then(|| legacy_logprobs(&c.logprobs, &c.offsets)),
                        finish_reason: c.finish.as_ref().map(finish_str),
                    })
                    .collect();
                FinalBody::Completion(Envelope { usage, ..self.envelope(false, out) })
            }
        }
    }

    /// The stream chunk of one delta.
    pub(super) fn chunk<'a>(&'a self, d: &'a Delta) -> ChunkBody<'a> {
        let lp = if self.logprobs { d.logprob.as_ref() } else { None };
        let finish_reason = d.finish.as_ref().map(finish_str);
        match self.kind {
            Kind::Chat => {
                let delta = ChatDelta {
                    role: None,
                    reasoning_content: (!d.reasoning.is_empty()).then_some(d.reasoning.as_str()),
                    content: (!d.content.is_empty() || (lp.is_some() && d.reasoning.is_empty()))
                        .then_some(d.content.as_str()),
                };
                let logprobs = lp.map(|l| ChatLogprobs { content: vec![chat_logprob(l)] });
                let choice = ChatChunkChoice { index: d.index, delta, logprobs, finish_reason };
                ChunkBody::Chat(self.envelope(true, vec![choice]))
            }
            Kind::Completion => {
                let logprobs = lp.map(|l| legacy_logprobs(std::slice::from_ref(l), std::slice::from_ref(&d.offset)));
                let choice = TextChoice { index: d.index, text: &d.content, logprobs, finish_reason };
                ChunkBody::Completion(self.envelope(true, vec![choice]))
            }
        }
    }

    /// A chat choice's first chunk: `{"role": "assistant", "content": ""}`.
    pub(super) fn role_chunk(&self, index: usize) -> ChunkBody<'_> {
        let delta = ChatDelta { role: Some("assistant"), reasoning_content: None, content: Some("") };
        let choice = ChatChunkChoice { index, delta, logprobs: None, finish_reason: None };
        ChunkBody::Chat(self.envelope(true, vec![choice]))
    }

    /// The stream's last chunk with `include_usage`: no choices, the totals.
    pub(super) fn usage_chunk(&self, choices: &[Choice]) -> ChunkBody<'_> {
        let usage = UsageField::Totals(self.total_usage(choices));
        match self.kind {
            Kind::Chat => ChunkBody::Chat(Envelope { usage, ..self.envelope(true, Vec::new()) }),
            Kind::Completion => ChunkBody::Completion(Envelope { usage, ..self.envelope(true, Vec::new()) }),
        }
    }
}

/// Applies one engine event to a choice; returns the stream deltas it makes, and an error
/// message for `GenEvent::Error`.
pub(super) fn apply_event(reply: &Reply, c: &mut Choice, ev: GenEvent) -> Result<Vec<Delta>, String> {
    let mut deltas = Vec::new();
    match ev {
        GenEvent::Token { id, text, logprob } => {
            let logprob = if reply.eog_ids.contains(&id) { None } else { logprob };
            let offset = c.content.len();
            let (r, t) = c.push_text(&text);
            if let Some(lp) = &logprob {
                c.offsets.push(offset);
                c.logprobs.push(lp.clone());
            }
            let logprob = if reply.logprobs { logprob } else { None };
            if !r.is_empty() || !t.is_empty() || logprob.is_some() {
                deltas.push(Delta { index: c.index, reasoning: r, content: t, logprob, offset, finish: None });
            }
        }
        GenEvent::Done { finish, usage } => {
            let offset = c.content.len();
            let (r, t) = c.finish_text();
            if !r.is_empty() || !t.is_empty() {
                deltas.push(Delta { index: c.index, reasoning: r, content: t, logprob: None, offset, finish: None });
            }
            let (reasoning, content) = (String::new(), String::new());
            deltas.push(Delta { index: c.index, reasoning, content, logprob: None, offset, finish: Some(finish) });
            c.finish = Some(finish);
            c.usage = Some(usage);
        }
        GenEvent::Error(msg) => return Err(msg),
    }
    Ok(deltas)
}

fn gen_events(gs: GenStream) -> BoxStream<'static, GenEvent> {
    stream::unfold(gs, |mut gs| async move { gs.next().await.map(|ev| (ev, gs)) }).boxed()
}

fn merge(streams: Vec<GenStream>) -> SelectAll<BoxStream<'static, (usize, GenEvent)>> {
    stream::select_all(streams.into_iter().enumerate().map(|(i, gs)| gen_events(gs).map(move |ev| (i, ev)).boxed()))
}

// Token accounting for the key's limits and the audit log (`crate::gate::Tally`).
fn begin_tally(guard: &ActiveGuard, reply: &Reply, choices: &[Choice]) {
    if let Some(t) = guard.tally() {
        t.begin(reply.total_usage(choices).prompt_tokens as u64, &reply.model);
    }
}

fn count_token(guard: &ActiveGuard, ev: &GenEvent) {
    if let (Some(t), GenEvent::Token { .. }) = (guard.tally(), ev) {
        t.token();
    }
}

fn finish_tally(guard: &ActiveGuard, reply: &Reply, choices: &[Choice]) {
    if let Some(t) = guard.tally() {
        let u = reply.total_usage(choices);
        t.finish(u.prompt_tokens as u64, u.completion_tokens as u64, || choices.iter().map(|c| c.content.clone()).collect());
    }
}

/// Runs the generations to the end and builds the one JSON reply.
pub(super) async fn collect(
    reply: Reply,
    mut choices: Vec<Choice>,
    streams: Vec<GenStream>,
    _guard: ActiveGuard,
) -> Response {
    begin_tally(&_guard, &reply, &choices);
    let mut merged = merge(streams);
    while let Some((i, ev)) = merged.next().await {
        count_token(&_guard, &ev);
        if let Err(msg) = apply_event(&reply, &mut choices[i], ev) {
            if jikji_engine::grammar::is_step_error(&msg) {
                // The request's grammar outgrew its per-step limits: the client's to fix.
                return ApiError::grammar_too_complex(format!("generation stopped: {msg}")).into_response();
            }
            return ApiError::internal(format!("generation failed: {msg}")).into_response();
        }
    }
    if choices.iter().any(|c| c.finish.is_none()) {
        return ApiError::internal("the engine ended a generation without finishing it").into_response();
    }
    finish_tally(&_guard, &reply, &choices);
    axum::Json(reply.final_body(&choices)).into_response()
}

/// The state of a streaming reply, owned by the response body.
struct StreamState {
    reply: Reply,
    choices: Vec<Choice>,
    merged: SelectAll<BoxStream<'static, (usize, GenEvent)>>,
    pending: VecDeque<Bytes>,
    done: bool,
    _guard: ActiveGuard,
}

/// The SSE reply: each choice's role chunk (chat), one chunk per delta, the usage chunk
/// when asked for, then `[DONE]`; an engine failure ends the stream with an error event.
pub(super) fn sse_response(reply: Reply, choices: Vec<Choice>, streams: Vec<GenStream>, guard: ActiveGuard) -> Response {
    let mut pending = VecDeque::new();
    if reply.kind == Kind::Chat {
        for c in &choices {
            pending.push_back(sse::event(&reply.role_chunk(c.index)));
        }
    }
    begin_tally(&guard, &reply, &choices);
    let merged = merge(streams);
    let state = StreamState { reply, choices, merged, pending, done: false, _guard: guard };
    let body = stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.pending.pop_front() {
                return Some((Ok::<Bytes, std::convert::Infallible>(b), s));
            }
            if s.done {
                return None;
            }
            match s.merged.next().await {
                Some((i, ev)) => {
                    count_token(&s._guard, &ev);
                    match apply_event(&s.reply, &mut s.choices[i], ev) {
                        Ok(deltas) => s.pending.extend(deltas.iter().map(|d| sse::event(&s.reply.chunk(d)))),
                        Err(msg) => {
                            let e = ApiError::internal(format!("generation failed: {msg}"));
                            s.pending.push_back(sse::event(&e.wire()));
                            s.pending.push_back(sse::done());
                            s.done = true;
                        }
                    }
                }
                None => {
                    finish_tally(&s._guard, &s.reply, &s.choices);
                    if s.reply.include_usage {
                        s.pending.push_back(sse::event(&s.reply.usage_chunk(&s.choices)));
                    }
                    s.pending.push_back(sse::done());
                    s.done = true;
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    // Adapters for the tests below, which read replies and chunks as JSON values (as a
    // client does): the typed bodies serialized to `serde_json::Value`.
    use serde_json::{json, Value};

    fn to_json<T: Serialize>(body: &T) -> Value {
        serde_json::to_value(body).expect("the wire types serialize")
    }

    fn apply_event(reply: &Reply, c: &mut Choice, ev: GenEvent) -> Result<Vec<Value>, String> {
        let deltas = super::apply_event(reply, c, ev)?;
        Ok(deltas.iter().map(|d| to_json(&reply.chunk(d))).collect())
    }

    impl Reply {
        fn final_json(&self, choices: &[Choice]) -> Value {
            to_json(&self.final_body(choices))
        }

        fn usage(&self, choices: &[Choice]) -> Value {
            to_json(&self.total_usage(choices))
        }
    }

    fn reply(kind: Kind, logprobs: bool) -> Reply {
        Reply {
            kind,
            id: "chatcmpl-test".into(),
            created: 0,
            model: "m".into(),
            logprobs,
            include_usage: false,
            prompt_lens: vec![5],
            prompt_of: vec![0],
            eog_ids: vec![2],
        }
    }

    fn tok(id: u32, text: &str) -> GenEvent {
        GenEvent::Token { id, text: text.into(), logprob: None }
    }

    fn done() -> GenEvent {
        GenEvent::Done { finish: FinishReason::Stop, usage: Usage { prompt_tokens: 5, completion_tokens: 4, cached_prompt_tokens: 0 } }
    }

    /// Feeds events; returns the (reasoning, content) deltas of the stream chunks.
    fn run(reply: &Reply, c: &mut Choice, events: Vec<GenEvent>) -> (String, String, Vec<Value>) {
        let mut chunks = Vec::new();
        for ev in events {
            chunks.extend(apply_event(reply, c, ev).expect("no error"));
        }
        let r = chunks.iter().filter_map(|v| v["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
        let t = chunks.iter().filter_map(|v| v["choices"][0]["delta"]["content"].as_str()).collect();
        (r, t, chunks)
    }

    #[test]
    fn think_block_goes_to_reasoning_content_in_stream_and_reply() {
        let rp = reply(Kind::Chat, false);
        let mut c = Choice::new(0, Some(ReasoningSplitter::new()));
        let ev = vec![tok(10, "<th"), tok(11, "ink>Paris is"), tok(12, " in France.</think>\n\n"), tok(13, "Paris."), done()];
        let (r, t, chunks) = run(&rp, &mut c, ev);
        assert_eq!(r, "Paris is in France.");
        assert_eq!(t, "Paris.");
        assert!(chunks.iter().all(|v| !v.to_string().contains("think>")));
        let fin = rp.final_json(std::slice::from_ref(&c));
        assert_eq!(fin["choices"][0]["message"]["reasoning_content"], "Paris is in France.");
        assert_eq!(fin["choices"][0]["message"]["content"], "Paris.");
        assert_eq!(chunks.last().expect("finish chunk")["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn prompt_ending_in_think_starts_inside_the_thought() {
        let rp = reply(Kind::Chat, false);
        let mut c = Choice::new(0, Some(ReasoningSplitter::for_prompt("<|Assistant|><think>\n")));
        let (r, t, _) = run(&rp, &mut c, vec![tok(10, "Hmm, 2+2"), tok(11, "=4.</think>"), tok(12, "4"), done()]);
        assert_eq!((r.as_str(), t.as_str()), ("Hmm, 2+2=4.", "4"));
    }

    #[test]
    fn without_the_split_tags_stay_in_content() {
        let rp = reply(Kind::Chat, false);
        let mut c = Choice::new(0, None);
        let (r, t, _) = run(&rp, &mut c, vec![tok(10, "<think>x</think>"), tok(11, "y"), done()]);
        assert_eq!((r.as_str(), t.as_str()), ("", "<think>x</think>y"));
        let fin = rp.final_json(std::slice::from_ref(&c));
        assert!(fin["choices"][0]["message"].get("reasoning_content").is_none());
    }

    #[test]
    fn eog_carrier_token_adds_text_but_no_logprob() {
        let rp = reply(Kind::Completion, true);
        let mut c = Choice::new(0, None);
        let lp = |t: &str| Some(TokenLogprob { token: t.into(), bytes: t.as_bytes().to_vec(), logprob: -0.5, top: vec![(t.into(), t.as_bytes().to_vec(), -0.5)] });
        let events = vec![
            GenEvent::Token { id: 10, text: "ab".into(), logprob: lp("ab") },
            GenEvent::Token { id: 11, text: "".into(), logprob: lp("\u{e9}") },
            GenEvent::Token { id: 2, text: "c".into(), logprob: lp("</s>") },
            done(),
        ];
        let (_, _, chunks) = run(&rp, &mut c, events);
        let streamed: String = chunks.iter().filter_map(|v| v["choices"][0]["text"].as_str()).collect();
        assert_eq!(streamed, "abc");
        let fin = rp.final_json(std::slice::from_ref(&c));
        assert_eq!(fin["choices"][0]["text"], "abc");
        let lps = &fin["choices"][0]["logprobs"];
        assert_eq!(lps["tokens"], json!(["ab", "\u{e9}"]));
        assert_eq!(lps["text_offset"], json!([0, 2]));
        assert_eq!(lps["top_logprobs"][0], json!({"ab": -0.5}));
    }

    #[test]
    fn usage_counts_a_shared_prompt_once() {
        let mut rp = reply(Kind::Chat, false);
        rp.prompt_lens = vec![5, 5, 7];
        rp.prompt_of = vec![0, 0, 1];
        let mut cs: Vec<Choice> = (0..3).map(|i| Choice::new(i, None)).collect();
        for (i, c) in cs.iter_mut().enumerate() {
            c.usage = Some(Usage { prompt_tokens: rp.prompt_lens[i], completion_tokens: 3, cached_prompt_tokens: if i == 1 { 5 } else { 0 } });
        }
        let u = rp.usage(&cs);
        assert_eq!(u["prompt_tokens"], 12);
        assert_eq!(u["completion_tokens"], 9);
        assert_eq!(u["total_tokens"], 21);
    }
}
