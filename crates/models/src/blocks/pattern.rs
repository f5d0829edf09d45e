//! Layer patterns read from metadata that several architectures share.

use crate::error::ModelError;
use crate::hparams::Meta;
use jikji_gguf::Value;

/// Which layers use the sliding window, from `{arch}.attention.sliding_window_pattern`: a
/// per-layer bool array, or a period `p` (layer `il` slides unless `il % p == p - 1`).
/// `None` when the key is absent (the architecture picks its default).
pub fn sliding_layers(meta: &Meta, n_layer: usize) -> Result<Option<Vec<bool>>, ModelError> {
    let key = meta.key("attention.sliding_window_pattern");
    match meta.file.get(&key) {
        None => Ok(None),
        Some(Value::Array(items)) => {
            if items.len() != n_layer {
                return Err(ModelError::BadHparams(format!("`{key}` has {} entries for {n_layer} layers", items.len())));
            }
            items
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Ok(*b),
                    _ => Err(ModelError::BadHparams(format!("`{key}` must hold booleans"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Some(_) => match meta.opt_uint("attention.sliding_window_pattern")? {
            Some(0) | None => Err(ModelError::BadHparams(format!("`{key}` must be a bool array or a period > 0"))),
            Some(p) => Ok(Some(periodic(p, n_layer))),
        },
    }
}

/// Every layer slides except each `p`-th (`il % p == p - 1`).
pub fn periodic(p: usize, n_layer: usize) -> Vec<bool> {
    (0..n_layer).map(|il| il % p < p - 1).collect()
}
