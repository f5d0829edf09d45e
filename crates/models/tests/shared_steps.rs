//! Shared-prefix steps (`Model::forward_shared`), what the evaluations use to run a
//! question once and every answer after it in one pass, as llama.cpp's unified cache does:
//! a sequence laid out as views gives `forward`'s bits; answers after a shared prefix give
//! the bits of running each alone after the prefix whenever their cells sit at the same
//! offsets modulo 16 (sliding windows included); a bad view is an error, and so is a
//! model that cannot run such steps.

mod common;

use jikji_models::{Model, RowView};
use jikji_testkit::{tiny_gemma3_gguf, tiny_llama_gguf, tiny_qwen2_gguf, tiny_qwen3_gguf, TinyConfig, TinyGguf};
use std::sync::Arc;

fn model(g: TinyGguf) -> Model {
    Model::load(Arc::new(g.to_gguf())).expect("load")
}

fn all_models() -> Vec<Model> {
    let cfg = TinyConfig::default();
    // gemma3's tiny window is 4: the answers below see only part of the prefix.
    vec![model(tiny_llama_gguf(&cfg, 5)), model(tiny_qwen2_gguf(&cfg, 5)), model(tiny_qwen3_gguf(&cfg, 5)), model(tiny_gemma3_gguf(&cfg, 5))]
}

fn toks(n: usize, seed: u32, n_vocab: usize) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 7 + seed * 13 + 1) % n_vocab as u32).collect()
}

