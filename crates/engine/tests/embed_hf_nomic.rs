//! nomic-embed-text-v1.5 as a `NomicBertModel` Hugging Face directory: the catalog's F16
//! GGUF written back into the directory llama.cpp's converter reads
//! (`scripts/hf-from-gguf.py`: config keys, tensor names, WordPiece tokenizer.json) and
//! opened by `jikji-hf` gives llama.cpp's `llama-embedding` vectors for the 52 sentences
//! (cosine ≥ 0.9999, max |Δ| ≤ 1e-3, fed the fixture's token ids). Its tokenizer follows
//! transformers, so its ids equal the peer's wherever llama.cpp's WPM agrees with it (the
//! English sentences; Hangul differs by design: transformers keeps every jamo).

use jikji_engine::embed::Embedder;
use std::path::Path;
use std::process::Command;

#[derive(serde::Deserialize)]
struct Fixture {
    sentences: Vec<String>,
    tokens: Vec<Vec<u32>>,
    vectors: Vec<Vec<f32>>,
}

#[test]
fn nomic_directory_gives_llama_embedding_vectors() {
    let Some(gguf) = jikji_testkit::real_model("nomic-embed-text-v1.5.f16.gguf") else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/hf-from-gguf.py");
    let out = Command::new("python3").arg(script).arg(&gguf).arg(dir.path()).args(["--dtype", "f16"]).output().expect("python3");
    assert!(out.status.success(), "hf-from-gguf.py: {}", String::from_utf8_lossy(&out.stderr));
    let e = Embedder::open(dir.path()).unwrap_or_else(|err| panic!("{err:#?}"));
    assert_eq!((e.n_embd(), e.params().arch.as_str(), e.params().pooling.name()), (768, "nomic-bert", "mean"));
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed-nomic.json");
    let f: Fixture = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let vecs = e.embed_tokens(&f.tokens).unwrap();
    for (i, (a, b)) in vecs.iter().zip(&f.vectors).enumerate() {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (n(a) * n(b));
        let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(cos >= 0.9999 && max <= 1e-3, "sentence {i}: cosine {cos}, max |Δ| {max}");
    }
    let ascii: Vec<usize> = (0..f.sentences.len()).filter(|&i| f.sentences[i].is_ascii()).collect();
    assert!(ascii.len() >= 20);
    for i in ascii {
        assert_eq!(e.tokenize(&f.sentences[i]), f.tokens[i], "tokens of `{}`", f.sentences[i]);
    }
}
