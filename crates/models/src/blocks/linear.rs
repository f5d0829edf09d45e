//! Several projections of the same input (q/k/v, gate/up): the input is quantized once per
//! activation type (`jikji_kernels::vec_dot_type`) and shared, as ggml reuses its converted
//! `src1` buffer. Results are identical to separate `matmul` calls.

use crate::error::ModelError;
use crate::weights::Matrix;
use jikji_gguf::{GgmlType, GgufFile};
use jikji_kernels::{matmul_quantized, quantize_activations, vec_dot_type};

/// `x`: `[n_tokens, cols]` → one `[n_tokens, m.rows]` output per matrix (all with `cols` columns).
pub fn project_many(file: &GgufFile, mats: &[&Matrix], x: &[f32], n_tokens: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let mut cache: Vec<(GgmlType, Vec<u8>)> = Vec::new();
    let mut outs = Vec::with_capacity(mats.len());
    for m in mats {
        let vt = vec_dot_type(m.info.ggml_type);
        let idx = match cache.iter().position(|(t, _)| *t == vt) {
            Some(i) => i,
            None => {
                cache.push((vt, quantize_activations(m.info.ggml_type, x, m.cols, n_tokens)?));
                cache.len() - 1
            }
        };
        let mut y = vec![0.0f32; n_tokens * m.rows]; // [n_tokens, m.rows]
        matmul_quantized(&m.view(file), &cache[idx].1, n_tokens, &mut y)?;
        outs.push(y);
    }
    Ok(outs)
}
