//! Byte-for-byte pins of the wire format. [`reference`] is the `serde_json::json!` reply
//! assembly the server used before the typed bodies of [`crate::wire`] existed, kept
//! verbatim as the oracle; the tests feed the same engine events to it and to
//! [`super::reply`] and compare the serialized text of every chunk and reply, then pin the
//! other routes' bodies the same way.

use jikji_engine::reasoning::ReasoningSplitter;
use jikji_engine::serve::{FinishReason, GenEvent, TokenLogprob, Usage};
use serde_json::{json, Value};

use super::reply::{self, Choice, Kind, Reply};
use crate::wire::{self, to_json_string};

/// The pre-`wire` reply assembly (from `api.rs`), unchanged but for visibility.
#[allow(dead_code)]
mod reference {
    use jikji_engine::reasoning::{Part, ReasoningSplitter};
    use jikji_engine::serve::{FinishReason, GenEvent, TokenLogprob, Usage};
    use serde_json::{json, Value};

    const FINGERPRINT: &str = concat!("jikji-", env!("CARGO_PKG_VERSION"));

    /// One choice being generated.
    pub(super) struct Choice {
        pub(super) index: usize,
        pub(super) splitter: Option<ReasoningSplitter>,
        pub(super) content: String,
        pub(super) reasoning: String,
        pub(super) logprobs: Vec<TokenLogprob>,
        /// Byte offset in `content` of each token (legacy completions `text_offset`).
        pub(super) offsets: Vec<usize>,
        pub(super) finish: Option<FinishReason>,
        pub(super) usage: Option<Usage>,
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
        pub(super) fn push_text(&mut self, text: &str) -> (String, String) {
            let parts = match &mut self.splitter {
                Some(s) => s.push(text),
                None => vec![Part::Content(text.to_string())],
            };
            self.absorb(parts)
        }

        pub(super) fn finish_text(&mut self) -> (String, String) {
            let parts = match &mut self.splitter {
                Some(s) => s.finish(),
                None => Vec::new(),
            };
            self.absorb(parts)
        }

        pub(super) fn absorb(&mut self, parts: Vec<Part>) -> (String, String) {
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

    pub(super) fn finish_str(f: &FinishReason) -> &'static str {
        match f {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }

    pub(super) fn chat_logprob_entry(lp: &TokenLogprob) -> Value {
        json!({
            "token": lp.token,
            "logprob": lp.logprob,
            "bytes": lp.bytes,
            "top_logprobs": lp.top.iter().map(|(t, b, l)| json!({"token": t, "logprob": l, "bytes": b})).collect::<Vec<_>>(),
        })
    }

    pub(super) fn legacy_logprobs(lps: &[TokenLogprob], offsets: &[usize]) -> Value {
        json!({
            "tokens": lps.iter().map(|l| l.token.clone()).collect::<Vec<_>>(),
            "token_logprobs": lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
            "top_logprobs": lps.iter().map(|l| {
                let m: serde_json::Map<String, Value> = l.top.iter().map(|(t, _, p)| (t.clone(), json!(p))).collect();
                Value::Object(m)
            }).collect::<Vec<_>>(),
            "text_offset": offsets,
        })
    }

    pub(super) fn usage_json(prompt_tokens: usize, completion_tokens: usize, cached: usize) -> Value {
        json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        })
    }

    /// Which API a generation answers.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Kind {
        Chat,
        Completion,
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
        pub(super) fn usage(&self, choices: &[Choice]) -> Value {
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
            usage_json(prompt, completion, cached)
        }

