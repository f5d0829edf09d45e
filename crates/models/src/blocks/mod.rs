//! Shared building blocks of decoder-only transformers. Architecture files in `arch/`
//! compose these; none of them knows an architecture name.
//!
//! All arithmetic goes through `jikji_kernels` (matmul, `ops::{rms_norm_weighted_inplace,
//! rope, softmax_inplace, swiglu_inplace, geglu_inplace}`), which carry llama.cpp's CPU
//! numerics. The one numeric choice made here is in attention: with an f16 cache, queries
//! and softmax weights are rounded to f16 before their dot products, because ggml's
//! `mul_mat` converts the f32 operand to the f16 operand's type.

pub mod attention;
pub mod layer;
pub mod linear;
pub mod ffn;
pub mod rope;
