//! Times `Embedder::embed_texts` on a fixed set of mixed Korean/English sentences:
//! one sentence per call (the 1-client case) and all of them in one call (a full batch).
//!
//!   cargo run --release -p jikji-engine --example embed_bench -- MODEL.gguf [REPS]
use jikji_engine::embed::Embedder;
use std::time::Instant;

const TEXTS: &[&str] = &[
    "search_document: 직지심체요절은 1377년 청주 흥덕사에서 금속활자로 인쇄된 불교 문헌이다.",
    "search_document: The sky looks blue because air scatters short wavelengths of sunlight more.",
    "search_query: 훈민정음은 누가 언제 만들었나요?",
    "search_document: A bicycle turns the rider's pedalling into forward motion through a chain.",
    "search_document: 김치는 배추를 소금에 절여 양념으로 버무린 뒤 발효시킨 음식이다.",
    "search_query: How do metal movable types differ from woodblock printing?",
    "search_document: 한라산은 제주도에 있는 남한에서 가장 높은 화산이다.",
    "search_document: Clean code reads like well-written prose and says what it means.",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: embed_bench MODEL [REPS]");
    let reps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(5);
    // A third argument `single` or `batch` times only that case (for profiling).
    let only = args.get(3).map(String::as_str);
    let e = Embedder::open(std::path::Path::new(path)).unwrap();
    let toks: usize = TEXTS.iter().map(|t| e.tokenize(t).len()).sum();
    e.embed_texts(TEXTS).unwrap();
    let mut single = Vec::new();
    for _ in 0..if only == Some("batch") { 0 } else { reps } {
        let t0 = Instant::now();
        for t in TEXTS {
            e.embed_texts(&[t]).unwrap();
        }
        single.push(t0.elapsed().as_secs_f64() / TEXTS.len() as f64);
    }
    let batch32: Vec<&str> = TEXTS.iter().cycle().take(32).copied().collect();
    let mut batch = Vec::new();
    for _ in 0..if only == Some("single") { 0 } else { reps } {
        let t0 = Instant::now();
        e.embed_texts(&batch32).unwrap();
        batch.push(t0.elapsed().as_secs_f64() / 32.0);
    }
    let (s, b) = (median(single), median(batch));
    println!("{} tokens in {} texts; one at a time: {:.2} ms/text ({:.1}/s); 32 in one batch: {:.2} ms/text ({:.1}/s)", toks, TEXTS.len(), s * 1e3, 1.0 / s, b * 1e3, 1.0 / b);
}
