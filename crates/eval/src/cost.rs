//! What a generation speed costs in memory traffic.
//!
//! Decoding one token reads every weight once (a matrix-vector product per tensor), except
//! an untied token embedding, of which only the token's row is looked up. At `t` tokens per
//! second a model of `b` bytes per token therefore reads `b · t` bytes per second; divided
//! by the machine's read bandwidth ([`crate::bandwidth`]) that is the share of the
//! bandwidth generation uses: near 1 for a memory-bound decoder, small when it is
//! compute-bound. (Weights that stay in a large last-level cache can push it past 1.)

use jikji_gguf::TensorInfo;

/// Name of the token-embedding tensor in GGUF files.
const TOKEN_EMBD: &str = "token_embd.weight";

/// Bytes of weights one decoded token reads, from the file's tensor index: every tensor,
/// except that an untied token embedding (`tied_output == false`) counts one row.
pub fn weight_bytes_per_token(tensors: &[TensorInfo], tied_output: bool) -> u64 {
    tensors
        .iter()
        .map(|t| {
            if t.name == TOKEN_EMBD && !tied_output {
                let rows = t.dims.get(1).copied().unwrap_or(1).max(1);
                t.n_bytes / rows
            } else {
                t.n_bytes
            }
        })
        .fold(0u64, u64::saturating_add)
}

/// Gigabytes per second that `tok_s` tokens per second read at `bytes_per_token`.
pub fn read_gb_s(bytes_per_token: u64, tok_s: f64) -> f64 {
    bytes_per_token as f64 * tok_s / 1e9
}

/// Share of `bandwidth_gb_s` that generating `tok_s` tokens per second reads
/// (`bytes_per_token · tok_s ÷ bandwidth`); `None` without a positive bandwidth.
pub fn bandwidth_share(bytes_per_token: u64, tok_s: f64, bandwidth_gb_s: f64) -> Option<f64> {
    (bandwidth_gb_s > 0.0 && bandwidth_gb_s.is_finite()).then(|| bytes_per_token as f64 * tok_s / (bandwidth_gb_s * 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jikji_gguf::GgmlType;

    fn tensor(name: &str, dims: &[u64], n_bytes: u64) -> TensorInfo {
        TensorInfo { name: name.into(), dims: dims.to_vec(), ggml_type: GgmlType::F32, offset: 0, n_bytes }
    }

    #[test]
    fn an_untied_embedding_counts_one_row_and_a_tied_one_all_of_it() {
        let t = [tensor("token_embd.weight", &[4, 100], 1600), tensor("blk.0.attn_q.weight", &[4, 4], 64)];
        assert_eq!(weight_bytes_per_token(&t, false), 16 + 64);
        assert_eq!(weight_bytes_per_token(&t, true), 1600 + 64);
    }

    #[test]
    fn share_is_bytes_times_speed_over_bandwidth() {
        assert_eq!(read_gb_s(500_000_000, 20.0), 10.0);
        let share = bandwidth_share(500_000_000, 20.0, 40.0).unwrap();
        assert!((share - 0.25).abs() < 1e-12);
        assert_eq!(bandwidth_share(1, 1.0, 0.0), None);
        assert_eq!(bandwidth_share(1, 1.0, f64::NAN), None);
    }
}
