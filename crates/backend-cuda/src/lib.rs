//! jikji's CUDA backend: the [`Backend`] seam on an NVIDIA GPU.
//!
//! - **No CUDA at build time.** `cudarc` opens the driver (`libcuda`) and NVRTC at run time
//!   ([`libs`]); the kernels are CUDA C compiled with NVRTC for the device's architecture at
//!   first use and cached on disk by source hash and architecture ([`module`]). A machine
//!   without a GPU builds and tests everything else; [`CudaBackend::new`] then says why
//!   there is no device.
//! - **Weights** are uploaded once in their GGUF block layout (F32, F16, BF16, Q4_0, Q4_1,
//!   Q5_0, Q5_1, Q8_0, Q2_K…Q6_K); the matmul kernel dequantizes one 32-element sub-block
//!   per lane into registers and dots it with up to eight tokens at a time, so a decode step
//!   reads each weight byte once.
//! - **Activations** are f32 device buffers; only [`Backend::download`] copies to the host
//!   (logits, traces). All work is queued on one stream, in order.
//! - **KV caches** live on the device: a contiguous cache (f16 or f32) per sequence, and the
//!   paged f16 pool whose block tables the host turns into slot indices per step.
//!   Attention is one kernel per layer: a block per (row, head) scores the visible keys,
//!   takes the softmax and sums the values.
//! - **MoE** routes on the host ([`jikji_backend::Routing::route`], the reference every
//!   backend shares) from downloaded router logits, then runs each selected expert's rows as
//!   one batch on the device. MLA is not implemented yet (a clear error).
//!
//! Numerics follow the CPU backend within float tolerance, not bit for bit: products sum
//! in another order and activations stay f32 (the CPU quantizes them to 8 bits as ggml
//! does). Tests compare every operation with [`jikji_backend::CpuBackend`].

pub mod libs;
pub mod module;
mod attention;
mod moe;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use jikji_backend::{Activation, AttnShape, Backend, BackendError, Experts, KvType, MatrixRef, MlaAttend, Rope, RopeMode, Step};
use jikji_gguf::GgmlType;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One CUDA device as [`devices`] lists it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub total_bytes: usize,
    pub compute_capability: (i32, i32),
}

/// The CUDA devices of this machine (empty without a driver or a GPU).
pub fn devices() -> Result<Vec<DeviceInfo>, String> {
    if !libs::driver_present() {
        return Err("no CUDA driver (libcuda) on this machine".into());
    }
    let n = CudaContext::device_count().map_err(|e| format!("CUDA: {e:?}"))?;
    let mut out = Vec::new();
    for i in 0..n.max(0) as usize {
        let ctx = CudaContext::new(i).map_err(|e| format!("CUDA device {i}: {e:?}"))?;
        out.push(device_info(&ctx, i));
    }
    Ok(out)
}

fn device_info(ctx: &CudaContext, ordinal: usize) -> DeviceInfo {
    DeviceInfo {
        ordinal,
        name: ctx.name().unwrap_or_default(),
        total_bytes: ctx.total_mem().unwrap_or(0),
        compute_capability: ctx.compute_capability().unwrap_or((0, 0)),
    }
}

pub(crate) struct Kernels {
    pub mm_q: CudaFunction,
    pub get_rows: CudaFunction,
    pub rms_norm: CudaFunction,
    pub rms_norm_inplace: CudaFunction,
    pub add: CudaFunction,
    pub add_row: CudaFunction,
    pub scale: CudaFunction,
    pub glu: CudaFunction,
    pub rope: CudaFunction,
    pub gather_rows: CudaFunction,
    pub scatter_add_scaled: CudaFunction,
    pub kv_store: CudaFunction,
    pub attend: CudaFunction,
    pub copy_cols: CudaFunction,
}

