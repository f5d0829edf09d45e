//! jikji's Vulkan backend: the [`Backend`] seam through `wgpu` and WGSL kernels.
//!
//! Vulkan runs on NVIDIA, AMD and Intel GPUs, and through Mesa's lavapipe on a plain CPU,
//! which is how CI tests every kernel here without a GPU.
//!
//! - **Device.** [`WgpuBackend::new`] takes the preferred Vulkan adapter ([`device`]),
//!   with every limit the adapter offers and the `SUBGROUP` feature where it exists (the
//!   matmul then reduces with `subgroupAdd`, written for any subgroup size; otherwise in
//!   workgroup memory). [`list_adapters`] describes them all for `jikji devices`.
//! - **Weights** are uploaded once, each row repacked to start on a 4-byte boundary (a
//!   GGUF row of Q4_0 is 18 bytes a block, so rows are padded to a multiple of 4 bytes):
//!   WGSL reads storage as 32-bit words, and every f16 scale then sits inside one word.
//!   The kernels dequantize the GGUF blocks as they are (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
//!   Q5_1, Q8_0, Q2_K…Q6_K). A matrix larger than the device's storage-binding limit
//!   (128 MiB on lavapipe) is split by rows into chunks that each fit one binding.
//! - **Activations** are f32 storage buffers; only [`Backend::download`] reads back.
//!   Dispatches are recorded into one command encoder and submitted when a result is read
//!   ([`gpu`]), so a forward pass is one submission.
//! - **KV caches** (contiguous per sequence, and the paged pool) live on the device, one
//!   buffer per layer for keys and one for values. An f16 cache (the default, the pool
//!   always) stores its values as f16 packed two to a 32-bit word, rounded as the CPU's f16
//!   caches round, so attention sees the CPU's numbers in half the memory of f32; an f32
//!   cache, or one whose widths are odd, keeps f32 words (rounded to f16 values where the
//!   cache is f16).
//! - **Attention** is one flash-style kernel per layer (online softmax over chunks of
//!   keys, no score buffer), sliding windows and grouped-query heads included.
//! - **MoE** routes on the host ([`jikji_backend::Routing::route`], the reference every
//!   backend shares) from the downloaded router logits, then runs each used expert's rows
//!   as one batch.
//! - **Multi-head latent attention** (DeepSeek) composes the same kernels: the latent row
//!   `[c | k_pe]` is the only cache (no values), queries are absorbed per head through
//!   `attn_k_b`, and the attend kernel runs multi-query over the latent rows reading each
//!   value as the first `kv_lora` values of its key (`attention::mla`).
//!
//! - **Integer products**: for the legacy 32-value block types (Q4_0, Q4_1, Q5_0, Q5_1,
//!   Q8_0) the activations are quantized to 8 bits on the device as ggml's x86 build
//!   quantizes them, and each block's sum is `dot4I8Packed` over packed words (exact
//!   integers; naga polyfills it where the device has no integer dot product), then scaled.
//!
//! Numerics follow the CPU backend within float tolerance, not bit for bit: the other types
//! multiply f32 activations (the CPU quantizes them to 8 bits as ggml does) and sums run
//! in another order; the integer path differs from the CPU only in how the block terms are
//! summed.
//! Tests compare every operation and whole tiny models with [`jikji_backend::CpuBackend`].

pub mod device;
mod gpu;
mod attention;
mod ops;

pub use device::{list as list_adapters, AdapterSummary};
pub use gpu::DeviceInfo;

use gpu::Gpu;
use jikji_gguf::GgmlType;
use std::sync::Arc;

/// The Vulkan backend on one adapter (cheap to clone: the device is shared).
#[derive(Clone)]
pub struct WgpuBackend {
    pub(crate) gpu: Arc<Gpu>,
}

impl WgpuBackend {
    /// The backend on the preferred adapter, or adapter `JIKJI_VULKAN_ADAPTER` (an index
    /// into [`list_adapters`]) when that is set.
    pub fn new() -> Result<Self, jikji_backend::BackendError> {
        let index = std::env::var("JIKJI_VULKAN_ADAPTER").ok().and_then(|s| s.trim().parse().ok());
        Self::on_adapter(index)
    }

    /// The backend on adapter `index` of [`list_adapters`] (`None`: the preferred one).
    pub fn on_adapter(index: Option<usize>) -> Result<Self, jikji_backend::BackendError> {
        Ok(WgpuBackend { gpu: Arc::new(Gpu::open(index, None)?) })
    }

    /// The backend on adapter `index` with its storage-binding limit lowered to
    /// `max_binding` bytes (at least 256, at most the device's): matrices then split into
    /// row chunks of that size, as a vocabulary projection larger than lavapipe's 128 MiB
    /// binding does. Tests use it to take the split path with small matrices.
    pub fn with_binding_limit(index: Option<usize>, max_binding: u64) -> Result<Self, jikji_backend::BackendError> {
        Ok(WgpuBackend { gpu: Arc::new(Gpu::open(index, Some(max_binding))?) })
    }

    /// The device this backend runs on.
    pub fn device(&self) -> &DeviceInfo {
        &self.gpu.info
    }
}

/// One row-chunk of a matrix: `rows` rows from `row0`, in one buffer.
pub(crate) struct Chunk {
    pub buf: wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
}

/// A weight matrix on the device: rows padded to `stride` bytes (a multiple of 4).
pub struct WgpuMatrix {
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) ty: GgmlType,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) stride: usize,
}

impl WgpuMatrix {
    /// How many bindings (row chunks) the matrix takes.
    pub fn n_chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// A small f32 vector on the device.
pub struct WgpuVector {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) len: usize,
}

/// A `[rows, width]` f32 activation on the device.
pub struct WgpuAct {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) rows: usize,
    pub(crate) width: usize,
}

/// One sequence's cache: per layer keys `[n_ctx, k_width]` and values `[n_ctx, v_width]`.
pub struct WgpuCache {
    pub(crate) layers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    pub(crate) n_ctx: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) f16: bool,
    /// f16 values stored two to a word (both widths even); else f32 words.
    pub(crate) packed: bool,
}

/// The paged pool: per layer `[n_blocks * block_size, width]` keys and values.
pub struct WgpuPool {
    pub(crate) layers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    pub(crate) n_blocks: usize,
    pub(crate) block_size: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    /// As [`WgpuCache::packed`] (the pool is always f16).
    pub(crate) packed: bool,
}

/// Types the matmul and embedding kernels dequantize.
pub fn supported(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K)
}
