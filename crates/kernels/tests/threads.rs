//! The global thread-count setting (its own test binary: the setting is process-wide).

use jikji_kernels::{num_threads, set_num_threads};

#[test]
fn num_threads_defaults_to_available_parallelism_and_can_be_set() {
    let available = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    assert_eq!(num_threads(), available);
    set_num_threads(3);
    assert_eq!(num_threads(), 3);
    set_num_threads(0);
    assert_eq!(num_threads(), available);
}
