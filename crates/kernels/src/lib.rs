//! CPU compute kernels: block formats, dequantize, quantize, dot products, matmul, and the
//! elementwise ops of transformer forward passes.
//!
//! CONTRACT (other crates rely on these names; the kernels owner may add, not rename).
//! ---- CONTRACT SKELETON (the kernels owner replaces the todo!() bodies) ----
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

/// Dequantize `dst.len()` elements from `src` (whole blocks of `ty`).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    let _ = (ty, src, dst);
    todo!()
}

/// Quantize `src` into `dst` (whole blocks of `ty`); every type in the GgmlType list that
/// holds weights (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, Q8_K).
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    let _ = (ty, src, dst);
    todo!()
}

/// The type activations are quantized to before a dot with a weight of type `ty`
/// (as llama.cpp does: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants,
/// F16 for F16, BF16 for BF16, F32 for F32).
pub fn vec_dot_type(ty: GgmlType) -> GgmlType {
    let _ = ty;
    todo!()
}

/// Dot product of one weight row (`n` elements of `ty`) with an activation row already
/// quantized to `vec_dot_type(ty)`.
pub fn vec_dot(ty: GgmlType, n: usize, w_row: &[u8], x_row: &[u8]) -> f32 {
    let _ = (ty, n, w_row, x_row);
    todo!()
}

/// y[t, r] = sum_c W[r, c] * x[t, c].
/// x: [n_tokens, w.cols] f32 row-major; y: [n_tokens, w.rows] f32 row-major.
pub fn matmul(w: &WeightView, x: &[f32], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    let _ = (w, x, n_tokens, y);
    todo!()
}

/// Dequantize row `row` of `w` into `dst` (len `w.cols`): embedding lookup.
pub fn get_row(w: &WeightView, row: usize, dst: &mut [f32]) -> Result<(), KernelError> {
    let _ = (w, row, dst);
    todo!()
}