        pub(super) fn object(&self, stream: bool) -> &'static str {
            match (self.kind, stream) {
                (Kind::Chat, false) => "chat.completion",
                (Kind::Chat, true) => "chat.completion.chunk",
                (Kind::Completion, _) => "text_completion",
            }
        }

        pub(super) fn envelope(&self, stream: bool, choices: Vec<Value>) -> Value {
            let mut v = json!({
                "id": self.id,
                "object": self.object(stream),
                "created": self.created,
                "model": self.model,
                "system_fingerprint": FINGERPRINT,
                "choices": choices,
            });
            if stream && self.include_usage {
                v["usage"] = Value::Null;
            }
            v
        }

        pub(super) fn final_json(&self, choices: &[Choice]) -> Value {
            let out: Vec<Value> = choices
                .iter()
                .map(|c| {
                    let finish = c.finish.as_ref().map(finish_str);
                    match self.kind {
                        Kind::Chat => {
                            let mut msg = json!({"role": "assistant", "content": c.content});
                            if !c.reasoning.is_empty() {
                                msg["reasoning_content"] = json!(c.reasoning);
                            }
                            let logprobs = if self.logprobs {
                                json!({"content": c.logprobs.iter().map(chat_logprob_entry).collect::<Vec<_>>()})
                            } else {
                                Value::Null
                            };
                            json!({"index": c.index, "message": msg, "logprobs": logprobs, "finish_reason": finish})
                        }
                        Kind::Completion => {
                            let logprobs =
                                if self.logprobs { legacy_logprobs(&c.logprobs, &c.offsets) } else { Value::Null };
                            json!({"index": c.index, "text": c.content, "logprobs": logprobs, "finish_reason": finish})
                        }
                    }
                })
                .collect();
            let mut v = self.envelope(false, out);
            v["usage"] = self.usage(choices);
            v
        }

        /// A stream chunk for one choice.
        pub(super) fn delta_chunk(&self, c: &Choice, reasoning: &str, content: &str, lp: Option<&TokenLogprob>, offset: usize, finish: Option<&FinishReason>) -> Value {
            let choice = match self.kind {
                Kind::Chat => {
                    let mut delta = serde_json::Map::new();
                    if !reasoning.is_empty() {
                        delta.insert("reasoning_content".into(), json!(reasoning));
                    }
                    if !content.is_empty() || (lp.is_some() && reasoning.is_empty()) {
                        delta.insert("content".into(), json!(content));
                    }
                    let logprobs = match (self.logprobs, lp) {
                        (true, Some(l)) => json!({"content": [chat_logprob_entry(l)]}),
                        _ => Value::Null,
                    };
                    json!({"index": c.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish.map(finish_str)})
                }
                Kind::Completion => {
                    let logprobs = match (self.logprobs, lp) {
                        (true, Some(l)) => legacy_logprobs(std::slice::from_ref(l), &[offset]),
                        _ => Value::Null,
                    };
                    json!({"index": c.index, "text": content, "logprobs": logprobs, "finish_reason": finish.map(finish_str)})
                }
            };
            self.envelope(true, vec![choice])
        }

        pub(super) fn role_chunk(&self, index: usize) -> Value {
            self.envelope(
                true,
                vec![json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})],
            )
        }
    }

    /// Applies one engine event to a choice; returns the stream chunk it makes, if any, and
    /// an error message for `GenEvent::Error`.
    pub(super) fn apply_event(reply: &Reply, c: &mut Choice, ev: GenEvent) -> Result<Vec<Value>, String> {
        let mut chunks = Vec::new();
        match ev {
            GenEvent::Token { id, text, logprob } => {
                let logprob = if reply.eog_ids.contains(&id) { None } else { logprob };
                let offset = c.content.len();
                let (r, t) = c.push_text(&text);
                if let Some(lp) = &logprob {
                    c.offsets.push(offset);
                    c.logprobs.push(lp.clone());
                }
                let lp = if reply.logprobs { logprob.as_ref() } else { None };
                if !r.is_empty() || !t.is_empty() || lp.is_some() {
                    chunks.push(reply.delta_chunk(c, &r, &t, lp, offset, None));
                }
            }
            GenEvent::Done { finish, usage } => {
                let offset = c.content.len();
                let (r, t) = c.finish_text();
                if !r.is_empty() || !t.is_empty() {
                    chunks.push(reply.delta_chunk(c, &r, &t, None, offset, None));
                }
                chunks.push(reply.delta_chunk(c, "", "", None, offset, Some(&finish)));
                c.finish = Some(finish);
                c.usage = Some(usage);
            }
            GenEvent::Error(msg) => return Err(msg),
        }
        Ok(chunks)
    }
}

// ---------------------------------------------------------------------------------------
// Generation replies: both assemblies over the same events

fn replies(kind: Kind, logprobs: bool, include_usage: bool, prompt_lens: Vec<usize>, prompt_of: Vec<usize>) -> (Reply, reference::Reply) {
    let new = Reply {
        kind,
        id: "chatcmpl-pin".into(),
        created: 1_700_000_000,
        model: "tiny \"q\" 모델".into(),
        logprobs,
        include_usage,
        prompt_lens: prompt_lens.clone(),
        prompt_of: prompt_of.clone(),
        eog_ids: vec![2],
    };
    let old = reference::Reply {
        kind: if kind == Kind::Chat { reference::Kind::Chat } else { reference::Kind::Completion },
        id: new.id.clone(),
        created: new.created,
        model: new.model.clone(),
        logprobs,
        include_usage,
        prompt_lens,
        prompt_of,
        eog_ids: vec![2],
    };
    (new, old)
}

