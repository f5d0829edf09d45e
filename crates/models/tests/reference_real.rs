//! The three real models against llama.cpp's outputs (`tests/fixtures/reference/`):
//! top-1 agreement where the reference is confident, top-8 logits, prompt NLL, and greedy
//! continuations up to the first near-tie. A missing model file fails the test with the
//! command to fetch it (`JIKJI_SKIP_REAL_MODELS=1` skips instead).

mod common;

use common::{argmax, greedy, load_model};
use jikji_testkit::reference::Reference;
use jikji_testkit::{logsumexp, real_model};

/// Reference margins below this are near-ties a correct engine may resolve differently.
const MARGIN: f32 = 0.1;
const MAX_MEAN_TOP8_DELTA: f64 = 0.15;
const MAX_NLL_REL: f64 = 0.01;

fn check(model_file: &str) {
    let Some(path) = real_model(model_file) else { return };
    let reference = Reference::for_model(model_file);
    let model = load_model(&path);
    let n_vocab = model.info().n_vocab;
    // Every measurement is printed before the first failure is reported.
    let mut failures: Vec<String> = Vec::new();

    for case in &reference.logits {
        let n = case.ids.len();
        let mut cache = model.new_cache(n).expect("cache");
        let logits = model.forward(&case.ids, &mut cache, true).expect("forward");
        assert_eq!(logits.len(), n * n_vocab);
        assert_eq!(case.positions.len(), n, "fixture positions vs ids");
        let (mut sum_delta, mut max_delta, mut count) = (0.0f64, 0.0f32, 0usize);
        let mut top1_checked = 0;
        for (i, pos) in case.positions.iter().enumerate() {
            let row = &logits[i * n_vocab..(i + 1) * n_vocab];
            if pos.margin() >= MARGIN {
                top1_checked += 1;
                if argmax(row) != pos.top[0].0 {
                    failures.push(format!(
                        "`{}` position {i}: top-1 {} vs reference {} (reference margin {})",
                        case.prompt,
                        argmax(row),
                        pos.top[0].0,
                        pos.margin()
                    ));
                }
            }
            for &(id, want) in &pos.top {
                let d = (row[id as usize] - want).abs();
                sum_delta += d as f64;
                max_delta = max_delta.max(d);
                count += 1;
            }
        }
        let mean_delta = sum_delta / count.max(1) as f64;
        let nll: f64 = (0..n - 1)
            .map(|i| {
                let row = &logits[i * n_vocab..(i + 1) * n_vocab];
                logsumexp(row) - row[case.ids[i + 1] as usize] as f64
            })
            .sum::<f64>()
            / (n - 1).max(1) as f64;
        let rel = (nll - case.mean_nll).abs() / case.mean_nll.abs();
        eprintln!(
            "{model_file} `{}`: {n} tokens, top-1 checked at {top1_checked}, top-8 |Δ| mean {mean_delta:.4} max {max_delta:.4}, \
             nll {nll:.5} vs {:.5} ({:.3}%)",
            case.prompt,
            case.mean_nll,
            rel * 100.0
        );
        if mean_delta > MAX_MEAN_TOP8_DELTA {
            failures.push(format!("`{}`: mean top-8 |Δ| {mean_delta:.4} > {MAX_MEAN_TOP8_DELTA}", case.prompt));
        }
        if rel > MAX_NLL_REL {
            failures.push(format!("`{}`: mean_nll {nll:.5} vs {:.5} ({:.3}% off)", case.prompt, case.mean_nll, rel * 100.0));
        }
    }

    for case in &reference.greedy {
        let ours = greedy(&model, &case.prompt_ids, case.ids.len());
        let mut agreed = 0;
        for (step, ((&a, &b), &m)) in ours.iter().zip(&case.ids).zip(&case.margins).enumerate() {
            if m < MARGIN {
                break;
            }
            if a != b {
                failures.push(format!("greedy `{}` step {step}: {a} vs reference {b} (margin {m})", case.prompt));
                break;
            }
            agreed += 1;
        }
        let identical = ours == case.ids;
        eprintln!("{model_file} greedy `{}`: {agreed} steps agree before the first near-tie, all 32 identical: {identical}", case.prompt);
    }
    assert!(failures.is_empty(), "{model_file} differs from llama.cpp:\n{}", failures.join("\n"));
}

#[test]
fn smollm2_135m_q4_1_matches_llama_cpp() {
    check("SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn gemma3_270m_q4_k_m_matches_llama_cpp() {
    check("gemma-3-270m-q4_k_m.gguf");
}

#[test]
fn qwen2_5_coder_0_5b_matches_llama_cpp() {
    check("qwen2.5-coder-0.5b-instruct.gguf");
}
