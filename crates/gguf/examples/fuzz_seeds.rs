//! Writes small valid GGUF files to seed the `gguf_parse` fuzz corpus:
//! `cargo run -p jikji-gguf --example fuzz_seeds -- DIR [TINY.gguf ...]`.
//!
//! Seeds cover every metadata value type (nested arrays included), every tensor type, v2
//! and v3, custom alignments, and the metadata of real tiny models with long arrays cut
//! short (so the fuzzer sees realistic keys without megabyte-sized inputs).

use jikji_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use std::path::PathBuf;

fn all_types() -> Vec<GgmlType> {
    (0..64).filter_map(GgmlType::from_u32).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: fuzz_seeds DIR [TINY.gguf ...]")?);
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    let mut save = |w: &GgufWriter| -> Result<(), Box<dyn std::error::Error>> {
        w.write_to_path(dir.join(format!("seed-{n:03}.gguf")))?;
        n += 1;
        Ok(())
    };

    save(&GgufWriter::new())?;
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama")
        .add_kv("u8", 7u8)
        .add_kv("i8", -7i8)
        .add_kv("u16", 700u16)
        .add_kv("i16", -700i16)
        .add_kv("u32", 70000u32)
        .add_kv("i32", -70000i32)
        .add_kv("u64", 1u64 << 40)
        .add_kv("i64", -(1i64 << 40))
        .add_kv("f32", 1.5f32)
        .add_kv("f64", -2.25f64)
        .add_kv("bool", true)
        .add_kv("str", "한국어")
        .add_kv("arr.str", vec!["a", "bc", ""])
        .add_kv("arr.i32", vec![1i32, -2, 3])
        .add_kv("arr.f32", vec![0.5f32, 1.0])
        .add_kv(
            "arr.nested",
            Value::Array(vec![vec![1u8, 2].into(), vec![3u8].into()]),
        )
        .add_kv("arr.empty", Value::Array(vec![]));
    save(&w)?;
    for (i, ty) in all_types().into_iter().enumerate() {
        let mut w = GgufWriter::new();
        if i % 3 == 1 {
            w.alignment(64);
        }
        if i % 4 == 2 {
            w.version(2);
        }
        let row = ty.block_size() as u64;
        let n_bytes = ty.row_bytes(row).ok_or("row size")? as usize * 2;
        let data: Vec<u8> = (0..n_bytes).map(|b| (b * 31 + i) as u8).collect();
        w.add_kv("general.name", format!("seed {ty}"));
        w.add_tensor("a", &[row, 2], ty, data.clone());
        w.add_tensor("b.weight", &[row, 1, 2], ty, data);
        save(&w)?;
    }
    for path in args {
        let f = GgufFile::open(&path)?;
        let mut w = GgufWriter::new();
        for (k, v) in f.metadata() {
            let v = match v {
                Value::Array(items) => Value::Array(items.iter().take(8).cloned().collect()),
                Value::String(s) if s.len() > 256 => Value::String(s.chars().take(64).collect()),
                other => other.clone(),
            };
            w.add_kv(k.clone(), v);
        }
        if let Some(t) = f.tensors().iter().find(|t| t.n_bytes <= 4096) {
            w.add_tensor(
                t.name.clone(),
                &t.dims,
                t.ggml_type,
                f.tensor_data(t).to_vec(),
            );
        }
        save(&w)?;
    }
    println!("wrote {n} seeds to {}", dir.display());
    Ok(())
}
