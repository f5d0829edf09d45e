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
//! - **Scalar reference, SIMD twins.** `fp`, `legacy`, `kquants` are the scalar reference
//!   (ggml's portable numerics, public as [`scalar`]). `simd/` holds AVX2, AVX-512 and
//!   AVX-512 VNNI kernels (one macro body, three feature sets) and NEON for aarch64, chosen
//!   once at run time ([`isa`], `cpu.rs`). The x86 dots reproduce ggml's x86 operation
//!   order (8 integer lanes per block, `fma` into f32 lanes, `hsum_float_8`), so they match
//!   llama.cpp's x86 build bit for bit and the scalar twin within f32 rounding; the SIMD
//!   activation quantizers write the reference's bytes. `tests/simd_vs_scalar.rs` checks
//!   every kernel on every level the CPU has; the `*_isa` functions pick a level by hand.
//! - **Tiles.** Matrix products run 4 weight rows × 4 tokens per kernel call (each weight
//!   block unpacked once per 4 tokens, each activation block reused by 4 rows); on
//!   AVX-512 from 8 tokens on, the legacy formats unpack 8 rows once per call into scratch
//!   and run 8 × 3 tiles whose per-block scale products are formed 8 rows at a time and
//!   read back as broadcasts folded into the FMAs (about 2× the 4 × 4 tiles). A single
//!   token (decoding) streams one row at a time with software prefetch; with VNNI the
//!   signed formats then read their weights as unsigned values against a per-block
//!   activation correction, so nothing per row but the dot itself remains. Every output
//!   keeps the single-dot operation order, so results never depend on batch size.
//! - **Errors, not panics.** Every public entry point validates lengths against the block
//!   geometry and returns [`KernelError`]; internal block code only sees validated slices.
//! - **Threads.** `matmul` splits weight rows into contiguous chunks run by the persistent
//!   [`pool`] ([`set_num_threads`]) when the work is large enough to pay for a fork/join.
//!
//! - **Peer-specific orders.** Where llama.cpp's x86 build does not run `vec_dot` (its
//!   repacked Q4_K gemm/gemv, its tiled matmul for Q6_K), [`peer_order`] reproduces those
//!   fold points ([`matmul_peer_kquant`]; with VNNI through 8-row kernels whose vector
//!   lanes are the rows, like the peer's `block_q4_Kx8`); [`lanes`] holds the lane-wise f32
//!   FMA sums, reductions and polynomial `exp` that attention and SwiGLU need in ggml's
//!   order (several rows at once where a caller has many dots against one vector).
//!
//! Block layouts are documented in `legacy.rs` (32-element formats) and `kquants.rs`
//! (256-element K-quants).

// `usize::is_multiple_of` is newer than the workspace's rust-version (1.80).
#![allow(clippy::manual_is_multiple_of)]

use std::sync::atomic::{AtomicUsize, Ordering};

pub mod alloc;
pub mod cpu;
mod fp;
mod kquants;
mod legacy;
pub mod lanes;
pub mod ops;
pub mod peer_order;
pub mod tiled_f16;
mod simd;
pub mod pool;
pub use half;
mod util;

pub use cpu::{isa, Isa};
pub use tiled_f16::{f16_tiled_supported, matmul_f16_tiled, matmul_f16_tiled_isa, matmul_f16_tiled_rounded};
pub use peer_order::{matmul_kquant_batch_invariant, matmul_peer_kquant, matmul_peer_kquant_isa, matvec_peer_kquant_rows, peer_kquant_supported};
pub use jikji_gguf::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("tensor type {0} is not supported by this operation")]
    Unsupported(GgmlType),
    #[error("length {len} is not a multiple of the block size {block} of {ty}")]
    BadLength { ty: GgmlType, len: usize, block: usize },
    #[error("buffer size mismatch: {0}")]
    Size(String),
    #[error("instruction set {} is not supported by this CPU", .0.name())]
    UnsupportedIsa(Isa),
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
    Ok(dot_dispatch(isa(), ty, w_row, x_row))
}

/// As [`try_vec_dot`] with the kernels of instruction set `isa` (an error if this CPU
/// lacks it); `Isa::Scalar` is the reference. For tests and benchmarks.
pub fn vec_dot_isa(isa: Isa, ty: GgmlType, n: usize, w_row: &[u8], x_row: &[u8]) -> Result<f32, KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::UnsupportedIsa(isa));
    }
    check_bytes(ty, n, w_row.len(), "vec_dot weight row")?;
    check_bytes(vec_dot_type(ty), n, x_row.len(), "vec_dot activation row")?;
    Ok(dot_dispatch(isa, ty, w_row, x_row))
}

