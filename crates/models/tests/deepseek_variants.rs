//! DeepSeek file variants built from the tiny V3 reference: the older combined
//! `attn_kv_b` layout must give the same model as split `attn_k_b` / `attn_v_b`, quantized
//! experts must run like any other quantized weight, and damaged MoE/MLA metadata must be a
//! typed error.

mod common;

use jikji_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use jikji_models::{Model, ModelError};
use jikji_testkit::{max_abs_diff, nmse};
use jikji_testkit::tiny::TinyReference;
use std::sync::Arc;

/// A tensor as (name, ggml dims, f32 values).
type T = (String, Vec<u64>, Vec<f32>);

fn read_v3() -> (TinyReference, Vec<(String, Value)>, Vec<T>) {
    let r = TinyReference::load("deepseek_v3-1");
    let f = GgufFile::open(r.gguf_path()).expect("open fixture");
    let kvs = f.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let tensors = f
        .tensors()
        .iter()
        .map(|t| {
            assert_eq!(t.ggml_type, GgmlType::F32);
            let v = f.tensor_data(t).chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            (t.name.clone(), t.dims.clone(), v)
        })
        .collect();
    (r, kvs, tensors)
}

/// Writes a model; routed-expert tensors (`*_exps`) are stored as `quant` when given.
fn write(kvs: &[(String, Value)], tensors: &[T], quant: Option<GgmlType>) -> Result<Model, ModelError> {
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        if k != "general.alignment" {
            w.add_kv(k.clone(), v.clone());
        }
    }
    for (name, dims, v) in tensors {
        match quant {
            Some(q) if dims[0] % 32 == 0 && name.contains("_exps") => {
                let row = dims[0] as usize;
                let rb = q.row_bytes(dims[0]).expect("row bytes") as usize;
                let mut data = vec![0u8; v.len() / row * rb];
                for (src, dst) in v.chunks_exact(row).zip(data.chunks_exact_mut(rb)) {
                    jikji_kernels::quantize_row(q, src, dst).expect("quantize");
                }
                w.add_tensor(name.clone(), dims, q, data);
            }
            _ => {
                w.add_tensor(name.clone(), dims, GgmlType::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
            }
        }
    }
    let file = GgufFile::from_bytes(w.to_bytes().expect("encode")).expect("read back");
    Model::load(Arc::new(file))
}

fn last_row(m: &Model, ids: &[u32]) -> Vec<f32> {
    let mut cache = m.new_cache(ids.len()).expect("cache");
    m.forward(ids, &mut cache, false).expect("forward")
}

#[test]
fn combined_kv_b_file_runs_the_same_as_split_k_b_and_v_b() {
    let (r, mut kvs, tensors) = read_v3();
    let (n_head, nope, dv, lora) = (4usize, 16usize, 16usize, 16usize);
    let mut out: Vec<T> = Vec::new();
    for (name, dims, v) in &tensors {
        if name.ends_with("attn_v_b.weight") {
            continue;
        }
        if let Some(prefix) = name.strip_suffix("attn_k_b.weight") {
            let (_, _, vb) = tensors.iter().find(|t| t.0 == format!("{prefix}attn_v_b.weight")).expect("v_b");
            // k_b per head: [kv_lora rows, nope cols]; v_b per head: [dv rows, kv_lora cols].
            // kv_b per head: nope rows (k_b transposed), then dv rows (v_b), each kv_lora wide.
            let mut kvb = Vec::with_capacity(n_head * (nope + dv) * lora);
            for h in 0..n_head {
                let kh = &v[h * lora * nope..(h + 1) * lora * nope];
                for c in 0..nope {
                    kvb.extend((0..lora).map(|row| kh[row * nope + c]));
                }
                kvb.extend_from_slice(&vb[h * dv * lora..(h + 1) * dv * lora]);
            }
            out.push((format!("{prefix}attn_kv_b.weight"), vec![lora as u64, (n_head * (nope + dv)) as u64], kvb));
            continue;
        }
        out.push((name.clone(), dims.clone(), v.clone()));
    }
    // An older file: no *_mla keys, full heads in key/value_length and head_count_kv.
    kvs.retain(|(k, _)| !k.ends_with("_mla"));
    for (k, v) in kvs.iter_mut() {
        match k.as_str() {
            "deepseek2.attention.head_count_kv" => *v = Value::U32(n_head as u32),
            "deepseek2.attention.key_length" => *v = Value::U32((nope + 8) as u32),
            "deepseek2.attention.value_length" => *v = Value::U32(dv as u32),
            _ => {}
        }
    }
    let combined = write(&kvs, &out, None).expect("combined kv_b file loads");
    let split = common::load_model(&r.gguf_path());
    assert_eq!(combined.cache_widths(), (24, 0), "combined files also run on the latent cache");
    for p in &r.prompts {
        let d = max_abs_diff(&last_row(&combined, &p.ids), &last_row(&split, &p.ids));
        assert!(d < 1e-4, "`{}`: combined vs split max |Δ| {d}", p.text);
        assert_eq!(common::greedy(&combined, &p.ids, 16), p.transformers.greedy);
    }
}

