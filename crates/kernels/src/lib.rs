//! CPU compute kernels: block formats, dequantize, quantize, dot products, matmul, and the
//! elementwise ops of transformer forward passes (`ops`).
//!
//! Design choices:
//! - **Numerics follow ggml's CPU backend.** Block layouts, dequantization formulas, the
//!   activation quantizers (Q8_0, Q8_1, Q8_K: ggml's reference rounding bit for bit) and the
//!   per-block integer dot products with their f32 accumulation order are those of ggml's
//!   scalar reference, so a forward pass built on them reproduces llama.cpp's logits.
//!   (ggml's x86 SIMD paths differ in the last bits: e.g. AVX2 Q8_0 quantization scales by
//!   `127 / amax` and rounds ties to even, and dots accumulate in f32 vector lanes; those
//!   differences are rare one-step ties and f32 rounding, far below the logit tolerance.)
//! - **Weights stay quantized.** `matmul` quantizes each activation row once to
//!   [`vec_dot_type`] of the weight type and dots it with every weight row straight from
//!   the (memory-mapped) weight bytes; no f32 copy of a matrix is ever made.
//!   [`quantize_activations`] + [`matmul_quantized`] let a caller quantize one input once
//!   for several weights of the same type (Q, K, V; gate, up).
//! - **Scalar first.** Everything here is the scalar reference (`fp`, `legacy`, `kquants`,
//!   `ops`), written over slices and `chunks_exact` so the compiler can auto-vectorize.
//!   SIMD modules, when added, get a scalar twin to be tested against: these.
//! - **Errors, not panics.** Every public entry point validates lengths against the block
//!   geometry and returns [`KernelError`]; internal block code only sees validated slices.
//! - **Threads.** `matmul` splits weight rows across `std::thread::scope` threads
//!   ([`set_num_threads`], default = available parallelism) only when the work is large
//!   enough to pay for spawning; a persistent pool can replace this without API change.
//!
//! Block layouts are documented in `legacy.rs` (32-element formats) and `kquants.rs`
//! (256-element K-quants).

// `usize::is_multiple_of` is newer than the workspace's rust-version (1.80).
#![allow(clippy::manual_is_multiple_of)]

use std::sync::atomic::{AtomicUsize, Ordering};

mod fp;
mod kquants;
mod legacy;
pub mod ops;
pub use half;
mod util;

pub use jikji_gguf::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("tensor type {0} is not supported by this operation")]
    Unsupported(GgmlType),
    #[error("length {len} is not a multiple of the block size {block} of {ty}")]
    BadLength { ty: GgmlType, len: usize, block: usize },
    #[error("buffer size mismatch: {0}")]
    Size(String),
}

/// A weight matrix stored in its file type: `rows` rows of `cols` elements each
/// (ggml `ne0 = cols`, `ne1 = rows`). `data.len() == rows * ty.row_bytes(cols)`.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

impl WeightView<'_> {
    /// Bytes of one row, validated (`cols` a whole number of blocks, no overflow).
    pub fn row_bytes(&self) -> Result<usize, KernelError> {
        row_bytes(self.ty, self.cols)
    }

    /// Checks `data.len() == rows * row_bytes(cols)`; returns the row size in bytes.
    fn validate(&self) -> Result<usize, KernelError> {
        supported(self.ty)?;
        let rb = self.row_bytes()?;
        let total = rb
            .checked_mul(self.rows)
            .ok_or_else(|| KernelError::Size(format!("{} rows of {} bytes overflow", self.rows, rb)))?;
        if self.data.len() != total {
            return Err(KernelError::Size(format!(
                "weight {} [{} x {}] needs {} bytes, got {}",
                self.ty,
                self.rows,
                self.cols,
                total,
                self.data.len()
            )));
        }
        Ok(rb)
    }
}

fn supported(ty: GgmlType) -> Result<(), KernelError> {
    use GgmlType::*;
    match ty {
        I8 | I16 | I32 | I64 | F64 => Err(KernelError::Unsupported(ty)),
        _ => Ok(()),
    }
}

