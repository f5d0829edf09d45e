//! Generation on real model files: the tiny random-weight llama/qwen3 fixtures (greedy
//! continuations from llama.cpp), and the real gemma3 file for chat-prompt tokenization.

use std::ops::ControlFlow;
use std::sync::Arc;

use jikji_engine::{
    chat, tokenize_chat_prompt, ChatFormatter, GenerateParams, Generator, Sampler, SamplerConfig, StopReason,
    TemplateSource,
};
use jikji_gguf::GgufFile;
use jikji_models::Model;
use jikji_testkit::tiny::TinyReference;
use jikji_tokenizer::Tokenizer;

fn load(path: &std::path::Path) -> (Model, Tokenizer) {
    let file = Arc::new(GgufFile::open(path).expect("open gguf"));
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let model = Model::load(file).expect("model");
    (model, tok)
}

fn greedy() -> Sampler {
    Sampler::new(SamplerConfig::greedy()).unwrap()
}

fn params(n: usize) -> GenerateParams {
    GenerateParams { max_tokens: n, ..GenerateParams::default() }
}

fn greedy_matches_llama_cpp(name: &str) {
    let r = TinyReference::load(name);
    let (model, tok) = load(&r.gguf_path());
    for p in &r.prompts {
        let mut g = Generator::new(&model, &tok, 64).unwrap();
        let mut streamed = String::new();
        let out = g
            .generate(&p.ids, &params(p.llama_cpp.greedy.len()), &mut greedy(), |s| {
                streamed.push_str(s);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(out.ids, p.llama_cpp.greedy, "{name}: prompt {:?}", p.text);
        assert_eq!(out.stop, StopReason::MaxTokens);
        assert_eq!(out.prompt_ids, p.ids);
        assert_eq!(streamed, out.text, "streamed pieces must add up to the text");
        assert_eq!(out.timings.prompt_evaluated, p.ids.len());
        assert_eq!(out.timings.generated, out.ids.len());
    }
}

#[test]
fn greedy_generation_reproduces_llama_cpp_on_tiny_llama() {
    greedy_matches_llama_cpp("llama-1");
}

#[test]
fn greedy_generation_reproduces_llama_cpp_on_tiny_qwen3() {
    greedy_matches_llama_cpp("qwen3-1");
}

#[test]
fn cache_reuse_across_calls_gives_the_same_tokens_as_a_fresh_cache() {
    let r = TinyReference::load("llama-1");
    let (model, tok) = load(&r.gguf_path());
    let p = &r.prompts[1];
    let mut g = Generator::new(&model, &tok, 64).unwrap();
    let first = g.generate(&p.ids, &params(6), &mut greedy(), |_| ControlFlow::Continue(())).unwrap();
    // Second turn: the old prompt, what was generated, then a new tail (like a chat turn).
    let mut next = p.ids.clone();
    next.extend_from_slice(&first.ids);
    next.extend_from_slice(&[291, 436]);
    let reused = g.generate(&next, &params(8), &mut greedy(), |_| ControlFlow::Continue(())).unwrap();
    // Everything fed to the model before was reused: prompt + all generated ids but the last.
    assert_eq!(reused.timings.prompt_reused, p.ids.len() + first.ids.len() - 1);
    assert_eq!(reused.timings.prompt_evaluated, next.len() - reused.timings.prompt_reused);
    let mut fresh = Generator::new(&model, &tok, 64).unwrap();
    let expected = fresh.generate(&next, &params(8), &mut greedy(), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(reused.ids, expected.ids);
    // A diverging prompt truncates the cache to the common prefix and still matches.
    let mut other = p.ids.clone();
    other.push(69);
    let a = g.generate(&other, &params(5), &mut greedy(), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(a.timings.prompt_reused, p.ids.len());
    let b = Generator::new(&model, &tok, 64)
        .unwrap()
        .generate(&other, &params(5), &mut greedy(), |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(a.ids, b.ids);
    // The same prompt again re-evaluates only its last token.
    let c = g.generate(&other, &params(5), &mut greedy(), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!((c.timings.prompt_reused, c.timings.prompt_evaluated), (other.len() - 1, 1));
    assert_eq!(c.ids, b.ids);
}

#[test]
fn generation_stops_when_the_context_is_full() {
    let r = TinyReference::load("llama-1");
    let (model, tok) = load(&r.gguf_path());
    let p = &r.prompts[1];
    let n_ctx = p.ids.len() + 3;
    let mut g = Generator::new(&model, &tok, n_ctx).unwrap();
    let out = g.generate(&p.ids, &params(100), &mut greedy(), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(out.stop, StopReason::ContextFull);
    // n_ctx - prompt tokens were fed back; the last sampled one needs no slot.
    assert_eq!(out.ids.len(), 4);
    assert_eq!(out.ids[..], r.prompts[1].llama_cpp.greedy[..4]);
    let too_long = vec![291u32; n_ctx + 1];
    assert!(matches!(
        g.generate(&too_long, &params(1), &mut greedy(), |_| ControlFlow::Continue(())),
        Err(jikji_engine::EngineError::PromptTooLong { .. })
    ));
    assert!(matches!(
        g.generate(&[], &params(1), &mut greedy(), |_| ControlFlow::Continue(())),
        Err(jikji_engine::EngineError::EmptyPrompt)
    ));
    // An id outside the vocabulary is an error, not a panic, and the generator stays usable.
    assert!(g.generate(&[100_000], &params(1), &mut greedy(), |_| ControlFlow::Continue(())).is_err());
    let again = g.generate(&p.ids, &params(2), &mut greedy(), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(again.ids[..], r.prompts[1].llama_cpp.greedy[..2]);
}

#[test]
fn stop_string_ends_generation_and_is_cut_from_the_text() {
    let r = TinyReference::load("llama-1");
    let (model, tok) = load(&r.gguf_path());
    let p = &r.prompts[1];
    let full = Generator::new(&model, &tok, 64)
        .unwrap()
        .generate(&p.ids, &params(16), &mut greedy(), |_| ControlFlow::Continue(()))
        .unwrap();
    // Pick a stop string from the middle of the greedy text (whole characters).
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() >= 6, "greedy text too short: {:?}", full.text);
    let start = chars.len() / 2;
    let stop: String = chars[start..start + 2].iter().collect();
    let expected_prefix = &full.text[..full.text.find(&stop).unwrap()];
    let mut streamed = String::new();
    let out = Generator::new(&model, &tok, 64)
        .unwrap()
        .generate(
            &p.ids,
            &GenerateParams { max_tokens: 16, stop: vec![stop.clone()], ..Default::default() },
            &mut greedy(),
            |s| {
                streamed.push_str(s);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(out.stop, StopReason::StopString(stop));
    assert_eq!(out.text, expected_prefix);
    assert_eq!(streamed, expected_prefix);
    assert!(out.ids.len() < 16);
    assert_eq!(out.ids[..], full.ids[..out.ids.len()]);
}

#[test]
fn callback_break_cancels_generation() {
    let r = TinyReference::load("llama-1");
    let (model, tok) = load(&r.gguf_path());
    let mut calls = 0;
    let out = Generator::new(&model, &tok, 64)
        .unwrap()
        .generate(&r.prompts[0].ids, &params(16), &mut greedy(), |_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(out.stop, StopReason::Cancelled);
    assert_eq!(calls, 1);
    assert!(out.ids.len() < 16);
}

#[test]
fn seeded_sampling_is_reproducible_on_a_real_model() {
    let r = TinyReference::load("qwen3-1");
    let (model, tok) = load(&r.gguf_path());
    let run = |seed| {
        let cfg = SamplerConfig { temperature: 1.5, top_k: 0, top_p: 1.0, min_p: 0.0, seed, ..Default::default() };
        let mut s = Sampler::new(cfg).unwrap();
        Generator::new(&model, &tok, 64)
            .unwrap()
            .generate(&r.prompts[0].ids, &params(16), &mut s, |_| ControlFlow::Continue(()))
            .unwrap()
            .ids
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn chat_prompt_with_bos_in_template_gets_a_single_bos() {
    let Some(path) = jikji_testkit::real_model("gemma-3-270m-q4_k_m.gguf") else { return };
    let file = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    assert!(tok.add_bos(), "gemma3 adds BOS per metadata");
    let f = ChatFormatter::from_gguf(&file).unwrap();
    assert_eq!(f.source(), &TemplateSource::Builtin { name: "gemma" });
    let msgs = serde_json::Value::Array(vec![chat::message("user", "안녕하세요")]);
    let rendered = f.render(&msgs, true).unwrap();
    assert!(rendered.starts_with(tok.bos_text().unwrap()));
    let ids = tokenize_chat_prompt(&tok, &rendered).unwrap();
    let bos = tok.bos_id().unwrap();
    assert_eq!(ids[0], bos);
    assert_ne!(ids[1], bos, "BOS doubled: {:?}", &ids[..4]);
    // A text without the BOS string still gets the metadata's BOS.
    let plain = tokenize_chat_prompt(&tok, "hello").unwrap();
    assert_eq!(plain[0], bos);
    assert_eq!(plain.iter().filter(|&&i| i == bos).count(), 1);
}
