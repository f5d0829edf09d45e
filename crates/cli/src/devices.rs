//! `jikji devices` and the `--backend` flag's parser.
//!
//! `devices` lists what `--backend` can use on this machine: the CPU (its vector
//! instruction set and threads), every Vulkan adapter in the order `--backend vulkan`
//! prefers them (index for `JIKJI_VULKAN_ADAPTER`, type, driver, the limits that decide
//! what fits: largest buffer and storage binding, workgroup size, subgroup sizes, f16),
//! and the CUDA devices (memory, compute capability) in a build with `--features cuda`.
//! A backend that is missing says why, on its own line; the command itself only fails on
//! a broken stdout.

use anyhow::Result;
use jikji_engine::backend::{cuda_devices, vulkan_adapters};
use jikji_engine::BackendKind;
use std::io::Write;

/// `--backend NAME`.
pub fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse().map_err(|e: jikji_engine::BackendError| e.to_string())
}

fn human(bytes: u64) -> String {
    jikji_engine::open::human_bytes(bytes)
}

pub fn devices() -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "cpu: {} ({} threads by default; --backend cpu)", jikji_kernels::isa().name(), jikji_kernels::num_threads())?;
    let adapters = vulkan_adapters();
    if adapters.is_empty() {
        writeln!(out, "vulkan: no adapter (install a Vulkan driver and loader, e.g. Debian's libvulkan1 and mesa-vulkan-drivers)")?;
    }
    for a in &adapters {
        writeln!(out, "vulkan {}: {} ({}; driver {} {})", a.index, a.name, a.kind, a.driver, a.driver_info)?;
        writeln!(
            out,
            "  largest buffer {}, storage binding {}, {} invocations per workgroup, subgroups {}..{}{}{}",
            human(a.max_buffer_bytes),
            human(a.max_storage_binding_bytes),
            a.max_workgroup_invocations,
            a.subgroup_sizes.0,
            a.subgroup_sizes.1,
            if a.subgroups { " (subgroup reductions)" } else { " (workgroup reductions)" },
            if a.shader_f16 { ", shader f16" } else { "" },
        )?;
    }
    if let Some(a) = adapters.first() {
        let note = if a.kind == "CPU" { "; a CPU implementation, which --backend auto passes over" } else { "" };
        writeln!(out, "  --backend vulkan uses adapter {} (JIKJI_VULKAN_ADAPTER=<index> picks another){note}", a.index)?;
    }
    match cuda_devices() {
        Ok(v) if v.is_empty() => writeln!(out, "cuda: no device")?,
        Ok(v) => {
            for d in v {
                let (ma, mi) = d.compute_capability;
                writeln!(out, "cuda {}: {} ({} of memory, compute capability {ma}.{mi}, sm_{ma}{mi})", d.ordinal, d.name, human(d.total_bytes as u64))?;
            }
        }
        Err(e) => writeln!(out, "cuda: {e}")?,
    }
    Ok(())
}