/// Bytes of a row of `n` elements of `ty`, or an error if `n` is not a whole number of
/// blocks (or the type is not a float/quantized type this crate handles).
pub fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, KernelError> {
    supported(ty)?;
    let block = ty.block_size();
    if n % block != 0 {
        return Err(KernelError::BadLength { ty, len: n, block });
    }
    (n / block)
        .checked_mul(ty.type_size())
        .ok_or_else(|| KernelError::Size(format!("{n} elements of {ty} overflow")))
}

fn check_bytes(ty: GgmlType, n: usize, bytes: usize, what: &str) -> Result<(), KernelError> {
    let need = row_bytes(ty, n)?;
    if bytes != need {
        return Err(KernelError::Size(format!("{what}: {n} elements of {ty} need {need} bytes, got {bytes}")));
    }
    Ok(())
}

/// Dequantize `dst.len()` elements from `src` (whole blocks of `ty`).
/// `src.len()` must be exactly `ty.row_bytes(dst.len())`.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    use GgmlType::*;
    check_bytes(ty, dst.len(), src.len(), "dequantize")?;
    match ty {
        F32 => fp::dequant_f32(src, dst),
        F16 => fp::dequant_f16(src, dst),
        BF16 => fp::dequant_bf16(src, dst),
        Q4_0 => legacy::dequant_q4_0(src, dst),
        Q4_1 => legacy::dequant_q4_1(src, dst),
        Q5_0 => legacy::dequant_q5_0(src, dst),
        Q5_1 => legacy::dequant_q5_1(src, dst),
        Q8_0 => legacy::dequant_q8_0(src, dst),
        Q8_1 => legacy::dequant_q8_1(src, dst),
        Q2_K => kquants::dequant_q2_k(src, dst),
        Q3_K => kquants::dequant_q3_k(src, dst),
        Q4_K => kquants::dequant_q4_k(src, dst),
        Q5_K => kquants::dequant_q5_k(src, dst),
        Q6_K => kquants::dequant_q6_k(src, dst),
        Q8_K => kquants::dequant_q8_k(src, dst),
        I8 | I16 | I32 | I64 | F64 => return Err(KernelError::Unsupported(ty)),
    }
    Ok(())
}

/// Quantize `src` into `dst` (whole blocks of `ty`); every type in the GgmlType list that
/// holds weights (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, Q8_K).
/// `dst.len()` must be exactly `ty.row_bytes(src.len())`.
///
/// Q8_0, Q8_1 and Q8_K (the activation types) are ggml's reference quantizers bit for bit;
/// Q4_0..Q5_1 are ggml's reference quantizers too; the K-quant weight quantizers are simple
/// min/max reference quantizers (see `kquants.rs`).
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    use GgmlType::*;
    check_bytes(ty, src.len(), dst.len(), "quantize")?;
    match ty {
        F32 => fp::quant_f32(src, dst),
        F16 => fp::quant_f16(src, dst),
        BF16 => fp::quant_bf16(src, dst),
        Q4_0 => legacy::quant_q4_0(src, dst),
        Q4_1 => legacy::quant_q4_1(src, dst),
        Q5_0 => legacy::quant_q5_0(src, dst),
        Q5_1 => legacy::quant_q5_1(src, dst),
        Q8_0 => legacy::quant_q8_0(src, dst),
        Q8_1 => legacy::quant_q8_1(src, dst),
        Q2_K => kquants::quant_q2_k(src, dst),
        Q3_K => kquants::quant_q3_k(src, dst),
        Q4_K => kquants::quant_q4_k(src, dst),
        Q5_K => kquants::quant_q5_k(src, dst),
        Q6_K => kquants::quant_q6_k(src, dst),
        Q8_K => kquants::quant_q8_k(src, dst),
        I8 | I16 | I32 | I64 | F64 => return Err(KernelError::Unsupported(ty)),
    }
    Ok(())
}

/// The type activations are quantized to before a dot with a weight of type `ty`
/// (as llama.cpp does: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants,
/// F16 for F16, BF16 for BF16, F32 for F32).
///
/// Q8_1 and Q8_K weights (not produced by llama.cpp) dot against themselves; the integer
/// types have no dot and map to F32 (any operation on them returns `Unsupported`).
pub fn vec_dot_type(ty: GgmlType) -> GgmlType {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => Q8_0,
        Q4_1 | Q5_1 | Q8_1 => Q8_1,
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => Q8_K,
        F16 => F16,
        BF16 => BF16,
        F32 | I8 | I16 | I32 | I64 | F64 => F32,
    }
}

