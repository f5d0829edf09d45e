//! The serving engine (`jikji_engine::serve`) on real and tiny models: batching never
//! changes a request's greedy output, prefix blocks are shared, cancelled requests free
//! their blocks, and malformed or oversized requests are refused with typed errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jikji_engine::serve::{
    Engine, EngineHandle, FinishReason, GenEvent, GenRequest, GenStream, MetricsSnapshot, ServeConfig, SubmitError,
    Usage,
};
use jikji_engine::{chat, ChatFormatter, SamplerConfig};
use jikji_gguf::GgufFile;
use jikji_models::Model;
use jikji_testkit::real_model;
use jikji_testkit::tiny::TinyReference;
use jikji_tokenizer::Tokenizer;

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const QWEN25: &str = "qwen2.5-coder-0.5b-instruct.gguf";

fn start(path: &std::path::Path, cfg: ServeConfig) -> EngineHandle {
    let file = Arc::new(GgufFile::open(path).expect("open gguf"));
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let chat = ChatFormatter::from_gguf(&file).expect("chat template");
    let model = Model::load(file).expect("model");
    Engine::start(Arc::new(model), Arc::new(tok), Some(chat), "test-model".into(), cfg).expect("engine")
}

fn cfg(parallel: usize, n_ctx: usize) -> ServeConfig {
    ServeConfig { n_ctx, parallel, kv_tokens: parallel * n_ctx, ..ServeConfig::default() }
}

#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    ids: Vec<u32>,
    text: String,
    finish: FinishReason,
    usage: Usage,
}

fn collect(mut s: GenStream) -> Outcome {
    let (mut ids, mut text) = (Vec::new(), String::new());
    loop {
        match s.blocking_next() {
            Some(GenEvent::Token { id, text: t, .. }) => {
                ids.push(id);
                text.push_str(&t);
            }
            Some(GenEvent::Done { finish, usage }) => return Outcome { ids, text, finish, usage },
            Some(GenEvent::Error(e)) => panic!("generation failed: {e}"),
            None => panic!("stream ended without Done"),
        }
    }
}

