//! The backend seam: the one interface through which the models compute.
//!
//! A model (`jikji-models`) describes a decoder as blocks of weights and parameters and
//! runs its forward loop as calls on a [`Backend`]; it never touches a kernel, a thread
//! pool or a cache layout. A backend owns everything below that line:
//!
//! - **Weights.** [`Backend::load_matrix`] receives a validated [`MatrixRef`] (a tensor of
//!   the mapped GGUF file with its shape) and returns the backend's own handle, which the
//!   model holds opaquely: the CPU keeps a reference into the mmap, a GPU backend uploads
//!   (and may repack) it once. Small vectors (norm weights, biases) go through
//!   [`Backend::load_vector`].
//! - **Activations.** [`Backend::Act`] is a `[rows, width]` f32 buffer that lives where the
//!   backend computes; the model reads one back only on demand ([`Backend::download`]:
//!   logits, and intermediates while tracing).
//! - **Operations** a decoder needs: matmul of one input against one or several weights
//!   (the projections of one input share its quantization), the vocabulary projection,
//!   embedding rows, RMS norm, row biases, residual adds, scaling, the rope variants
//!   ([`Rope`]), gated activations ([`Activation`]), attention over a KV view
//!   ([`AttnShape`]: causal, grouped-query, sliding window), multi-head latent attention
//!   ([`MlaAttend`]: latent cache, absorbed decoding) and mixture-of-experts FFNs
//!   ([`Experts`]: routing and grouped expert matmuls); for encoders (embedding models),
//!   layer norm with bias, exact GELU and bidirectional attention within each sequence.
//! - **KV caches.** A contiguous per-sequence cache ([`Backend::Cache`]) and a paged pool
//!   shared by many sequences ([`Backend::Pool`]) are the backend's types, so a device
//!   backend keeps them on the device. A forward pass reaches them through a [`Step`].
//!   A contiguous cache can also hold several sequences that share a prefix
//!   ([`Kv::Shared`], one [`RowView`] per row: llama.cpp's unified-cache mask), which is
//!   how evaluations run a question once and every answer after it in one pass; backends
//!   say whether they implement it ([`Backend::shared_steps`]; the CPU does).
//!
//! Numerics are the backend's business too. A [`Step`] says whether it runs one sequence
//! over its own cache or a serving batch over the paged pool ([`Step::serving`]); the CPU
//! backend ([`cpu::CpuBackend`]) picks llama.cpp's exact x86 operation orders for the
//! first (the golden-test path) and batch-invariant orders for the second (a sequence's
//! logits never depend on what it was batched with). Another backend must meet the same
//! two contracts within its own tolerance, and is tested against the CPU backend — per
//! operation at odd shapes, then whole models — never against itself.
//!
//! Design choices:
//! - Static dispatch: the decoder is generic over `B: Backend` (associated types for the
//!   handles, no downcasts on the hot path); `jikji-models` erases the backend once, at
//!   the `Model` level.
//! - Operations are coarse where the data movement is the backend's to optimise (attention
//!   stores this step's keys and values and attends in one call; MLA and MoE are one call
//!   each), and fine where architectures differ (norm placement, scaling, residuals).
//! - Errors are values ([`BackendError`]); a backend never panics on a shape it was given.
#![forbid(unsafe_code)]

pub mod cpu;
mod error;
pub mod routing;
pub mod trace;

use jikji_gguf::{GgufFile, TensorInfo};
use std::sync::Arc;

pub use cpu::CpuBackend;
pub use error::BackendError;
pub use routing::{Gating, Routing};

/// A weight matrix of `rows` rows of `cols` elements inside a mapped GGUF file (ggml
/// `dims = [cols, rows]`), already checked by the model loader: present, of a matmul type,
/// with a byte size matching its shape.
#[derive(Clone)]
pub struct MatrixRef {
    pub file: Arc<GgufFile>,
    pub info: TensorInfo,
    pub rows: usize,
    pub cols: usize,
}

