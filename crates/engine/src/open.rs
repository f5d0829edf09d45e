//! Opening a model file for `run`, `chat`, `serve` and `bench`: the file, its tokenizer,
//! the validated model and the context size, with the default-context rule written once.
//!
//! - [`context_size`]: `--ctx` when given (at least 1), else the model's training context
//!   capped at [`DEFAULT_CTX`] (4096 when the file states none), as llama.cpp's tools do.
//! - [`kv_cache_bytes`] / [`check_cache_fits`]: what a one-sequence F16 KV cache of that
//!   many positions costs, in checked arithmetic, against a memory budget the caller
//!   measured (the machine's available memory). A context whose cache cannot fit is a
//!   [`OpenError::CacheTooLarge`] before anything is allocated — a cache that fits the
//!   address space but not the machine would otherwise be zeroed page by page until the
//!   kernel kills the process.
//! - [`open`]: all of it in one call, on the backend `opts.backend` names (CPU by default;
//!   [`crate::backend::select`]); every error names the file and the step that failed.
//!   A directory with a `config.json` is a Hugging Face checkpoint, read by `jikji-hf`
//!   into the same in-memory GGUF image a converted file would give.
//!
//! The caller resolves catalog names to paths and measures the budget; nothing here reads
//! `/proc` or prints.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jikji_gguf::{GgufError, GgufFile};
use jikji_models::{Model, ModelError};

use crate::backend::{BackendError, BackendKind};
use jikji_tokenizer::{Tokenizer, TokenizerError};

/// Context when none is asked for, capped by the model's training context.
pub const DEFAULT_CTX: usize = 4096;

/// Bytes per cached key or value element: F16, what `Model::new_cache` stores.
const KV_ELEMENT_BYTES: u64 = 2;

/// How to open a model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Context size in tokens; `None` picks the default (see [`context_size`]).
    pub ctx: Option<usize>,
    /// Bytes a KV cache of the chosen context may take (the machine's available memory);
    /// `None` skips the check (the cache's own allocation still fails cleanly when the
    /// system refuses it).
    pub memory_budget: Option<u64>,
    /// Where the model computes (`--backend`; see [`crate::backend`]).
    pub backend: BackendKind,
}

/// A model ready to generate.
pub struct Opened {
    pub path: PathBuf,
    pub file: Arc<GgufFile>,
    pub tokenizer: Tokenizer,
    pub model: Model,
    /// The context size chosen by [`context_size`]; a cache of it fits the budget.
    pub n_ctx: usize,
    /// Bytes of a one-sequence KV cache of `n_ctx` positions.
    pub kv_bytes: u64,
}

/// Why a model could not be opened. Displayed without its source; print the error chain
/// (e.g. anyhow's `{:#}`) for the cause.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read model file {}", path.display())]
    File { path: PathBuf, source: GgufError },
    #[error("cannot read Hugging Face model directory {}", path.display())]
    HfDir { path: PathBuf, source: jikji_hf::HfError },
    #[error("cannot build the tokenizer of {}", path.display())]
    Tokenizer { path: PathBuf, source: TokenizerError },
    #[error("cannot load model {}", path.display())]
    Model { path: PathBuf, source: ModelError },
    #[error("invalid context size 0: the context must hold at least 1 token")]
    ZeroContext,
    #[error("KV cache too large: {0}")]
    CacheTooLarge(String),
    #[error("cannot run {} on the chosen backend", path.display())]
    Backend { path: PathBuf, source: BackendError },
}

/// The context size: `requested` if given (0 is an error), else `n_ctx_train` capped at
/// [`DEFAULT_CTX`], or [`DEFAULT_CTX`] when the training context is unknown (0).
pub fn context_size(requested: Option<usize>, n_ctx_train: usize) -> Result<usize, OpenError> {
    match requested {
        Some(0) => Err(OpenError::ZeroContext),
        Some(n) => Ok(n),
        None if n_ctx_train > 0 => Ok(n_ctx_train.min(DEFAULT_CTX)),
        None => Ok(DEFAULT_CTX),
    }
}

/// Bytes of a one-sequence F16 KV cache of `n_ctx` positions for `model`, or `None` when
/// the product overflows 64 bits.
pub fn kv_cache_bytes(model: &Model, n_ctx: usize) -> Option<u64> {
    let (k, v) = model.cache_widths();
    kv_bytes_for(n_ctx, k, v, model.info().n_layer)
}

fn kv_bytes_for(n_ctx: usize, k_width: usize, v_width: usize, n_layer: usize) -> Option<u64> {
    let per_token_layer = u64::try_from(k_width.checked_add(v_width)?).ok()?.checked_mul(KV_ELEMENT_BYTES)?;
    let per_token = per_token_layer.checked_mul(u64::try_from(n_layer).ok()?)?;
    per_token.checked_mul(u64::try_from(n_ctx).ok()?)
}

/// Checks that a KV cache of `n_ctx` positions can exist: its size must not overflow,
/// must fit the address space (`isize::MAX` bytes per layer's keys or values, Rust's
/// allocation limit) and, with a budget, must not exceed it. Returns its size in bytes.
pub fn check_cache_fits(model: &Model, n_ctx: usize, memory_budget: Option<u64>) -> Result<u64, OpenError> {
    let (k, v) = model.cache_widths();
    check_fits(n_ctx, k, v, model.info().n_layer, memory_budget)
}

