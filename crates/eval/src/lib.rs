//! Evaluation and measurement: throughput and cost reports (what `jikji bench` prints),
//! later perplexity and multiple-choice benchmarks (KMMLU, HAE-RAE, MMLU).
//!
//! - [`stats`]: mean, median and standard deviation of repeated measurements.
//! - [`memory`]: this process's resident set (current and peak) and the memory the
//!   machine has available, from Linux's `/proc`.
//! - [`bandwidth`]: the machine's sequential read bandwidth, measured the way STREAM does
//!   (every hardware thread reading its own part of an array far larger than the
//!   last-level cache, best of several timed passes).
//! - [`cost`]: bytes of weights one decoded token reads, and the share of the memory
//!   bandwidth a generation speed amounts to.
//!
//! Nothing here panics on what it measures or reads: a missing `/proc` or `/sys` file is
//! `None`, a buffer that cannot be allocated is an error.
#![forbid(unsafe_code)]

pub mod bandwidth;
pub mod cost;
pub mod memory;
pub mod stats;

pub use bandwidth::{Bandwidth, BandwidthConfig, BandwidthError};
pub use stats::Summary;