impl std::fmt::Debug for MatrixRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatrixRef({} {:?} [{}, {}])", self.info.name, self.info.ggml_type, self.rows, self.cols)
    }
}

impl MatrixRef {
    /// The kernel view of this matrix's bytes.
    pub fn view(&self) -> jikji_kernels::WeightView<'_> {
        jikji_kernels::WeightView { ty: self.info.ggml_type, data: self.file.tensor_data(&self.info), rows: self.rows, cols: self.cols }
    }

    /// The whole matrix dequantized to f32, `[rows, cols]` row-major (for small weights
    /// that must be rearranged at load, such as a combined MLA `attn_kv_b`).
    pub fn dequantize(&self) -> Result<Vec<f32>, BackendError> {
        let view = self.view();
        let mut out = vec![0.0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            jikji_kernels::get_row(&view, r, row)?;
        }
        Ok(out)
    }
}

/// Element type of a contiguous cache (the paged pool is always f16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvType {
    F16,
    F32,
}

impl KvType {
    pub fn bytes(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }
}

/// Rotary pair layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs `(2i, 2i+1)` (llama.cpp `LLAMA_ROPE_TYPE_NORM`).
    Norm,
    /// Halves `(i, i + n_rot/2)` (GPT-NeoX style).
    Neox,
}

/// Rotary position embedding of one layer.
#[derive(Clone, Debug)]
pub enum Rope {
    /// ggml's `rope_ext` with `ext_factor = 0`: `n_rot` rotated dims (0: no rotation),
    /// `base`, linear `freq_scale` and optional per-pair frequency divisors
    /// (`rope_freqs.weight`, `[n_rot / 2]`).
    Plain { mode: RopeMode, n_rot: usize, base: f32, freq_scale: f32, freq_factors: Option<Arc<[f32]>> },
    /// YaRN scaling (Peng et al. 2023), as ggml's `rope_ext` with `ext_factor ≠ 0`.
    Yarn(YarnRope),
}

/// YaRN parameters in ggml's terms: per pair `k`, the interpolated angle `freq_scale · θ_k`
/// and the extrapolated `θ_k` are mixed by a ramp over the correction dims, and cos/sin are
/// multiplied by `mscale · (1 + 0.1 ln(1 / freq_scale))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YarnRope {
    pub mode: RopeMode,
    pub n_rot: usize,
    pub base: f32,
    pub freq_scale: f32,
    /// Mix weight of the extrapolated angle (1 for YaRN files, 0 disables the ramp).
    pub ext_factor: f32,
    /// ggml's `attn_factor` argument: the magnitude multiplier of cos/sin.
    pub mscale: f32,
    /// `[start, end]` pair indices of the ramp (`ggml_rope_yarn_corr_dims`).
    pub corr_dims: [f32; 2],
}

impl YarnRope {
    /// `ggml_rope_yarn_corr_dims` for `n_rot` dims, the training context `n_ctx_orig`,
    /// and the fast/slow rotation counts.
    pub fn corr_dims(n_rot: usize, n_ctx_orig: usize, base: f32, beta_fast: f32, beta_slow: f32) -> [f32; 2] {
        let dim = |n_turns: f32| n_rot as f32 * (n_ctx_orig as f32 / (n_turns * 2.0 * std::f32::consts::PI)).ln() / (2.0 * base.ln());
        let start = dim(beta_fast).floor();
        let end = dim(beta_slow).ceil();
        [start.max(0.0), end.min(n_rot as f32 - 1.0)]
    }
}

/// Activation of a gated FFN's gate branch: `down(act(gate · x) * (up · x))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU.
    Silu,
    /// GeGLU with the tanh approximation of GELU.
    GeluTanh,
}

/// Shape and scaling of one attention layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Multiplies `q·k` before the softmax.
    pub kq_scale: f32,
    /// Sliding window length, `None` for global attention.
    pub window: Option<usize>,
}

