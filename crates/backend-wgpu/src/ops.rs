//! The [`Backend`] operations: each checks its operands, then records one or a few
//! dispatches (see [`crate::gpu`]).

use crate::gpu::{Gpu, Kernel};
use crate::{supported, Chunk, WgpuAct, WgpuBackend, WgpuCache, WgpuMatrix, WgpuPool, WgpuVector};
use jikji_backend::{Activation, AttnShape, Backend, BackendError, Experts, KvType, MatrixRef, MlaAttend, Rope, RopeMode, Step};

/// Largest byte offset the kernels address within one binding (they index in u32).
const MAX_CHUNK_BYTES: u64 = 1 << 31;

/// Words per 32-value block of 8-bit activations: 8 of packed quants, d, s, Σq.
const Q8_WORDS: usize = 11;

/// Whether weights of type `ty` and `cols` columns take the integer matmul: the legacy
/// 32-value block types, which the CPU also multiplies against 8-bit activations.
pub(crate) fn int8_path(ty: jikji_gguf::GgmlType, cols: usize) -> bool {
    use jikji_gguf::GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0) && cols.is_multiple_of(32) && cols > 0
}

/// Whether cache rows of these widths pack into whole words of f16 pairs.
fn pairs(k_width: usize, v_width: usize) -> bool {
    k_width.is_multiple_of(2) && v_width.is_multiple_of(2)
}

fn f(x: f32) -> u32 {
    x.to_bits()
}

fn same_shape(op: &str, x: &WgpuAct, y: &WgpuAct) -> Result<(), BackendError> {
    if x.rows != y.rows || x.width != y.width {
        return Err(BackendError::Shape(format!("{op}: [{}, {}] and [{}, {}]", x.rows, x.width, y.rows, y.width)));
    }
    Ok(())
}

impl WgpuBackend {
    pub(crate) fn g(&self) -> &Gpu {
        &self.gpu
    }

    /// A zeroed `[rows, width]` activation.
    pub(crate) fn act(&self, rows: usize, width: usize) -> Result<WgpuAct, BackendError> {
        let n = rows.checked_mul(width).and_then(|n| n.checked_mul(4)).ok_or_else(|| BackendError::Alloc(format!("activation [{rows}, {width}] overflows")))? as u64;
        if n > self.g().max_binding {
            return Err(BackendError::Alloc(format!("activation [{rows}, {width}] of {n} bytes exceeds the device's storage-binding limit of {} bytes", self.g().max_binding)));
        }
        Ok(WgpuAct { buf: self.g().buffer(n, "activation")?, rows, width })
    }

    /// `y[:, w rows] = x · Wᵀ` into a new activation. The legacy 32-value block types take
    /// the integer path (activations quantized to 8 bits, `dot4I8Packed`), as the CPU
    /// multiplies them; every other type multiplies f32 activations by dequantized weights.
    pub(crate) fn mm(&self, w: &WgpuMatrix, x: &WgpuAct) -> Result<WgpuAct, BackendError> {
        if w.cols != x.width {
            return Err(BackendError::Shape(format!("matmul: a matrix of {} columns, an input {} wide", w.cols, x.width)));
        }
        let y = self.act(x.rows, w.rows)?;
        let tiles = x.rows.div_ceil(8);
        let (kernel, xb) = match int8_path(w.ty, w.cols) {
            true => (Kernel::MatmulQ8, self.quantize_q8(x)?),
            false => (Kernel::Matmul, None),
        };
        let xbuf = xb.as_ref().unwrap_or(&x.buf);
        for c in &w.chunks {
            let p = [w.ty as u32, c.rows as u32, w.cols as u32, w.stride as u32, x.rows as u32, w.rows as u32, c.row0 as u32, 0];
            self.g().dispatch(kernel, &p, &[&c.buf, xbuf, &y.buf], Gpu::grid(c.rows * tiles));
        }
        Ok(y)
    }

