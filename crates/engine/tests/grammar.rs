//! Constrained decoding on the real qwen2.5-0.5b: outputs always match their grammar, alone
//! and mixed with free sequences in one batch, with `n > 1` seeded sampling; the free
//! sequences' greedy outputs do not change when constrained ones share their steps; hostile
//! grammars are refused quickly with typed errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jikji_engine::grammar::{GrammarCompiler, GrammarError, GrammarLimits, GrammarSpec};
use jikji_engine::serve::{Engine, EngineHandle, FinishReason, GenEvent, GenRequest, GenStream, ServeConfig};
use jikji_engine::{ChatFormatter, GenerateParams, Generator, Sampler, SamplerConfig, StopReason};
use jikji_gguf::GgufFile;
use jikji_models::Model;
use jikji_testkit::real_model;
use jikji_tokenizer::Tokenizer;
use serde_json::{json, Value};

const QWEN25: &str = "qwen2.5-coder-0.5b-instruct.gguf";

struct Setup {
    h: EngineHandle,
    model: Arc<Model>,
    tok: Arc<Tokenizer>,
}

fn start(parallel: usize) -> Option<Setup> {
    start_with(parallel, true)
}

fn start_with(parallel: usize, fast_forward: bool) -> Option<Setup> {
    let path = real_model(QWEN25)?;
    let file = Arc::new(GgufFile::open(&path).expect("open gguf"));
    let tok = Arc::new(Tokenizer::from_gguf(&file).expect("tokenizer"));
    let chat = ChatFormatter::from_gguf(&file).expect("chat template");
    let model = Arc::new(Model::load(file).expect("model"));
    let cfg = ServeConfig { n_ctx: 1024, parallel, kv_tokens: parallel * 1024, fast_forward, ..ServeConfig::default() };
    let h = Engine::start(model.clone(), tok.clone(), Some(chat), "qwen".into(), cfg).expect("engine");
    Some(Setup { h, model, tok })
}

fn prompt(h: &EngineHandle, text: &str) -> Vec<u32> {
    h.chat_prompt(&json!([{"role": "user", "content": text}]), true).expect("prompt")
}

fn collect(mut s: GenStream) -> (String, FinishReason) {
    let mut text = String::new();
    loop {
        match s.blocking_next() {
            Some(GenEvent::Token { text: t, .. }) => text.push_str(&t),
            Some(GenEvent::Done { finish, .. }) => return (text, finish),
            Some(GenEvent::Error(e)) => panic!("generation failed: {e}"),
            None => panic!("stream ended without Done"),
        }
    }
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1, "maxItems": 3}
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": false
    })
}

fn check_person(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    let o = v.as_object().expect("an object");
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["age", "name", "tags"], "{text}");
    assert!(o["name"].as_str().is_some_and(|n| n.chars().count() <= 20), "{text}");
    assert!(o["age"].as_u64().is_some_and(|a| a <= 150), "{text}");
    let tags = o["tags"].as_array().expect("tags");
    assert!((1..=3).contains(&tags.len()) && tags.iter().all(|t| ["a", "b", "c"].contains(&t.as_str().unwrap_or(""))));
}

fn constrained(h: &EngineHandle, p: Vec<u32>, spec: &GrammarSpec, sampling: SamplerConfig) -> GenRequest {
    let g = h.grammar_compiler().expect("compiler").compile(spec).expect("compiles");
    GenRequest { sampling, grammar: Some(g), ..GenRequest::greedy(p, 120) }
}

#[test]
fn json_schema_outputs_parse_and_validate_greedy_and_sampled() {
    let Some(st) = start(4) else { return };
    let h = &st.h;
    let spec = GrammarSpec::JsonSchema(person_schema());
    let p = prompt(h, "Describe a fictional person as JSON.");
    let (text, finish) = collect(h.submit(constrained(h, p.clone(), &spec, SamplerConfig::greedy())).expect("submit"));
    assert_eq!(finish, FinishReason::Stop);
    check_person(&text);
    for seed in 0..3 {
        let sampling = SamplerConfig { temperature: 1.0, seed, ..SamplerConfig::default() };
        let (text, _) = collect(h.submit(constrained(h, p.clone(), &spec, sampling)).expect("submit"));
        check_person(&text);
    }
}

