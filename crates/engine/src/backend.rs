//! Which backend a model computes on: `--backend cpu|vulkan|cuda|auto`.
//!
//! - `cpu` (the default): the CPU backend, llama.cpp's numerics, every architecture.
//! - `vulkan`: [`jikji_wgpu`] on the preferred Vulkan adapter (a discrete GPU before an
//!   integrated one, Mesa's lavapipe last; `JIKJI_VULKAN_ADAPTER=<index>` picks one of
//!   `jikji devices`). Always built: wgpu opens the Vulkan loader at run time, so a
//!   machine without one only loses this backend.
//! - `cuda`: [`jikji_cuda`] on device 0 (`JIKJI_CUDA_DEVICE=<ordinal>` picks another),
//!   only in a build with the `cuda` feature (the CLI's `--features cuda`); the driver
//!   and NVRTC are opened at run time.
//! - `auto`: CUDA when built in and a device answers, else a Vulkan adapter that is a real
//!   GPU (not a CPU implementation such as lavapipe), else the CPU. A model the GPU
//!   backends cannot run (multi-head latent attention stored as the older combined
//!   `attn_kv_b`) goes to the CPU under `auto` and is a clear error under an explicit choice.
//!
//! Everything that can be refused is refused before weights are uploaded, with a
//! [`BackendError`] that says which backend, why, and what to use instead.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use jikji_gguf::GgufFile;
use jikji_models::{Model, ModelError};

/// A backend choice as the command line gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendKind {
    #[default]
    Cpu,
    Vulkan,
    Cuda,
    Auto,
}

impl BackendKind {
    pub const NAMES: [&'static str; 4] = ["cpu", "vulkan", "cuda", "auto"];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Vulkan => "vulkan",
            BackendKind::Cuda => "cuda",
            BackendKind::Auto => "auto",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, BackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(BackendKind::Cpu),
            "vulkan" | "wgpu" => Ok(BackendKind::Vulkan),
            "cuda" => Ok(BackendKind::Cuda),
            "auto" => Ok(BackendKind::Auto),
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}

/// Why a backend cannot run a model.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend `{0}` (one of: cpu, vulkan, cuda, auto)")]
    Unknown(String),
    #[error("the Vulkan backend is not available: {0} (`jikji devices` lists what this machine has; --backend cpu runs anywhere)")]
    Vulkan(String),
    #[error("the CUDA backend is not available: {0} (`jikji devices` lists what this machine has; --backend cpu runs anywhere)")]
    Cuda(String),
    #[error("this jikji was built without CUDA: rebuild with `cargo build --release -p jikji-cli --features cuda`, or use --backend vulkan or cpu")]
    CudaNotBuilt,
    #[error("this `deepseek2` file stores its latent attention as the older combined attn_kv_b tensor, which only the CPU backend takes (a current llama.cpp conversion writes attn_k_b/attn_v_b): use --backend cpu")]
    CombinedKvB,
}

/// A backend opened on its device, ready to take weights.
#[derive(Clone)]
pub enum Device {
    Cpu,
    Vulkan(jikji_wgpu::WgpuBackend),
    #[cfg(feature = "cuda")]
    Cuda(jikji_cuda::CudaBackend),
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Device {
    /// `cpu (avx2)`, `vulkan (NVIDIA H200, discrete GPU)`, `cuda (NVIDIA H200, sm_90)`.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!("cpu ({})", jikji_kernels::isa().name()),
            Device::Vulkan(b) => {
                let s = &b.device().summary;
                format!("vulkan ({}, {})", s.name, s.kind)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => {
                let d = b.device();
                format!("cuda ({}, sm_{}{})", d.name, d.compute_capability.0, d.compute_capability.1)
            }
        }
    }

    /// The backend's name as [`Model::backend`] reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Vulkan(_) => "vulkan",
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => "cuda",
        }
    }

    /// Validates `file` and uploads its weights to this device.
    pub fn load(&self, file: Arc<GgufFile>) -> Result<Model, ModelError> {
        match self {
            Device::Cpu => Model::load(file),
            Device::Vulkan(b) => Model::load_on(file, b.clone()),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => Model::load_on(file, b.clone()),
        }
    }
}

/// An MLA file (`deepseek2`) without per-head `attn_k_b` (the older combined `attn_kv_b`,
/// whose key part the CPU applies transposed from host memory): CPU only.
fn combined_kv_b(file: &GgufFile) -> bool {
    let arch = file.get_str("general.architecture").ok().flatten();
    arch == Some("deepseek2") && file.tensor("blk.0.attn_k_b.weight").is_none()
}