fn check_fits(n_ctx: usize, k_width: usize, v_width: usize, n_layer: usize, budget: Option<u64>) -> Result<u64, OpenError> {
    let overflow = || OpenError::CacheTooLarge(format!("a context of {n_ctx} positions overflows the cache size"));
    let total = kv_bytes_for(n_ctx, k_width, v_width, n_layer).ok_or_else(overflow)?;
    let widest = kv_bytes_for(n_ctx, k_width.max(v_width), 0, 1).ok_or_else(overflow)?;
    if widest > isize::MAX as u64 {
        return Err(overflow());
    }
    if let Some(budget) = budget {
        if total > budget {
            return Err(OpenError::CacheTooLarge(format!(
                "a context of {n_ctx} positions needs {} of KV cache, more than the {} of memory available",
                human_bytes(total),
                human_bytes(budget)
            )));
        }
    }
    Ok(total)
}

/// `bytes` in the largest binary unit that keeps a leading digit (`1.5 GiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut x = bytes as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", UNITS[unit])
}

/// Opens `path`: the GGUF file, its tokenizer, the model, the context size from
/// `opts.ctx` (see [`context_size`]), checked against `opts.memory_budget`.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Opened, OpenError> {
    if opts.ctx == Some(0) {
        return Err(OpenError::ZeroContext);
    }
    let path = path.to_path_buf();
    let file = match open_file(&path) {
        Ok(f) => Arc::new(f),
        Err(e) => return Err(e),
    };
    let tokenizer = match Tokenizer::from_gguf(&file) {
        Ok(t) => t,
        Err(source) => return Err(OpenError::Tokenizer { path, source }),
    };
    let device = match crate::backend::select(opts.backend, &file) {
        Ok(d) => d,
        Err(source) => return Err(OpenError::Backend { path, source }),
    };
    let model = match device.load(file.clone()) {
        Ok(m) => m,
        Err(source) => return Err(OpenError::Model { path, source }),
    };
    let n_ctx = context_size(opts.ctx, model.info().n_ctx_train)?;
    let kv_bytes = check_cache_fits(&model, n_ctx, opts.memory_budget)?;
    Ok(Opened { path, file, tokenizer, model, n_ctx, kv_bytes })
}

/// The GGUF file at `path`, or the image of the Hugging Face directory at `path`.
pub fn open_file(path: &Path) -> Result<GgufFile, OpenError> {
    if jikji_hf::is_hf_dir(path) {
        return jikji_hf::load_dir(path).map_err(|source| OpenError::HfDir { path: path.to_path_buf(), source });
    }
    GgufFile::open(path).map_err(|source| OpenError::File { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_context_is_the_training_context_capped_at_4096() {
        assert_eq!(context_size(None, 2048).unwrap(), 2048);
        assert_eq!(context_size(None, 131072).unwrap(), DEFAULT_CTX);
        assert_eq!(context_size(None, 0).unwrap(), DEFAULT_CTX);
        assert_eq!(context_size(Some(100_000), 2048).unwrap(), 100_000);
        assert!(matches!(context_size(Some(0), 2048), Err(OpenError::ZeroContext)));
    }

    #[test]
    fn cache_bytes_are_positions_times_widths_layers_and_f16() {
        assert_eq!(kv_bytes_for(10, 32, 32, 3), Some(10 * 64 * 3 * 2));
        assert_eq!(kv_bytes_for(usize::MAX, 32, 32, 3), None);
        assert_eq!(kv_bytes_for(1, usize::MAX, 1, 1), None);
    }

    #[test]
    fn a_cache_that_overflows_or_exceeds_the_budget_is_refused_with_its_size() {
        assert_eq!(check_fits(4096, 32, 32, 3, Some(1 << 30)).unwrap(), 4096 * 384);
        assert_eq!(check_fits(4096, 32, 32, 3, None).unwrap(), 4096 * 384);
        let e = check_fits(usize::MAX, 32, 32, 3, None).unwrap_err().to_string();
        assert!(e.starts_with("KV cache too large:") && e.contains("18446744073709551615"), "{e}");
        // Fits 64 bits, not one allocation.
        let e = check_fits(1 << 60, 32, 0, 1, None).unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        let e = check_fits(1_000_000_000, 32, 32, 3, Some(8 << 30)).unwrap_err().to_string();
        assert!(e.contains("357.6 GiB") && e.contains("8.0 GiB"), "{e}");
    }

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn open_reads_a_tiny_model_and_names_the_file_on_failure() {
        let path = jikji_testkit::fixtures_dir().join("tiny/llama-1.gguf");
        let o = open(&path, &OpenOptions::default()).unwrap();
        assert_eq!(o.n_ctx, o.model.info().n_ctx_train.min(DEFAULT_CTX));
        assert_eq!(Some(o.kv_bytes), kv_cache_bytes(&o.model, o.n_ctx));
        assert_eq!(o.tokenizer.n_vocab(), o.model.info().n_vocab);

        let huge = open(&path, &OpenOptions { ctx: Some(1 << 40), memory_budget: Some(1 << 30), ..Default::default() });
        assert!(matches!(huge, Err(OpenError::CacheTooLarge(_))));
        assert!(matches!(open(&path, &OpenOptions { ctx: Some(0), memory_budget: None, ..Default::default() }), Err(OpenError::ZeroContext)));

        let missing = Path::new("/nonexistent/model.gguf");
        let e = open(missing, &OpenOptions::default()).err().expect("missing file");
        assert!(matches!(e, OpenError::File { .. }));
        assert!(e.to_string().contains("/nonexistent/model.gguf"));
    }
}