#[test]
fn forced_tokens_are_taken_without_sampling_and_change_no_output() {
    let (Some(on), Some(off)) = (start_with(4, true), start_with(4, false)) else { return };
    let spec = GrammarSpec::JsonSchema(person_schema());
    let qs = ["Describe a fictional person as JSON.", "서울에 사는 사람을 JSON으로 만들어 주세요."];
    let run = |st: &Setup, q: &str, sampling: SamplerConfig| {
        let h = &st.h;
        collect(h.submit(constrained(h, prompt(h, q), &spec, sampling)).expect("submit"))
    };
    for q in qs {
        let (a, fa) = run(&on, q, SamplerConfig::greedy());
        let (b, fb) = run(&off, q, SamplerConfig::greedy());
        assert_eq!((&a, fa), (&b, fb), "fast-forwarding changed the greedy output for {q:?}");
        check_person(&a);
    }
    let (m_on, m_off) = (on.h.metrics(), off.h.metrics());
    // Seeded sampling draws only for sampled tokens: valid and reproducible.
    let sampled = SamplerConfig { temperature: 0.8, seed: 7, ..SamplerConfig::default() };
    let (a, _) = run(&on, qs[0], sampled.clone());
    check_person(&a);
    assert_eq!(run(&on, qs[0], sampled).0, a);
    assert_eq!(m_on.generated_tokens_total, m_off.generated_tokens_total, "the same tokens, counted the same");
    assert_eq!(m_off.forced_tokens_total, 0);
    // The keys, quotes and separators of the schema are forced: a good share of the reply.
    assert!(m_on.forced_tokens_total * 5 >= m_on.generated_tokens_total, "{} of {}", m_on.forced_tokens_total, m_on.generated_tokens_total);
}

#[test]
fn mixed_batch_keeps_free_outputs_and_constrained_outputs_unchanged() {
    let Some(st) = start(8) else { return };
    let h = &st.h;
    let spec = GrammarSpec::JsonSchema(person_schema());
    let qs = ["Name a colour.", "What is 2+2?", "한국의 수도는?", "Say hello."];
    let free = |q: &str| GenRequest::greedy(prompt(h, q), 24);
    let alone_free: Vec<String> = qs.iter().map(|q| collect(h.submit(free(q)).expect("submit")).0).collect();
    let alone_json: Vec<String> = qs
        .iter()
        .map(|q| collect(h.submit(constrained(h, prompt(h, q), &spec, SamplerConfig::greedy())).expect("submit")).0)
        .collect();
    // All eight together.
    let mut streams = Vec::new();
    for q in &qs {
        streams.push(h.submit(free(q)).expect("submit"));
        streams.push(h.submit(constrained(h, prompt(h, q), &spec, SamplerConfig::greedy())).expect("submit"));
    }
    let outs: Vec<String> = streams.into_iter().map(|s| collect(s).0).collect();
    for (k, q) in qs.iter().enumerate() {
        assert_eq!(outs[2 * k], alone_free[k], "free output of {q:?} changed in a mixed batch");
        assert_eq!(outs[2 * k + 1], alone_json[k], "constrained output of {q:?} changed in a mixed batch");
        check_person(&outs[2 * k + 1]);
    }
}

#[test]
fn n_choices_share_one_compile_and_seeded_sampling_repeats() {
    let Some(st) = start(4) else { return };
    let h = &st.h;
    let spec = GrammarSpec::Regex(r"[0-9]{3}-[0-9]{4}".into());
    let g = h.grammar_compiler().expect("compiler").compile(&spec).expect("compiles");
    let p = prompt(h, "Give me a phone number.");
    let run = |seed: u64| {
        let sampling = SamplerConfig { temperature: 1.2, seed, ..SamplerConfig::default() };
        let streams: Vec<GenStream> = (0..3)
            .map(|j| {
                let sampling = SamplerConfig { seed: seed + j, ..sampling.clone() };
                h.submit(GenRequest { sampling, grammar: Some(g.clone()), ..GenRequest::greedy(p.clone(), 20) })
                    .expect("submit")
            })
            .collect();
        streams.into_iter().map(|s| collect(s)).collect::<Vec<_>>()
    };
    let a = run(7);
    let re = regex::Regex::new(r"^[0-9]{3}-[0-9]{4}$").expect("regex");
    for (text, finish) in &a {
        assert!(re.is_match(text), "{text:?}");
        assert_eq!(*finish, FinishReason::Stop);
    }
    assert_eq!(a, run(7), "the same seeds give the same constrained outputs");
}

#[test]
fn choice_and_lark_outputs_are_members_of_their_language() {
    let Some(st) = start(2) else { return };
    let h = &st.h;
    let choices = vec!["긍정".to_string(), "부정".to_string(), "중립".to_string()];
    let p = prompt(h, "Is 'I love it' positive or negative?");
    let (text, _) = collect(h.submit(constrained(h, p.clone(), &GrammarSpec::Choice(choices.clone()), SamplerConfig::greedy())).expect("submit"));
    assert!(choices.contains(&text), "{text:?}");
    let lark = r#"start: "answer: " ("yes" | "no") "." "#.to_string();
    let (text, _) = collect(h.submit(constrained(h, p, &GrammarSpec::Lark(lark), SamplerConfig::greedy())).expect("submit"));
    assert!(text == "answer: yes." || text == "answer: no.", "{text:?}");
}