/// Every SSE event (role chunks, deltas, usage chunk) and the whole reply, as text, from
/// the typed assembly and from the reference.
fn render_both(
    new: &Reply,
    old: &reference::Reply,
    splitter: Option<ReasoningSplitter>,
    events: Vec<(usize, GenEvent)>,
) -> ((Vec<String>, String), (Vec<String>, String)) {
    let n = new.prompt_of.len();
    let mut nc: Vec<Choice> = (0..n).map(|i| Choice::new(i, splitter.clone())).collect();
    let mut oc: Vec<reference::Choice> = (0..n).map(|i| reference::Choice::new(i, splitter.clone())).collect();
    let (mut ns, mut os) = (Vec::new(), Vec::new());
    if new.kind == Kind::Chat {
        for i in 0..n {
            ns.push(to_json_string(&new.role_chunk(i)));
            os.push(old.role_chunk(i).to_string());
        }
    }
    for (i, ev) in events {
        let deltas = reply::apply_event(new, &mut nc[i], ev.clone()).expect("no error");
        ns.extend(deltas.iter().map(|d| to_json_string(&new.chunk(d))));
        let chunks = reference::apply_event(old, &mut oc[i], ev).expect("no error");
        os.extend(chunks.iter().map(Value::to_string));
    }
    if new.include_usage {
        ns.push(to_json_string(&new.usage_chunk(&nc)));
        let mut v = old.envelope(true, Vec::new());
        v["usage"] = old.usage(&oc);
        os.push(v.to_string());
    }
    let nf = to_json_string(&new.final_body(&nc));
    let of = old.final_json(&oc).to_string();
    ((ns, nf), (os, of))
}

fn tok(id: u32, text: &str, logprob: Option<TokenLogprob>) -> GenEvent {
    GenEvent::Token { id, text: text.into(), logprob }
}

fn done(finish: FinishReason, prompt: usize, completion: usize, cached: usize) -> GenEvent {
    GenEvent::Done { finish, usage: Usage { prompt_tokens: prompt, completion_tokens: completion, cached_prompt_tokens: cached } }
}

/// A logprob entry with awkward values: an `f32` that widens to a long `f64`, a tiny one,
/// a non-UTF-8 byte, `-inf` and NaN among the alternatives, and a repeated text.
fn lp(token: &str, logprob: f32) -> Option<TokenLogprob> {
    Some(TokenLogprob {
        token: token.into(),
        bytes: token.as_bytes().to_vec(),
        logprob,
        top: vec![
            (token.into(), token.as_bytes().to_vec(), logprob),
            ("\u{fffd}".into(), vec![0xe9], -1e-8),
            ("x\"\n".into(), b"x\"\n".to_vec(), f32::NEG_INFINITY),
            (token.into(), vec![0xff, 0x00], f32::NAN),
        ],
    })
}

#[test]
fn chat_stream_and_reply_with_reasoning_logprobs_and_usage_are_unchanged() {
    let (new, old) = replies(Kind::Chat, true, true, vec![9, 9], vec![0, 0]);
    let events = vec![
        (0, tok(10, "<th", lp("<th", -0.1))),
        (1, tok(11, "안녕", lp("안녕", -2.5))),
        (0, tok(12, "ink>hmm, 2+2", lp("ink>", -0.333))),
        (0, tok(13, "=4</think>\n\n", lp("=4", 0.0))),
        (0, tok(14, "Four \"4\"", lp("Four", -7.25))),
        (1, tok(15, "", lp("\u{e9}", -0.5))),
        (0, tok(2, "", lp("</s>", -0.01))),
        (1, tok(2, "!", lp("</s>", -0.01))),
        (1, done(FinishReason::Length, 9, 3, 9)),
        (0, done(FinishReason::Stop, 9, 5, 0)),
    ];
    let (n, o) = render_both(&new, &old, Some(ReasoningSplitter::new()), events);
    assert_eq!(n, o);
}

#[test]
fn chat_stream_and_reply_without_options_are_unchanged() {
    let (new, old) = replies(Kind::Chat, false, false, vec![5], vec![0]);
    let events = vec![(0, tok(10, "<think>x</think>", lp("a", -1.0))), (0, tok(11, "y\u{0}", None)), (0, done(FinishReason::Stop, 5, 2, 1))];
    let (n, o) = render_both(&new, &old, None, events);
    assert_eq!(n, o);
}

#[test]
fn completion_stream_and_reply_with_logprobs_and_usage_are_unchanged() {
    let (new, old) = replies(Kind::Completion, true, true, vec![4, 4, 6, 6], vec![0, 0, 1, 1]);
    let mut events = Vec::new();
    for i in 0..4 {
        events.push((i, tok(10, "ab", lp("ab", -0.1 * i as f32))));
        events.push((i, tok(11, "", lp("\u{e9}", -0.2))));
        events.push((i, tok(2, "c", lp("</s>", -0.3))));
        events.push((i, done(FinishReason::Stop, [4, 4, 6, 6][i], 3, [0, 4, 0, 6][i])));
    }
    let (n, o) = render_both(&new, &old, None, events);
    assert_eq!(n, o);
}