/// A prefix and its answers laid out as llama.cpp lays out one task: the prefix at cells
/// `c0..`, then each answer after the previous one. Returns tokens, positions, views.
fn layout(c0: usize, prefix: &[u32], answers: &[Vec<u32>]) -> (Vec<u32>, Vec<usize>, Vec<RowView>) {
    let (mut t, mut p, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (k, &x) in prefix.iter().enumerate() {
        t.push(x);
        p.push(k);
        v.push(RowView { cell: c0 + k, shared: c0..c0, shared_pos0: 0, own: c0 });
    }
    let mut cell = c0 + prefix.len();
    for a in answers {
        let own = cell;
        for (k, &x) in a.iter().enumerate() {
            t.push(x);
            p.push(prefix.len() + k);
            v.push(RowView { cell: own + k, shared: c0..c0 + prefix.len(), shared_pos0: 0, own });
        }
        cell += a.len();
    }
    (t, p, v)
}

/// Logits of every row of `answer` run after `prefix` in a fresh contiguous cache.
fn alone(m: &Model, prefix: &[u32], answer: &[u32]) -> Vec<f32> {
    let mut c = m.new_cache(64).expect("cache");
    m.forward(prefix, &mut c, false).expect("prefix");
    m.forward(answer, &mut c, true).expect("answer")
}

#[test]
fn one_sequence_as_views_gives_forwards_bits() {
    for m in all_models() {
        let nv = m.info().n_vocab;
        let seq = toks(11, 1, nv);
        let (t, p, v) = layout(0, &seq, &[]);
        let mut c = m.new_cache(32).expect("cache");
        let rows: Vec<usize> = (0..t.len()).collect();
        let got = m.forward_shared(&t, &p, &v, &mut c, &rows).expect("shared");
        let mut c2 = m.new_cache(32).expect("cache");
        assert_eq!(got, m.forward(&seq, &mut c2, true).expect("forward"), "{}", m.info().arch);
        assert_eq!(c.len(), 11);
        // One row alone (the single-token order) too.
        let (t1, p1, v1) = layout(0, &seq[..1], &[]);
        let mut c3 = m.new_cache(32).expect("cache");
        let mut c4 = m.new_cache(32).expect("cache");
        assert_eq!(m.forward_shared(&t1, &p1, &v1, &mut c3, &[0]).unwrap(), m.forward(&seq[..1], &mut c4, false).unwrap());
    }
}

#[test]
fn answers_after_a_shared_prefix_equal_each_answer_alone_when_their_cells_align() {
    for m in all_models() {
        let nv = m.info().n_vocab;
        let prefix = toks(5, 2, nv);
        // The first answer is 16 tokens long, so the second's cells are ≡ the cells it
        // has alone modulo 16; the third follows a 3-token one and only stays close.
        let answers = vec![toks(16, 3, nv), toks(3, 4, nv), toks(4, 5, nv)];
        for c0 in [0, 32] {
            let (t, p, v) = layout(c0, &prefix, &answers);
            let mut c = m.new_cache(128).expect("cache");
            if c0 > 0 {
                // Something else in the cells before: another task's rows.
                let (t0, p0, v0) = layout(0, &toks(9, 6, nv), &[toks(7, 7, nv)]);
                m.forward_shared(&t0, &p0, &v0, &mut c, &[0]).expect("other task");
            }
            let rows: Vec<usize> = (0..t.len()).collect();
            let got = m.forward_shared(&t, &p, &v, &mut c, &rows).expect("shared");
            let row = |i: usize| &got[i * nv..(i + 1) * nv];
            let arch = &m.info().arch;
            let a0 = alone(&m, &prefix, &answers[0]);
            let a1 = alone(&m, &prefix, &answers[1]);
            let a2 = alone(&m, &prefix, &answers[2]);
            let at = |k: usize| prefix.len() + answers[..k].iter().map(Vec::len).sum::<usize>();
            assert_eq!((at(0)..at(1)).flat_map(|i| row(i).to_vec()).collect::<Vec<_>>(), a0, "{arch}: first answer, cell {c0}");
            assert_eq!((at(1)..at(2)).flat_map(|i| row(i).to_vec()).collect::<Vec<_>>(), a1, "{arch}: second answer, cell {c0}");
            let third: Vec<f32> = (at(2)..at(3)).flat_map(|i| row(i).to_vec()).collect();
            let d = third.iter().zip(&a2).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(d < 1e-3, "{arch}: third answer off by {d}");
        }
    }
}

#[test]
fn bad_views_are_errors_and_the_cache_is_left_usable() {
    let m = model(tiny_llama_gguf(&TinyConfig::default(), 5));
    let nv = m.info().n_vocab;
    let (t, p, v) = layout(0, &toks(4, 1, nv), &[toks(3, 2, nv), toks(2, 3, nv)]);
    let mut c = m.new_cache(16).expect("cache");
    let rows = [t.len() - 1];
    let err = |t: &[u32], p: &[usize], v: &[RowView], c: &mut jikji_models::KvCache| m.forward_shared(t, p, v, c, &rows).unwrap_err().to_string();
    // Cells out of order, a view of a cell nothing wrote, a shared run after the row's own
    // positions, cells past the cache, lengths that disagree, a token out of range.
    let mut bad = v.clone();
    bad.swap(1, 2);
    assert!(err(&t, &p, &bad, &mut c).contains("ascending"));
    let mut bad = v.clone();
    bad[5].shared = 0..6;
    assert!(err(&t, &p, &bad, &mut c).contains("shared.end <= own") || err(&t, &p, &bad, &mut c).contains("nothing has written"));
    let mut bad = v.clone();
    let last = bad.len() - 1;
    bad[last].own = 1;
    assert!(err(&t, &p, &bad, &mut c).contains("row 8"));
    let mut bad = v.clone();
    for x in bad.iter_mut() {
        x.cell += 10;
        x.own += 10;
        x.shared = x.shared.start + 10..x.shared.end + 10;
    }
    assert!(err(&t, &p, &bad, &mut c).contains("nothing has written") || err(&t, &p, &bad, &mut c).contains("context"));
    assert!(err(&t[..3], &p, &v, &mut c).contains("positions"));
    let mut bad_t = t.clone();
    bad_t[0] = nv as u32;
    assert!(err(&bad_t, &p, &v, &mut c).contains(&nv.to_string()));
    // Nothing was written: the good step still gives what it gives on a fresh cache.
    let got = m.forward_shared(&t, &p, &v, &mut c, &rows).expect("good");
    let mut fresh = m.new_cache(16).expect("cache");
    assert_eq!(got, m.forward_shared(&t, &p, &v, &mut fresh, &rows).expect("fresh"));
}

#[test]
fn multi_head_latent_attention_refuses_shared_steps() {
    let m = common::load_model(&jikji_testkit::fixtures_dir().join("tiny/deepseek_v2-1.gguf"));
    assert!(!m.shared_steps());
    let (t, p, v) = layout(0, &[1, 2, 3], &[vec![4], vec![5]]);
    let mut c = m.new_cache(16).expect("cache");
    let e = m.forward_shared(&t, &p, &v, &mut c, &[2]).unwrap_err().to_string();
    assert!(e.contains("shared-prefix"), "{e}");
}
