//! all-MiniLM-L6-v2 as the Hugging Face directory it ships as (`jikji pull
//! all-minilm-l6-v2`: model.safetensors, config.json, tokenizer.json) against a float64
//! numpy recomputation of transformers' `BertModel` with mean pooling and L2 norm
//! (`scripts/embed-reference-bert.py`) on 52 Korean and English sentences: WordPiece ids
//! equal Hugging Face `tokenizers`' (Hangul decomposed into jamo as transformers does),
//! every vector has cosine ≥ 0.9999 and max |Δ| ≤ 1e-3.

use jikji_engine::embed::Embedder;
use std::path::Path;

#[derive(serde::Deserialize)]
struct Fixture {
    sentences: Vec<String>,
    tokens: Vec<Vec<u32>>,
    vectors: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed-minilm.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("fixture json")
}

fn model() -> Option<Embedder> {
    let dir = jikji_testkit::real_model_dir("all-MiniLM-L6-v2")?;
    Some(Embedder::open(&dir).unwrap_or_else(|e| panic!("open {}: {e:#?}", dir.display())))
}

#[test]
fn minilm_directory_tokens_and_vectors_equal_transformers_in_float64() {
    let Some(e) = model() else { return };
    assert_eq!((e.n_embd(), e.n_ctx(), e.params().pooling.name()), (384, 512, "mean"));
    let f = fixture();
    assert!(f.sentences.len() >= 50);
    let seqs: Vec<Vec<u32>> = f.sentences.iter().map(|s| e.tokenize(s)).collect();
    for (i, (ours, want)) in seqs.iter().zip(&f.tokens).enumerate() {
        assert_eq!(ours, want, "tokens of sentence {i}: {}", f.sentences[i]);
    }
    let got = e.embed_tokens(&seqs).unwrap();
    let (mut worst_cos, mut worst_max) = (1.0f64, 0.0f32);
    for (i, (a, b)) in got.iter().zip(&f.vectors).enumerate() {
        assert_eq!(a.len(), b.len());
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        worst_cos = worst_cos.min(cos);
        worst_max = worst_max.max(max);
        assert!(cos >= 0.9999 && max <= 1e-3, "sentence {i} ({}): cosine {cos}, max |Δ| {max}", f.sentences[i]);
    }
    eprintln!("all-MiniLM-L6-v2: worst cosine {worst_cos:.7}, worst max |Δ| {worst_max:.2e}");
}

#[test]
fn minilm_directory_is_an_encoder_and_refuses_over_long_inputs() {
    let Some(e) = model() else { return };
    assert!(Embedder::is_encoder_file(&e.path));
    let err = e.embed_tokens(&[vec![101; 513]]).unwrap_err().to_string();
    assert!(err.contains("at most 512"), "{err}");
    let err = e.embed_tokens(&[vec![101, 30_522, 102]]).unwrap_err().to_string();
    assert!(err.contains("30522") && err.contains("vocabulary"), "{err}");
}