    /// `x` (`[rows, cols]`, `cols % 32 == 0`) quantized per 32-value block for the integer
    /// matmul (`shaders/quant_q8.wgsl`: [`Q8_WORDS`] words a block).
    fn quantize_q8(&self, x: &WgpuAct) -> Result<Option<wgpu::Buffer>, BackendError> {
        let blocks = x.rows * x.width / 32;
        let bytes = (blocks * Q8_WORDS * 4) as u64;
        if bytes > self.g().max_binding {
            return Err(BackendError::Alloc(format!("8-bit activations of {bytes} bytes exceed the device's storage-binding limit of {} bytes", self.g().max_binding)));
        }
        let xq = self.g().buffer(bytes, "8-bit activations")?;
        self.g().dispatch(Kernel::QuantQ8, &[blocks as u32, 0, 0, 0], &[&x.buf, &xq], Gpu::grid(blocks.div_ceil(64)));
        Ok(Some(xq))
    }

    /// Rows `idx` of `x` (each below `x.rows`, checked by the callers).
    pub(crate) fn gather(&self, x: &WgpuAct, idx: &[u32]) -> Result<WgpuAct, BackendError> {
        let out = self.act(idx.len(), x.width)?;
        let ib = self.g().words(idx, "row indices")?;
        let p = [0, x.width as u32, idx.len() as u32, 0, 0, 0, 0, 0];
        self.g().dispatch(Kernel::Rows, &p, &[&x.buf, &ib, &x.buf, &out.buf], Gpu::grid((idx.len() * x.width).div_ceil(256)));
        Ok(out)
    }

    /// `out[idx[i], :] += w[i] * src[i, :]` (distinct indices).
    pub(crate) fn scatter_add(&self, out: &WgpuAct, src: &WgpuAct, idx: &[u32], w: &[f32]) -> Result<(), BackendError> {
        let ib = self.g().words(idx, "row indices")?;
        let wb = self.g().floats(w, "row weights")?;
        let p = [1, src.width as u32, idx.len() as u32, 0, 0, 0, 0, 0];
        self.g().dispatch(Kernel::Rows, &p, &[&src.buf, &ib, &wb, &out.buf], Gpu::grid((idx.len() * src.width).div_ceil(256)));
        Ok(())
    }

    /// `cache[slot[i], :] = src[i, :]`: f16 pairs in one word each when `packed`, else f32
    /// words, rounded to f16 values when `f16`.
    pub(crate) fn store(&self, cache: &wgpu::Buffer, src: &WgpuAct, slots: &wgpu::Buffer, f16: bool, packed: bool) {
        if packed {
            let p = [src.width as u32, src.rows as u32, 0, 0];
            self.g().dispatch(Kernel::KvStore16, &p, &[&src.buf, slots, cache], Gpu::grid((src.rows * src.width / 2).div_ceil(256)));
            return;
        }
        let p = [2, src.width as u32, src.rows as u32, f16 as u32, 0, 0, 0, 0];
        self.g().dispatch(Kernel::Rows, &p, &[&src.buf, slots, &src.buf, cache], Gpu::grid((src.rows * src.width).div_ceil(256)));
    }

    /// `dst[i, d_off .. d_off + width] = src[i, s_off .. s_off + width]` for every row.
    pub(crate) fn copy_cols(&self, src: &WgpuAct, s_off: usize, dst: &WgpuAct, d_off: usize, width: usize) -> Result<(), BackendError> {
        if src.rows != dst.rows || s_off + width > src.width || d_off + width > dst.width {
            return Err(BackendError::Shape(format!(
                "column copy: {width} columns from {s_off} of [{}, {}] to {d_off} of [{}, {}]",
                src.rows, src.width, dst.rows, dst.width
            )));
        }
        let d = &self.g().dummy;
        let p = [3, width as u32, src.rows as u32, 0, src.width as u32, s_off as u32, dst.width as u32, d_off as u32];
        self.g().dispatch(Kernel::Rows, &p, &[&src.buf, d, d, &dst.buf], Gpu::grid((src.rows * width).div_ceil(256)));
        Ok(())
    }

    pub(crate) fn elementwise(&self, op: u32, x: &WgpuAct, y: &wgpu::Buffer, width: u32, s: f32) {
        let n = x.rows * x.width;
        let p = [op, n as u32, width, f(s)];
        self.g().dispatch(Kernel::Elementwise, &p, &[&x.buf, y], Gpu::grid(n.div_ceil(256)));
    }

    pub(crate) fn glu_into(&self, g: &WgpuAct, u: &WgpuAct, act: Activation) {
        let a = match act {
            Activation::Silu => 0,
            Activation::GeluTanh => 1,
        };
        self.elementwise(3, g, &u.buf, a, 0.0);
    }

