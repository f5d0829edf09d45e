//! Process-wide allocator settings for forward passes.
//!
//! A forward pass allocates its activations, attention scratch and quantized inputs per
//! call (megabytes each for a 512-token prompt) and frees them at the end of the call.
//! glibc's default policy hands the top of the heap back to the kernel once more than
//! `M_TRIM_THRESHOLD` is free, so the next layer's allocation faults every page in again
//! (zeroed by the kernel): on a 2-core machine that was a sixth of prompt-processing time
//! on gemma3-270m (`exc_page_fault`, `clear_page_erms` and `brk` in the profile).
//! llama.cpp avoids the cost by reserving its compute buffers once; we keep the
//! allocations where they are readable and ask malloc to keep freed memory instead:
//! a fixed mmap threshold (32 MiB, the largest glibc accepts) keeps per-call buffers on the
//! heap, and a trim threshold of 1 GiB keeps the heap's freed top for reuse. Peak RSS is
//! unchanged (the same buffers exist at the peak either way); memory is not returned
//! between calls, which a server that runs forward passes all day would undo anyway.

/// Applies the settings above. Idempotent; a no-op where the C library is not glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes malloc's tuning parameters; it is thread-safe and
    // valid to call at any time. A rejected value leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
