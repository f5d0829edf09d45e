//! Fuzzes the GGUF reader: any input must give `Ok` or `Err`, never a panic, hang or
//! unbounded allocation. On success every metadata value and every tensor byte is touched,
//! and the file must survive a writer round trip unchanged.
#![no_main]

use jikji_gguf::{GgufFile, GgufWriter, Value};
use libfuzzer_sys::fuzz_target;

fn touch(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.iter().map(touch).fold(1, u64::wrapping_add),
        other => other
            .as_int()
            .map(|i| i as u64)
            .or(other.as_float().map(f64::to_bits))
            .unwrap_or(1),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let mut acc = 0u64;
    for (key, value) in file.metadata() {
        acc = acc.wrapping_add(touch(value));
        // Typed getters must never panic, whatever the value's type.
        let _ = file.get_u32(key);
        let _ = file.get_u64(key);
        let _ = file.get_i32(key);
        let _ = file.get_f32(key);
        let _ = file.get_bool(key);
        let _ = file.get_str(key);
        let _ = file.get_str_array(key);
        let _ = file.get_i32_array(key);
        let _ = file.get_f32_array(key);
    }
    let mut writer = GgufWriter::new();
    writer.version(file.version());
    for (key, value) in file.metadata() {
        writer.add_kv(key.clone(), value.clone());
    }
    for t in file.tensors() {
        let bytes = file.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes);
        acc = acc.wrapping_add(bytes.iter().map(|&b| u64::from(b)).sum::<u64>());
        assert!(std::ptr::eq(file.tensor(&t.name).unwrap(), t));
        writer.add_tensor(t.name.clone(), &t.dims, t.ggml_type, bytes.to_vec());
    }
    std::hint::black_box(acc);

    // Round trip: whatever the reader accepts, the writer re-encodes to an equal file.
    let again = GgufFile::from_bytes(writer.to_bytes().expect("writer accepts a read file"))
        .expect("re-read");
    assert_eq!(
        format!("{:?}", file.metadata()),
        format!("{:?}", again.metadata())
    );
    assert_eq!(file.alignment(), again.alignment());
    assert_eq!(file.tensors().len(), again.tensors().len());
    for (a, b) in file.tensors().iter().zip(again.tensors()) {
        assert_eq!(
            (&a.name, &a.dims, a.ggml_type, a.offset, a.n_bytes),
            (&b.name, &b.dims, b.ggml_type, b.offset, b.n_bytes)
        );
        assert_eq!(file.tensor_data(a), again.tensor_data(b));
    }
});