#[test]
fn generator_follows_a_grammar_without_the_serving_loop() {
    let Some(st) = start(1) else { return };
    let compiler = GrammarCompiler::new(st.tok.clone(), st.model.info().n_vocab, GrammarLimits::default()).expect("compiler");
    let mut g = compiler.compile(&GrammarSpec::JsonSchema(person_schema())).expect("compiles");
    let mut gen = Generator::new(&st.model, &st.tok, 512).expect("generator");
    let p = prompt(&st.h, "Describe a person as JSON.");
    let mut sampler = Sampler::new(SamplerConfig::greedy()).expect("sampler");
    let params = GenerateParams { max_tokens: 120, ..GenerateParams::default() };
    let out = gen.generate_constrained(&p, &params, &mut sampler, Some(&mut g), |_| std::ops::ControlFlow::Continue(())).expect("generate");
    check_person(&out.text);
    assert!(matches!(out.stop, StopReason::GrammarComplete | StopReason::Eog(_)), "{:?}", out.stop);
}

#[test]
fn hostile_grammars_are_refused_quickly_with_typed_errors() {
    let Some(st) = start(1) else { return };
    let c = st.h.grammar_compiler().expect("compiler");
    let timed_ref = |spec: &GrammarSpec| {
        let t0 = Instant::now();
        let r = c.compile(spec).map(|_| ());
        let dt = t0.elapsed();
        assert!(dt < Duration::from_secs(2), "{} took {dt:?}", spec.kind());
        r
    };
    let timed = |spec: GrammarSpec| timed_ref(&spec);
    let mut deep = json!({"type": "string"});
    for _ in 0..20_000 {
        let mut o = serde_json::Map::new();
        o.insert("type".into(), json!("array"));
        o.insert("items".into(), deep);
        deep = Value::Object(o);
    }
    // (Dropping a 20,000-level value recurses: it is leaked instead.)
    let deep = GrammarSpec::JsonSchema(deep);
    assert!(matches!(timed_ref(&deep), Err(GrammarError::TooDeep { .. })));
    std::mem::forget(deep);
    let props: serde_json::Map<String, Value> =
        (0..60_000).map(|i| (format!("field_{i:06}"), json!({"type": "string", "description": "x".repeat(60)}))).collect();
    let big = json!({"type": "object", "properties": props});
    assert!(matches!(timed(GrammarSpec::JsonSchema(big)), Err(GrammarError::TooLarge { .. })));
    // Unsupported keywords are named.
    let e = timed(GrammarSpec::JsonSchema(json!({"type": "object", "unevaluatedProperties": false, "x-nope": 1, "patternProperties": {"^a": {}}, "if": {}})));
    if let Err(e) = &e {
        assert!(e.to_string().contains("if") || e.to_string().contains("unevaluated"), "{e}");
    } else {
        panic!("an unsupported keyword compiled: {e:?}");
    }
    // Pathological regexes: refused or compiled within the bound, never a hang.
    for rx in ["(a|aa)*b", "(a*)*b", "(x+x+)+y", "[a-z]{1000}{1000}", "(.*a){20}"] {
        let _ = timed(GrammarSpec::Regex(rx.into()));
    }
    // Left-recursive and ambiguous grammars: the Earley parser accepts both in bounded time.
    let _ = timed(GrammarSpec::Lark("start: e\ne: e \"+\" e | e \"*\" e | NUMBER\nNUMBER: /[0-9]+/".into()));
    let _ = timed(GrammarSpec::Lark("start: a\na: a \"x\" | \"x\"".into()));
    assert!(timed(GrammarSpec::Lark("start: nope".into())).is_err(), "an undefined rule is an error");
    // Left recursion without a base case matches nothing: refused at compile (first mask).
    let e = timed(GrammarSpec::Lark("start: a\na: a \"x\"".into())).expect_err("an empty language");
    assert!(e.to_string().contains("matches no output"), "{e}");
    // A grammar whose first mask runs past llguidance's Earley item budget.
    let wide = format!(
        "start: {}\n{}",
        (0..3000).map(|i| format!("r{i}")).collect::<Vec<_>>().join(" "),
        (0..3000).map(|i| format!("r{i}: \"a\"?")).collect::<Vec<_>>().join("\n")
    );
    assert!(matches!(timed(GrammarSpec::Lark(wide)), Err(GrammarError::Compile { .. })));
    assert!(timed(GrammarSpec::Choice(vec![])).is_err());
}
