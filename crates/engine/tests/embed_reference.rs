//! nomic-embed-text-v1.5 (F16 GGUF) against llama.cpp's `llama-embedding` on 52 Korean and
//! English sentences (fixture from `scripts/embed-reference.py`): WordPiece tokens equal the
//! peer's, every vector has cosine ≥ 0.9999 and max |Δ| ≤ 1e-3 against the peer's, and
//! embedding all sentences in one batch gives the same vectors as one at a time.

use jikji_engine::embed::{matryoshka, Embedder};
use std::path::Path;

#[derive(serde::Deserialize)]
struct Fixture {
    sentences: Vec<String>,
    tokens: Vec<Vec<u32>>,
    vectors: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed-nomic.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("fixture json")
}

fn model() -> Option<Embedder> {
    let path = jikji_testkit::real_model("nomic-embed-text-v1.5.f16.gguf")?;
    Some(Embedder::open(&path).expect("open nomic-embed"))
}

#[test]
fn nomic_embed_tokens_and_vectors_equal_llama_embedding() {
    let Some(e) = model() else { return };
    let f = fixture();
    assert!(f.sentences.len() >= 50);
    let seqs: Vec<Vec<u32>> = f.sentences.iter().map(|s| e.tokenize(s)).collect();
    for (i, (ours, peer)) in seqs.iter().zip(&f.tokens).enumerate() {
        assert_eq!(ours, peer, "tokens of sentence {i}: {}", f.sentences[i]);
    }
    let batch = e.embed_tokens(&seqs).unwrap();
    for (i, (a, b)) in batch.iter().zip(&f.vectors).enumerate() {
        assert_eq!(a.len(), b.len());
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(cos >= 0.9999 && max <= 1e-3, "sentence {i} ({}): cosine {cos}, max |Δ| {max}", f.sentences[i]);
    }
    // Batching does not change a sequence's vector.
    for i in [0, 25, 51] {
        let alone = e.embed_tokens(&seqs[i..i + 1]).unwrap();
        let max = alone[0].iter().zip(&batch[i]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(max <= 1e-6, "sentence {i}: alone vs batched differ by {max}");
    }
    // Matryoshka truncation is unit length.
    let t = matryoshka(&batch[0], 256);
    let n: f32 = t.iter().map(|x| x * x).sum();
    assert_eq!(t.len(), 256);
    assert!((n - 1.0).abs() < 1e-5);
}

#[test]
fn nomic_embed_refuses_bad_sequences_with_clear_errors() {
    let Some(e) = model() else { return };
    let err = e.embed_tokens(&[vec![101, 999_999, 102]]).unwrap_err().to_string();
    assert!(err.contains("999999") && err.contains("vocabulary"), "{err}");
    let err = e.embed_tokens(&[vec![]]).unwrap_err().to_string();
    assert!(err.contains("no tokens"), "{err}");
    let err = e.embed_tokens(&[vec![101; e.n_ctx() + 1]]).unwrap_err().to_string();
    assert!(err.contains("at most"), "{err}");
}
