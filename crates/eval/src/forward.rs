//! The one way evaluations run the model: tokens appended to a contiguous KV cache in
//! micro-batches of at most `ubatch` tokens (llama.cpp's `n_ubatch`, 512 by default), with
//! logits computed only for the rows asked for.
//!
//! The contiguous cache is the CPU backend's llama.cpp-order path, whose logits are
//! bit-identical to llama.cpp's for the same micro-batches — so splitting the tokens the
//! way llama.cpp splits them is what makes perplexities agree to the last digit.

use jikji_models::{KvCache, Model, ModelError};

/// Appends `tokens` to `cache` and returns the logits of the rows in `rows` (ascending
/// indices into `tokens`), `[rows.len(), n_vocab]`. Micro-batches without a wanted row
/// still compute one row (the models always produce one), which is dropped.
pub fn forward_rows(model: &Model, cache: &mut KvCache, tokens: &[u32], rows: &[usize], ubatch: usize) -> Result<Vec<f32>, ModelError> {
    let ubatch = ubatch.max(1);
    let n_vocab = model.info().n_vocab;
    let mut out = Vec::with_capacity(rows.len() * n_vocab);
    let mut next = 0; // index into `rows`
    for (c, piece) in tokens.chunks(ubatch).enumerate() {
        let base = c * ubatch;
        let end = base + piece.len();
        let start = next;
        while next < rows.len() && rows[next] < end {
            next += 1;
        }
        if start == next {
            model.forward_rows(piece, cache, &[piece.len() - 1])?;
            continue;
        }
        let local: Vec<usize> = rows[start..next].iter().map(|&r| r - base).collect();
        out.extend(model.forward_rows(piece, cache, &local)?);
    }
    if next != rows.len() {
        return Err(ModelError::BadRequest(format!("rows {:?} past the {} tokens", &rows[next..], tokens.len())));
    }
    Ok(out)
}
