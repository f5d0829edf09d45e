//! Debug aid: runs one fixture prompt (last logits only) so `JIKJI_TRACE=1` prints the
//! named intermediates for a diff against a peer's dump.
//! `JIKJI_TRACE=1 cargo run --example tracerun -p jikji-models -- MODEL_FILE CASE`
use jikji_models::{GgufFile, Model};
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).cloned().unwrap_or_else(|| "SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let case_ix: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let r = jikji_testkit::reference::Reference::for_model(&name);
    let model = Model::load(Arc::new(GgufFile::open(jikji_testkit::models_dir().join(&name)).expect("open"))).expect("load");
    let case = &r.logits[case_ix];
    eprintln!("ids {:?}", case.ids);
    let mut cache = model.new_cache(case.ids.len()).expect("cache");
    let logits = model.forward(&case.ids, &mut cache, false).expect("forward");
    println!("last logits first: {:?}", &logits[..3]);
}
