//! Writer → reader round trips and the typed getters' contract.

use jikji_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};

fn all_values() -> Vec<(&'static str, Value)> {
    vec![
        ("v.u8", Value::U8(0xAB)),
        ("v.i8", Value::I8(-100)),
        ("v.u16", Value::U16(0xBEEF)),
        ("v.i16", Value::I16(-30000)),
        ("v.u32", Value::U32(0xDEAD_BEEF)),
        ("v.i32", Value::I32(-2_000_000_000)),
        ("v.u64", Value::U64(u64::MAX - 1)),
        ("v.i64", Value::I64(i64::MIN + 1)),
        ("v.f32", Value::F32(-1.25e-7)),
        ("v.f64", Value::F64(std::f64::consts::PI)),
        ("v.bool.t", Value::Bool(true)),
        ("v.bool.f", Value::Bool(false)),
        ("v.str", Value::String("안녕하세요, world".into())),
        ("v.str.empty", Value::String(String::new())),
        ("a.u8", vec![1u8, 2, 255].into()),
        ("a.i8", vec![-1i8, 0, 1].into()),
        ("a.u16", vec![1u16, 65535].into()),
        ("a.i16", vec![-2i16, 2].into()),
        ("a.u32", vec![7u32].into()),
        ("a.i32", vec![-7i32, 7, i32::MAX].into()),
        ("a.u64", vec![u64::MAX].into()),
        ("a.i64", vec![i64::MIN, 0].into()),
        ("a.f32", vec![0.5f32, -0.0, f32::INFINITY].into()),
        ("a.f64", vec![1e300f64, -1e-300].into()),
        ("a.bool", vec![true, false, true].into()),
        ("a.str", vec!["Ġhello", "<|im_end|>", ""].into()),
        ("a.empty", Value::Array(vec![])),
        (
            "a.nested",
            Value::Array(vec![
                Value::Array(vec!["x".into(), "y".into()]),
                Value::Array(vec![]),
                Value::Array(vec!["z".into()]),
            ]),
        ),
        (
            "a.nested.deep",
            Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::F32(
                1.0,
            )])])]),
        ),
    ]
}

#[test]
fn every_value_type_round_trips() {
    let mut w = GgufWriter::new();
    for (k, v) in all_values() {
        w.add_kv(k, v);
    }
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.metadata().len(), all_values().len());
    for (k, v) in all_values() {
        assert_eq!(f.get(k), Some(&v), "{k}");
    }
}

#[test]
fn nan_metadata_keeps_its_bits() {
    let nan = f32::from_bits(0x7FC0_1234);
    let mut w = GgufWriter::new();
    w.add_kv("nan", nan);
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let Some(Value::F32(x)) = f.get("nan") else {
        panic!("not f32")
    };
    assert_eq!(x.to_bits(), nan.to_bits());
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn every_type() -> Vec<GgmlType> {
    (0..64).filter_map(GgmlType::from_u32).collect()
}

#[test]
fn every_tensor_type_round_trips_with_aligned_packed_data() {
    for alignment in [1u32, 32, 64, 256] {
        let mut w = GgufWriter::new();
        w.alignment(alignment);
        let mut expected = Vec::new();
        for (i, ty) in every_type().into_iter().enumerate() {
            let dims = vec![ty.block_size() as u64 * 2, 3, 1 + i as u64 % 2];
            let n = ty.row_bytes(dims[0]).unwrap() as usize * 3 * dims[2] as usize;
            let data = pattern(n, i as u8);
            let name = format!("blk.{i}.{ty}");
            w.add_tensor(name.clone(), &dims, ty, data.clone());
            expected.push((name, dims, ty, data));
        }
        let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
        assert_eq!(f.alignment(), u64::from(alignment));
        assert_eq!(f.data_offset() % u64::from(alignment), 0);
        assert_eq!(f.tensors().len(), expected.len());
        for (t, (name, dims, ty, data)) in f.tensors().iter().zip(&expected) {
            assert_eq!(&t.name, name);
            assert_eq!(&t.dims, dims);
            assert_eq!(t.ggml_type, *ty);
            assert_eq!(t.n_bytes, data.len() as u64);
            assert_eq!(t.n_elements(), dims.iter().product::<u64>());
            assert_eq!(t.offset % u64::from(alignment), 0);
            let bytes = f.tensor_data(t);
            assert_eq!(bytes, &data[..], "{name}");
            assert_eq!(
                bytes.as_ptr() as usize % alignment.min(64) as usize,
                0,
                "{name}"
            );
            assert!(std::ptr::eq(f.tensor(name).unwrap(), t));
            assert_eq!(f.tensor_data_by_name(name), Some(&data[..]));
        }
        assert!(f.tensor("missing").is_none());
        assert_eq!(f.tensor_data_by_name("missing"), None);
    }
}

#[test]
fn version_2_files_read() {
    let mut w = GgufWriter::new();
    w.version(2).add_kv("general.architecture", "llama");
    w.add_tensor("x", &[4], GgmlType::F32, pattern(16, 1));
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.tensor_data_by_name("x"), Some(&pattern(16, 1)[..]));
}