    fn norm_groups(x: &WgpuAct, w: &WgpuVector) -> Result<usize, BackendError> {
        let len = x.rows * x.width;
        if w.len == 0 || len % w.len != 0 {
            return Err(BackendError::Shape(format!("rms_norm: {len} values in groups of {}", w.len)));
        }
        Ok(len / w.len)
    }

    /// `n_layer` key/value buffer pairs of `slots` rows, `elem` bytes a value.
    fn alloc_layers(&self, n_layer: usize, slots: usize, k_width: usize, v_width: usize, elem: usize) -> Result<Vec<(wgpu::Buffer, wgpu::Buffer)>, BackendError> {
        let bytes = |w: usize| slots.checked_mul(w).and_then(|n| n.checked_mul(elem)).ok_or_else(|| BackendError::Alloc("cache size overflows".into()));
        let (kb, vb) = (bytes(k_width)? as u64, bytes(v_width)? as u64);
        if kb.max(vb) > self.g().max_binding {
            return Err(BackendError::Alloc(format!(
                "a KV cache layer of {slots} positions needs {} bytes, more than the Vulkan device's storage-binding limit of {} bytes",
                kb.max(vb),
                self.g().max_binding
            )));
        }
        (0..n_layer).map(|_| Ok((self.g().buffer(kb, "KV cache")?, self.g().buffer(vb, "KV cache")?))).collect()
    }
}

impl Backend for WgpuBackend {
    type Matrix = WgpuMatrix;
    type Vector = WgpuVector;
    type Act = WgpuAct;
    type Cache = WgpuCache;
    type Pool = WgpuPool;

