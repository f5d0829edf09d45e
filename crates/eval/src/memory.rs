//! Memory of this process and of the machine, read from Linux's `/proc`:
//!
//! - [`peak_rss_bytes`]: the process's peak resident set (`VmHWM` in `/proc/self/status`),
//!   what `jikji bench` reports next to the peer's;
//! - [`rss_bytes`]: the current resident set (`VmRSS`);
//! - [`available_bytes`]: what the machine can still hand out without killing anything,
//!   `MemAvailable + SwapFree` from `/proc/meminfo` (a budget for a KV cache or a test
//!   buffer).
//!
//! Each is `None` where the file or the field does not exist (other systems).

use std::path::Path;

/// Peak resident set size of this process (`VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM")
}

/// Current resident set size of this process (`VmRSS`), if known.
pub fn rss_bytes() -> Option<u64> {
    proc_field("/proc/self/status", "VmRSS")
}

/// Memory the machine can still give out: `MemAvailable` plus `SwapFree`, if known.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    available_from_meminfo(&text)
}

/// [`available_bytes`] from the text of `/proc/meminfo` (a missing `SwapFree` counts 0).
pub fn available_from_meminfo(meminfo: &str) -> Option<u64> {
    let avail = kib_field(meminfo, "MemAvailable")?;
    Some(avail.saturating_add(kib_field(meminfo, "SwapFree").unwrap_or(0)))
}

fn proc_field(path: impl AsRef<Path>, key: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string(path).ok()?, key)
}

/// The value in bytes of a `Key:   1234 kB` line of a `/proc` file, if present.
pub fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut words = rest.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => n.checked_mul(1024),
            None => Some(n),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tjikji\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";

    #[test]
    fn kib_fields_are_read_in_bytes_and_keys_match_exactly() {
        assert_eq!(kib_field(STATUS, "VmHWM"), Some(12345 * 1024));
        assert_eq!(kib_field(STATUS, "VmRSS"), Some(2048 * 1024));
        assert_eq!(kib_field(STATUS, "Threads"), Some(3));
        assert_eq!(kib_field(STATUS, "Vm"), None);
        assert_eq!(kib_field(STATUS, "VmSwap"), None);
        assert_eq!(kib_field("VmHWM:\tlots kB\n", "VmHWM"), None);
    }

    #[test]
    fn available_memory_adds_free_swap() {
        let info = "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 600 kB\nSwapTotal: 50 kB\nSwapFree: 40 kB\n";
        assert_eq!(available_from_meminfo(info), Some(640 * 1024));
        assert_eq!(available_from_meminfo("MemAvailable: 600 kB\n"), Some(600 * 1024));
        assert_eq!(available_from_meminfo("MemTotal: 1000 kB\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set_on_linux() {
        if cfg!(target_os = "linux") {
            let peak = peak_rss_bytes().expect("VmHWM");
            let now = rss_bytes().expect("VmRSS");
            assert!(peak >= now && now > 0, "peak {peak}, now {now}");
            assert!(available_bytes().is_some_and(|a| a > 0));
        }
    }
}
