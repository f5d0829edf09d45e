//! The parts a decoder block is made of, as weights on a backend plus the parameters that
//! say how to use them: attention ([`attention::Attention`]: projections, optional biases
//! and QK-norm, rope, the backend's attention), multi-head latent attention
//! ([`mla::Mla`]), gated FFNs ([`ffn::GatedFfn`]) and mixtures of experts
//! ([`moe::MoeFfn`]), and the metadata patterns architectures share
//! ([`pattern::sliding_layers`]). Each knows how to load itself from GGUF tensor names and
//! how to run through a [`jikji_backend::Backend`]; none knows an architecture name and
//! none computes anything itself.

pub mod attention;
pub mod ffn;
pub mod mla;
pub mod moe;
pub mod pattern;
