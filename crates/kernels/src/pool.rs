//! A persistent thread pool for the kernels: [`parallel_for`] runs `f(0..n_tasks)` across
//! [`num_threads`](crate::num_threads) threads (the caller plus `num_threads() - 1`
//! workers) and returns when every task is done.
//!
//! Decoding one token of a small model calls `parallel_for` a few hundred times, so the
//! fork/join cost must be a few microseconds, not the ~20–50 µs of spawning threads. The
//! design, in the spirit of ggml's CPU thread pool:
//!
//! - **Workers are created once** (lazily, on the first parallel call; more are added if
//!   [`set_num_threads`](crate::set_num_threads) later asks for more) and never exit.
//! - **Publishing a job** = storing a pointer to a stack-allocated `Job` in `current` and
//!   bumping the `epoch` counter. Idle workers **spin** on `epoch` for a short while
//!   ([`SPIN`]) and then **park** on a condvar; the caller only takes the condvar's mutex
//!   when some worker is actually asleep, so a hot pool never makes a system call.
//! - **Tasks are claimed** with one `fetch_add` on the job's counter; the caller claims
//!   tasks too, so a job of `n` tasks on `t` threads needs no hand-off at all when the
//!   workers are slow to wake (the caller simply does everything).
//! - **Joining**: the caller, once no task is left to claim, unpublishes the job and waits
//!   until no worker is inside it (`in_flight == 0`). A worker registers in `in_flight`
//!   *before* reading `current` (both sequentially consistent), so after the caller has
//!   seen `in_flight == 0` behind its unpublishing store, no worker can still reach the job:
//!   that is what makes lending the stack-allocated job (and the caller's closure) to the
//!   workers sound.
//! - **Panics** in a task are caught, the remaining tasks are skipped, and the first panic
//!   is resumed on the calling thread after the join, so a panicking task propagates like
//!   in sequential code and never leaves a worker dead or the caller waiting.
//! - **Reentrancy**: a `parallel_for` called from inside a task (on a worker or on the
//!   calling thread) runs inline, sequentially; a call from another thread while a job is
//!   running waits for it (one job at a time keeps every worker on one job's data).
//!
//! The default thread count is the number of physical cores ([`physical_cores`]): on SMT
//! machines the second hardware thread of a core shares its load/store and SIMD units, and
//! bandwidth-bound kernels gain nothing from it (llama.cpp makes the same choice).

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker busy-waits for the next job before parking. Long enough to
/// bridge the serial parts of a forward pass between two parallel operations (and the
/// sampling between two decoded tokens), short enough that an idle server sleeps.
pub const SPIN: Duration = Duration::from_millis(1);

/// Runs `f(i)` for every `i` in `0..n_tasks`, spread over [`crate::num_threads`] threads
/// (the calling thread included), and returns once all calls have returned. Each index is
/// run exactly once; the order and the thread of each call are unspecified.
///
/// Runs inline (sequentially, on the calling thread) when one thread is configured, when
/// `n_tasks <= 1`, or when called from inside a task of another `parallel_for`.
/// If a task panics, the remaining unstarted tasks are skipped and the panic is resumed
/// on the calling thread after every running task has finished.
pub fn parallel_for(n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    if n_tasks == 0 {
        return;
    }
    let threads = crate::num_threads();
    if n_tasks == 1 || threads <= 1 || IN_TASK.with(Cell::get) {
        run_inline(n_tasks, f);
        return;
    }
    pool().run(n_tasks, threads - 1, f);
}