/// One dot on validated rows with the SIMD kernel of `isa` (supported) or the scalar one.
fn dot_dispatch(isa: Isa, ty: GgmlType, w: &[u8], x: &[u8]) -> f32 {
    match simd::matrix_fn(isa, ty) {
        Some(f) if !w.is_empty() => {
            let nb = w.len() / ty.type_size();
            let mut out = 0.0f32;
            // SAFETY: `isa` is supported (checked by every caller); `w` holds `nb` whole
            // blocks of `ty` and `x` the matching `nb` blocks of `vec_dot_type(ty)`
            // (validated lengths); one output is written to `out`.
            unsafe { f(w.as_ptr(), w.len(), x.as_ptr(), x.len(), nb, 1, 1, &mut out, 0, 0) };
            out
        }
        _ => dot_unchecked(ty, w, x),
    }
}

/// The scalar reference dot, on validated rows (whole blocks, matching lengths).
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
/// quantized to `vec_dot_type(ty)`, with the best kernels of this CPU.
///
/// Never panics: if a length does not match `n` (or the type has no dot) the result is
/// NaN, which poisons every downstream value visibly. Use [`try_vec_dot`] for an error.
pub fn vec_dot(ty: GgmlType, n: usize, w_row: &[u8], x_row: &[u8]) -> f32 {
    try_vec_dot(ty, n, w_row, x_row).unwrap_or(f32::NAN)
}

/// The scalar reference kernels every SIMD kernel is tested against (ggml's portable
/// numerics). Same contracts as the crate-level functions of the same names.
pub mod scalar {
    use super::{check_bytes, dot_unchecked, vec_dot_type, GgmlType, KernelError};

    /// The scalar twin of [`crate::try_vec_dot`].
    pub fn vec_dot(ty: GgmlType, n: usize, w_row: &[u8], x_row: &[u8]) -> Result<f32, KernelError> {
        check_bytes(ty, n, w_row.len(), "vec_dot weight row")?;
        check_bytes(vec_dot_type(ty), n, x_row.len(), "vec_dot activation row")?;
        Ok(dot_unchecked(ty, w_row, x_row))
    }

    /// The scalar reference quantizer (= [`crate::quantize_row`]).
    pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
        super::quantize_row(ty, src, dst)
    }
}

// ------------------------------------------------------------------ threads

static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads `matmul` and [`pool::parallel_for`] may use (0 restores the
/// default: the machine's physical cores, see [`pool::physical_cores`]).
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads `matmul` may use.
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => pool::physical_cores(),
        n => n,
    }
}

/// Multiply-accumulates per thread below which splitting an operation over the pool costs
/// more than it saves (a pool fork/join is a few microseconds).
const MIN_WORK_PER_THREAD: usize = 1 << 16;

/// Activation bytes one token block of a matmul task may span (kept in L2 while the task's
/// weight rows stream past it).
const TOKEN_BLOCK_BYTES: usize = 192 * 1024;

// ------------------------------------------------------------------ matmul

/// Quantizes `n_tokens` activation rows (`x`: [n_tokens, cols] f32) to
/// `vec_dot_type(weight_ty)`, ready for [`matmul_quantized`]. Lets a caller quantize an
/// input once and multiply it by several weights of the same type (e.g. Q, K, V).
/// The bytes are those of the scalar reference quantizer whatever the instruction set.
pub fn quantize_activations(weight_ty: GgmlType, x: &[f32], cols: usize, n_tokens: usize) -> Result<Vec<u8>, KernelError> {
    quantize_activations_isa(isa(), weight_ty, x, cols, n_tokens)
}

