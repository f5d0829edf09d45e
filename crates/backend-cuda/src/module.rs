//! The kernels' source, compiled with NVRTC at first use and cached on disk.
//!
//! All kernels are one CUDA C translation unit (`kernels/*.cu`, concatenated in a fixed
//! order, no `#include`: the prelude defines what the headers would). It is compiled for the
//! device's own architecture (`sm_XY` from its compute capability) and the PTX is kept in
//! `$JIKJI_CUDA_CACHE` (default `~/.cache/jikji/cuda`) under the SHA-256 of the source, the
//! architecture and the options, so a second start loads it without compiling and a changed
//! kernel can never load stale code.

use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The kernels' source, in compile order.
pub const SOURCES: [(&str, &str); 4] = [
    ("prelude.cu", include_str!("kernels/prelude.cu")),
    ("quant.cu", include_str!("kernels/quant.cu")),
    ("elementwise.cu", include_str!("kernels/elementwise.cu")),
    ("attention.cu", include_str!("kernels/attention.cu")),
];

/// Every kernel entry point the backend loads.
pub const KERNELS: [&str; 14] =
    ["mm_q", "get_rows", "rms_norm", "rms_norm_inplace", "add", "add_row", "scale", "glu", "rope", "gather_rows", "scatter_add_scaled", "kv_store", "attend", "copy_cols"];

/// The whole translation unit.
pub fn source() -> String {
    let mut s = String::new();
    for (name, text) in SOURCES {
        s.push_str(&format!("// ---- {name}\n"));
        s.push_str(text);
        s.push('\n');
    }
    s
}

/// NVRTC options (besides the architecture): IEEE f32 division and square roots, no fused
/// fast-math, so results stay close to the CPU's.
fn options() -> Vec<String> {
    vec!["--std=c++17".into()]
}

/// The architecture name NVRTC takes for compute capability `major.minor`.
pub fn arch_name(major: i32, minor: i32) -> &'static str {
    // A static string is what cudarc's options take; architectures are few, so each
    // distinct one is leaked once.
    static NAMES: std::sync::Mutex<Vec<(i32, i32, &'static str)>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, _, n)) = names.iter().find(|(a, b, _)| *a == major && *b == minor) {
        return n;
    }
    let n: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
    names.push((major, minor, n));
    n
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("JIKJI_CUDA_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/jikji/cuda")
}

/// The cache file for `arch`: `<sha256 of source, arch and options>-<arch>.ptx`.
pub fn cache_path(arch: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(source().as_bytes());
    h.update(arch.as_bytes());
    for o in options() {
        h.update(o.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    cache_dir().join(format!("{hex}-{arch}.ptx"))
}

/// Compiles the kernels for `arch` with NVRTC (no cache); the error text is NVRTC's log.
pub fn compile(arch: &'static str) -> Result<cudarc::nvrtc::Ptx, String> {
    crate::libs::preload();
    if !crate::libs::nvrtc_present() {
        return Err("NVRTC (libnvrtc) not found: install the nvidia-cuda-nvrtc pip wheel or a CUDA toolkit".into());
    }
    let opts = cudarc::nvrtc::CompileOptions { arch: Some(arch), options: options(), name: Some("jikji.cu".into()), ..Default::default() };
    cudarc::nvrtc::compile_ptx_with_opts(source(), opts).map_err(|e| format!("NVRTC: {e:?}"))
}

/// The PTX for `arch`, from the disk cache or compiled (and then cached; a cache that cannot
/// be written is only a slower next start).
pub fn ptx_for(arch: &'static str) -> Result<cudarc::nvrtc::Ptx, String> {
    let path = cache_path(arch);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(cudarc::nvrtc::Ptx::from_src(text));
    }
    let ptx = compile(arch)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, ptx.to_src()).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok(ptx)
}