pub(crate) struct Inner {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub k: Kernels,
    pub info: DeviceInfo,
    /// The first error of an operation that cannot return one ([`Backend::download`]); the
    /// next operation reports it.
    pub failed: Mutex<Option<String>>,
    /// Small per-step host arrays (positions, slots, block tables, frequency factors) by
    /// purpose, with their device copies: every layer of a step hands the same ones, so
    /// they cross the bus once per step instead of once or twice per layer. A copy is
    /// never written after upload (a changed array gets a new buffer), so kernels queued
    /// earlier still read what they were given.
    pub memo: Mutex<HashMap<&'static str, Box<dyn Any + Send>>>,
}

/// The CUDA backend on one device (cheap to clone: the context is shared).
#[derive(Clone)]
pub struct CudaBackend {
    pub(crate) inner: Arc<Inner>,
}

/// A weight matrix on the device, in its GGUF layout.
pub struct CudaMatrix {
    pub(crate) data: CudaSlice<u8>,
    pub(crate) ty: GgmlType,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_bytes: usize,
}

/// A small f32 vector on the device.
pub struct CudaVector {
    pub(crate) data: CudaSlice<f32>,
}

/// A `[rows, width]` f32 activation on the device.
pub struct CudaAct {
    pub(crate) data: CudaSlice<f32>,
    pub(crate) width: usize,
}

impl CudaAct {
    pub(crate) fn rows(&self) -> usize {
        self.data.len() / self.width.max(1)
    }
}

/// One sequence's cache: per layer keys `[n_ctx, k_width]` and values `[n_ctx, v_width]`.
pub struct CudaCache {
    pub(crate) layers: Vec<(CudaSlice<u8>, CudaSlice<u8>)>,
    pub(crate) n_ctx: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
    pub(crate) f16: bool,
}

/// The paged pool: per layer `[n_blocks * block_size, width]` f16 keys and values.
pub struct CudaPool {
    pub(crate) layers: Vec<(CudaSlice<u8>, CudaSlice<u8>)>,
    pub(crate) n_blocks: usize,
    pub(crate) block_size: usize,
    pub(crate) k_width: usize,
    pub(crate) v_width: usize,
}

pub(crate) fn dev(e: cudarc::driver::DriverError) -> BackendError {
    BackendError::Device(format!("CUDA: {e:?}"))
}