/// As [`quantize_activations`] with the kernels of `isa` (an error if this CPU lacks it).
pub fn quantize_activations_isa(
    isa: Isa,
    weight_ty: GgmlType,
    x: &[f32],
    cols: usize,
    n_tokens: usize,
) -> Result<Vec<u8>, KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::UnsupportedIsa(isa));
    }
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
        let fast = simd::quant_fn(isa, vt);
        for (src, dst) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(xrb.max(1))) {
            match fast {
                // SAFETY: `isa` is supported (checked above); `src` is whole blocks of `vt`
                // (`row_bytes` accepted `cols`) and `dst` exactly their quantized size.
                Some(f) => unsafe { f(src, dst) },
                None => quantize_row(vt, src, dst)?,
            }
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
///
/// Work split: weight rows are cut into contiguous chunks (a multiple of 8 rows, the
/// height of the big tiles) claimed by the pool's threads, each streaming its rows
/// linearly; within a chunk, tokens are taken in blocks whose activations stay in L2, and
/// the SIMD kernel computes a tile of rows × tokens at a time (one row at a time for a
/// single token). Each output is the same single-dot sequence of operations whatever the
/// split, so results do not depend on the thread count or the batch size.
pub fn matmul_quantized(w: &WeightView, xq: &[u8], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    matmul_quantized_isa(isa(), w, xq, n_tokens, y)
}

/// The operand checks every matmul makes: `w` valid, `xq` `n_tokens` rows of
/// `vec_dot_type(w.ty)` for `w.cols` values, `y` `n_tokens × w.rows` floats. Returns the
/// weight and activation row bytes.
pub(crate) fn matmul_operands(w: &WeightView, xq: &[u8], n_tokens: usize, y: &[f32]) -> Result<(usize, usize), KernelError> {
    let wrb = w.validate()?;
    let xrb = row_bytes(vec_dot_type(w.ty), w.cols)?;
    let xneed = xrb.checked_mul(n_tokens).ok_or_else(|| KernelError::Size("activation size overflows".into()))?;
    if xq.len() != xneed {
        return Err(KernelError::Size(format!("{:?} activations: expected {xneed} bytes, got {}", vec_dot_type(w.ty), xq.len())));
    }
    let yneed = w.rows.checked_mul(n_tokens).ok_or_else(|| KernelError::Size("output size overflows".into()))?;
    if y.len() != yneed {
        return Err(KernelError::Size(format!("output: expected {n_tokens} x {} = {yneed} floats, got {}", w.rows, y.len())));
    }
    Ok((wrb, xrb))
}

/// As [`matmul_quantized`] with the kernels of `isa` (an error if this CPU lacks it).
pub fn matmul_quantized_isa(isa: Isa, w: &WeightView, xq: &[u8], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::UnsupportedIsa(isa));
    }
    let (wrb, xrb) = matmul_operands(w, xq, n_tokens, y)?;
    if y.is_empty() {
        return Ok(());
    }
    if w.cols == 0 {
        y.fill(0.0);
        return Ok(());
    }

    let job = RowJob::new(isa, w, wrb, xq, xrb, n_tokens);
    let work = w.rows.saturating_mul(w.cols).saturating_mul(n_tokens);
    let nt = num_threads().min(work / MIN_WORK_PER_THREAD).max(1);
    if nt == 1 {
        // SAFETY: `y` is [n_tokens, rows] (checked above) and exclusively borrowed.
        unsafe { job.run(0, w.rows, y.as_mut_ptr()) };
        return Ok(());
    }
    // Several chunks per thread so a thread slowed by a neighbour does not hold up the rest.
    let per_thread = if n_tokens == 1 { 2 } else { 4 };
    // A multiple of 8 rows: the AVX-512 big tiles take rows 8 at a time.
    let chunk = w.rows.div_ceil(nt * per_thread).div_ceil(8).max(1) * 8;
    let n_tasks = w.rows.div_ceil(chunk);
    let out = OutPtr(y.as_mut_ptr());
    pool::parallel_for(n_tasks, &|i| {
        let r0 = i * chunk;
        let r1 = (r0 + chunk).min(job.rows);
        if r0 < r1 {
            // SAFETY: tasks own disjoint row ranges, so no two write the same element of
            // `y` ([n_tokens, rows], exclusively borrowed for the whole parallel_for).
            unsafe { job.run(r0, r1, out.get()) };
        }
    });
    Ok(())
}

/// One token's products with the weight rows `rows` of `w`, on the calling thread (no
/// pool): `y[r - rows.start] = w_r · x` in the same order as [`matmul_quantized`] gives them
/// for one token (each row's dot is independent of how rows are split). The building block
/// for callers that spread several matrices' rows over the pool as one job, e.g. the
/// q/k/v or gate/up projections of a decoded token.
pub fn matvec_quantized_rows(w: &WeightView, xq: &[u8], rows: std::ops::Range<usize>, y: &mut [f32]) -> Result<(), KernelError> {
    let wrb = w.validate()?;
    let xrb = row_bytes(vec_dot_type(w.ty), w.cols)?;
    if xq.len() != xrb {
        return Err(KernelError::Size(format!("quantized activations: expected {xrb} bytes (one token), got {}", xq.len())));
    }
    if rows.start > rows.end || rows.end > w.rows {
        return Err(KernelError::Size(format!("rows {rows:?} out of range (tensor has {} rows)", w.rows)));
    }
    if y.len() != rows.len() {
        return Err(KernelError::Size(format!("output: expected {} floats, got {}", rows.len(), y.len())));
    }
    if rows.is_empty() {
        return Ok(());
    }
    if w.cols == 0 {
        y.fill(0.0);
        return Ok(());
    }
    let job = RowJob::new(isa(), w, wrb, xq, xrb, 1);
    // SAFETY: sizes validated above; `y` holds exactly the outputs of `rows` and is
    // exclusively borrowed.
    unsafe { job.run_one(rows.start, rows.end, y.as_mut_ptr()) };
    Ok(())
}