#[test]
fn open_maps_a_file_and_matches_from_bytes() {
    let mut w = GgufWriter::new();
    w.add_kv("general.name", "mapped");
    w.add_tensor("x", &[32, 2], GgmlType::Q8_0, pattern(68, 3));
    let path = std::env::temp_dir().join(format!("jikji-gguf-open-{}.gguf", std::process::id()));
    w.write_to_path(&path).unwrap();
    let mapped = GgufFile::open(&path).unwrap();
    let owned = GgufFile::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(mapped.metadata(), owned.metadata());
    assert_eq!(mapped.as_bytes(), owned.as_bytes());
    assert_eq!(mapped.tensor_data_by_name("x"), Some(&pattern(68, 3)[..]));
    let ptr = mapped.tensor_data_by_name("x").unwrap().as_ptr() as usize;
    assert_eq!(ptr % 32, 0, "mapped tensor data is aligned");
}

#[test]
fn open_reports_missing_and_empty_files() {
    let missing = std::env::temp_dir().join("jikji-gguf-definitely-missing.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert!(matches!(err, GgufError::Io(_)));
    assert!(
        err.to_string()
            .contains("jikji-gguf-definitely-missing.gguf"),
        "{err}"
    );

    let empty = std::env::temp_dir().join(format!("jikji-gguf-empty-{}.gguf", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    let err = GgufFile::open(&empty).unwrap_err();
    std::fs::remove_file(&empty).unwrap();
    assert!(err.to_string().contains("unexpected end of file"), "{err}");
}

fn file_with(kvs: &[(&str, Value)]) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.add_kv(*k, v.clone());
    }
    GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

fn wrong_type(r: Result<impl std::fmt::Debug, GgufError>) -> (String, &'static str, &'static str) {
    match r {
        Err(GgufError::WrongType {
            key,
            expected,
            found,
        }) => (key, expected, found),
        other => panic!("expected WrongType, got {other:?}"),
    }
}

#[test]
fn absent_keys_give_none_for_every_getter() {
    let f = file_with(&[]);
    assert!(f.get("x").is_none());
    assert_eq!(f.get_u32("x").unwrap(), None);
    assert_eq!(f.get_u64("x").unwrap(), None);
    assert_eq!(f.get_i32("x").unwrap(), None);
    assert_eq!(f.get_f32("x").unwrap(), None);
    assert_eq!(f.get_bool("x").unwrap(), None);
    assert_eq!(f.get_str("x").unwrap(), None);
    assert_eq!(f.get_str_array("x").unwrap(), None);
    assert_eq!(f.get_i32_array("x").unwrap(), None);
    assert_eq!(f.get_f32_array("x").unwrap(), None);
}

#[test]
fn get_u32_accepts_any_integer_that_fits() {
    let f = file_with(&[
        ("u8", Value::U8(5)),
        ("i32", Value::I32(12)),
        ("u64", Value::U64(4_000_000_000)),
        ("i64", Value::I64(7)),
        ("neg", Value::I32(-1)),
        ("big", Value::U64(1 << 32)),
        ("f", Value::F32(1.0)),
        ("s", Value::String("3".into())),
    ]);
    assert_eq!(f.get_u32("u8").unwrap(), Some(5));
    assert_eq!(f.get_u32("i32").unwrap(), Some(12));
    assert_eq!(f.get_u32("u64").unwrap(), Some(4_000_000_000));
    assert_eq!(f.get_u32("i64").unwrap(), Some(7));
    assert_eq!(
        wrong_type(f.get_u32("neg")),
        ("neg".into(), "u32", "i32 (value out of range)")
    );
    assert_eq!(
        wrong_type(f.get_u32("big")),
        ("big".into(), "u32", "u64 (value out of range)")
    );
    assert_eq!(wrong_type(f.get_u32("f")), ("f".into(), "u32", "f32"));
    assert_eq!(wrong_type(f.get_u32("s")), ("s".into(), "u32", "string"));
    let msg = f.get_u32("s").unwrap_err().to_string();
    assert_eq!(msg, "metadata key `s` has type string, expected u32");
}

#[test]
fn get_u64_accepts_any_non_negative_integer() {
    let f = file_with(&[
        ("i8", Value::I8(3)),
        ("u64", Value::U64(u64::MAX)),
        ("neg", Value::I64(-5)),
        ("b", Value::Bool(true)),
    ]);
    assert_eq!(f.get_u64("i8").unwrap(), Some(3));
    assert_eq!(f.get_u64("u64").unwrap(), Some(u64::MAX));
    assert_eq!(wrong_type(f.get_u64("neg")).2, "i64 (value out of range)");
    assert_eq!(wrong_type(f.get_u64("b")).2, "bool");
}

#[test]
fn get_i32_accepts_integers_that_fit() {
    let f = file_with(&[
        ("u32", Value::U32(9)),
        ("i64", Value::I64(-9)),
        ("big", Value::U32(u32::MAX)),
    ]);
    assert_eq!(f.get_i32("u32").unwrap(), Some(9));
    assert_eq!(f.get_i32("i64").unwrap(), Some(-9));
    assert_eq!(wrong_type(f.get_i32("big")).2, "u32 (value out of range)");
}

#[test]
fn get_f32_accepts_f32_and_f64_only() {
    let f = file_with(&[
        ("f32", Value::F32(1e-6)),
        ("f64", Value::F64(10000.0)),
        ("int", Value::U32(1)),
    ]);
    assert_eq!(f.get_f32("f32").unwrap(), Some(1e-6));
    assert_eq!(f.get_f32("f64").unwrap(), Some(10000.0));
    assert_eq!(wrong_type(f.get_f32("int")), ("int".into(), "f32", "u32"));
}

#[test]
fn get_bool_and_get_str_are_strict() {
    let f = file_with(&[
        ("b", Value::Bool(false)),
        ("s", "gpt2".into()),
        ("n", Value::U8(1)),
    ]);
    assert_eq!(f.get_bool("b").unwrap(), Some(false));
    assert_eq!(f.get_str("s").unwrap(), Some("gpt2"));
    assert_eq!(wrong_type(f.get_bool("n")).2, "u8");
    assert_eq!(wrong_type(f.get_str("n")).2, "u8");
    assert_eq!(wrong_type(f.get_str("b")).2, "bool");
}

#[test]
fn array_getters_convert_or_name_the_mismatch() {
    let f = file_with(&[
        ("strs", vec!["a", "b"].into()),
        ("empty", Value::Array(vec![])),
        ("u8s", vec![1u8, 2].into()),
        ("i64s", vec![-3i64, 4].into()),
        ("u32_big", vec![1u32, u32::MAX].into()),
        ("f32s", vec![0.5f32].into()),
        ("f64s", vec![0.25f64].into()),
        ("scalar", Value::U32(1)),
    ]);
    assert_eq!(f.get_str_array("strs").unwrap(), Some(vec!["a", "b"]));
    assert_eq!(f.get_str_array("empty").unwrap(), Some(vec![]));
    assert_eq!(f.get_i32_array("empty").unwrap(), Some(vec![]));
    assert_eq!(f.get_i32_array("u8s").unwrap(), Some(vec![1, 2]));
    assert_eq!(f.get_i32_array("i64s").unwrap(), Some(vec![-3, 4]));
    assert_eq!(f.get_f32_array("f32s").unwrap(), Some(vec![0.5]));
    assert_eq!(f.get_f32_array("f64s").unwrap(), Some(vec![0.25]));
    assert_eq!(
        wrong_type(f.get_i32_array("u32_big")).2,
        "u32 (value out of range)"
    );
    assert_eq!(
        wrong_type(f.get_str_array("u8s")),
        ("u8s".into(), "array of string", "array of u8")
    );
    assert_eq!(wrong_type(f.get_f32_array("strs")).2, "array of string");
    assert_eq!(wrong_type(f.get_i32_array("f32s")).2, "array of f32");
    assert_eq!(wrong_type(f.get_str_array("scalar")).2, "u32");
}

#[test]
fn writer_rejects_input_it_cannot_encode_validly() {
    let err = |w: &GgufWriter| w.to_bytes().unwrap_err().to_string();
    let mut w = GgufWriter::new();
    w.add_kv("k", 1u32).add_kv("k", 2u32);
    assert!(err(&w).contains("duplicate metadata key `k`"));
    let mut w = GgufWriter::new();
    w.add_kv("", 1u32);
    assert!(err(&w).contains("empty metadata key"));
    let mut w = GgufWriter::new();
    w.add_kv("mixed", Value::Array(vec![Value::U8(1), Value::I8(1)]));
    assert!(err(&w).contains("mixes element types"));
    let mut w = GgufWriter::new();
    w.alignment(24);
    assert!(err(&w).contains("power of two"));
    let mut w = GgufWriter::new();
    w.add_tensor("x", &[4], GgmlType::F32, vec![0u8; 15]);
    assert!(err(&w).contains("has 15 bytes of data, but F32 dims [4] need 16"));
    let mut w = GgufWriter::new();
    w.add_tensor("x", &[31], GgmlType::Q4_0, vec![0u8; 18]);
    assert!(err(&w).contains("multiple of 32"));
    let mut w = GgufWriter::new();
    w.add_tensor("x", &[1], GgmlType::F32, vec![0u8; 4])
        .add_tensor("x", &[1], GgmlType::F32, vec![0u8; 4]);
    assert!(err(&w).contains("duplicate tensor name `x`"));
    let mut w = GgufWriter::new();
    w.add_tensor("x", &[1, 0], GgmlType::F32, vec![]);
    assert!(err(&w).contains("non-zero dims"));
    let mut w = GgufWriter::new();
    w.add_tensor("x".repeat(64), &[1], GgmlType::F32, vec![0u8; 4]);
    assert!(err(&w).contains("1..=63 bytes"));
    let mut w = GgufWriter::new();
    w.version(1);
    assert!(err(&w).contains("cannot write GGUF version 1"));
}

#[test]
fn alignment_setter_replaces_the_key() {
    let mut w = GgufWriter::new();
    w.alignment(64).alignment(128);
    w.add_tensor("x", &[3], GgmlType::F32, pattern(12, 0));
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.alignment(), 128);
    assert_eq!(f.get_u32("general.alignment").unwrap(), Some(128));
    assert_eq!(f.data_offset() % 128, 0);
}

#[test]
fn reader_tolerates_non_canonical_bools_like_llama_cpp() {
    let mut bytes = {
        let mut w = GgufWriter::new();
        w.add_kv("flag", false);
        w.to_bytes().unwrap()
    };
    let last = bytes.len() - 1;
    bytes[last] = 2;
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.get_bool("flag").unwrap(), Some(true));
}
