//! Evaluation: perplexity, multiple-choice benchmarks (KMMLU, HAE-RAE, MMLU) and
//! throughput/cost reports. Empty until the evaluation issue lands; the crate exists so the
//! workspace layout of `DESIGN.md` is in place from the start.
#![forbid(unsafe_code)]
