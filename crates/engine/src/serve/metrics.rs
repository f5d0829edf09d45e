//! Serving counters and latency histograms (Prometheus-style cumulative buckets).

use std::sync::Mutex;

/// A cumulative histogram: `buckets` are `(upper bound in seconds, observations ≤ bound)`,
/// ascending; `count` includes observations above the last bound (`+Inf`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    fn with_bounds(bounds: &[f64]) -> Self {
        Self { buckets: bounds.iter().map(|&b| (b, 0)).collect(), sum: 0.0, count: 0 }
    }

    pub(crate) fn observe(&mut self, v: f64) {
        for (bound, n) in &mut self.buckets {
            if v <= *bound {
                *n += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

/// A point-in-time view of the engine's gauges and counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Requests waiting for a batch slot.
    pub queue_depth: usize,
    /// Sequences admitted and not finished.
    pub running: usize,
    /// KV blocks referenced by running sequences (cached-but-free prefix blocks excluded).
    pub kv_blocks_used: usize,
    pub kv_blocks_total: usize,
    /// Prompt tokens of finished or running requests (cached ones included).
    pub prompt_tokens_total: u64,
    pub generated_tokens_total: u64,
    /// Generated tokens a grammar forced (taken without sampling); part of the above.
    pub forced_tokens_total: u64,
    pub prefix_cache_hit_tokens_total: u64,
    pub ttft_seconds: Histogram,
    pub inter_token_seconds: Histogram,
    pub requests_cancelled_total: u64,
}

const TTFT_BOUNDS: [f64; 13] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
const ITL_BOUNDS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) prompt_tokens: u64,
    pub(crate) generated_tokens: u64,
    pub(crate) forced_tokens: u64,
    pub(crate) prefix_hit_tokens: u64,
    pub(crate) cancelled: u64,
    pub(crate) ttft: Histogram,
    pub(crate) itl: Histogram,
}

/// Counters updated by the engine loop, read by handles.
#[derive(Debug)]
pub(crate) struct Metrics {
    inner: Mutex<Counters>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Counters {
                prompt_tokens: 0,
                generated_tokens: 0,
                forced_tokens: 0,
                prefix_hit_tokens: 0,
                cancelled: 0,
                ttft: Histogram::with_bounds(&TTFT_BOUNDS),
                itl: Histogram::with_bounds(&ITL_BOUNDS),
            }),
        }
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn snapshot(&self, queue_depth: usize, running: usize, used: usize, total: usize) -> MetricsSnapshot {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        MetricsSnapshot {
            queue_depth,
            running,
            kv_blocks_used: used,
            kv_blocks_total: total,
            prompt_tokens_total: c.prompt_tokens,
            generated_tokens_total: c.generated_tokens,
            forced_tokens_total: c.forced_tokens,
            prefix_cache_hit_tokens_total: c.prefix_hit_tokens,
            ttft_seconds: c.ttft.clone(),
            inter_token_seconds: c.itl.clone(),
            requests_cancelled_total: c.cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::with_bounds(&[0.1, 1.0]);
        for v in [0.05, 0.5, 5.0] {
            h.observe(v);
        }
        assert_eq!(h.buckets, vec![(0.1, 1), (1.0, 2)]);
        assert_eq!(h.count, 3);
        assert!((h.sum - 5.55).abs() < 1e-12);
    }
}