fn wait_for(h: &EngineHandle, what: &str, ok: impl Fn(&MetricsSnapshot) -> bool) -> MetricsSnapshot {
    let t0 = Instant::now();
    loop {
        let m = h.metrics();
        if ok(&m) {
            return m;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {what}: {m:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Mixed Korean/English chat prompts of different lengths.
fn questions(n: usize) -> Vec<String> {
    let base = [
        "What is the capital of France?",
        "한국의 수도는 어디인가요?",
        "Write a haiku about autumn leaves.",
        "세종대왕은 누구인가요? 짧게 설명해 주세요.",
        "List three prime numbers greater than 100.",
        "Explain what a KV cache is in one sentence.",
        "김치를 만드는 방법을 간단히 알려 주세요.",
        "Translate 'good morning' into Korean.",
    ];
    (0..n).map(|i| format!("{} (#{i})", base[i % base.len()])).collect()
}

fn chat_ids(h: &EngineHandle, system: Option<&str>, user: &str) -> Vec<u32> {
    let mut msgs = Vec::new();
    if let Some(s) = system {
        msgs.push(chat::message("system", s));
    }
    msgs.push(chat::message("user", user));
    h.chat_prompt(&serde_json::Value::Array(msgs), true).expect("chat prompt")
}

/// Every request alone, then all at once: identical ids and text.
fn concurrent_equals_alone(file: &str, n: usize, max_tokens: usize) {
    let Some(path) = real_model(file) else { return };
    let h = start(&path, cfg(n, 512));
    let prompts: Vec<Vec<u32>> = questions(n).iter().map(|q| chat_ids(&h, None, q)).collect();
    let alone: Vec<Outcome> =
        prompts.iter().map(|p| collect(h.submit(GenRequest::greedy(p.clone(), max_tokens)).expect("submit"))).collect();
    let streams: Vec<GenStream> =
        prompts.iter().map(|p| h.submit(GenRequest::greedy(p.clone(), max_tokens)).expect("submit")).collect();
    let together: Vec<Outcome> = std::thread::scope(|sc| {
        let hs: Vec<_> = streams.into_iter().map(|s| sc.spawn(move || collect(s))).collect();
        hs.into_iter().map(|j| j.join().expect("collector")).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a.ids, t.ids, "{file}: request {i} changed inside a batch of {n}");
        assert_eq!(a.text, t.text, "{file}: request {i} text");
        assert_eq!(a.finish, t.finish);
        assert!(!a.ids.is_empty());
    }
    let m = wait_for(&h, "all finished", |m| m.running == 0);
    assert_eq!(m.kv_blocks_used, 0, "finished requests hold no blocks");
    assert_eq!(m.queue_depth, 0);
    assert!(m.generated_tokens_total >= 2 * n as u64);
}

#[test]
fn thirty_two_concurrent_greedy_requests_produce_the_text_each_produces_alone_smollm2() {
    concurrent_equals_alone(SMOLLM2, 32, 24);
}

#[test]
fn concurrent_greedy_requests_produce_the_text_each_produces_alone_qwen25() {
    concurrent_equals_alone(QWEN25, 8, 16);
}

#[test]
fn serving_reproduces_llama_cpp_greedy_continuations_on_tiny_models() {
    for name in ["llama-1", "qwen3-1"] {
        let r = TinyReference::load(name);
        let h = start(&r.gguf_path(), cfg(4, 64));
        let streams: Vec<GenStream> = r
            .prompts
            .iter()
            .map(|p| {
                let mut req = GenRequest::greedy(p.ids.clone(), p.llama_cpp.greedy.len());
                req.ignore_eos = true;
                h.submit(req).expect("submit")
            })
            .collect();
        for (p, s) in r.prompts.iter().zip(streams) {
            let out = collect(s);
            assert_eq!(out.ids, p.llama_cpp.greedy, "{name}: {:?}", p.text);
            assert_eq!(out.finish, FinishReason::Length);
            assert_eq!(out.usage.completion_tokens, p.llama_cpp.greedy.len());
        }
    }
}

#[test]
fn a_shared_system_prompt_is_computed_once_and_gives_the_same_output() {
    let Some(path) = real_model(SMOLLM2) else { return };
    let system = "You are a careful assistant for a Korean public library. Answer briefly and politely, \
                  in the language of the question. 도서관 이용 시간은 오전 9시부터 오후 6시까지입니다.";
    let h = start(&path, cfg(4, 512));
    let first = chat_ids(&h, Some(system), "What time does the library open?");
    let second = chat_ids(&h, Some(system), "도서관은 몇 시에 닫나요?");
    let common = first.iter().zip(&second).take_while(|(a, b)| a == b).count();
    assert!(common >= 32, "the prompts share {common} tokens");

    let a = collect(h.submit(GenRequest::greedy(first.clone(), 12)).unwrap());
    assert_eq!(a.usage.cached_prompt_tokens, 0);
    let b = collect(h.submit(GenRequest::greedy(second.clone(), 12)).unwrap());
    assert_eq!(b.usage.cached_prompt_tokens, common / 16 * 16, "full blocks of the shared prefix are reused");
    assert_eq!(b.usage.prompt_tokens, second.len());
    // The same prompt again reuses everything but its last block.
    let a2 = collect(h.submit(GenRequest::greedy(first.clone(), 12)).unwrap());
    assert_eq!(a2.usage.cached_prompt_tokens, (first.len() - 1) / 16 * 16);
    assert_eq!(a2.ids, a.ids);
    let m = h.metrics();
    assert_eq!(m.prefix_cache_hit_tokens_total, (b.usage.cached_prompt_tokens + a2.usage.cached_prompt_tokens) as u64);

    // A fresh engine (empty cache) gives the same second answer.
    let fresh = start(&path, cfg(4, 512));
    let b_fresh = collect(fresh.submit(GenRequest::greedy(second, 12)).unwrap());
    assert_eq!(b_fresh.usage.cached_prompt_tokens, 0);
    assert_eq!(b_fresh.ids, b.ids, "prefix-cached KV gives the same tokens as a recomputation");
}

#[test]
fn dropping_a_stream_cancels_it_and_frees_its_blocks() {
    let Some(path) = real_model(SMOLLM2) else { return };
    let h = start(&path, cfg(4, 512));
    let p = chat_ids(&h, None, "Tell me a very long story about a cat.");
    let mut req = GenRequest::greedy(p, 400);
    req.ignore_eos = true;
    let mut s = h.submit(req).unwrap();
    for _ in 0..3 {
        assert!(matches!(s.blocking_next(), Some(GenEvent::Token { .. })));
    }
    assert!(h.metrics().kv_blocks_used > 0);
    drop(s);
    let m = wait_for(&h, "cancellation", |m| m.running == 0);
    assert_eq!(m.kv_blocks_used, 0);
    assert_eq!(m.requests_cancelled_total, 1);
    assert_eq!(h.in_flight(), 0);
}

#[test]
fn a_full_queue_refuses_with_queue_full() {
    let Some(path) = real_model(SMOLLM2) else { return };
    let h = start(&path, ServeConfig { max_queue: 1, ..cfg(1, 512) });
    let p = chat_ids(&h, None, "Count from one to one hundred.");
    let long = || {
        let mut r = GenRequest::greedy(p.clone(), 300);
        r.ignore_eos = true;
        r
    };
    let _a = h.submit(long()).unwrap();
    wait_for(&h, "the first request to run", |m| m.running == 1);
    let _b = h.submit(long()).unwrap();
    assert_eq!(h.in_flight(), 2);
    match h.submit(long()) {
        Err(SubmitError::QueueFull { retry_after_secs }) => assert!(retry_after_secs >= 1),
        other => panic!("expected QueueFull, got {other:?}"),
    }
}

#[test]
fn oversized_and_malformed_requests_are_refused() {
    let r = TinyReference::load("llama-1");
    let h = start(&r.gguf_path(), cfg(2, 32));
    let n_vocab = h.tokenizer().n_vocab() as u32;
    match h.submit(GenRequest::greedy(vec![1; 32], 1)) {
        Err(SubmitError::PromptTooLong { prompt: 32, limit }) => assert!(limit < 32),
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    let invalid = |req: GenRequest| matches!(h.submit(req), Err(SubmitError::Invalid(_)));
    assert!(invalid(GenRequest::greedy(vec![1; 10], 30)), "prompt + max_tokens beyond n_ctx");
    assert!(invalid(GenRequest::greedy(vec![], 4)), "empty prompt");
    assert!(invalid(GenRequest::greedy(vec![n_vocab], 4)), "token out of range");
    assert!(invalid(GenRequest::greedy(vec![1, 2], 0)), "max_tokens 0");
    assert!(invalid(GenRequest { logprobs: Some(21), ..GenRequest::greedy(vec![1, 2], 4) }));
    assert!(invalid(GenRequest { logit_bias: vec![(n_vocab, 1.0)], ..GenRequest::greedy(vec![1, 2], 4) }));
    let bad_sampling = SamplerConfig { top_p: 0.0, ..SamplerConfig::default() };
    assert!(invalid(GenRequest { sampling: bad_sampling, ..GenRequest::greedy(vec![1, 2], 4) }));
    // The engine still serves after all that.
    let out = collect(h.submit(GenRequest::greedy(vec![1, 2, 3], 4)).unwrap());
    assert!(out.usage.completion_tokens <= 4 && out.usage.prompt_tokens == 3);
}

#[test]
fn stop_strings_end_the_text_before_the_match() {
    let Some(path) = real_model(SMOLLM2) else { return };
    let h = start(&path, cfg(2, 512));
    let p = chat_ids(&h, None, "Write a haiku about autumn leaves.");
    let full = collect(h.submit(GenRequest::greedy(p.clone(), 32)).unwrap());
    // A stop string from the middle of the greedy text.
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 12, "{:?}", full.text);
    let stop: String = chars[8..11].iter().collect();
    let at = full.text.find(&stop).unwrap();
    let mut req = GenRequest::greedy(p, 32);
    req.stop = vec!["never-appears".into(), stop.clone()];
    let out = collect(h.submit(req).unwrap());
    assert_eq!(out.finish, FinishReason::Stop);
    assert_eq!(out.text, full.text[..at], "stop {stop:?}");
}

#[test]
fn logprobs_are_log_softmax_values_with_sorted_alternatives() {
    let Some(path) = real_model(SMOLLM2) else { return };
    let h = start(&path, cfg(2, 512));
    let p = chat_ids(&h, None, "한국의 수도는 어디인가요?");
    let mut s = h.submit(GenRequest { logprobs: Some(5), ..GenRequest::greedy(p, 8) }).unwrap();
    let mut n = 0;
    while let Some(ev) = s.blocking_next() {
        match ev {
            GenEvent::Token { id, logprob, .. } => {
                let lp = logprob.expect("logprob requested");
                assert_eq!(lp.top.len(), 5);
                assert!(lp.logprob <= 0.0 && lp.logprob.is_finite());
                assert!(lp.top.windows(2).all(|w| w[0].2 >= w[1].2), "alternatives sorted");
                let mass: f64 = lp.top.iter().map(|t| (t.2 as f64).exp()).sum();
                assert!(mass <= 1.0 + 1e-4 && mass > 0.0, "top-5 probability mass {mass}");
                // Greedy picks the most likely token.
                assert_eq!(lp.top[0].2, lp.logprob);
                assert_eq!(lp.bytes, h.tokenizer().token_bytes(id, true).unwrap());
                n += 1;
            }
            GenEvent::Done { .. } => break,
            GenEvent::Error(e) => panic!("{e}"),
        }
    }
    assert!(n > 0);
}

#[test]
fn seeded_sampling_is_reproducible_alone_and_in_a_batch() {
    let Some(path) = real_model(SMOLLM2) else { return };
    let h = start(&path, cfg(4, 512));
    let p = chat_ids(&h, None, "Write a short poem about the sea.");
    let sampled = |seed| GenRequest {
        sampling: SamplerConfig { temperature: 0.9, seed, ..SamplerConfig::default() },
        ..GenRequest::greedy(p.clone(), 20)
    };
    let a = collect(h.submit(sampled(42)).unwrap());
    // Same seed next to other traffic.
    let others: Vec<GenStream> = (0..3).map(|i| h.submit(sampled(100 + i)).unwrap()).collect();
    let b = collect(h.submit(sampled(42)).unwrap());
    for o in others {
        collect(o);
    }
    assert_eq!(a.ids, b.ids);
    assert_eq!(a.text, b.text);
}

#[test]
fn shutdown_refuses_new_work_and_lets_running_requests_finish() {
    let r = TinyReference::load("qwen3-1");
    let h = start(&r.gguf_path(), cfg(2, 64));
    let mut req = GenRequest::greedy(r.prompts[0].ids.clone(), 10);
    req.ignore_eos = true;
    let s = h.submit(req).unwrap();
    h.begin_shutdown();
    assert_eq!(h.submit(GenRequest::greedy(vec![1, 2], 2)).unwrap_err(), SubmitError::ShuttingDown);
    let out = collect(s);
    assert_eq!(out.ids.len(), 10);
    wait_for(&h, "drain", |m| m.running == 0);
    assert_eq!(h.in_flight(), 0);
}

#[tokio::test]
async fn streams_are_usable_from_async_code() {
    let r = TinyReference::load("llama-1");
    let h = start(&r.gguf_path(), cfg(2, 64));
    let mut req = GenRequest::greedy(r.prompts[0].ids.clone(), 5);
    req.ignore_eos = true;
    let mut s = h.submit(req).unwrap();
    let mut n = 0;
    while let Some(ev) = s.next().await {
        match ev {
            GenEvent::Token { .. } => n += 1,
            GenEvent::Done { finish, usage } => {
                assert_eq!(finish, FinishReason::Length);
                assert_eq!(usage.completion_tokens, 5);
                break;
            }
            GenEvent::Error(e) => panic!("{e}"),
        }
    }
    assert_eq!(n, 5);
}

#[test]
fn requests_beyond_the_kv_capacity_wait_for_blocks_and_then_run() {
    let r = TinyReference::load("llama-1");
    // A pool of one context (64 positions = 4 blocks), slots for four.
    let h = start(&r.gguf_path(), ServeConfig { kv_memory_limit: 1, ..cfg(4, 64) });
    assert_eq!(h.metrics().kv_blocks_total, 4);
    let prompt = r.prompts[0].ids.clone();
    let req = || {
        let mut q = GenRequest::greedy(prompt.clone(), 40 - prompt.len());
        q.ignore_eos = true;
        q
    };
    let alone = collect(h.submit(req()).unwrap());
    // Each needs 40 positions (3 blocks): only one fits at a time, the others queue.
    let streams: Vec<GenStream> = (0..3).map(|_| h.submit(req()).unwrap()).collect();
    let m = h.metrics();
    assert!(m.running <= 1, "at most one sequence fits the pool: {m:?}");
    for s in streams {
        let out = collect(s);
        assert_eq!(out.ids, alone.ids);
    }
    let m = wait_for(&h, "all done", |m| m.running == 0);
    assert_eq!((m.kv_blocks_used, m.queue_depth), (0, 0));
}
