//! One file per architecture: `load(&Loader<B>) -> Decoder<B>` turns the file's metadata
//! into decoder blocks and says only what is special about the architecture; the forward
//! pass is `decoder::Decoder::forward` for all of them. `registry.rs` maps
//! `general.architecture` to these loaders.

pub mod deepseek2;
pub mod exaone;
pub mod exaone4;
pub mod gemma3;
pub mod llama;
pub mod qwen2;
pub mod qwen3;
pub mod qwen3moe;