impl AttnShape {
    /// The first cache position a query at `pos` sees: `pos + 1 - window` on
    /// sliding-window layers (key `j` is hidden when `pos - j >= window`), else 0.
    pub fn first_visible(&self, pos: usize) -> usize {
        self.window.map_or(0, |w| (pos + 1).saturating_sub(w))
    }
}

/// Dimensions of one multi-head latent attention layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MlaShape {
    pub n_head: usize,
    pub kv_lora: usize,
    /// Per-head query/key dims without rope (`key_length_mla - n_rot`).
    pub nope: usize,
    /// Rotated dims per head (`rope.dimension_count`).
    pub rope: usize,
    /// Per-head value dims (`value_length_mla`).
    pub dv: usize,
    pub kq_scale: f32,
    pub rms_eps: f32,
}

impl MlaShape {
    /// Per-head query width before absorption.
    pub fn dk(&self) -> usize {
        self.nope + self.rope
    }

    /// Values per token per layer in the latent cache.
    pub fn cache_width(&self) -> usize {
        self.kv_lora + self.rope
    }

    /// Bytes per token of the latent cache and of the plain multi-head cache the same
    /// model would need (keys `n_head · (nope + rope)`, values `n_head · dv`), for
    /// `n_layer` layers and `elem_bytes` per element.
    pub fn cache_bytes_per_token(&self, n_layer: usize, elem_bytes: usize) -> (usize, usize) {
        let latent = n_layer * self.cache_width() * elem_bytes;
        let plain = n_layer * self.n_head * (self.dk() + self.dv) * elem_bytes;
        (latent, plain)
    }
}

/// How MLA's key-side up-projection reaches the queries.
pub enum KAbsorb<B: Backend> {
    /// `attn_k_b` per head, `[kv_lora, nope]`: `q_lat = k_b · q_nope` (a matmul).
    PerHead(Vec<B::Matrix>),
    /// From a combined `attn_kv_b`: per head the key rows `[nope, kv_lora]` in f32, applied
    /// transposed (`q_lat[r] = Σ_c w[c][r] q_nope[c]`).
    Transposed(Vec<Vec<f32>>),
}

/// What [`Backend::mla_attention`] needs besides the projections: the latent norm, the
/// absorbed up-projections and the (YaRN) rope of the rotated part.
pub struct MlaAttend<B: Backend> {
    pub shape: MlaShape,
    pub rope: YarnRope,
    pub kv_a_norm: B::Vector, // [kv_lora]
    pub k_absorb: KAbsorb<B>,
    pub v_b: Vec<B::Matrix>, // per head [dv, kv_lora]
}

/// One routed expert (slices of the stacked `ffn_*_exps` tensors).
pub struct Expert<B: Backend> {
    pub gate: B::Matrix, // [n_ff_exp, n_embd]
    pub up: B::Matrix,   // [n_ff_exp, n_embd]
    pub down: B::Matrix, // [n_embd, n_ff_exp]
}

/// A mixture-of-experts FFN's routed part (shared experts are a plain gated FFN the model
/// adds itself).
pub struct Experts<B: Backend> {
    pub routing: Routing,
    pub gate_inp: B::Matrix,           // [n_expert, n_embd]
    pub exp_probs_b: Option<Vec<f32>>, // [n_expert]
    pub experts: Vec<Expert<B>>,
    pub act: Activation,
}

/// One sequence of a serving step: `n_tokens` new tokens at positions `pos0..`, stored
/// through the block table `blocks` (block `i` holds positions `i * block_size ..`).
#[derive(Clone, Copy, Debug)]
pub struct SeqSpan<'a> {
    pub pos0: usize,
    pub n_tokens: usize,
    pub blocks: &'a [u32],
}

