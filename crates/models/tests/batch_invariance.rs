//! `Model::forward_batch` over the paged KV pool: a sequence's logits are bit-identical
//! whether it runs alone or batched with other sequences at other positions, and however
//! its prompt is cut into prefill chunks. Tiny random-weight models of every architecture
//! and the real Q4_1 / Q4_K_M / Q6_K files (whose K-quant kernels pick float orders by row
//! count on the single-sequence path).

mod common;

use common::load_model;
use jikji_models::{BatchSeq, Model, ModelError, PagedKv};
use jikji_testkit::tiny::TinyReference;
use jikji_testkit::{real_model, tiny_gemma3_gguf, tiny_llama_gguf, tiny_qwen2_gguf, tiny_qwen3_gguf, TinyConfig, TinyGguf};
use std::sync::Arc;

const BS: usize = 4;

fn tiny(g: TinyGguf) -> Model {
    Model::load(Arc::new(g.to_gguf())).expect("load")
}

/// A sequence being run: its tokens so far (all in the pool) and its own blocks.
struct Seq {
    prompt: Vec<u32>,
    blocks: Vec<u32>,
    done: usize,
}

/// Runs `prompts` together: every step gives each unfinished sequence the next `chunk(i)`
/// tokens; returns, per sequence, its last-prompt-row logits then `n_gen` greedy decode
/// logits (all as one Vec of rows).
fn run(model: &Model, kv: &mut PagedKv, prompts: &[Vec<u32>], chunks: &[usize], n_gen: usize, first_block: u32) -> Vec<Vec<Vec<f32>>> {
    let n_vocab = model.info().n_vocab;
    let mut next_block = first_block;
    let mut seqs: Vec<Seq> = prompts
        .iter()
        .map(|p| {
            let nb = (p.len() + n_gen).div_ceil(BS);
            let blocks = (0..nb as u32).map(|i| next_block + i).collect();
            next_block += nb as u32;
            Seq { prompt: p.clone(), blocks, done: 0 }
        })
        .collect();
    let mut out: Vec<Vec<Vec<f32>>> = vec![Vec::new(); prompts.len()];
    let total = |s: &Seq| s.prompt.len() + n_gen;
    loop {
        // Feed: prompt chunks, then the last greedy token one at a time.
        let mut feeds: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, s) in seqs.iter().enumerate() {
            if s.done >= total(s) {
                continue;
            }
            if s.done < s.prompt.len() {
                let end = (s.done + chunks[i % chunks.len()]).min(s.prompt.len());
                feeds.push((i, s.prompt[s.done..end].to_vec()));
            } else if out[i].len() <= n_gen {
                let last = out[i].last().expect("logits");
                feeds.push((i, vec![argmax(last)]));
            }
        }
        feeds.retain(|(i, _)| out[*i].len() <= n_gen);
        if feeds.is_empty() {
            break;
        }
        let batch: Vec<BatchSeq> = feeds
            .iter()
            .map(|(i, toks)| {
                let s = &seqs[*i];
                BatchSeq { tokens: toks, pos0: s.done, blocks: &s.blocks, logits: s.done + toks.len() >= s.prompt.len() }
            })
            .collect();
        let want: Vec<usize> = batch.iter().zip(&feeds).filter(|(b, _)| b.logits).map(|(_, (i, _))| *i).collect();
        let logits = model.forward_batch(&batch, kv).expect("forward_batch");
        assert_eq!(logits.len(), want.len() * n_vocab);
        for (k, &i) in want.iter().enumerate() {
            out[i].push(logits[k * n_vocab..(k + 1) * n_vocab].to_vec());
        }
        for (i, toks) in &feeds {
            seqs[*i].done += toks.len();
        }
    }
    out
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

fn prompts(n_vocab: usize) -> Vec<Vec<u32>> {
    let v = n_vocab as u32;
    vec![
        (0..23).map(|i| (i * 7 + 3) % v).collect(),
        (0..5).map(|i| (i * 13 + 1) % v).collect(),
        (0..11).map(|i| (i * 31 + 2) % v).collect(),
        (0..1).map(|i| (i + 9) % v).collect(),
        (0..17).map(|i| (i * 5 + 11) % v).collect(),
    ]
}

/// Alone with one chunk vs. alone with small chunks vs. all together with mixed chunks:
/// every logits row bit-identical.
fn check_invariance(model: &Model, n_gen: usize) {
    let name = model.info().arch.clone();
    let ps = prompts(model.info().n_vocab);
    let mut kv = model.new_paged_kv(512, BS).expect("pool");
    let mut alone = Vec::new();
    for p in &ps {
        alone.push(run(model, &mut kv, std::slice::from_ref(p), &[usize::MAX], n_gen, 0).remove(0));
    }
    for (i, p) in ps.iter().enumerate() {
        let chunked = run(model, &mut kv, std::slice::from_ref(p), &[3], n_gen, 0).remove(0);
        assert!(chunked == alone[i], "{name}: sequence {i} differs when its prompt is prefilled 3 tokens at a time");
    }
    let together = run(model, &mut kv, &ps, &[usize::MAX, 2, 5, 1, 8], n_gen, 0);
    for (i, rows) in together.iter().enumerate() {
        assert_eq!(rows.len(), n_gen + 1);
        for (k, row) in rows.iter().enumerate() {
            assert!(row == &alone[i][k], "{name}: sequence {i} row {k} differs inside a batch of {}", ps.len());
        }
    }
}

