//! The machine's sequential read bandwidth, measured the way STREAM does, so that "share of
//! memory bandwidth" figures have a meaningful denominator.
//!
//! - **Every hardware thread** reads: one worker per thread (by default
//!   `std::thread::available_parallelism`), each on its own part of the array. A worker
//!   allocates and fills its part itself, so its pages are first touched — and placed — by
//!   the thread that reads them (what STREAM's parallel initialisation does on NUMA
//!   machines).
//! - **Far larger than the last-level cache**: by default four times the largest cache
//!   `/sys` reports, at least 256 MiB and at most 2 GiB (1 GiB when the cache size is
//!   unknown), and never more than half the memory available.
//! - **Several passes, best one**: one untimed warm-up pass, then `runs` (5) timed passes;
//!   the bandwidth is bytes read by one pass ÷ the best pass's time (STREAM reports the
//!   best of its timed iterations too). A pass starts when every worker is released from
//!   a barrier and ends when the last one arrives at the next.
//! - **A kernel the compiler vectorises**: each worker sums its `u64`s in eight independent
//!   lanes (no loop-carried dependency on one adder); the slice goes through
//!   [`std::hint::black_box`] each pass and the sum is kept with it, so no pass can be
//!   skipped or hoisted.
//!
//! On a machine with memory for it the whole probe takes well under two seconds (filling
//! the array once, then six passes).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

const MIB: usize = 1 << 20;
/// Smallest default array.
const MIN_BYTES: usize = 256 * MIB;
/// Largest default array.
const MAX_BYTES: usize = 2048 * MIB;
/// Default array when the cache size is unknown.
const FALLBACK_BYTES: usize = 1024 * MIB;
/// The default array is this many times the last-level cache.
const CACHE_FACTOR: usize = 4;
/// Each worker reads `u64`s in this many lanes.
const LANES: usize = 8;

/// How to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BandwidthConfig {
    /// Workers, one per hardware thread by default.
    pub threads: usize,
    /// Bytes of the whole array (rounded down to whole lanes per worker).
    pub bytes: usize,
    /// Timed passes; the best one counts.
    pub runs: usize,
}

impl Default for BandwidthConfig {
    fn default() -> Self {
        BandwidthConfig { threads: hardware_threads(), bytes: default_bytes(), runs: 5 }
    }
}

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Bandwidth {
    /// Bytes read per second by the best pass, in GB/s (10⁹ bytes).
    pub gb_s: f64,
    /// Bytes one pass read.
    pub bytes: usize,
    pub threads: usize,
    /// Seconds of the best pass.
    pub best_secs: f64,
    /// Seconds of every timed pass, in order.
    pub pass_secs: Vec<f64>,
    /// Seconds spent starting the workers and filling the array (before the warm-up).
    pub fill_secs: f64,
}

/// Why no measurement was made.
#[derive(Debug, thiserror::Error)]
pub enum BandwidthError {
    #[error("bad bandwidth test configuration: {0}")]
    BadConfig(&'static str),
    #[error("cannot allocate the {} MiB bandwidth test array", .0 / MIB)]
    Alloc(usize),
    #[error("a bandwidth test worker failed: {0}")]
    Worker(String),
}

/// Hardware threads this process may run on (1 if unknown).
pub fn hardware_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Bytes of the largest CPU cache `/sys` reports for cpu0 (the last-level cache), if any.
pub fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| parse_cache_size(std::fs::read_to_string(e.path().join("size")).ok()?.trim()))
        .max()
}

/// A `/sys` cache size such as `48K`, `2048K`, `260M` or `1G` in bytes.
pub fn parse_cache_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1,
        "K" | "k" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// The default array size: `4 ×` the last-level cache clamped to 256 MiB – 2 GiB (1 GiB
/// if unknown), at most half of [`crate::memory::available_bytes`].
pub fn default_bytes() -> usize {
    let available = crate::memory::available_bytes().map(|a| usize::try_from(a / 2).unwrap_or(usize::MAX));
    default_bytes_for(last_level_cache_bytes(), available)
}