/// Launch shape for `n` independent elements, 256 threads a block.
pub(crate) fn flat(n: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (n.div_ceil(256).max(1) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

/// Types the matmul and embedding kernels dequantize.
fn supported(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K)
}

fn same_shape(op: &str, x: &CudaAct, y: &CudaAct) -> Result<(), BackendError> {
    if x.data.len() != y.data.len() || x.width != y.width {
        return Err(BackendError::Shape(format!("{op}: [{}, {}] and [{}, {}]", x.rows(), x.width, y.rows(), y.width)));
    }
    Ok(())
}

impl CudaBackend {
    /// The backend on device `ordinal`: opens the driver, compiles (or loads) the kernels.
    pub fn new(ordinal: usize) -> Result<Self, BackendError> {
        if !libs::driver_present() {
            return Err(BackendError::Device("no CUDA driver (libcuda) on this machine".into()));
        }
        let ctx = CudaContext::new(ordinal).map_err(dev)?;
        let (major, minor) = ctx.compute_capability().map_err(dev)?;
        let info = device_info(&ctx, ordinal);
        let ptx = module::ptx_for(module::arch_name(major, minor)).map_err(BackendError::Device)?;
        let m = ctx.load_module(ptx).map_err(dev)?;
        let f = |name: &str| m.load_function(name).map_err(dev);
        let k = Kernels {
            mm_q: f("mm_q")?,
            get_rows: f("get_rows")?,
            rms_norm: f("rms_norm")?,
            rms_norm_inplace: f("rms_norm_inplace")?,
            add: f("add")?,
            add_row: f("add_row")?,
            scale: f("scale")?,
            glu: f("glu")?,
            rope: f("rope")?,
            gather_rows: f("gather_rows")?,
            scatter_add_scaled: f("scatter_add_scaled")?,
            kv_store: f("kv_store")?,
            attend: f("attend")?,
            copy_cols: f("copy_cols")?,
        };
        let stream = ctx.default_stream();
        Ok(CudaBackend { inner: Arc::new(Inner { ctx, stream, k, info, failed: Mutex::new(None), memo: Mutex::new(HashMap::new()) }) })
    }

    /// The device this backend runs on.
    pub fn device(&self) -> &DeviceInfo {
        &self.inner.info
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    pub(crate) fn k(&self) -> &Kernels {
        &self.inner.k
    }

    /// Reports an earlier failure of an operation without a result.
    pub(crate) fn check(&self) -> Result<(), BackendError> {
        match self.inner.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(BackendError::Device(e)),
            None => Ok(()),
        }
    }

    pub(crate) fn zeros(&self, n: usize) -> Result<CudaSlice<f32>, BackendError> {
        self.stream().alloc_zeros::<f32>(n.max(1)).map_err(|e| BackendError::Alloc(format!("{n} floats on the GPU: {e:?}")))
    }

    pub(crate) fn to_dev<T: cudarc::driver::DeviceRepr>(&self, v: &[T]) -> Result<CudaSlice<T>, BackendError> {
        if v.is_empty() {
            // SAFETY: a one-element allocation that no kernel reads (its length is 0 to them).
            return unsafe { self.stream().alloc::<T>(1) }.map_err(dev);
        }
        self.stream().clone_htod(v).map_err(dev)
    }

    /// [`Self::to_dev`] for the per-step arrays of [`Inner::memo`]: the device copy made for
    /// `key` the last time, when `v` is equal to what it was made from.
    pub(crate) fn to_dev_memo<T>(&self, key: &'static str, v: &[T]) -> Result<Arc<CudaSlice<T>>, BackendError>
    where
        T: cudarc::driver::DeviceRepr + PartialEq + Clone + Send + Sync + 'static,
    {
        type Entry<T> = (Vec<T>, Arc<CudaSlice<T>>);
        let mut memo = self.inner.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((host, dev)) = memo.get(key).and_then(|b| b.downcast_ref::<Entry<T>>()) {
            if host.as_slice() == v {
                return Ok(dev.clone());
            }
        }
        let dev = Arc::new(self.to_dev(v)?);
        memo.insert(key, Box::new((v.to_vec(), dev.clone()) as Entry<T>));
        Ok(dev)
    }

    /// `Y[t] = W · X[t]` for one matrix into `y` (`[n, w.rows]`).
    pub(crate) fn mm_into(&self, w: &CudaMatrix, x: &CudaSlice<f32>, n: usize, y: &mut CudaSlice<f32>) -> Result<(), BackendError> {
        let (rows, cols, ty) = (w.rows as i32, w.cols as i32, w.ty as i32);
        let (rb, nt, ldy) = (w.row_bytes as u64, n as i32, w.rows as i32);
        let cfg = LaunchConfig { grid_dim: (w.rows.div_ceil(4) as u32, n.div_ceil(8) as u32, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
        let mut b = self.stream().launch_builder(&self.k().mm_q);
        b.arg(&w.data).arg(&ty).arg(&rows).arg(&cols).arg(&rb).arg(x).arg(&nt).arg(y).arg(&ldy);
        // SAFETY: the argument list matches mm_q's signature; W holds rows * row_bytes
        // bytes, X n * cols floats and Y n * rows floats (checked by the callers).
        unsafe { b.launch(cfg) }.map(|_| ()).map_err(dev)
    }

    pub(crate) fn mm(&self, w: &CudaMatrix, x: &CudaAct) -> Result<CudaAct, BackendError> {
        if w.cols != x.width {
            return Err(BackendError::Shape(format!("matmul: a matrix of {} columns, an input {} wide", w.cols, x.width)));
        }
        let n = x.rows();
        let mut y = self.zeros(n * w.rows)?;
        self.mm_into(w, &x.data, n, &mut y)?;
        Ok(CudaAct { data: y, width: w.rows })
    }

    pub(crate) fn gather(&self, x: &CudaAct, rows: &[usize]) -> Result<CudaAct, BackendError> {
        let n = x.rows();
        if let Some(&r) = rows.iter().find(|&&r| r >= n) {
            return Err(BackendError::Shape(format!("select_rows: row {r} of {n}")));
        }
        let idx: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let idx = self.to_dev(&idx)?;
        let mut out = self.zeros(rows.len() * x.width)?;
        let (w, m) = (x.width as i32, rows.len() as i32);
        let mut b = self.stream().launch_builder(&self.k().gather_rows);
        b.arg(&x.data).arg(&idx).arg(&w).arg(&m).arg(&mut out);
        // SAFETY: matches gather_rows; every index is below x's row count (checked above).
        unsafe { b.launch(flat(rows.len() * x.width)) }.map_err(dev)?;
        Ok(CudaAct { data: out, width: x.width })
    }

    pub(crate) fn glu_into(&self, g: &mut CudaSlice<f32>, u: &CudaSlice<f32>, act: Activation) -> Result<(), BackendError> {
        let a: i32 = match act {
            Activation::Silu => 0,
            Activation::GeluTanh => 1,
        };
        let n = g.len() as u64;
        let mut b = self.stream().launch_builder(&self.k().glu);
        b.arg(g).arg(u).arg(&a).arg(&n);
        // SAFETY: matches glu; g and u have n elements each (checked by the callers).
        unsafe { b.launch(flat(n as usize)) }.map(|_| ()).map_err(dev)
    }

    /// The group count of an RMS norm of `len` values by weights of `n`.
    fn norm_groups(len: usize, w: &CudaVector) -> Result<(LaunchConfig, i32), BackendError> {
        let n = w.data.len();
        if n == 0 || len % n != 0 {
            return Err(BackendError::Shape(format!("rms_norm: {len} values in groups of {n}")));
        }
        let cfg = LaunchConfig { grid_dim: ((len / n) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        Ok((cfg, n as i32))
    }
}

impl Backend for CudaBackend {
    type Matrix = CudaMatrix;
    type Vector = CudaVector;
    type Act = CudaAct;
    type Cache = CudaCache;
    type Pool = CudaPool;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn load_matrix(&self, m: &MatrixRef) -> Result<CudaMatrix, BackendError> {
        let ty = m.info.ggml_type;
        if !supported(ty) {
            return Err(BackendError::Device(format!("{}: type {} is not supported by the CUDA backend", m.info.name, ty.name())));
        }
        let row_bytes = ty.row_bytes(m.cols as u64).ok_or_else(|| BackendError::Shape(format!("{}: {} columns", m.info.name, m.cols)))? as usize;
        let bytes = m.file.tensor_data(&m.info);
        if bytes.len() < row_bytes * m.rows {
            return Err(BackendError::Shape(format!("{}: {} bytes for {} rows of {row_bytes}", m.info.name, bytes.len(), m.rows)));
        }
        let data = self.to_dev(&bytes[..row_bytes * m.rows])?;
        Ok(CudaMatrix { data, ty, rows: m.rows, cols: m.cols, row_bytes })
    }

    fn load_vector(&self, v: Vec<f32>) -> Result<CudaVector, BackendError> {
        Ok(CudaVector { data: self.to_dev(&v)? })
    }

    fn upload(&self, data: &[f32], width: usize) -> Result<CudaAct, BackendError> {
        if width == 0 || data.len() % width != 0 {
            return Err(BackendError::Shape(format!("upload: {} values in rows of {width}", data.len())));
        }
        Ok(CudaAct { data: self.to_dev(data)?, width })
    }

    fn download(&self, x: &CudaAct) -> Vec<f32> {
        match self.stream().clone_dtoh(&x.data) {
            Ok(mut v) => {
                v.truncate(x.rows() * x.width);
                v
            }
            Err(e) => {
                self.inner.failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(format!("CUDA download: {e:?}"));
                vec![f32::NAN; x.rows() * x.width]
            }
        }
    }

    fn shape(&self, x: &CudaAct) -> (usize, usize) {
        (x.rows(), x.width)
    }

    fn select_rows(&self, x: &CudaAct, rows: &[usize]) -> Result<CudaAct, BackendError> {
        self.check()?;
        self.gather(x, rows)
    }

    fn embed(&self, table: &CudaMatrix, tokens: &[u32]) -> Result<CudaAct, BackendError> {
        self.check()?;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= table.rows) {
            return Err(BackendError::Shape(format!("embed: token {t} of a table of {} rows", table.rows)));
        }
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let ids = self.to_dev(&ids)?;
        let mut out = self.zeros(tokens.len() * table.cols)?;
        let (ty, cols, rb, n) = (table.ty as i32, table.cols as i32, table.row_bytes as u64, tokens.len() as i32);
        let mut b = self.stream().launch_builder(&self.k().get_rows);
        b.arg(&table.data).arg(&ty).arg(&cols).arg(&rb).arg(&ids).arg(&n).arg(&mut out);
        // SAFETY: matches get_rows; every id is a row of the table (checked above).
        unsafe { b.launch(flat(tokens.len() * table.cols.div_ceil(32))) }.map_err(dev)?;
        Ok(CudaAct { data: out, width: table.cols })
    }

    fn matmul(&self, _step: &Step<Self>, ws: &[&CudaMatrix], x: &CudaAct) -> Result<Vec<CudaAct>, BackendError> {
        self.check()?;
        ws.iter().map(|w| self.mm(w, x)).collect()
    }

    fn project_vocab(&self, w: &CudaMatrix, x: &CudaAct) -> Result<CudaAct, BackendError> {
        self.check()?;
        self.mm(w, x)
    }

    fn rms_norm(&self, x: &CudaAct, w: &CudaVector, eps: f32) -> Result<CudaAct, BackendError> {
        self.check()?;
        let (cfg, n) = Self::norm_groups(x.data.len(), w)?;
        let mut y = self.zeros(x.data.len())?;
        let mut b = self.stream().launch_builder(&self.k().rms_norm);
        b.arg(&x.data).arg(&w.data).arg(&mut y).arg(&n).arg(&eps);
        // SAFETY: matches rms_norm; x and y hold a whole number of groups of n floats.
        unsafe { b.launch(cfg) }.map_err(dev)?;
        Ok(CudaAct { data: y, width: x.width })
    }

    fn rms_norm_inplace(&self, x: &mut CudaAct, w: &CudaVector, eps: f32) -> Result<(), BackendError> {
        self.check()?;
        let (cfg, n) = Self::norm_groups(x.data.len(), w)?;
        let mut b = self.stream().launch_builder(&self.k().rms_norm_inplace);
        b.arg(&mut x.data).arg(&w.data).arg(&n).arg(&eps);
        // SAFETY: matches rms_norm_inplace; x holds a whole number of groups of n floats.
        unsafe { b.launch(cfg) }.map(|_| ()).map_err(dev)
    }

    fn add(&self, x: &mut CudaAct, y: &CudaAct) -> Result<(), BackendError> {
        self.check()?;
        same_shape("add", x, y)?;
        let n = x.data.len() as u64;
        let mut b = self.stream().launch_builder(&self.k().add);
        b.arg(&mut x.data).arg(&y.data).arg(&n);
        // SAFETY: matches add; both buffers hold n floats (checked above).
        unsafe { b.launch(flat(n as usize)) }.map(|_| ()).map_err(dev)
    }

    fn add_row(&self, x: &mut CudaAct, bias: &CudaVector) -> Result<(), BackendError> {
        self.check()?;
        if bias.data.len() != x.width {
            return Err(BackendError::Shape(format!("add_row: bias of {} for rows of {}", bias.data.len(), x.width)));
        }
        let (w, n) = (x.width as i32, x.data.len() as u64);
        let mut b = self.stream().launch_builder(&self.k().add_row);
        b.arg(&mut x.data).arg(&bias.data).arg(&w).arg(&n);
        // SAFETY: matches add_row; bias holds width floats, x a multiple of width.
        unsafe { b.launch(flat(n as usize)) }.map(|_| ()).map_err(dev)
    }

    fn scale(&self, x: &mut CudaAct, s: f32) -> Result<(), BackendError> {
        self.check()?;
        let n = x.data.len() as u64;
        let mut b = self.stream().launch_builder(&self.k().scale);
        b.arg(&mut x.data).arg(&s).arg(&n);
        // SAFETY: matches scale; x holds n floats.
        unsafe { b.launch(flat(n as usize)) }.map(|_| ()).map_err(dev)
    }

    fn rope(&self, step: &Step<Self>, x: &mut CudaAct, head_dim: usize, r: &Rope) -> Result<(), BackendError> {
        self.check()?;
        let rows = x.rows();
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
        let pos: Vec<i32> = step.positions.iter().map(|&p| p as i32).collect();
        let pos = self.to_dev_memo("rope.pos", &pos)?;
        let ffd = ff.as_ref().map(|f| self.to_dev_memo("rope.freq_factors", f)).transpose()?;
        let (rows_i, width, hd, nr) = (rows as i32, x.width as i32, head_dim as i32, n_rot as i32);
        let neox: i32 = (mode == RopeMode::Neox) as i32;
        let null: u64 = 0;
        let mut b = self.stream().launch_builder(&self.k().rope);
        b.arg(&mut x.data).arg(&*pos).arg(&rows_i).arg(&width).arg(&hd).arg(&nr).arg(&neox);
        b.arg(&base).arg(&fs).arg(&ext).arg(&msc).arg(&corr[0]).arg(&corr[1]);
        match &ffd {
            Some(f) => b.arg(&**f),
            None => b.arg(&null),
        };
        let n = rows * (x.width / head_dim) * (n_rot / 2);
        // SAFETY: matches rope; pos holds one position per row, ff (or null) n_rot/2 floats.
        unsafe { b.launch(flat(n)) }.map(|_| ()).map_err(dev)
    }

    fn glu(&self, gate: &mut CudaAct, up: &CudaAct, a: Activation) -> Result<(), BackendError> {
        self.check()?;
        same_shape("glu", gate, up)?;
        self.glu_into(&mut gate.data, &up.data, a)
    }

    fn attention(&self, step: &mut Step<Self>, il: usize, s: &AttnShape, q: &CudaAct, k: &CudaAct, v: &CudaAct) -> Result<CudaAct, BackendError> {
        self.check()?;
        attention::attention(self, step, il, s, q, k, v)
    }

    fn mla_attention(&self, step: &mut Step<Self>, il: usize, m: &MlaAttend<Self>, q: &CudaAct, ckv: &CudaAct) -> Result<CudaAct, BackendError> {
        self.check()?;
        attention::mla(self, step, il, m, q, ckv)
    }

    fn moe(&self, step: &Step<Self>, x: &CudaAct, e: &Experts<Self>) -> Result<CudaAct, BackendError> {
        self.check()?;
        moe::moe(self, step, x, e)
    }

    fn new_cache(&self, n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize, ty: KvType) -> Result<CudaCache, BackendError> {
        let layers = attention::alloc_layers(self, n_layer, n_ctx, k_width, v_width, ty.bytes())?;
        Ok(CudaCache { layers, n_ctx, k_width, v_width, f16: ty == KvType::F16 })
    }

    fn new_pool(&self, n_layer: usize, n_blocks: usize, block_size: usize, k_width: usize, v_width: usize) -> Result<CudaPool, BackendError> {
        let slots = n_blocks.checked_mul(block_size).ok_or_else(|| BackendError::Alloc("pool size overflows".into()))?;
        let layers = attention::alloc_layers(self, n_layer, slots, k_width, v_width, 2)?;
        Ok(CudaPool { layers, n_blocks, block_size, k_width, v_width })
    }

    fn pool_block_bytes(&self, pool: &CudaPool) -> usize {
        pool.layers.len() * pool.block_size * (pool.k_width + pool.v_width) * 2
    }
}
