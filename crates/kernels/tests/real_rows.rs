//! Rows cut from the real test models (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K, F32), dequantized by
//! the GGUF reference package's own implementation (gguf-py, numpy) when the fixture was
//! written by `tests/data/gen_real_rows.py`: an independent check of the block layouts on
//! real data. Needs no model file at test time.

use jikji_kernels::{dequantize_row, GgmlType};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex fixture")).collect()
}

fn ty_named(name: &str) -> GgmlType {
    (0..64).filter_map(GgmlType::from_u32).find(|t| t.name() == name).expect("known type name")
}

#[test]
fn real_model_rows_dequantize_like_the_gguf_reference_package() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/real_rows.json");
    let text = std::fs::read_to_string(path).expect("fixture real_rows.json");
    let rows: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    let rows = rows.as_array().expect("array");
    let mut seen = Vec::new();
    for r in rows {
        let ty = ty_named(r["type"].as_str().expect("type"));
        let n = r["n"].as_u64().expect("n") as usize;
        let bytes = unhex(r["bytes_hex"].as_str().expect("bytes"));
        let expect: Vec<f32> = unhex(r["values_f32le_hex"].as_str().expect("values"))
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut got = vec![0.0f32; n];
        dequantize_row(ty, &bytes, &mut got).expect("dequantize");
        let mut worst = 0.0f32;
        for (i, (&g, &e)) in got.iter().zip(&expect).enumerate() {
            let err = (g - e).abs();
            // Allow one f32 rounding of the reference's differently ordered products.
            assert!(err <= 2.0 * f32::EPSILON * e.abs().max(1e-30), "{ty} {} element {i}: {g} vs {e}", r["tensor"]);
            worst = worst.max(err);
        }
        assert!(got.iter().any(|&v| v != 0.0), "{ty}: a real row is not all zeros");
        seen.push(ty);
    }
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F32] {
        assert!(seen.contains(&ty), "fixture covers {ty}");
    }
}