/// An output buffer's base pointer, shared by pool tasks that write disjoint elements
/// (`matmul_quantized_isa`, `peer_order::matmul_peer_kquant_isa`).
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: every user dereferences the pointer only for disjoint elements, one task each,
// while the owning `&mut [f32]` stays exclusively borrowed for the whole `parallel_for`.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method, so closures capture the whole (Sync) wrapper, not the raw field.
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

/// A matmul over validated buffers, run one row range at a time.
struct RowJob<'a> {
    ty: GgmlType,
    data: &'a [u8],
    wrb: usize,
    xq: &'a [u8],
    xrb: usize,
    n_tokens: usize,
    rows: usize,
    /// Blocks per row.
    nb: usize,
    /// The SIMD kernel of a supported instruction set, or `None` for the scalar reference.
    kernel: Option<simd::MatrixFn>,
    /// Tokens per L2-sized activation block (a multiple of 12).
    tok_block: usize,
}

impl<'a> RowJob<'a> {
    /// A job over validated sizes: `wrb`/`xrb` bytes per weight / activation row.
    fn new(isa: Isa, w: &WeightView<'a>, wrb: usize, xq: &'a [u8], xrb: usize, n_tokens: usize) -> Self {
        RowJob {
            ty: w.ty,
            data: w.data,
            wrb,
            xq,
            xrb,
            n_tokens,
            rows: w.rows,
            nb: w.cols / w.ty.block_size(),
            kernel: simd::matrix_fn(isa, w.ty),
            // A multiple of 12: whole 4-token tiles and whole 3-token big tiles.
            tok_block: (TOKEN_BLOCK_BYTES / xrb).max(12) / 12 * 12,
        }
    }

    /// One token (`n_tokens == 1`): y[r - r0] for rows `r0..r1`.
    ///
    /// # Safety
    /// `y` must point to `r1 - r0` writable floats that no one else writes, and
    /// `r0 <= r1 <= rows`.
    unsafe fn run_one(&self, r0: usize, r1: usize, y: *mut f32) {
        let Some(f) = self.kernel else {
            for r in r0..r1 {
                let w_row = &self.data[r * self.wrb..(r + 1) * self.wrb];
                let v = dot_unchecked(self.ty, w_row, &self.xq[..self.xrb]);
                // SAFETY: `r - r0 < r1 - r0`, within the caller's `r1 - r0` floats at `y`.
                unsafe { *y.add(r - r0) = v };
            }
            return;
        };
        // SAFETY: `kernel` is the `MatrixFn` of a supported level (`RowJob::new`'s caller checked
        // it); rows r0..r1 ≤ rows lie in `data` (validated `rows * wrb` bytes), the one token's
        // `xrb` bytes in `xq`, and the kernel writes y + (r - r0), the caller's `r1 - r0` floats.
        unsafe { f(self.data.as_ptr().add(r0 * self.wrb), self.wrb, self.xq.as_ptr(), self.xrb, self.nb, r1 - r0, 1, y, 1, r1 - r0) };
    }

    /// Writes y[t, r] for rows `r0..r1` and every token.
    ///
    /// # Safety
    /// `y` must point to `n_tokens * rows` writable floats that no one else writes in
    /// rows `r0..r1`, and `r0 <= r1 <= rows`.
    unsafe fn run(&self, r0: usize, r1: usize, y: *mut f32) {
        let Some(f) = self.kernel else {
            for r in r0..r1 {
                let w_row = &self.data[r * self.wrb..(r + 1) * self.wrb];
                for (t, x_row) in self.xq.chunks_exact(self.xrb).enumerate() {
                    let v = dot_unchecked(self.ty, w_row, x_row);
                    // SAFETY: t < n_tokens and r < r1 <= rows, so `t * rows + r` is inside the
                    // caller's `n_tokens * rows` floats, in a row it alone writes.
                    unsafe { *y.add(t * self.rows + r) = v };
                }
            }
            return;
        };
        let mut t0 = 0;
        while t0 < self.n_tokens {
            let nt = self.tok_block.min(self.n_tokens - t0);
            // SAFETY: `kernel` is the `MatrixFn` of a supported level (`RowJob::new`'s caller
            // checked it). The kernel reads rows r0..r1 of the weights and tokens t0..t0+nt of the
            // activations (in bounds: validated sizes) and writes y[t, r] at y + r + t * rows for
            // those rows and tokens, inside the caller's `n_tokens * rows` floats and only in rows
            // r0..r1, which it alone writes.
            unsafe {
                f(
                    self.data.as_ptr().add(r0 * self.wrb),
                    self.wrb,
                    self.xq.as_ptr().add(t0 * self.xrb),
                    self.xrb,
                    self.nb,
                    r1 - r0,
                    nt,
                    y.add(t0 * self.rows + r0),
                    1,
                    self.rows,
                )
            };
            t0 += nt;
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
