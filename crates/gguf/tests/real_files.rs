//! Reading real GGUF files: the tiny fixture in the repo and the three real models.

use jikji_gguf::{GgmlType, GgufFile};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    jikji_testkit::fixtures_dir().join(name)
}

/// Opens a real model, or `None` when `JIKJI_SKIP_REAL_MODELS=1`; panics with instructions
/// (`jikji pull {catalog_name}`) when the file is missing (`jikji_testkit::real_model`).
fn real_model(file: &str, catalog_name: &str) -> Option<GgufFile> {
    assert_eq!(jikji_testkit::catalog_name(file), catalog_name, "testkit's pull name for {file}");
    let path = jikji_testkit::real_model(file)?;
    Some(GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Every tensor's data lies inside the file and the views have the indexed length.
fn check_tensor_views(f: &GgufFile) {
    let len = f.as_bytes().len() as u64;
    for t in f.tensors() {
        let data = f.tensor_data(t);
        assert_eq!(data.len() as u64, t.n_bytes, "{}", t.name);
        assert!(f.data_offset() + t.offset + t.n_bytes <= len);
        assert_eq!(f.tensor(&t.name).map(|x| x.offset), Some(t.offset));
    }
}

/// Values cross-checked with the `gguf` Python package's reader.
#[test]
fn tiny_llama_fixture_reads_with_expected_metadata() {
    let f = GgufFile::open(fixture("tiny/llama-1.gguf")).expect("open tiny llama");
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.metadata().len(), 26);
    assert_eq!(f.tensors().len(), 30);
    assert_eq!(f.data_offset(), 13472);
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), Some("gpt2"));
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), Some("gpt-2"));
    assert_eq!(f.get_u32("llama.block_count").unwrap(), Some(3));
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), Some(64));
    assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), Some(2));
    assert_eq!(f.get_u32("llama.vocab_size").unwrap(), Some(463));
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), Some(10000.0));
    assert_eq!(
        f.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
        Some(1e-6)
    );
    assert_eq!(
        f.get_bool("tokenizer.ggml.add_bos_token").unwrap(),
        Some(false)
    );
    assert_eq!(f.get_u32("tokenizer.ggml.eos_token_id").unwrap(), Some(1));
    let tokens = f
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .expect("tokens");
    assert_eq!(tokens.len(), 463);
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type")
            .unwrap()
            .map(|t| t.len()),
        Some(463)
    );
    assert_eq!(
        f.get_str_array("tokenizer.ggml.merges")
            .unwrap()
            .map(|m| m.len()),
        Some(205)
    );
    let out = &f.tensors()[0];
    assert_eq!(
        (out.name.as_str(), &out.dims[..], out.ggml_type),
        ("output.weight", &[64, 463][..], GgmlType::F32)
    );
    let emb = f.tensor("token_embd.weight").expect("token_embd.weight");
    assert_eq!(emb.dims, [64, 463]);
    assert_eq!(emb.n_bytes, 64 * 463 * 4);
    for l in 0..3 {
        assert!(
            f.tensor(&format!("blk.{l}.attn_q.weight")).is_some(),
            "layer {l}"
        );
    }
    check_tensor_views(&f);
}

#[test]
fn tiny_fixture_opened_from_bytes_equals_mmap() {
    let path = fixture("tiny/qwen3-1.gguf");
    let a = GgufFile::open(&path).unwrap();
    let b = GgufFile::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(a.metadata(), b.metadata());
    assert_eq!(a.tensors().len(), b.tensors().len());
    for (x, y) in a.tensors().iter().zip(b.tensors()) {
        assert_eq!(x.name, y.name);
        assert_eq!(a.tensor_data(x), b.tensor_data(y));
    }
    assert_eq!(a.get_str("general.architecture").unwrap(), Some("qwen3"));
}

#[test]
fn every_tiny_fixture_reads() {
    for name in [
        "llama-1",
        "qwen3-1",
        "exaone4-1",
        "deepseek_v2-1",
        "deepseek_v3-1",
    ] {
        let f = GgufFile::open(fixture(&format!("tiny/{name}.gguf")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!f.tensors().is_empty());
        check_tensor_views(&f);
    }
}

/// Facts about a real file, cross-checked with the `gguf` Python package's reader.
struct Known {
    file: &'static str,
    catalog: &'static str,
    arch: &'static str,
    n_tensors: usize,
    data_offset: u64,
    /// Last tensor in index order: name, absolute byte position, bytes.
    last: (&'static str, u64, u64),
    /// How many tensors of each type.
    type_counts: &'static [(GgmlType, usize)],
}

fn check_real(k: &Known) {
    let Some(f) = real_model(k.file, k.catalog) else {
        return;
    };
    let file = k.file;
    assert_eq!(
        f.get_str("general.architecture").unwrap(),
        Some(k.arch),
        "{file}"
    );
    assert_eq!(f.tensors().len(), k.n_tensors, "{file}");
    assert_eq!(f.alignment(), 32, "{file}");
    assert_eq!(f.version(), 3, "{file}");
    assert_eq!(f.data_offset(), k.data_offset, "{file}");
    let last = f.tensors().last().expect("tensors");
    assert_eq!(last.name, k.last.0, "{file}");
    assert_eq!(f.data_offset() + last.offset, k.last.1, "{file}");
    assert_eq!(last.n_bytes, k.last.2, "{file}");
    for &(ty, n) in k.type_counts {
        assert_eq!(
            f.tensors().iter().filter(|t| t.ggml_type == ty).count(),
            n,
            "{file}: {ty}"
        );
    }
    let total: usize = k.type_counts.iter().map(|&(_, n)| n).sum();
    assert_eq!(total, k.n_tensors, "type counts cover every tensor");
    let arch = k.arch;
    let n_layer = f
        .get_u32(&format!("{arch}.block_count"))
        .unwrap()
        .expect("block_count");
    assert!(f
        .tensor(&format!("blk.{}.attn_q.weight", n_layer - 1))
        .is_some());
    assert!(f.tensor(&format!("blk.{n_layer}.attn_q.weight")).is_none());
    assert!(f
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .is_some_and(|t| t.len() > 1000));
    check_tensor_views(&f);
}

#[test]
fn real_smollm2_index_matches_known_layout() {
    use GgmlType::*;
    check_real(&Known {
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        catalog: "smollm2-135m",
        arch: "llama",
        n_tensors: 272,
        data_offset: 1785664,
        last: ("output_norm.weight", 98360128, 2304),
        type_counts: &[(Q8_0, 1), (F32, 61), (Q4_1, 210)],
    });
}

#[test]
fn real_gemma3_index_matches_known_layout() {
    use GgmlType::*;
    check_real(&Known {
        file: "gemma-3-270m-q4_k_m.gguf",
        catalog: "gemma3-270m",
        arch: "gemma3",
        n_tensors: 236,
        data_offset: 6525120,
        last: ("blk.17.post_ffw_norm.weight", 253110464, 2560),
        type_counts: &[(F32, 109), (Q8_0, 10), (Q5_0, 81), (Q4_K, 27), (Q6_K, 9)],
    });
}

#[test]
fn real_qwen25_index_matches_known_layout() {
    use GgmlType::*;
    check_real(&Known {
        file: "qwen2.5-coder-0.5b-instruct.gguf",
        catalog: "qwen2.5-0.5b",
        arch: "qwen2",
        n_tensors: 291,
        data_offset: 5947776,
        last: ("output_norm.weight", 491396480, 3584),
        type_counts: &[(Q8_0, 13), (Q5_0, 133), (F32, 121), (Q6_K, 12), (Q4_K, 12)],
    });
}