    fn name(&self) -> &'static str {
        "vulkan"
    }

    fn load_matrix(&self, m: &MatrixRef) -> Result<WgpuMatrix, BackendError> {
        self.g().check()?;
        let ty = m.info.ggml_type;
        if !supported(ty) {
            return Err(BackendError::Device(format!("{}: type {} is not supported by the Vulkan backend", m.info.name, ty.name())));
        }
        let row_bytes = ty.row_bytes(m.cols as u64).ok_or_else(|| BackendError::Shape(format!("{}: {} columns", m.info.name, m.cols)))? as usize;
        let bytes = m.file.tensor_data(&m.info);
        if bytes.len() < row_bytes * m.rows {
            return Err(BackendError::Shape(format!("{}: {} bytes for {} rows of {row_bytes}", m.info.name, bytes.len(), m.rows)));
        }
        // Rows start on 4-byte boundaries (see the crate docs).
        let stride = row_bytes.next_multiple_of(4);
        let per_chunk = (self.g().max_binding.min(MAX_CHUNK_BYTES) / stride as u64).max(1) as usize;
        let mut chunks = Vec::new();
        let mut row0 = 0;
        while row0 < m.rows.max(1) {
            let rows = per_chunk.min(m.rows - row0);
            let mut data = vec![0u8; rows * stride];
            for (r, d) in data.chunks_exact_mut(stride).enumerate() {
                let s = (row0 + r) * row_bytes;
                d[..row_bytes].copy_from_slice(&bytes[s..s + row_bytes]);
            }
            let what = format!("weight {} ({} rows of {} bytes)", m.info.name, m.rows, row_bytes);
            chunks.push(Chunk { buf: self.g().buffer_with(&data, &what)?, row0, rows });
            row0 += rows;
            if m.rows == 0 {
                break;
            }
        }
        Ok(WgpuMatrix { chunks, ty, rows: m.rows, cols: m.cols, stride })
    }

    fn load_vector(&self, v: Vec<f32>) -> Result<WgpuVector, BackendError> {
        Ok(WgpuVector { buf: self.g().floats(&v, "vector")?, len: v.len() })
    }

    fn upload(&self, data: &[f32], width: usize) -> Result<WgpuAct, BackendError> {
        if width == 0 || data.len() % width != 0 {
            return Err(BackendError::Shape(format!("upload: {} values in rows of {width}", data.len())));
        }
        Ok(WgpuAct { buf: self.g().floats(data, "activation")?, rows: data.len() / width, width })
    }

    fn download(&self, x: &WgpuAct) -> Vec<f32> {
        let n = x.rows * x.width;
        match self.g().read(&x.buf, (n * 4) as u64) {
            Ok(b) => b.chunks_exact(4).take(n).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Err(e) => {
                self.g().fail(e.to_string());
                vec![f32::NAN; n]
            }
        }
    }

    fn shape(&self, x: &WgpuAct) -> (usize, usize) {
        (x.rows, x.width)
    }

    fn select_rows(&self, x: &WgpuAct, rows: &[usize]) -> Result<WgpuAct, BackendError> {
        self.g().check()?;
        if let Some(&r) = rows.iter().find(|&&r| r >= x.rows) {
            return Err(BackendError::Shape(format!("select_rows: row {r} of {}", x.rows)));
        }
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        self.gather(x, &idx)
    }

    fn embed(&self, table: &WgpuMatrix, tokens: &[u32]) -> Result<WgpuAct, BackendError> {
        self.g().check()?;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= table.rows) {
            return Err(BackendError::Shape(format!("embed: token {t} of a table of {} rows", table.rows)));
        }
        let out = self.act(tokens.len(), table.cols)?;
        let nsb = table.cols.div_ceil(32);
        for c in &table.chunks {
            // The tokens of this chunk and where their rows go.
            let (mut ids, mut at) = (Vec::new(), Vec::new());
            for (i, &t) in tokens.iter().enumerate() {
                let t = t as usize;
                if t >= c.row0 && t < c.row0 + c.rows {
                    ids.push((t - c.row0) as u32);
                    at.push(i as u32);
                }
            }
            if ids.is_empty() {
                continue;
            }
            let ib = self.g().words(&ids, "token ids")?;
            let part = if ids.len() == tokens.len() { None } else { Some(self.act(ids.len(), table.cols)?) };
            let dst = part.as_ref().map_or(&out.buf, |p| &p.buf);
            let p = [table.ty as u32, table.cols as u32, table.stride as u32, ids.len() as u32];
            self.g().dispatch(Kernel::GetRows, &p, &[&c.buf, &ib, dst], Gpu::grid((ids.len() * nsb).div_ceil(256)));
            if let Some(part) = part {
                let ones = vec![1.0f32; at.len()];
                self.scatter_add(&out, &part, &at, &ones)?;
            }
        }
        Ok(out)
    }

    fn matmul(&self, _step: &Step<Self>, ws: &[&WgpuMatrix], x: &WgpuAct) -> Result<Vec<WgpuAct>, BackendError> {
        self.g().check()?;
        ws.iter().map(|w| self.mm(w, x)).collect()
    }

    fn project_vocab(&self, w: &WgpuMatrix, x: &WgpuAct) -> Result<WgpuAct, BackendError> {
        self.g().check()?;
        self.mm(w, x)
    }

    fn rms_norm(&self, x: &WgpuAct, w: &WgpuVector, eps: f32) -> Result<WgpuAct, BackendError> {
        self.g().check()?;
        let groups = Self::norm_groups(x, w)?;
        let y = self.act(x.rows, x.width)?;
        let p = [w.len as u32, f(eps), 0, 0];
        self.g().dispatch(Kernel::RmsNorm, &p, &[&x.buf, &w.buf, &y.buf], Gpu::grid(groups));
        Ok(y)
    }

    fn rms_norm_inplace(&self, x: &mut WgpuAct, w: &WgpuVector, eps: f32) -> Result<(), BackendError> {
        self.g().check()?;
        let groups = Self::norm_groups(x, w)?;
        let p = [w.len as u32, f(eps), 0, 0];
        self.g().dispatch(Kernel::RmsNormInplace, &p, &[&w.buf, &x.buf], Gpu::grid(groups));
        Ok(())
    }

    fn add(&self, x: &mut WgpuAct, y: &WgpuAct) -> Result<(), BackendError> {
        self.g().check()?;
        same_shape("add", x, y)?;
        self.elementwise(0, x, &y.buf, x.width as u32, 0.0);
        Ok(())
    }

    fn add_row(&self, x: &mut WgpuAct, bias: &WgpuVector) -> Result<(), BackendError> {
        self.g().check()?;
        if bias.len != x.width {
            return Err(BackendError::Shape(format!("add_row: bias of {} for rows of {}", bias.len, x.width)));
        }
        self.elementwise(1, x, &bias.buf, x.width as u32, 0.0);
        Ok(())
    }

    fn scale(&self, x: &mut WgpuAct, s: f32) -> Result<(), BackendError> {
        self.g().check()?;
        self.elementwise(2, x, &self.g().dummy, x.width as u32, s);
        Ok(())
    }

    fn rope(&self, step: &Step<Self>, x: &mut WgpuAct, head_dim: usize, r: &Rope) -> Result<(), BackendError> {
        self.g().check()?;
        let rows = x.rows;
        if rows != step.n_rows() || head_dim == 0 || x.width % head_dim != 0 {
            return Err(BackendError::Shape(format!("rope: [{rows}, {}] in heads of {head_dim} for {} positions", x.width, step.n_rows())));
        }
        let (mode, n_rot, base, fs, ext, msc, corr, ff) = match r {
            Rope::Plain { mode, n_rot, base, freq_scale, freq_factors } => (*mode, *n_rot, *base, *freq_scale, 0.0, 1.0, [0.0, 0.0], freq_factors.clone()),
            Rope::Yarn(y) => (y.mode, y.n_rot, y.base, y.freq_scale, y.ext_factor, y.mscale, y.corr_dims, None),
        };
        if n_rot == 0 {
            return Ok(());
        }
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(BackendError::Shape(format!("rope: {n_rot} rotated dims in heads of {head_dim}")));
        }
        if let Some(f) = &ff {
            if f.len() < n_rot / 2 {
                return Err(BackendError::Shape(format!("rope: {} frequency factors for {n_rot} dims", f.len())));
            }
        }
        let pos: Vec<u32> = step.positions.iter().map(|&p| p as u32).collect();
        let pb = self.g().words(&pos, "positions")?;
        let fb = self.g().floats(ff.as_deref().unwrap_or(&[]), "rope frequency factors")?;
        let neox = (mode == RopeMode::Neox) as u32;
        let p = [rows as u32, x.width as u32, head_dim as u32, n_rot as u32, neox, ff.is_some() as u32, f(base), f(fs), f(ext), f(msc), f(corr[0]), f(corr[1])];
        let n = rows * (x.width / head_dim) * (n_rot / 2);
        self.g().dispatch(Kernel::Rope, &p, &[&x.buf, &pb, &fb], Gpu::grid(n.div_ceil(256)));
        Ok(())
    }

    fn glu(&self, gate: &mut WgpuAct, up: &WgpuAct, a: Activation) -> Result<(), BackendError> {
        self.g().check()?;
        same_shape("glu", gate, up)?;
        self.glu_into(gate, up, a);
        Ok(())
    }

    fn attention(&self, step: &mut Step<Self>, il: usize, s: &AttnShape, q: &WgpuAct, k: &WgpuAct, v: &WgpuAct) -> Result<WgpuAct, BackendError> {
        self.g().check()?;
        crate::attention::attention(self, step, il, s, q, k, v)
    }

    fn mla_attention(&self, step: &mut Step<Self>, il: usize, m: &MlaAttend<Self>, q: &WgpuAct, ckv: &WgpuAct) -> Result<WgpuAct, BackendError> {
        self.g().check()?;
        crate::attention::mla(self, step, il, m, q, ckv)
    }

    fn moe(&self, _step: &Step<Self>, x: &WgpuAct, e: &Experts<Self>) -> Result<WgpuAct, BackendError> {
        self.g().check()?;
        crate::attention::moe(self, x, e)
    }

    fn new_cache(&self, n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize, ty: KvType) -> Result<WgpuCache, BackendError> {
        let f16 = ty == KvType::F16;
        let packed = f16 && pairs(k_width, v_width);
        let layers = self.alloc_layers(n_layer, n_ctx, k_width, v_width, if packed { 2 } else { 4 })?;
        Ok(WgpuCache { layers, n_ctx, k_width, v_width, f16, packed })
    }

    fn new_pool(&self, n_layer: usize, n_blocks: usize, block_size: usize, k_width: usize, v_width: usize) -> Result<WgpuPool, BackendError> {
        let slots = n_blocks.checked_mul(block_size).ok_or_else(|| BackendError::Alloc("pool size overflows".into()))?;
        let packed = pairs(k_width, v_width);
        let layers = self.alloc_layers(n_layer, slots, k_width, v_width, if packed { 2 } else { 4 })?;
        Ok(WgpuPool { layers, n_blocks, block_size, k_width, v_width, packed })
    }

    fn pool_block_bytes(&self, pool: &WgpuPool) -> usize {
        pool.layers.len() * pool.block_size * (pool.k_width + pool.v_width) * if pool.packed { 2 } else { 4 }
    }
}
