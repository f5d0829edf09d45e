//! Evaluation and measurement: what `jikji eval` and `jikji bench` compute and print.
//!
//! Quality, computed the way llama.cpp's `llama-perplexity` computes it so the numbers
//! compare line for line:
//! - [`perplexity`] / [`ppl_run`]: chunked perplexity (second half of each chunk scored),
//!   and the KL-divergence passes; [`logits_file`]: llama.cpp's base-logits file format;
//!   [`kld`]: KL divergence, Δp and same-top statistics with llama.cpp's printed blocks;
//! - [`hellaswag`], [`winogrande`], [`multiple_choice`]: llama-perplexity's scoring modes
//!   and file formats over [`choice`] (shared-prefix continuations in llama.cpp's batches),
//!   with its task selection ([`mt19937`]) and printed lines;
//! - [`suite`]: benchmark suites (MMLU, KMMLU-Hard, ko-evals, user files) with data that pip
//!   fetches into the model cache, scored by log-likelihood or greedy generation;
//! - [`energy`]: price and energy per 1M tokens (`--price-per-hour`, `--watts`, RAPL);
//!   [`plot`] and [`plot_png`]: SVG and PNG charts for `--out DIR`, [`report`]: the
//!   Markdown page embedding them; [`compare`]: several results side by side with deltas;
//! - [`logprob`]: log-softmax in llama.cpp's three precisions; [`forward`]: the model run
//!   in llama.cpp's micro-batches over a contiguous cache; [`parallel`]: row-parallel maps.
//!
//! Measurement (what `jikji bench` prints):
//! - [`stats`]: mean, median and standard deviation of repeated measurements.
//! - [`memory`]: this process's resident set (current and peak) and the memory the
//!   machine has available, from Linux's `/proc`.
//! - [`bandwidth`]: the machine's sequential read bandwidth, measured the way STREAM does
//!   (every hardware thread reading its own part of an array far larger than the
//!   last-level cache, best of several timed passes).
//! - [`cost`]: bytes of weights one decoded token reads, and the share of the memory
//!   bandwidth a generation speed amounts to.
//!
//! Design choices: every evaluation runs the model through the contiguous cache with the
//! CPU backend's llama.cpp orders, so a difference from llama-perplexity is a method
//! difference, never numerics of our own. Perplexity runs in llama.cpp's micro-batches
//! ([`forward`]). The choice modes run each of llama.cpp's batches as llama.cpp does — the
//! question once, every answer after it, one pass over a shared-prefix step laid out cell
//! for cell like llama.cpp's unified cache ([`choice`]) — so their scores are llama.cpp's to
//! the printed digit, near-ties included, and the matmuls see a task's hundred rows at once
//! instead of one answer's few. The suites pack several questions into each pass behind
//! their shared header. The serving engine's paged, batch-invariant path is not used: its
//! kernels round differently from llama.cpp's.
//!
//! Nothing here panics on what it measures or reads: a missing `/proc` or `/sys` file is
//! `None`, a malformed data file is an [`EvalError`].
#![forbid(unsafe_code)]

pub mod bandwidth;
pub mod choice;
pub mod compare;
pub mod cost;
pub mod energy;
mod error;
pub mod forward;
pub mod hellaswag;
pub mod kld;
pub mod logits_file;
pub mod logprob;
pub mod memory;
pub mod mt19937;
pub mod multiple_choice;
pub mod parallel;
pub mod perplexity;
pub mod plot;
pub mod plot_png;
pub mod ppl_run;
pub mod report;
pub mod stats;
pub mod suite;
pub mod tasks;
pub mod winogrande;

pub use bandwidth::{Bandwidth, BandwidthConfig, BandwidthError};
pub use error::EvalError;
pub use stats::Summary;