fn open_vulkan() -> Result<jikji_wgpu::WgpuBackend, BackendError> {
    jikji_wgpu::WgpuBackend::new().map_err(|e| BackendError::Vulkan(e.to_string()))
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Device, BackendError> {
    let ordinal = std::env::var("JIKJI_CUDA_DEVICE").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    jikji_cuda::CudaBackend::new(ordinal).map(Device::Cuda).map_err(|e| BackendError::Cuda(e.to_string()))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Device, BackendError> {
    Err(BackendError::CudaNotBuilt)
}

/// Whether this build has the CUDA backend.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Opens the device `kind` names for `file` (see the module docs for `auto`).
pub fn select(kind: BackendKind, file: &GgufFile) -> Result<Device, BackendError> {
    let gpu_ok = !combined_kv_b(file);
    match kind {
        BackendKind::Cpu => Ok(Device::Cpu),
        BackendKind::Vulkan | BackendKind::Cuda if !gpu_ok => Err(BackendError::CombinedKvB),
        BackendKind::Vulkan => open_vulkan().map(Device::Vulkan),
        BackendKind::Cuda => open_cuda(),
        BackendKind::Auto => {
            if !gpu_ok {
                return Ok(Device::Cpu);
            }
            if let Ok(d) = open_cuda() {
                return Ok(d);
            }
            if jikji_wgpu::list_adapters().iter().any(|a| a.kind != "CPU") {
                if let Ok(b) = open_vulkan() {
                    return Ok(Device::Vulkan(b));
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// The Vulkan adapters of this machine, for `jikji devices`.
pub fn vulkan_adapters() -> Vec<jikji_wgpu::AdapterSummary> {
    jikji_wgpu::list_adapters()
}

/// One CUDA device, for `jikji devices`.
#[derive(Clone, Debug)]
pub struct CudaDevice {
    pub ordinal: usize,
    pub name: String,
    pub total_bytes: usize,
    pub compute_capability: (i32, i32),
}

/// The CUDA devices of this machine, or why there are none.
pub fn cuda_devices() -> Result<Vec<CudaDevice>, BackendError> {
    #[cfg(feature = "cuda")]
    {
        let v = jikji_cuda::devices().map_err(BackendError::Cuda)?;
        Ok(v.into_iter().map(|d| CudaDevice { ordinal: d.ordinal, name: d.name, total_bytes: d.total_bytes, compute_capability: d.compute_capability }).collect())
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(BackendError::CudaNotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(name: &str) -> GgufFile {
        GgufFile::open(jikji_testkit::fixtures_dir().join("tiny").join(name)).unwrap()
    }

    #[test]
    fn backend_names_parse_and_unknown_ones_are_refused_with_the_choices() {
        for n in BackendKind::NAMES {
            assert_eq!(n.parse::<BackendKind>().unwrap().name(), n);
        }
        assert_eq!("Vulkan".parse::<BackendKind>().unwrap(), BackendKind::Vulkan);
        assert_eq!(BackendKind::default(), BackendKind::Cpu);
        let e = "metal".parse::<BackendKind>().unwrap_err().to_string();
        assert!(e.contains("`metal`") && e.contains("cpu, vulkan, cuda, auto"), "{e}");
    }

    #[test]
    fn an_mla_model_is_taken_by_the_gpu_backends() {
        let f = tiny("deepseek_v2-1.gguf");
        // Per-head attn_k_b: Vulkan and CUDA run it; they fail here only for want of a
        // device or of the CUDA build.
        match select(BackendKind::Vulkan, &f) {
            Ok(d) => assert_eq!(d.name(), "vulkan"),
            Err(e) => assert!(matches!(e, BackendError::Vulkan(_)), "{e}"),
        }
        if let Err(e) = select(BackendKind::Cuda, &f) {
            assert!(matches!(e, BackendError::Cuda(_) | BackendError::CudaNotBuilt), "{e}");
        }
        assert_eq!(select(BackendKind::Cpu, &f).unwrap().name(), "cpu");
    }

    #[test]
    fn an_mla_file_with_the_combined_kv_b_is_refused_on_the_gpus_before_loading() {
        // What select reads: the architecture and whether per-head attn_k_b exists.
        let mut w = jikji_gguf::GgufWriter::new();
        w.add_kv("general.architecture", jikji_gguf::Value::String("deepseek2".into()));
        w.add_tensor("blk.0.attn_kv_b.weight", &[4, 4], jikji_gguf::GgmlType::F32, vec![0u8; 64]);
        let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
        assert!(matches!(select(BackendKind::Cuda, &f).unwrap_err(), BackendError::CombinedKvB));
        let e = select(BackendKind::Vulkan, &f).unwrap_err();
        assert!(matches!(e, BackendError::CombinedKvB), "{e}");
        let e = e.to_string();
        assert!(e.contains("attn_kv_b") && e.contains("--backend cpu"), "{e}");
        assert_eq!(select(BackendKind::Auto, &f).unwrap().name(), "cpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        let e = select(BackendKind::Cuda, &tiny("llama-1.gguf")).unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
        assert!(cuda_devices().is_err());
    }

    #[test]
    fn auto_never_picks_a_cpu_vulkan_implementation() {
        // lavapipe (a CPU adapter) is slower than the CPU backend: auto leaves it alone.
        let d = select(BackendKind::Auto, &tiny("llama-1.gguf")).unwrap();
        if let Device::Vulkan(b) = &d {
            assert_ne!(b.device().summary.kind, "CPU", "{}", d.describe());
        }
        let gpus = vulkan_adapters().iter().filter(|a| a.kind != "CPU").count();
        if gpus == 0 && !CUDA_BUILT {
            assert_eq!(d.name(), "cpu");
        }
    }
}
