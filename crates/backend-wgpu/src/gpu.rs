//! The device, its kernels and the command stream.
//!
//! Every operation records one compute dispatch into the pending command encoder; nothing
//! is submitted until a result is read back ([`Gpu::read`]) or [`FLUSH_EVERY`] dispatches
//! have piled up, so a decode step is one submission (the logits' download) rather than
//! one per operation. Each dispatch gets a fresh uniform buffer with its parameters
//! (created mapped, so its contents never race the queue) and a bind group over the whole
//! buffers it uses; wgpu orders the dispatches of one encoder and keeps their resources
//! alive until the GPU is done with them.
//!
//! Errors that wgpu reports asynchronously (validation, out of memory, a lost device) are
//! caught by the uncaptured-error handler and surface at the next operation as
//! [`BackendError::Device`], never as a panic.

use jikji_backend::BackendError;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Dispatches recorded before the pending encoder is submitted without waiting.
const FLUSH_EVERY: usize = 512;

/// The kernels, one pipeline each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Matmul,
    GetRows,
    RmsNorm,
    RmsNormInplace,
    Elementwise,
    Rope,
    Rows,
    Attend,
    QuantQ8,
    MatmulQ8,
    KvStore16,
}

const ALL: [Kernel; 11] = [
    Kernel::Matmul,
    Kernel::GetRows,
    Kernel::RmsNorm,
    Kernel::RmsNormInplace,
    Kernel::Elementwise,
    Kernel::Rope,
    Kernel::Rows,
    Kernel::Attend,
    Kernel::QuantQ8,
    Kernel::MatmulQ8,
    Kernel::KvStore16,
];

/// The language extension of `dot4I8Packed` / `pack4xI8` (naga polyfills it where the
/// Vulkan device lacks integer dot products).
const PACKED_DOT: &str = "requires packed_4x8_integer_dot_product;";

const QUANT: &str = include_str!("shaders/quant.wgsl");

/// A matmul body with its token-sum reduction: subgroup operations or workgroup memory.
fn with_reduce(body: &str, subgroups: bool) -> String {
    if subgroups {
        body.replace("//!REDUCE", include_str!("shaders/reduce_sg.wgsl"))
            .replace("//!SGARGS", ", @builtin(subgroup_invocation_id) sg_lane: u32")
            .replace("//!SGCALL", ", sg_lane")
    } else {
        body.replace("//!REDUCE", include_str!("shaders/reduce_wg.wgsl"))
    }
}

/// The WGSL source of `k`; `subgroups` picks the subgroup reduction of the matmuls.
pub(crate) fn source(k: Kernel, subgroups: bool) -> String {
    match k {
        Kernel::Matmul => format!("{QUANT}\n{}", with_reduce(include_str!("shaders/matmul.wgsl"), subgroups)),
        Kernel::MatmulQ8 => format!("{PACKED_DOT}\n{QUANT}\n{}", with_reduce(include_str!("shaders/matmul_q8.wgsl"), subgroups)),
        Kernel::QuantQ8 => format!("{PACKED_DOT}\n{}", include_str!("shaders/quant_q8.wgsl")),
        Kernel::KvStore16 => include_str!("shaders/kv16.wgsl").to_string(),
        Kernel::GetRows => format!("{QUANT}\n{}", include_str!("shaders/get_rows.wgsl")),
        Kernel::RmsNorm => include_str!("shaders/rms_norm.wgsl")
            .replace(
                "//!BINDINGS",
                "@group(0) @binding(1) var<storage, read> x: array<f32>;\n@group(0) @binding(2) var<storage, read> w: array<f32>;\n@group(0) @binding(3) var<storage, read_write> y: array<f32>;",
            )
            .replace("SRC", "x"),
        Kernel::RmsNormInplace => include_str!("shaders/rms_norm.wgsl")
            .replace("//!BINDINGS", "@group(0) @binding(1) var<storage, read> w: array<f32>;\n@group(0) @binding(2) var<storage, read_write> y: array<f32>;")
            .replace("SRC", "y"),
        Kernel::Elementwise => include_str!("shaders/elementwise.wgsl").to_string(),
        Kernel::Rope => include_str!("shaders/rope.wgsl").to_string(),
        Kernel::Rows => include_str!("shaders/rows.wgsl").to_string(),
        Kernel::Attend => include_str!("shaders/attend.wgsl").to_string(),
    }
}