/// Runs `f(first_row, rows)` on contiguous groups of whole rows of `data` (`row_len`
/// elements each), one group per thread, in parallel: row-wise work (activations, rope,
/// quantizing activations) that would otherwise run on the calling thread while the
/// workers wait for the next matrix product. Groups are disjoint, so each call gets its
/// own `&mut` slice. Fewer than `2 · min_rows` rows run inline as one group; a trailing
/// partial row is left untouched.
pub fn for_rows_mut<T: Send>(data: &mut [T], row_len: usize, min_rows: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    if row_len == 0 {
        return;
    }
    let n_rows = data.len() / row_len;
    let parts = crate::num_threads().min(n_rows / min_rows.max(1)).max(1);
    if parts == 1 {
        f(0, &mut data[..n_rows * row_len]);
        return;
    }
    struct Rows<T>(*mut T);
    // SAFETY: the pointer is only used to form disjoint sub-slices (below), each handed to
    // one task; `T: Send` lets those slices move to the worker threads.
    unsafe impl<T: Send> Sync for Rows<T> {}
    let base = Rows(data.as_mut_ptr());
    let base = &base;
    parallel_for(parts, &|i| {
        let r = split_range(n_rows, parts, i);
        // SAFETY: the ranges of different `i` are disjoint and within `n_rows * row_len <=
        // data.len()`; `data` stays mutably borrowed (unused) until `parallel_for` returns.
        let rows = unsafe { std::slice::from_raw_parts_mut(base.0.add(r.start * row_len), r.len() * row_len) };
        f(r.start, rows);
    });
}

/// Splits `0..len` into `parts` near-equal contiguous ranges and returns the `i`-th
/// (`i < parts`): the first `len % parts` ranges get one element more. A helper for
/// callers of [`parallel_for`] that split rows or elements evenly across threads.
pub fn split_range(len: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    let parts = parts.max(1);
    let base = len / parts;
    let extra = len % parts;
    let start = i * base + i.min(extra);
    let end = start + base + usize::from(i < extra);
    start.min(len)..end.min(len)
}

/// The number of worker threads that currently exist (not counting callers); 0 before the
/// first parallel call. For tests and diagnostics.
pub fn workers_spawned() -> usize {
    POOL.get().map(|p| p.spawned.load(Acquire)).unwrap_or(0)
}

/// Physical CPU cores available to this process: distinct (package, core) pairs of the
/// online CPUs on Linux (from `/sys/devices/system/cpu/cpu*/topology`, else
/// `/proc/cpuinfo`), never more than the available parallelism (affinity, cgroup quota);
/// elsewhere, or if neither source can be read, the available parallelism.
pub fn physical_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        let avail = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cores = linux_physical_cores().unwrap_or(avail);
        cores.clamp(1, avail)
    })
}

fn linux_physical_cores() -> Option<usize> {
    sysfs_physical_cores().or_else(|| {
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        cpuinfo_physical_cores(&text)
    })
}

fn sysfs_physical_cores() -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(num) = name.strip_prefix("cpu") else { continue };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        // cpu0 often has no `online` file (it cannot go offline).
        if let Ok(online) = std::fs::read_to_string(dir.join("online")) {
            if online.trim() == "0" {
                continue;
            }
        }
        let read = |f: &str| -> Option<String> {
            std::fs::read_to_string(dir.join("topology").join(f)).ok().map(|s| s.trim().to_string())
        };
        let core = read("core_id")?;
        let package = read("physical_package_id").unwrap_or_default();
        cores.insert((package, core));
    }
    (!cores.is_empty()).then_some(cores.len())
}

/// Distinct (`physical id`, `core id`) pairs in a `/proc/cpuinfo` text; `None` if the
/// text has no `core id` lines (e.g. some virtual machines and non-x86 kernels).
pub fn cpuinfo_physical_cores(text: &str) -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    let (mut package, mut core) = (None::<String>, None::<String>);
    let mut flush = |package: &mut Option<String>, core: &mut Option<String>| {
        if let Some(c) = core.take() {
            cores.insert((package.take().unwrap_or_default(), c));
        }
        *package = None;
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut package, &mut core);
            continue;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        match key.trim() {
            "physical id" => package = Some(value.trim().to_string()),
            "core id" => core = Some(value.trim().to_string()),
            _ => {}
        }
    }
    flush(&mut package, &mut core);
    (!cores.is_empty()).then_some(cores.len())
}