#[test]
fn batched_logits_equal_alone_and_do_not_depend_on_prefill_chunks_on_tiny_models() {
    let cfg = TinyConfig::default();
    for m in [tiny(tiny_llama_gguf(&cfg, 5)), tiny(tiny_qwen2_gguf(&cfg, 5)), tiny(tiny_qwen3_gguf(&cfg, 5)), tiny(tiny_gemma3_gguf(&cfg, 5))] {
        check_invariance(&m, 6);
    }
    for name in ["llama-1", "qwen3-1", "qwen3moe-1", "deepseek_v3-1", "deepseek_v2-1", "exaone4-1"] {
        let m = load_model(&TinyReference::load(name).gguf_path());
        check_invariance(&m, 6);
    }
    check_invariance(&load_model(&jikji_testkit::fixtures_dir().join("tiny/exaone-1.gguf")), 6);
}

#[test]
fn paged_prefill_equals_the_contiguous_cache_bit_for_bit() {
    // A multi-token prefill takes the batch orders on both paths (f32 weights, whose
    // matmul order never depends on the row count), so the block-table reads must give
    // exactly the contiguous cache's result, window (gemma3) included.
    let cfg = TinyConfig::default();
    let mut models = vec![tiny(tiny_llama_gguf(&cfg, 5)), tiny(tiny_gemma3_gguf(&cfg, 5))];
    models.push(load_model(&TinyReference::load("qwen3-1").gguf_path()));
    for m in models {
        let p = &prompts(m.info().n_vocab)[0];
        let want = m.forward(p, &mut m.new_cache(64).expect("cache"), false).expect("forward");
        let mut kv = m.new_paged_kv(64, BS).expect("pool");
        let got = run(&m, &mut kv, std::slice::from_ref(p), &[usize::MAX], 0, 0).remove(0).remove(0);
        assert!(want == got, "{}: paged vs contiguous differ by {}", m.info().arch, jikji_testkit::max_abs_diff(&want, &got));
    }
}

#[test]
fn batched_logits_equal_alone_on_real_models() {
    for file in ["SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-coder-0.5b-instruct.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        let Some(path) = real_model(file) else { return };
        let m = load_model(&path);
        check_invariance(&m, 3);
    }
}

#[test]
fn bad_batches_are_errors() {
    let m = tiny(tiny_llama_gguf(&TinyConfig::default(), 5));
    let mut kv = m.new_paged_kv(8, BS).expect("pool");
    let blocks = [0u32, 1];
    let ok = |t: &'static [u32], pos0, blocks: &'static [u32]| BatchSeq { tokens: t, pos0, blocks, logits: true };
    // Beyond the block table.
    let e = m.forward_batch(&[ok(&[1, 2, 3], 6, &[0, 1])], &mut kv).unwrap_err();
    assert!(matches!(e, ModelError::ContextOverflow { .. }), "{e}");
    // A block outside the pool.
    let e = m.forward_batch(&[ok(&[1], 0, &[99])], &mut kv).unwrap_err();
    assert!(matches!(e, ModelError::BadRequest(_)), "{e}");
    // Two sequences writing the same rows.
    let e = m.forward_batch(&[ok(&[1], 0, &[2]), ok(&[2], 0, &[2])], &mut kv).unwrap_err();
    assert!(matches!(e, ModelError::BadRequest(_)), "{e}");
    // Token out of range, empty tokens, empty batch.
    let e = m.forward_batch(&[BatchSeq { tokens: &[u32::MAX], pos0: 0, blocks: &blocks, logits: true }], &mut kv).unwrap_err();
    assert!(matches!(e, ModelError::TokenOutOfRange { .. }), "{e}");
    assert!(matches!(m.forward_batch(&[ok(&[], 0, &[0])], &mut kv), Err(ModelError::EmptyInput)));
    assert!(matches!(m.forward_batch(&[], &mut kv), Err(ModelError::EmptyInput)));
    assert!(m.new_paged_kv(0, BS).is_err());
}

#[test]
fn the_block_size_of_the_pool_does_not_change_logits_on_real_models() {
    // 16-position blocks take the whole-block value sum, 4-position blocks the per-segment
    // one: the same FMAs in the same order, so the same bits.
    for file in ["SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-coder-0.5b-instruct.gguf"] {
        let Some(path) = real_model(file) else { return };
        let m = load_model(&path);
        let p: Vec<u32> = (0..40).map(|i| (i * 37 + 5) % 1000).collect();
        let run_with = |bs: usize| {
            let mut kv = m.new_paged_kv(64, bs).expect("pool");
            let blocks: Vec<u32> = (0..(64 / bs) as u32).collect();
            let mut out = m
                .forward_batch(&[BatchSeq { tokens: &p[..37], pos0: 0, blocks: &blocks, logits: true }], &mut kv)
                .expect("prefill");
            for pos in 37..40 {
                out.extend(
                    m.forward_batch(&[BatchSeq { tokens: &p[pos..pos + 1], pos0: pos, blocks: &blocks, logits: true }], &mut kv)
                        .expect("decode"),
                );
            }
            out
        };
        assert!(run_with(16) == run_with(4), "{file}: 16- and 4-position blocks differ");
    }
}
