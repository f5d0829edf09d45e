//! Shared building blocks of decoder-only transformers. Architecture files in `arch/`
//! compose these; none of them knows an architecture name.
//!
//! Arithmetic goes through `jikji_kernels` (matmul, RMS norm, GeGLU) except where the
//! peer's exact operation order matters and the kernels do not reproduce it yet: those
//! steps (x86 activation quantization, the Q4_1 dot, rope with FMA contraction, SwiGLU
//! with ggml's vector exp, attention's dot and softmax orders) are in `peer.rs`, each
//! checked against a dump of llama.cpp's intermediate tensors.

pub mod attention;
pub mod layer;
pub mod linear;
pub mod mla;
pub mod moe;
pub mod peer;
pub mod ffn;
pub mod rope;