#[test]
fn completion_stream_and_reply_without_options_are_unchanged() {
    let (new, old) = replies(Kind::Completion, false, false, vec![3], vec![0]);
    let events = vec![(0, tok(10, "one", lp("one", -0.1))), (0, tok(11, " two", None)), (0, done(FinishReason::Length, 3, 2, 0))];
    let (n, o) = render_both(&new, &old, None, events);
    assert_eq!(n, o);
}

#[test]
fn chat_completion_keys_and_order_are_pinned() {
    let (new, _) = replies(Kind::Chat, false, false, vec![5], vec![0]);
    let mut c = vec![Choice::new(0, None)];
    for ev in [tok(10, "Hi", None), done(FinishReason::Stop, 5, 1, 0)] {
        reply::apply_event(&new, &mut c[0], ev).expect("no error");
    }
    let fp = wire::FINGERPRINT;
    assert_eq!(
        to_json_string(&new.final_body(&c)),
        format!(
            r#"{{"id":"chatcmpl-pin","object":"chat.completion","created":1700000000,"model":"tiny \"q\" 모델","system_fingerprint":"{fp}","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hi"}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6,"prompt_tokens_details":{{"cached_tokens":0}}}}}}"#
        )
    );
    let (new, _) = replies(Kind::Chat, false, true, vec![5], vec![0]);
    let deltas = reply::apply_event(&new, &mut c[0], tok(11, "!", None)).expect("no error");
    assert_eq!(
        to_json_string(&new.chunk(&deltas[0])),
        format!(
            r#"{{"id":"chatcmpl-pin","object":"chat.completion.chunk","created":1700000000,"model":"tiny \"q\" 모델","system_fingerprint":"{fp}","choices":[{{"index":0,"delta":{{"content":"!"}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        )
    );
}

// ---------------------------------------------------------------------------------------
// The other routes' bodies against the `json!` they were built with

#[test]
fn error_bodies_are_unchanged() {
    let reference = |e: &crate::ApiError| {
        json!({"error": {"message": e.message, "type": e.kind, "param": e.param, "code": e.code}}).to_string()
    };
    for e in [
        crate::ApiError::invalid("temperature", "temperature must be in [0, 2] \"really\"\n"),
        crate::ApiError::bad_json("not JSON"),
        crate::ApiError::queue_full(3),
        crate::ApiError::internal("generation failed: 줄"),
    ] {
        assert_eq!(to_json_string(&e.wire()), reference(&e));
        assert_eq!(e.body().to_string(), reference(&e));
    }
}

#[test]
fn model_health_and_token_bodies_are_unchanged() {
    let model = |id: &str, created: u64| json!({"id": id, "object": "model", "created": created, "owned_by": "jikji"});
    let object = wire::ModelObject::new("tiny", 17);
    assert_eq!(to_json_string(&object), model("tiny", 17).to_string());
    let list = wire::ModelList { object: "list", data: vec![object] };
    assert_eq!(to_json_string(&list), json!({"object": "list", "data": [model("tiny", 17)]}).to_string());
    for status in ["ok", "shutting_down"] {
        assert_eq!(to_json_string(&wire::HealthStatus { status }), json!({"status": status}).to_string());
    }

    let ids = vec![1u32, 2, 463];
    let body = wire::TokenizeResponse { tokens: wire::TokenList::Ids(ids.clone()) };
    let tokens: Vec<Value> = ids.iter().map(|&id| json!(id)).collect();
    assert_eq!(to_json_string(&body), json!({"tokens": tokens}).to_string());
    let pieces = vec![
        wire::TokenPiece { id: 5, piece: wire::Piece::Text("héllo".into()) },
        wire::TokenPiece { id: 6, piece: wire::Piece::Bytes(vec![0xe9, 0x80]) },
    ];
    let body = wire::TokenizeResponse { tokens: wire::TokenList::WithPieces(pieces) };
    let tokens = vec![json!({"id": 5, "piece": "héllo"}), json!({"id": 6, "piece": vec![0xe9u8, 0x80]})];
    assert_eq!(to_json_string(&body), json!({"tokens": tokens}).to_string());
    let body = wire::DetokenizeResponse { content: "a\"b\n".into() };
    assert_eq!(to_json_string(&body), json!({"content": "a\"b\n"}).to_string());
}