/// What one row of a shared-prefix step ([`Kv::Shared`]) writes and sees: its own cache
/// cell, the cells of a prefix it shares with other rows, and the start of its own run.
///
/// This is llama.cpp's unified-cache mask for sequences that share a prefix (one cell per
/// prefix token, owned by every sequence; then each sequence's own tokens): the row at
/// `cell` sees the cells `shared` (keys at positions `shared_pos0..`) and `own..=cell`
/// (keys at the positions just before its own, one per cell), further limited by the
/// layer's sliding window. Cells between the two runs belong to other sequences and stay
/// hidden.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowView {
    /// The cell this row's key and value are written to.
    pub cell: usize,
    /// Cells of the shared prefix (empty for a row of the prefix itself).
    pub shared: std::ops::Range<usize>,
    /// Position of the key in `shared.start`.
    pub shared_pos0: usize,
    /// First cell of the row's own run (`≤ cell`).
    pub own: usize,
}

impl RowView {
    /// The cell ranges (`[lo, hi)`, ascending, non-empty) a row at position `pos` sees on a
    /// layer whose first visible position is `first_visible(pos)`.
    pub fn visible(&self, pos: usize, first_visible: usize) -> [(usize, usize); 2] {
        // Own run: cell c holds position pos - (cell - c).
        let own_lo = self.own.max((self.cell + first_visible).saturating_sub(pos));
        let own = (own_lo, self.cell + 1);
        // Shared run: cell c holds position shared_pos0 + (c - shared.start).
        let sh_lo = self.shared.start.max((self.shared.start + first_visible).saturating_sub(self.shared_pos0));
        let shared = if sh_lo < self.shared.end { (sh_lo, self.shared.end) } else { (self.shared.end, self.shared.end) };
        [shared, own]
    }
}