/// Checked dot product: as [`vec_dot`], but bad lengths or types are an error.
pub fn try_vec_dot(ty: GgmlType, n: usize, w_row: &[u8], x_row: &[u8]) -> Result<f32, KernelError> {
    check_bytes(ty, n, w_row.len(), "vec_dot weight row")?;
    check_bytes(vec_dot_type(ty), n, x_row.len(), "vec_dot activation row")?;
    Ok(dot_unchecked(ty, w_row, x_row))
}

/// Dispatch on validated rows (whole blocks, matching lengths).
#[inline]
fn dot_unchecked(ty: GgmlType, w: &[u8], x: &[u8]) -> f32 {
    use GgmlType::*;
    match ty {
        F32 => fp::dot_f32(w, x),
        F16 => fp::dot_f16(w, x),
        BF16 => fp::dot_bf16(w, x),
        Q4_0 => legacy::dot_q4_0_q8_0(w, x),
        Q4_1 => legacy::dot_q4_1_q8_1(w, x),
        Q5_0 => legacy::dot_q5_0_q8_0(w, x),
        Q5_1 => legacy::dot_q5_1_q8_1(w, x),
        Q8_0 => legacy::dot_q8_0_q8_0(w, x),
        Q8_1 => legacy::dot_q8_1_q8_1(w, x),
        Q2_K => kquants::dot_q2_k_q8_k(w, x),
        Q3_K => kquants::dot_q3_k_q8_k(w, x),
        Q4_K => kquants::dot_q4_k_q8_k(w, x),
        Q5_K => kquants::dot_q5_k_q8_k(w, x),
        Q6_K => kquants::dot_q6_k_q8_k(w, x),
        Q8_K => kquants::dot_q8_k_q8_k(w, x),
        I8 | I16 | I32 | I64 | F64 => f32::NAN,
    }
}

/// Dot product of one weight row (`n` elements of `ty`) with an activation row already
/// quantized to `vec_dot_type(ty)`.
///
/// Never panics: if a length does not match `n` (or the type has no dot) the result is
/// NaN, which poisons every downstream value visibly. Use [`try_vec_dot`] for an error.
pub fn vec_dot(ty: GgmlType, n: usize, w_row: &[u8], x_row: &[u8]) -> f32 {
    try_vec_dot(ty, n, w_row, x_row).unwrap_or(f32::NAN)
}

// ------------------------------------------------------------------ threads

static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads `matmul` may use (0 restores the default: the machine's
/// available parallelism).
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads `matmul` may use.
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// Multiply-accumulates per thread below which spawning a thread costs more than it saves.
const MIN_WORK_PER_THREAD: usize = 1 << 18;

// ------------------------------------------------------------------ matmul

/// Quantizes `n_tokens` activation rows (`x`: [n_tokens, cols] f32) to
/// `vec_dot_type(weight_ty)`, ready for [`matmul_quantized`]. Lets a caller quantize an
/// input once and multiply it by several weights of the same type (e.g. Q, K, V).
pub fn quantize_activations(weight_ty: GgmlType, x: &[f32], cols: usize, n_tokens: usize) -> Result<Vec<u8>, KernelError> {
    supported(weight_ty)?;
    let vt = vec_dot_type(weight_ty);
    let need = cols
        .checked_mul(n_tokens)
        .ok_or_else(|| KernelError::Size("activation size overflows".into()))?;
    if x.len() != need {
        return Err(KernelError::Size(format!("activations: expected {n_tokens} x {cols} = {need} floats, got {}", x.len())));
    }
    let xrb = row_bytes(vt, cols)?;
    let total = xrb
        .checked_mul(n_tokens)
        .ok_or_else(|| KernelError::Size("quantized activation size overflows".into()))?;
    let mut xq = vec![0u8; total];
    if cols > 0 {
        for (src, dst) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(xrb.max(1))) {
            quantize_row(vt, src, dst)?;
        }
    }
    Ok(xq)
}

/// y[t, r] = sum_c W[r, c] * x[t, c].
/// x: [n_tokens, w.cols] f32 row-major; y: [n_tokens, w.rows] f32 row-major.
pub fn matmul(w: &WeightView, x: &[f32], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    w.validate()?;
    let xq = quantize_activations(w.ty, x, w.cols, n_tokens)?;
    matmul_quantized(w, &xq, n_tokens, y)
}