/// What the backend knows about its device.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub summary: crate::AdapterSummary,
    /// Whether the matmul reduces with subgroup operations.
    pub uses_subgroups: bool,
}

pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pipelines: Vec<(Kernel, wgpu::ComputePipeline)>,
    pending: Mutex<(Option<wgpu::CommandEncoder>, usize)>,
    failed: Arc<Mutex<Option<String>>>,
    pub info: DeviceInfo,
    /// Largest buffer one binding may cover, bytes.
    pub max_binding: u64,
    pub max_buffer: u64,
    /// A 16-byte buffer for bindings an operation does not read.
    pub dummy: wgpu::Buffer,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gpu {
    pub fn open(index: Option<usize>, max_binding: Option<u64>) -> Result<Gpu, BackendError> {
        let inst = crate::device::instance();
        let all = crate::device::adapters(&inst);
        if all.is_empty() {
            return Err(BackendError::Device("no Vulkan adapter found (install a Vulkan driver, e.g. Mesa's mesa-vulkan-drivers with libvulkan1)".into()));
        }
        let i = index.unwrap_or(0);
        let Some(adapter) = all.get(i) else {
            return Err(BackendError::Device(format!("Vulkan adapter {i} requested, {} found", all.len())));
        };
        let summary = crate::device::summary(i, adapter);
        // Subgroup reductions where the adapter has them and its subgroups divide the
        // 64-lane workgroup (any size from 1 to 64 does).
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP) && std::env::var_os("JIKJI_WGPU_NO_SUBGROUPS").is_none();
        let mut features = wgpu::Features::empty();
        if subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor { label: Some("jikji"), required_features: features, required_limits: limits.clone(), ..Default::default() };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| BackendError::Device(format!("Vulkan device {}: {e}", summary.name)))?;
        let failed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let f = failed.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&f).get_or_insert(format!("Vulkan: {e}"));
        }));
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut pipelines = Vec::new();
        for k in ALL {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(&format!("{k:?}")), source: wgpu::ShaderSource::Wgsl(source(k, subgroups).into()) });
            let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&format!("{k:?}")),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
            pipelines.push((k, p));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BackendError::Device(format!("Vulkan: compiling the kernels failed: {e}")));
        }
        let info = DeviceInfo { summary, uses_subgroups: subgroups };
        // A lowered binding limit (tests, to split small matrices) stays within the device's.
        let max_binding = max_binding.map_or(limits.max_storage_buffer_binding_size, |v| v.clamp(256, limits.max_storage_buffer_binding_size));
        let dummy = device.create_buffer(&wgpu::BufferDescriptor { label: Some("unused binding"), size: 16, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
        Ok(Gpu { device, queue, pipelines, pending: Mutex::new((None, 0)), failed, info, max_binding, max_buffer: limits.max_buffer_size, dummy })
    }

    /// Reports an earlier asynchronous failure.
    pub fn check(&self) -> Result<(), BackendError> {
        match lock(&self.failed).take() {
            Some(e) => Err(BackendError::Device(e)),
            None => Ok(()),
        }
    }

    pub fn fail(&self, msg: String) {
        lock(&self.failed).get_or_insert(msg);
    }

    fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        // Every kernel is built in `open`.
        &self.pipelines.iter().find(|(kk, _)| *kk == k).map(|(_, p)| p).unwrap_or(&self.pipelines[0].1)
    }

    /// A zeroed storage buffer of `bytes` (at least 16).
    pub fn buffer(&self, bytes: u64, what: &str) -> Result<wgpu::Buffer, BackendError> {
        let bytes = bytes.max(16).next_multiple_of(4);
        if bytes > self.max_buffer {
            return Err(BackendError::Alloc(format!("{what}: {bytes} bytes exceed the device's largest buffer ({} bytes)", self.max_buffer)));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let b = self.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: bytes, usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BackendError::Alloc(format!("{what}: {bytes} bytes do not fit the Vulkan device's memory ({e})")));
        }
        Ok(b)
    }

    /// A storage buffer holding `data` (padded to at least 16 bytes).
    pub fn buffer_with(&self, data: &[u8], what: &str) -> Result<wgpu::Buffer, BackendError> {
        let n = (data.len() as u64).max(16).next_multiple_of(4);
        if n > self.max_buffer {
            return Err(BackendError::Alloc(format!("{what}: {n} bytes exceed the device's largest buffer ({} bytes)", self.max_buffer)));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut padded = Vec::with_capacity(n as usize);
        padded.extend_from_slice(data);
        padded.resize(n as usize, 0);
        let b = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: &padded, usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BackendError::Alloc(format!("{what}: {n} bytes do not fit the Vulkan device's memory ({e})")));
        }
        Ok(b)
    }

    pub fn floats(&self, v: &[f32], what: &str) -> Result<wgpu::Buffer, BackendError> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.buffer_with(&bytes, what)
    }

    pub fn words(&self, v: &[u32], what: &str) -> Result<wgpu::Buffer, BackendError> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.buffer_with(&bytes, what)
    }

    /// Records `groups` workgroups of kernel `k` over `bufs` (bindings 1.., in order) with
    /// parameters `params` (binding 0, 32-bit words; floats as their bits).
    pub fn dispatch(&self, k: Kernel, params: &[u32], bufs: &[&wgpu::Buffer], groups: (u32, u32)) {
        if groups.0 == 0 || groups.1 == 0 {
            return;
        }
        let mut words = params.to_vec();
        words.resize(params.len().max(4).next_multiple_of(4), 0);
        let bytes: Vec<u8> = words.iter().flat_map(|x| x.to_le_bytes()).collect();
        let ubuf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: &bytes, usage: wgpu::BufferUsages::UNIFORM });
        let pipe = self.pipeline(k);
        let layout = pipe.get_bind_group_layout(0);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: ubuf.as_entire_binding() }];
        for (i, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries });
        let mut pending = lock(&self.pending);
        let enc = pending.0.get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("jikji forward") }));
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, 1);
        }
        pending.1 += 1;
        if pending.1 >= FLUSH_EVERY {
            if let Some(enc) = pending.0.take() {
                self.queue.submit([enc.finish()]);
            }
            pending.1 = 0;
        }
    }

    /// `n` workgroups as a 2-D grid within the 65,535-per-dimension limit.
    pub fn grid(n: usize) -> (u32, u32) {
        const MAX: usize = 65535;
        if n <= MAX {
            (n as u32, 1)
        } else {
            (MAX as u32, n.div_ceil(MAX) as u32)
        }
    }

    /// Submits everything recorded, then reads `bytes` of `src` back.
    pub fn read(&self, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, BackendError> {
        let bytes = bytes.next_multiple_of(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: bytes.max(4), usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        {
            let mut pending = lock(&self.pending);
            let mut enc = pending.0.take().unwrap_or_else(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("jikji read") }));
            pending.1 = 0;
            if bytes > 0 {
                enc.copy_buffer_to_buffer(src, 0, &staging, 0, bytes);
            }
            self.queue.submit([enc.finish()]);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| BackendError::Device(format!("Vulkan: waiting for the device: {e}")))?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(BackendError::Device(format!("Vulkan: reading back: {e}"))),
            Err(_) => return Err(BackendError::Device("Vulkan: the read-back never completed".into())),
        }
        self.check()?;
        let out = match staging.slice(..).get_mapped_range() {
            Ok(v) => v[..bytes as usize].to_vec(),
            Err(e) => return Err(BackendError::Device(format!("Vulkan: reading back: {e}"))),
        };
        staging.unmap();
        Ok(out)
    }
}