/// The cache a step writes and attends over.
pub enum Kv<'a, B: Backend> {
    /// One sequence's own cache; the step's rows are positions `pos0..`.
    Contiguous { cache: &'a mut B::Cache, pos0: usize },
    /// Several sequences in the shared pool, rows concatenated in `seqs` order.
    Paged { pool: &'a mut B::Pool, seqs: &'a [SeqSpan<'a>] },
    /// Sequences that share prefixes inside one contiguous cache (evaluation: a task's
    /// question once, each answer after it), one [`RowView`] per row. Backends without
    /// [`Backend::shared_steps`] refuse it.
    Shared { cache: &'a mut B::Cache, views: &'a [RowView] },
}

/// One forward step: the position of every row and the cache it uses.
pub struct Step<'a, B: Backend> {
    /// Position of each batch row, in row order.
    pub positions: Vec<usize>,
    pub kv: Kv<'a, B>,
}

impl<'a, B: Backend> Step<'a, B> {
    /// A step of `n_tokens` rows at positions `pos0..` over one sequence's cache.
    pub fn contiguous(cache: &'a mut B::Cache, pos0: usize, n_tokens: usize) -> Self {
        Step { positions: (pos0..pos0 + n_tokens).collect(), kv: Kv::Contiguous { cache, pos0 } }
    }

    /// A shared-prefix step over one cache: row `i` at position `positions[i]`, written to
    /// and seeing the cells of `views[i]`.
    pub fn shared(cache: &'a mut B::Cache, positions: Vec<usize>, views: &'a [RowView]) -> Self {
        Step { positions, kv: Kv::Shared { cache, views } }
    }

    /// A serving step over the paged pool.
    pub fn paged(pool: &'a mut B::Pool, seqs: &'a [SeqSpan<'a>]) -> Self {
        let positions = seqs.iter().flat_map(|s| s.pos0..s.pos0 + s.n_tokens).collect();
        Step { positions, kv: Kv::Paged { pool, seqs } }
    }

    pub fn n_rows(&self) -> usize {
        self.positions.len()
    }

    /// A serving step: every row's result must not depend on the other rows of the step
    /// (batch-invariant orders).
    pub fn serving(&self) -> bool {
        matches!(self.kv, Kv::Paged { .. })
    }
}

/// The operations a decoder computes through. See the crate docs for the contracts.
///
/// Shapes: an activation is `[rows, width]`; a matrix `[rows, cols]` multiplies
/// activations of width `cols` into width `rows` (`y = x · Wᵀ`).
pub trait Backend: Clone + Send + Sync + Sized + 'static {
    /// A weight matrix as the backend stores it.
    type Matrix: Send + Sync;
    /// A small f32 vector (norm weights, biases).
    type Vector: Send + Sync;
    /// A `[rows, width]` f32 activation buffer.
    type Act: Send;
    /// The KV cache of one sequence.
    type Cache: Send + Sync + 'static;
    /// A paged KV pool shared by many sequences.
    type Pool: Send + Sync + 'static;

    /// A short name for logs (`cpu`, `vulkan`, …).
    fn name(&self) -> &'static str;

    /// Whether [`Kv::Shared`] steps are implemented (attention with per-row views).
    fn shared_steps(&self) -> bool {
        false
    }

    // ---------------------------------------------------------------- weights
    fn load_matrix(&self, m: &MatrixRef) -> Result<Self::Matrix, BackendError>;
    fn load_vector(&self, v: Vec<f32>) -> Result<Self::Vector, BackendError>;

    // ---------------------------------------------------------------- buffers
    /// `data` as a `[data.len() / width, width]` activation.
    fn upload(&self, data: &[f32], width: usize) -> Result<Self::Act, BackendError>;
    /// A host copy of `x`, row-major.
    fn download(&self, x: &Self::Act) -> Vec<f32>;
    /// `(rows, width)` of `x`.
    fn shape(&self, x: &Self::Act) -> (usize, usize);
    /// The rows `rows` (indices into `x`, in that order) as a new activation.
    fn select_rows(&self, x: &Self::Act, rows: &[usize]) -> Result<Self::Act, BackendError>;

    // ---------------------------------------------------------------- operations
    /// Embedding rows of `tokens`: `[tokens.len(), table.cols]`.
    fn embed(&self, table: &Self::Matrix, tokens: &[u32]) -> Result<Self::Act, BackendError>;
    /// `x · Wᵀ` for every matrix of `ws` (all with `x`'s width as columns), one output each.
    fn matmul(&self, step: &Step<Self>, ws: &[&Self::Matrix], x: &Self::Act) -> Result<Vec<Self::Act>, BackendError>;
    /// The vocabulary projection (logits, nothing downstream re-rounds them: the backend
    /// may use its fastest order).
    fn project_vocab(&self, w: &Self::Matrix, x: &Self::Act) -> Result<Self::Act, BackendError>;
    /// RMS norm of every `w.len()`-wide row of `x`, times `w`, into a new activation.
    fn rms_norm(&self, x: &Self::Act, w: &Self::Vector, eps: f32) -> Result<Self::Act, BackendError>;
    /// [`Backend::rms_norm`] in place (also per head: `w` may be narrower than a row).
    fn rms_norm_inplace(&self, x: &mut Self::Act, w: &Self::Vector, eps: f32) -> Result<(), BackendError>;
    /// `x += y` elementwise.
    fn add(&self, x: &mut Self::Act, y: &Self::Act) -> Result<(), BackendError>;
    /// Adds `bias` to every row of `x`.
    fn add_row(&self, x: &mut Self::Act, bias: &Self::Vector) -> Result<(), BackendError>;
    /// `x *= s` elementwise.
    fn scale(&self, x: &mut Self::Act, s: f32) -> Result<(), BackendError>;
    /// Rotates every `head_dim` block of each row at the step's row positions.
    fn rope(&self, step: &Step<Self>, x: &mut Self::Act, head_dim: usize, rope: &Rope) -> Result<(), BackendError>;
    /// `gate = act(gate) * up`, row by row.
    fn glu(&self, gate: &mut Self::Act, up: &Self::Act, act: Activation) -> Result<(), BackendError>;
    /// Stores this step's keys `k` (`[rows, n_head_kv · head_dim_k]`) and values `v` into
    /// layer `layer` of the step's cache at the rows' positions, then attends: returns the
    /// per-head context `[rows, n_head · head_dim_v]` for queries `q`.
    fn attention(&self, step: &mut Step<Self>, layer: usize, shape: &AttnShape, q: &Self::Act, k: &Self::Act, v: &Self::Act) -> Result<Self::Act, BackendError>;
    /// Multi-head latent attention: from the query projection `q` (`[rows, n_head · dk]`)
    /// and the compressed key/value projection `ckv` (`[rows, kv_lora + rope]`), stores the
    /// normed latent and roped key in layer `layer` of the cache and returns the per-head
    /// outputs `[rows, n_head · dv]` (before the output projection).
    fn mla_attention(&self, step: &mut Step<Self>, layer: usize, m: &MlaAttend<Self>, q: &Self::Act, ckv: &Self::Act) -> Result<Self::Act, BackendError>;
    /// The routed experts' weighted sum for normalised input `x` (`[rows, n_embd]`).
    fn moe(&self, step: &Step<Self>, x: &Self::Act, e: &Experts<Self>) -> Result<Self::Act, BackendError>;

    // ---------------------------------------------------------------- encoders
    // BERT-style encoders (embedding models). A backend that does not implement them
    // refuses with [`BackendError::Device`]; the CPU backend implements all three.

    /// Layer norm with bias of every `w.len()`-wide row of `x`, in place:
    /// `(x - mean) / sqrt(var + eps) · w + b`.
    fn layer_norm_inplace(&self, x: &mut Self::Act, w: &Self::Vector, b: &Self::Vector, eps: f32) -> Result<(), BackendError> {
        let _ = (x, w, b, eps);
        Err(BackendError::Device(format!("the {} backend has no layer norm (encoder models)", self.name())))
    }
    /// Exact (erf) GELU of every element, in place (BERT's feed-forward activation).
    fn gelu_inplace(&self, x: &mut Self::Act) -> Result<(), BackendError> {
        let _ = x;
        Err(BackendError::Device(format!("the {} backend has no GELU (encoder models)", self.name())))
    }
    /// Bidirectional (non-causal) attention without a cache: the rows of `q`
    /// (`[n, n_head · head_dim_k]`), `k` (`[n, n_head_kv · head_dim_k]`) and `v`
    /// (`[n, n_head_kv · head_dim_v]`) are the sequences of `seq_lens` one after another, and
    /// each row attends to every row of its own sequence. Returns `[n, n_head · head_dim_v]`.
    fn attention_bidirectional(&self, shape: &AttnShape, q: &Self::Act, k: &Self::Act, v: &Self::Act, seq_lens: &[usize]) -> Result<Self::Act, BackendError> {
        let _ = (shape, q, k, v, seq_lens);
        Err(BackendError::Device(format!("the {} backend has no bidirectional attention (encoder models)", self.name())))
    }

    // ---------------------------------------------------------------- caches
    /// A cache of `n_ctx` positions for `n_layer` layers of `k_width` key and `v_width`
    /// value elements per position; a size that overflows or cannot be allocated is
    /// [`BackendError::Alloc`].
    fn new_cache(&self, n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize, ty: KvType) -> Result<Self::Cache, BackendError>;
    /// A pool of `n_blocks` blocks of `block_size` positions.
    fn new_pool(&self, n_layer: usize, n_blocks: usize, block_size: usize, k_width: usize, v_width: usize) -> Result<Self::Pool, BackendError>;
    /// Bytes of one block of `pool` (all layers, keys and values).
    fn pool_block_bytes(&self, pool: &Self::Pool) -> usize;
}
