//! The persistent thread pool (`jikji_kernels::pool`): every task runs exactly once, nested
//! and concurrent calls do not deadlock, a panicking task propagates, and workers are
//! created once rather than per call.
//!
//! The thread count is process-wide, so tests that set it hold `SETTING`.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use jikji_kernels::pool::{parallel_for, split_range, workers_spawned};
use jikji_kernels::set_num_threads;

static SETTING: Mutex<()> = Mutex::new(());

fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let _g = SETTING.lock().unwrap_or_else(|e| e.into_inner());
    set_num_threads(n);
    let r = catch_unwind(AssertUnwindSafe(f));
    set_num_threads(0);
    match r {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    }
}

fn counts_after(n_tasks: usize) -> Vec<usize> {
    let counts: Vec<AtomicUsize> = (0..n_tasks).map(|_| AtomicUsize::new(0)).collect();
    parallel_for(n_tasks, &|i| {
        counts[i].fetch_add(1, Relaxed);
    });
    counts.into_iter().map(AtomicUsize::into_inner).collect()
}

#[test]
fn every_task_runs_exactly_once_for_any_thread_and_task_count() {
    for threads in [1, 2, 3, 5] {
        with_threads(threads, || {
            for n_tasks in [0, 1, 2, 3, 7, 64, 1000] {
                let counts = counts_after(n_tasks);
                assert!(counts.iter().all(|&c| c == 1), "threads {threads}, tasks {n_tasks}: {counts:?}");
            }
        });
    }
}

#[test]
fn tasks_run_on_several_threads_when_several_are_set() {
    with_threads(2, || {
        // Each task waits a little so the worker has time to wake and claim some.
        let ids = Mutex::new(HashSet::new());
        for _ in 0..50 {
            parallel_for(8, &|_| {
                ids.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(std::time::Duration::from_micros(200));
            });
            if ids.lock().unwrap().len() > 1 {
                break;
            }
        }
        assert_eq!(ids.lock().unwrap().len(), 2, "a 2-thread pool never ran tasks on a second thread");
    });
}

#[test]
fn one_thread_runs_everything_inline_on_the_caller() {
    with_threads(1, || {
        let me = std::thread::current().id();
        let others = AtomicUsize::new(0);
        parallel_for(100, &|_| {
            if std::thread::current().id() != me {
                others.fetch_add(1, Relaxed);
            }
        });
        assert_eq!(others.into_inner(), 0);
    });
}

#[test]
fn nested_calls_run_inline_without_deadlock() {
    with_threads(3, || {
        let total = AtomicUsize::new(0);
        parallel_for(6, &|i| {
            parallel_for(10, &|j| {
                parallel_for(2, &|_| {
                    total.fetch_add(i * 100 + j, Relaxed);
                });
            });
        });
        // sum over i<6, j<10 of (100 i + j), twice
        let expect: usize = (0..6).flat_map(|i| (0..10).map(move |j| 100 * i + j)).sum::<usize>() * 2;
        assert_eq!(total.into_inner(), expect);
    });
}

#[test]
fn a_panicking_task_propagates_to_the_caller_and_the_pool_keeps_working() {
    with_threads(2, || {
        for round in 0..20 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                parallel_for(16, &|i| {
                    if i == round % 16 {
                        panic!("task {i} failed");
                    }
                });
            }));
            let err = r.expect_err("the panic was swallowed");
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert_eq!(msg, format!("task {} failed", round % 16));
            // The pool is still usable afterwards.
            assert!(counts_after(33).iter().all(|&c| c == 1));
        }
    });
}

#[test]
fn many_tiny_calls_in_a_loop_stay_correct_and_spawn_no_threads() {
    with_threads(2, || {
        parallel_for(2, &|_| {}); // make sure the pool exists
        let spawned = workers_spawned();
        assert!(spawned >= 1, "no worker after a 2-thread call");
        let sum = AtomicUsize::new(0);
        for k in 0..20_000 {
            parallel_for(3, &|i| {
                sum.fetch_add(k * 3 + i, Relaxed);
            });
        }
        let n = 20_000 * 3;
        assert_eq!(sum.into_inner(), n * (n - 1) / 2);
        assert_eq!(workers_spawned(), spawned, "workers were spawned per call");
    });
}

#[test]
fn concurrent_callers_from_several_threads_each_get_all_their_tasks() {
    with_threads(2, || {
        std::thread::scope(|s| {
            for t in 0..4usize {
                s.spawn(move || {
                    for round in 0..300 {
                        let n = 1 + (t * 7 + round) % 40;
                        let counts = counts_after(n);
                        assert!(counts.iter().all(|&c| c == 1));
                    }
                });
            }
        });
    });
}

#[test]
fn tasks_writing_disjoint_chunks_fill_the_whole_output() {
    with_threads(2, || {
        let len = 10_007;
        let parts = 7;
        let out: Vec<AtomicUsize> = (0..len).map(|_| AtomicUsize::new(0)).collect();
        parallel_for(parts, &|p| {
            for i in split_range(len, parts, p) {
                out[i].store(i + 1, Relaxed);
            }
        });
        assert!(out.iter().enumerate().all(|(i, v)| v.load(Relaxed) == i + 1));
    });
}