// ------------------------------------------------------------------ implementation

thread_local! {
    /// True while this thread runs a task (worker threads: always), so nested calls run
    /// inline instead of waiting on the pool they occupy.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

fn run_inline(n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    for i in 0..n_tasks {
        f(i);
    }
}

/// One `parallel_for` call, on the caller's stack while it runs.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    n_tasks: usize,
    /// Next unclaimed task index (may run past `n_tasks`).
    next: AtomicUsize,
    /// Workers with an id below this take part; the others leave the job alone.
    max_workers: usize,
    /// Set by the first panicking task: stop claiming.
    panicked: AtomicBool,
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job<'_> {
    /// Claims and runs tasks until none is left (or one has panicked).
    fn work(&self) {
        loop {
            if self.panicked.load(Relaxed) {
                return;
            }
            let i = self.next.fetch_add(1, Relaxed);
            if i >= self.n_tasks {
                return;
            }
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                self.panicked.store(true, Relaxed);
                let mut slot = self.payload.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(p);
                return;
            }
        }
    }
}

struct Pool {
    /// Bumped once per published job; workers wait for it to change.
    epoch: AtomicU64,
    /// The published job (type-erased lifetime, see `run`), or null.
    current: AtomicPtr<Job<'static>>,
    /// Workers currently between "registered" and "done with `current`".
    in_flight: AtomicUsize,
    /// Workers that should spin (ids below this); others park right away.
    active: AtomicUsize,
    /// Parked workers, and the lock + condvar they sleep on.
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// One job at a time; also serializes growing the worker set.
    submit: Mutex<()>,
    spawned: AtomicUsize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool {
        epoch: AtomicU64::new(0),
        current: AtomicPtr::new(ptr::null_mut()),
        in_flight: AtomicUsize::new(0),
        active: AtomicUsize::new(0),
        sleepers: AtomicUsize::new(0),
        sleep_lock: Mutex::new(()),
        wake: Condvar::new(),
        submit: Mutex::new(()),
        spawned: AtomicUsize::new(0),
    })
}

