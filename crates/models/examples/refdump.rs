//! Debug aid: per-position comparison of one real model against its llama.cpp fixture.
//! `cargo run --example refdump -p jikji-models -- MODEL_FILE [CASE]`
use jikji_models::{GgufFile, KvType, Model};
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).cloned().unwrap_or_else(|| "SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let case_ix: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let f32_cache = std::env::var("KV_F32").is_ok();
    let path = jikji_testkit::models_dir().join(&name);
    let r = jikji_testkit::reference::Reference::for_model(&name);
    let model = Model::load(Arc::new(GgufFile::open(&path).expect("open"))).expect("load");
    let nv = model.info().n_vocab;
    let case = &r.logits[case_ix];
    let mut cache = model.new_cache_with(case.ids.len(), if f32_cache { KvType::F32 } else { KvType::F16 });
    let logits = model.forward(&case.ids, &mut cache, true).expect("forward");
    for (i, pos) in case.positions.iter().enumerate() {
        let row = &logits[i * nv..(i + 1) * nv];
        let d: Vec<f32> = pos.top.iter().map(|&(id, v)| row[id as usize] - v).collect();
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        let lse = jikji_testkit::logsumexp(row);
        println!("pos {i:2} tok {:6} signed mean {mean:+.4} lse {lse:.4} vs {:.4} deltas {:?}", case.ids[i], pos.logsumexp,
            d.iter().map(|x| format!("{x:+.3}")).collect::<Vec<_>>());
    }
}