/// As [`matmul`], with the activations already quantized by [`quantize_activations`]
/// (`xq`: `n_tokens` rows of `vec_dot_type(w.ty)`).
pub fn matmul_quantized(w: &WeightView, xq: &[u8], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    let wrb = w.validate()?;
    let xrb = row_bytes(vec_dot_type(w.ty), w.cols)?;
    let xneed = xrb.checked_mul(n_tokens).ok_or_else(|| KernelError::Size("activation size overflows".into()))?;
    if xq.len() != xneed {
        return Err(KernelError::Size(format!("quantized activations: expected {xneed} bytes, got {}", xq.len())));
    }
    let yneed = w.rows.checked_mul(n_tokens).ok_or_else(|| KernelError::Size("output size overflows".into()))?;
    if y.len() != yneed {
        return Err(KernelError::Size(format!("output: expected {n_tokens} x {} = {yneed} floats, got {}", w.rows, y.len())));
    }
    if yneed == 0 {
        return Ok(());
    }
    if w.cols == 0 {
        y.fill(0.0);
        return Ok(());
    }

    let work = w.rows.saturating_mul(w.cols).saturating_mul(n_tokens);
    let nt = num_threads().min(work / MIN_WORK_PER_THREAD).min(w.rows).max(1);
    let rows_per = w.rows.div_ceil(nt);
    let job = RowJob { ty: w.ty, data: w.data, wrb, xq, xrb, n_tokens };

    if n_tokens == 1 {
        // y is [rows]: each thread owns a contiguous slice of it.
        if nt == 1 {
            job.run(0, y);
        } else {
            std::thread::scope(|s| {
                for (i, chunk) in y.chunks_mut(rows_per).enumerate() {
                    let job = &job;
                    s.spawn(move || job.run(i * rows_per, chunk));
                }
            });
        }
        return Ok(());
    }

    // Several tokens: each thread fills a [its rows, n_tokens] buffer (a weight row stays
    // in cache while it meets every token), then the buffers are scattered into y.
    let mut buf = vec![0.0f32; yneed];
    if nt == 1 {
        job.run(0, &mut buf);
    } else {
        std::thread::scope(|s| {
            for (i, chunk) in buf.chunks_mut(rows_per * n_tokens).enumerate() {
                let job = &job;
                s.spawn(move || job.run(i * rows_per, chunk));
            }
        });
    }
    for (r, per_token) in buf.chunks_exact(n_tokens).enumerate() {
        for (t, &v) in per_token.iter().enumerate() {
            y[t * w.rows + r] = v;
        }
    }
    Ok(())
}

/// One thread's share of a matmul, over validated buffers.
struct RowJob<'a> {
    ty: GgmlType,
    data: &'a [u8],
    wrb: usize,
    xq: &'a [u8],
    xrb: usize,
    n_tokens: usize,
}

impl RowJob<'_> {
    /// Fills `out` ([rows, n_tokens], starting at weight row `r0`).
    fn run(&self, r0: usize, out: &mut [f32]) {
        let rows = self.data.chunks_exact(self.wrb).skip(r0);
        for (w_row, per_token) in rows.zip(out.chunks_exact_mut(self.n_tokens)) {
            for (o, x_row) in per_token.iter_mut().zip(self.xq.chunks_exact(self.xrb)) {
                *o = dot_unchecked(self.ty, w_row, x_row);
            }
        }
    }
}

/// Dequantize row `row` of `w` into `dst` (len `w.cols`): embedding lookup.
pub fn get_row(w: &WeightView, row: usize, dst: &mut [f32]) -> Result<(), KernelError> {
    let rb = w.validate()?;
    if row >= w.rows {
        return Err(KernelError::Size(format!("row {row} out of range (tensor has {} rows)", w.rows)));
    }
    if dst.len() != w.cols {
        return Err(KernelError::Size(format!("get_row: dst has {} floats, row has {}", dst.len(), w.cols)));
    }
    let start = row * rb; // < data.len() since row < rows and rows * rb == data.len()
    dequantize_row(w.ty, &w.data[start..start + rb], dst)
}