impl Pool {
    fn run(&'static self, n_tasks: usize, workers: usize, f: &(dyn Fn(usize) + Sync)) {
        let _one_job = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        let workers = self.ensure_workers(workers);
        if workers == 0 {
            run_inline(n_tasks, f);
            return;
        }
        self.active.store(workers, Relaxed);
        let job = Job {
            f,
            n_tasks,
            next: AtomicUsize::new(0),
            max_workers: workers,
            panicked: AtomicBool::new(false),
            payload: Mutex::new(None),
        };
        let job_ptr = &job as *const Job<'_> as *mut Job<'static>;
        // Publish, then announce. SeqCst pairs with the workers' `in_flight` registration
        // (see the module docs) and with the sleepers handshake below.
        self.current.store(job_ptr, SeqCst);
        self.epoch.fetch_add(1, SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            let _g = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }

        // Work alongside the workers; nested calls from our own tasks run inline.
        let was_in_task = IN_TASK.with(|t| t.replace(true));
        job.work();
        IN_TASK.with(|t| t.set(was_in_task));

        // Join: nothing is left to claim; unpublish and wait until no worker holds `job`.
        self.current.store(ptr::null_mut(), SeqCst);
        let mut spins = 0u32;
        while self.in_flight.load(SeqCst) != 0 {
            spins += 1;
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                // A worker was preempted mid-task (busy machine): give it our core.
                std::thread::yield_now();
            }
        }
        // From here no worker can reach `job`: it is ours alone again.
        let payload = job.payload.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(_one_job);
        if let Some(p) = payload {
            panic::resume_unwind(p);
        }
    }

    /// Makes sure `want` workers exist (spawning the missing ones, once); returns how many
    /// can take part (fewer only if the OS refuses to create threads).
    fn ensure_workers(&'static self, want: usize) -> usize {
        let mut have = self.spawned.load(Acquire);
        while have < want {
            let id = have;
            let spawned = std::thread::Builder::new()
                .name(format!("jikji-worker-{id}"))
                .spawn(move || self.worker(id));
            if spawned.is_err() {
                break;
            }
            have += 1;
            self.spawned.store(have, Release);
        }
        have.min(want)
    }

    fn worker(&'static self, id: usize) {
        IN_TASK.with(|t| t.set(true));
        let mut seen = self.epoch.load(SeqCst);
        loop {
            seen = self.wait_for_epoch(id, seen);
            // Register before looking at `current`: the caller waits for `in_flight` to
            // drop to zero after unpublishing, so a job we see here outlives our use.
            self.in_flight.fetch_add(1, SeqCst);
            let job = self.current.load(SeqCst);
            if !job.is_null() {
                // SAFETY: `job` was published by `Pool::run`, which unpublishes it and
                // then waits for `in_flight == 0` before its stack frame (the `Job` and
                // the closure it borrows) goes away; we registered in `in_flight` before
                // this load, so the job is alive until our `fetch_sub` below.
                let job = unsafe { &*job };
                if id < job.max_workers {
                    job.work();
                }
            }
            self.in_flight.fetch_sub(1, SeqCst);
        }
    }

    /// Spins, then parks, until `epoch` differs from `seen`; returns the new epoch.
    fn wait_for_epoch(&self, id: usize, seen: u64) -> u64 {
        if id < self.active.load(Relaxed) {
            let start = Instant::now();
            let mut n = 0u32;
            loop {
                let e = self.epoch.load(SeqCst);
                if e != seen {
                    return e;
                }
                std::hint::spin_loop();
                n = n.wrapping_add(1);
                if n % 256 == 0 && start.elapsed() > SPIN {
                    break;
                }
            }
        }
        let mut guard = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, SeqCst);
        loop {
            let e = self.epoch.load(SeqCst);
            if e != seen {
                self.sleepers.fetch_sub(1, SeqCst);
                return e;
            }
            guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_rows_mut_hands_every_whole_row_to_exactly_one_call_with_its_index() {
        for (n_rows, min_rows) in [(0usize, 1usize), (1, 1), (7, 1), (1001, 4), (9, 100)] {
            let mut data = vec![usize::MAX; n_rows * 3 + 2]; // 2 trailing elements: not a row
            for_rows_mut(&mut data, 3, min_rows, &|first, rows| {
                for (k, row) in rows.chunks_exact_mut(3).enumerate() {
                    for v in row.iter_mut() {
                        assert_eq!(*v, usize::MAX, "a row was handed out twice");
                        *v = first + k;
                    }
                }
            });
            for (r, row) in data[..n_rows * 3].chunks_exact(3).enumerate() {
                assert_eq!(row, [r, r, r]);
            }
            assert_eq!(data[n_rows * 3..], [usize::MAX, usize::MAX]);
        }
    }

    #[test]
    fn split_range_covers_everything_once_and_evenly() {
        for len in 0..40 {
            for parts in 1..9 {
                let mut next = 0;
                for i in 0..parts {
                    let r = split_range(len, parts, i);
                    assert_eq!(r.start, next);
                    assert!(r.len() == len / parts || r.len() == len / parts + 1);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn cpuinfo_counts_distinct_cores_not_hyperthreads() {
        let text = "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 1\nphysical id\t: 0\ncore id\t\t: 1\n\n\
                    processor\t: 2\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 3\nphysical id\t: 0\ncore id\t\t: 1\n\n\
                    processor\t: 4\nphysical id\t: 1\ncore id\t\t: 0\n";
        assert_eq!(cpuinfo_physical_cores(text), Some(3));
        assert_eq!(cpuinfo_physical_cores("processor : 0\nflags : fpu\n"), None);
    }
}
