//! The CUDA kernels compile with NVRTC for the GPU architectures jikji targets. This runs
//! without a GPU: NVRTC is a host library (the `nvidia-cuda-nvrtc-cu12` pip wheel, which
//! scripts/test.sh installs), so a syntax or type error in a kernel fails here, in CI, long
//! before a GPU machine sees it.

use jikji_cuda::module;

#[test]
fn kernels_compile_for_ampere_ada_and_hopper_with_every_entry_point() {
    assert!(
        jikji_cuda::libs::nvrtc_present(),
        "NVRTC not found: `python3 -m pip install nvidia-cuda-nvrtc-cu12` (searched {:?})",
        jikji_cuda::libs::search_dirs()
    );
    for (major, minor) in [(8, 0), (8, 9), (9, 0)] {
        let arch = module::arch_name(major, minor);
        let ptx = module::compile(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        let text = ptx.to_src();
        for k in module::KERNELS {
            assert!(text.contains(&format!(".entry {k}(")), "{arch}: no entry point {k} in the PTX");
        }
        assert!(text.contains(&format!(".target {arch}")), "{arch}: PTX for another target");
    }
}

#[test]
fn cache_file_name_changes_with_the_architecture() {
    let a = module::cache_path(module::arch_name(9, 0));
    let b = module::cache_path(module::arch_name(8, 0));
    assert_ne!(a, b);
    assert!(a.to_string_lossy().ends_with("-sm_90.ptx"));
}

#[test]
fn backend_without_a_driver_is_a_clear_error_not_a_panic() {
    if jikji_cuda::libs::driver_present() {
        return; // a GPU machine: tests/device.rs covers it
    }
    let err = jikji_cuda::CudaBackend::new(0).err().expect("no driver, no backend");
    assert!(err.to_string().contains("no CUDA driver"), "{err}");
}