/// [`default_bytes`] for a given cache size and memory budget.
pub fn default_bytes_for(llc: Option<usize>, budget: Option<usize>) -> usize {
    let want = llc.map_or(FALLBACK_BYTES, |c| c.saturating_mul(CACHE_FACTOR).clamp(MIN_BYTES, MAX_BYTES));
    budget.map_or(want, |b| want.min(b))
}

/// Measures with the default configuration.
pub fn measure_default() -> Result<Bandwidth, BandwidthError> {
    measure(&BandwidthConfig::default())
}

/// Measures the sequential read bandwidth (see the module documentation).
pub fn measure(cfg: &BandwidthConfig) -> Result<Bandwidth, BandwidthError> {
    if cfg.threads == 0 {
        return Err(BandwidthError::BadConfig("threads must be at least 1"));
    }
    if cfg.runs == 0 {
        return Err(BandwidthError::BadConfig("runs must be at least 1"));
    }
    let words_per_thread = cfg.bytes / 8 / cfg.threads / LANES * LANES;
    if words_per_thread == 0 {
        return Err(BandwidthError::BadConfig("the array must hold at least one lane group per thread"));
    }
    let bytes = words_per_thread * 8 * cfg.threads;

    // Workers and this thread meet at every gate: once when every part is filled, then
    // before and after every pass. A closed gate releases everyone for good.
    let gate = Gate::new(cfg.threads + 1);
    let failed = AtomicBool::new(false);
    let mut pass_secs = Vec::with_capacity(cfg.runs);
    let mut fill_secs = 0.0;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..cfg.threads {
            let (gate, failed, runs) = (&gate, &failed, cfg.runs);
            let worker = std::thread::Builder::new().name(format!("membw-{w}")).spawn_scoped(scope, move || {
                let part = filled_part(words_per_thread, w);
                if part.is_none() {
                    failed.store(true, Ordering::SeqCst);
                }
                let part = part.unwrap_or_default();
                if !gate.wait() {
                    return;
                }
                // The warm-up pass and the timed ones, each followed by the gate that ends it.
                for _ in 0..=runs {
                    black_box(sum_lanes(black_box(part.as_slice())));
                    if !gate.wait() {
                        return;
                    }
                }
            });
            if worker.is_err() {
                gate.close();
                return Err(BandwidthError::Worker(format!("cannot start a thread ({w} of {} started)", cfg.threads)));
            }
        }
        // Every part filled (each worker's first wait).
        gate.wait();
        fill_secs = started.elapsed().as_secs_f64();
        if failed.load(Ordering::SeqCst) {
            gate.close();
            return Err(BandwidthError::Alloc(bytes));
        }
        // Pass `run` goes from this gate (workers start summing) to the next (the last one
        // is done); run 0 is the warm-up.
        for run in 0..=cfg.runs {
            let t = Instant::now();
            gate.wait();
            if run > 0 {
                pass_secs.push(t.elapsed().as_secs_f64());
            }
        }
        gate.close();
        Ok(())
    })?;
    let best_secs = pass_secs.iter().copied().fold(f64::INFINITY, f64::min).max(1e-9);
    Ok(Bandwidth { gb_s: bytes as f64 / best_secs / 1e9, bytes, threads: cfg.threads, best_secs, pass_secs, fill_secs })
}

/// A reusable barrier that can be closed: [`Gate::wait`] blocks until `n` threads wait
/// (then returns `true` to all of them) or until [`Gate::close`] (then `false`, at once and
/// ever after), so a failed start releases the threads already waiting.
struct Gate {
    n: usize,
    state: Mutex<GateState>,
    cv: Condvar,
}

struct GateState {
    waiting: usize,
    generation: u64,
    closed: bool,
}

impl Gate {
    fn new(n: usize) -> Self {
        Gate { n, state: Mutex::new(GateState { waiting: 0, generation: 0, closed: false }), cv: Condvar::new() }
    }

    fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.closed {
            return false;
        }
        s.waiting += 1;
        if s.waiting == self.n {
            s.waiting = 0;
            s.generation = s.generation.wrapping_add(1);
            self.cv.notify_all();
            return true;
        }
        let generation = s.generation;
        while s.generation == generation && !s.closed {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.generation != generation
    }

    fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.closed = true;
        self.cv.notify_all();
    }
}

/// A worker's part, allocated and written by the worker (non-zero words, so every page is
/// backed by memory of its own rather than the shared zero page); `None` if it cannot be
/// allocated.
fn filled_part(words: usize, worker: usize) -> Option<Vec<u64>> {
    let mut v: Vec<u64> = Vec::new();
    v.try_reserve_exact(words).ok()?;
    let seed = (worker as u64) << 40;
    v.extend((0..words as u64).map(|i| seed | i | 1));
    Some(v)
}

/// Wrapping sum of `words` in [`LANES`] independent lanes (vectorised; a ragged tail is
/// added last).
pub fn sum_lanes(words: &[u64]) -> u64 {
    let mut acc = [0u64; LANES];
    let chunks = words.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] = acc[l].wrapping_add(c[l]);
        }
    }
    acc.iter().chain(tail).fold(0u64, |a, &b| a.wrapping_add(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse_with_their_units() {
        assert_eq!(parse_cache_size("48K"), Some(48 << 10));
        assert_eq!(parse_cache_size("266240K"), Some(260 << 20));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("big"), None);
        assert_eq!(parse_cache_size("4T"), None);
    }

    #[test]
    fn default_array_is_four_caches_within_bounds_and_the_memory_budget() {
        assert_eq!(default_bytes_for(Some(260 * MIB), None), 1040 * MIB);
        assert_eq!(default_bytes_for(Some(8 * MIB), None), MIN_BYTES);
        assert_eq!(default_bytes_for(Some(4096 * MIB), None), MAX_BYTES);
        assert_eq!(default_bytes_for(None, None), FALLBACK_BYTES);
        assert_eq!(default_bytes_for(Some(260 * MIB), Some(300 * MIB)), 300 * MIB);
    }

    #[test]
    fn lane_sum_equals_the_plain_sum_with_a_ragged_tail() {
        let v: Vec<u64> = (0..1003u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let plain = v.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        assert_eq!(sum_lanes(&v), plain);
        assert_eq!(sum_lanes(&[]), 0);
    }

    #[test]
    fn a_small_measurement_reads_every_byte_and_reports_each_pass() {
        let cfg = BandwidthConfig { threads: 2, bytes: 4 * MIB + 100, runs: 3 };
        let bw = measure(&cfg).unwrap();
        assert_eq!(bw.bytes, 4 * MIB);
        assert_eq!(bw.threads, 2);
        assert_eq!(bw.pass_secs.len(), 3);
        assert!(bw.pass_secs.iter().all(|&s| s >= bw.best_secs));
        assert!(bw.gb_s.is_finite() && bw.gb_s > 0.0);
        assert!((bw.gb_s - bw.bytes as f64 / bw.best_secs / 1e9).abs() < 1e-9 * bw.gb_s);
    }

    #[test]
    fn bad_configurations_are_errors() {
        for cfg in [
            BandwidthConfig { threads: 0, bytes: MIB, runs: 1 },
            BandwidthConfig { threads: 1, bytes: MIB, runs: 0 },
            BandwidthConfig { threads: 4, bytes: 8, runs: 1 },
        ] {
            assert!(matches!(measure(&cfg), Err(BandwidthError::BadConfig(_))), "{cfg:?}");
        }
    }

    #[test]
    fn an_array_that_cannot_be_allocated_is_an_error_not_an_abort() {
        let cfg = BandwidthConfig { threads: 2, bytes: usize::MAX / 2, runs: 1 };
        assert!(matches!(measure(&cfg), Err(BandwidthError::Alloc(_))));
    }
}
