//! Finding CUDA's shared libraries at run time.
//!
//! Nothing of CUDA is linked at build time: `cudarc` opens `libcuda` (the driver) and
//! `libnvrtc` with `dlopen` on first use, by their usual names. The driver comes with the
//! GPU's driver package; NVRTC often comes from the `nvidia-cuda-nvrtc` pip wheel, whose
//! libraries sit in `site-packages/nvidia/*/lib`, outside the loader's search path. Those
//! are opened here by absolute path first (and kept open): a later `dlopen` by soname then
//! finds the already-loaded library, so no `LD_LIBRARY_PATH` is needed.
//!
//! Directories searched, in order: `$JIKJI_CUDA_LIBS` (colon-separated), then the `lib`
//! folders of the `nvidia` namespace package of `python3` (if there is a `python3`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Library file prefixes preloaded from the searched directories.
const PRELOAD: [&str; 3] = ["libnvrtc-builtins.so", "libnvrtc.so", "libcudart.so"];

/// The directories searched for CUDA libraries (see the module docs).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var("JIKJI_CUDA_LIBS")
        .map(|v| v.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    let out = std::process::Command::new("python3")
        .args(["-c", "import nvidia, sys; sys.stdout.write('\\n'.join(nvidia.__path__))"])
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(o) = out {
        for root in String::from_utf8_lossy(&o.stdout).lines() {
            let Ok(rd) = std::fs::read_dir(root) else { continue };
            let mut libs: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("lib")).filter(|p| p.is_dir()).collect();
            libs.sort();
            dirs.extend(libs);
        }
    }
    dirs
}

fn preload_from(dir: &Path, loaded: &mut Vec<libloading::Library>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    files.sort();
    for prefix in PRELOAD {
        for f in files.iter().filter(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix))) {
            // SAFETY: these are NVIDIA's CUDA libraries, whose initialisers only set up
            // their own state; they are kept open for the life of the process.
            if let Ok(lib) = unsafe { libloading::Library::new(f) } {
                loaded.push(lib);
            }
        }
    }
}

/// Opens the pip wheels' libraries once (see the module docs).
pub fn preload() {
    static DONE: OnceLock<usize> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut loaded = Vec::new();
        for d in search_dirs() {
            preload_from(&d, &mut loaded);
        }
        let n = loaded.len();
        // Kept open for the process: cudarc's handles refer to them by soname.
        std::mem::forget(loaded);
        n
    });
}

/// Whether the CUDA driver library can be opened (a GPU driver is installed).
pub fn driver_present() -> bool {
    preload();
    // SAFETY: only tries to open the library by name; nothing is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether NVRTC can be opened (from the system or a pip wheel).
pub fn nvrtc_present() -> bool {
    preload();
    // SAFETY: only tries to open the library by name; nothing is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}