#[test]
fn q8_0_experts_stay_quantized_and_track_the_f32_model() {
    let (r, kvs, tensors) = read_v3();
    let q = write(&kvs, &tensors, Some(GgmlType::Q8_0)).expect("Q8_0 file loads");
    let f = q.file();
    let exps = f.tensor("blk.1.ffn_gate_exps.weight").expect("experts");
    assert_eq!(exps.ggml_type, GgmlType::Q8_0);
    for p in &r.prompts {
        let got = last_row(&q, &p.ids);
        let e = nmse(&got, &p.transformers.last_row);
        eprintln!("`{}`: Q8_0 experts vs f32 reference: NMSE {e:.2e}, max |Δ| {:.4}", p.text, max_abs_diff(&got, &p.transformers.last_row));
        assert!(e < 1e-3, "`{}`: Q8_0 experts vs transformers' f32 NMSE {e}", p.text);
    }
}

fn expect_err(kvs: &[(String, Value)], tensors: &[T]) -> ModelError {
    match write(kvs, tensors, None) {
        Ok(_) => panic!("damaged deepseek file loaded"),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

fn set(kvs: &mut [(String, Value)], key: &str, v: Value) {
    kvs.iter_mut().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no key {key}")).1 = v;
}

#[test]
fn damaged_moe_and_mla_metadata_is_a_typed_error() {
    let (_, kvs, tensors) = read_v3();
    let mut k = kvs.clone();
    set(&mut k, "deepseek2.expert_used_count", Value::U32(9));
    assert!(matches!(expect_err(&k, &tensors), ModelError::BadHparams(_)));
    let mut k = kvs.clone();
    set(&mut k, "deepseek2.expert_group_count", Value::U32(3));
    assert!(matches!(expect_err(&k, &tensors), ModelError::BadHparams(_)));
    let mut k = kvs.clone();
    set(&mut k, "deepseek2.expert_gating_func", Value::U32(7));
    assert!(matches!(expect_err(&k, &tensors), ModelError::Unsupported(_)));
    let mut k = kvs.clone();
    set(&mut k, "deepseek2.attention.kv_lora_rank", Value::U32(0));
    assert!(matches!(expect_err(&k, &tensors), ModelError::BadHparams(_)));
    let mut k = kvs.clone();
    set(&mut k, "deepseek2.attention.q_lora_rank", Value::U32(31));
    assert!(matches!(expect_err(&k, &tensors), ModelError::BadHparams(_)));
    let t: Vec<T> = tensors.iter().filter(|t| t.0 != "blk.2.ffn_up_exps.weight").cloned().collect();
    assert!(matches!(expect_err(&kvs, &t), ModelError::MissingTensor(n) if n == "blk.2.ffn_up_exps.weight"));
    let t: Vec<T> = tensors
        .iter()
        .map(|t| if t.0 == "blk.1.attn_k_b.weight" { (t.0.clone(), vec![16, 16, 3], t.2[..768].to_vec()) } else { t.clone() })
        .collect();
    assert!(matches!(expect_err(&kvs, &t), ModelError::TensorShape { .. }));
}

#[test]
fn trailing_multi_token_prediction_blocks_are_not_run() {
    // A V3 file as the converter writes it with MTP kept: block_count counts the extra
    // block, `nextn_predict_layers` says how many trail the trunk.
    let (r, mut kvs, mut tensors) = read_v3();
    set(&mut kvs, "deepseek2.block_count", Value::U32(4));
    kvs.push(("deepseek2.nextn_predict_layers".into(), Value::U32(1)));
    tensors.push(("blk.3.nextn.eh_proj.weight".into(), vec![128, 64], vec![0.5; 128 * 64]));
    tensors.push(("blk.3.attn_norm.weight".into(), vec![64], vec![9.0; 64]));
    let with_mtp = write(&kvs, &tensors, None).expect("file with an MTP block loads");
    assert_eq!(with_mtp.info().n_layer, 3);
    let plain = common::load_model(&r.gguf_path());
    for p in &r.prompts {
        assert_eq!(last_row(&with_mtp, &p.ids), last_row(&plain, &p.ids), "`{}`", p.text);
    }
    set(&mut kvs, "deepseek2.nextn_predict_layers", Value::U32(4));
    assert!(matches!(expect_err(&kvs, &tensors), ModelError::BadHparams(_)));
}
