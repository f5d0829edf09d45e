//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `scripts/hf-from-gguf.py` on tiny fixture `name` into a fresh temp directory.
pub fn hf_dir(name: &str, args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let gguf = jikji_testkit::fixtures_dir().join(format!("tiny/{name}.gguf"));
    let out = Command::new("python3")
        .arg(repo().join("scripts/hf-from-gguf.py"))
        .arg(&gguf)
        .arg(dir.path())
        .args(args)
        .output()
        .expect("python3 runs (the script needs numpy, safetensors, gguf, tokenizers from pip)");
    assert!(out.status.success(), "hf-from-gguf.py failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// A safetensors file's header (JSON) and data section.
pub fn read_st(path: &Path) -> (serde_json::Map<String, Value>, Vec<u8>) {
    let b = std::fs::read(path).expect("read safetensors");
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&b[8..8 + n]).expect("header json");
    (header.as_object().unwrap().clone(), b[8 + n..].to_vec())
}

/// Writes a safetensors file from a header and a data section, as given (no checks).
pub fn write_st(path: &Path, header: &serde_json::Map<String, Value>, data: &[u8]) {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    std::fs::write(path, out).expect("write safetensors");
}

/// Rewrites the file without tensor `name` (offsets kept contiguous).
pub fn drop_tensor(path: &Path, name: &str) {
    let (h, data) = read_st(path);
    let mut entries: Vec<(String, Value)> = h.into_iter().filter(|(k, _)| k != name && k != "__metadata__").collect();
    entries.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64().unwrap());
    let (mut nh, mut nd) = (serde_json::Map::new(), Vec::new());
    for (k, mut v) in entries {
        let (b, e) = (v["data_offsets"][0].as_u64().unwrap() as usize, v["data_offsets"][1].as_u64().unwrap() as usize);
        let start = nd.len();
        nd.extend_from_slice(&data[b..e]);
        v["data_offsets"] = serde_json::json!([start, nd.len()]);
        nh.insert(k, v);
    }
    write_st(path, &nh, &nd);
}
