//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Design choices:
//! - The engine keeps its own counters, gauges and histograms ([`MetricsSnapshot`]); the
//!   server only counts requests by HTTP status (a middleware over every route, so 401s,
//!   404s and 429s are counted too) and writes both out on each scrape. No metrics crate:
//!   the format is a few lines of text per series.
//! - Names follow Prometheus conventions: `_total` counters, base units (seconds, ratio).
//! - With several models the unlabelled series are the sums over all of them (so
//!   dashboards and the single-model page stay as they were), and each model's own
//!   counters and gauges follow as `jikji_model_*{model="id"}` series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use jikji_engine::serve::{Histogram, MetricsSnapshot};

/// Requests answered, by HTTP status code.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl HttpMetrics {
    pub fn record(&self, status: u16) {
        // A poisoned lock only means another thread panicked mid-increment: keep counting.
        let mut m = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(status).or_insert(0) += 1;
    }

    pub fn by_status(&self) -> BTreeMap<u16, u64> {
        self.by_status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Writes Prometheus text-format series.
#[derive(Default)]
pub struct PromWriter {
    out: String,
}

impl PromWriter {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A counter with one label, one line per label value.
    pub fn labelled_counter(&mut self, name: &str, help: &str, label: &str, values: &[(String, u64)]) {
        self.header(name, help, "counter");
        for (l, v) in values {
            let _ = writeln!(self.out, "{name}{{{label}=\"{}\"}} {v}", escape_label(l));
        }
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.out, "{name} {}", fmt_f64(value));
    }

    /// A histogram from cumulative buckets `(upper bound, count ≤ bound)`; the `+Inf`
    /// bucket is the total count.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, help, "histogram");
        for (le, c) in &h.buckets {
            if le.is_finite() {
                let _ = writeln!(self.out, "{name}_bucket{{le=\"{}\"}} {c}", fmt_f64(*le));
            }
        }
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(self.out, "{name}_sum {}", fmt_f64(h.sum));
        let _ = writeln!(self.out, "{name}_count {}", h.count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn fmt_f64(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{x}")
    }
}

/// Adds `b`'s counts into `a` (same bucket bounds: every engine uses the same ones; a
/// histogram with other bounds only adds its sum and count).
fn add_histogram(a: &mut Histogram, b: &Histogram) {
    let same = a.buckets.len() == b.buckets.len() && a.buckets.iter().zip(&b.buckets).all(|(x, y)| x.0 == y.0);
    if same {
        for (x, y) in a.buckets.iter_mut().zip(&b.buckets) {
            x.1 += y.1;
        }
    }
    a.sum += b.sum;
    a.count += b.count;
}

/// The sum of several engines' snapshots (`None` for none).
pub fn total(snaps: &[MetricsSnapshot]) -> Option<MetricsSnapshot> {
    let (first, rest) = snaps.split_first()?;
    let mut t = first.clone();
    for m in rest {
        t.queue_depth += m.queue_depth;
        t.running += m.running;
        t.kv_blocks_used += m.kv_blocks_used;
        t.kv_blocks_total += m.kv_blocks_total;
        t.prompt_tokens_total += m.prompt_tokens_total;
        t.generated_tokens_total += m.generated_tokens_total;
        t.forced_tokens_total += m.forced_tokens_total;
        t.prefix_cache_hit_tokens_total += m.prefix_cache_hit_tokens_total;
        t.requests_cancelled_total += m.requests_cancelled_total;
        add_histogram(&mut t.ttft_seconds, &m.ttft_seconds);
        add_histogram(&mut t.inter_token_seconds, &m.inter_token_seconds);
    }
    Some(t)
}

fn per_model(w: &mut PromWriter, rows: &[(String, MetricsSnapshot)]) {
    type Get = fn(&MetricsSnapshot) -> f64;
    let series: [(&str, &str, &str, Get); 6] = [
        ("jikji_model_prompt_tokens_total", "counter", "Prompt tokens of admitted requests, by model.", |m| {
            m.prompt_tokens_total as f64
        }),
        ("jikji_model_generated_tokens_total", "counter", "Tokens generated, by model.", |m| m.generated_tokens_total as f64),
        ("jikji_model_queue_depth", "gauge", "Requests waiting for a batch slot, by model.", |m| m.queue_depth as f64),
        ("jikji_model_running_sequences", "gauge", "Sequences in the running batch, by model.", |m| m.running as f64),
        ("jikji_model_kv_cache_blocks_total", "gauge", "KV-cache blocks in all, by model.", |m| m.kv_blocks_total as f64),
        ("jikji_model_kv_cache_usage_ratio", "gauge", "Fraction of the model's KV-cache blocks in use.", |m| {
            if m.kv_blocks_total > 0 {
                m.kv_blocks_used as f64 / m.kv_blocks_total as f64
            } else {
                0.0
            }
        }),
    ];
    for (name, kind, help, get) in series {
        w.header(name, help, kind);
        for (id, m) in rows {
            let _ = writeln!(w.out, "{name}{{model=\"{}\"}} {}", escape_label(id), fmt_f64(get(m)));
        }
    }
}

/// The whole `/metrics` page: HTTP counts, then the engines' series (summed), then one
/// labelled set per model when there are several.
pub fn render(http: &HttpMetrics, models: &crate::Models) -> String {
    let rows: Vec<(String, MetricsSnapshot)> =
        models.iter().filter_map(|m| Some((m.id.clone(), m.engine()?.metrics()))).collect();
    let snaps: Vec<MetricsSnapshot> = rows.iter().map(|r| r.1.clone()).collect();
    let mut w = PromWriter::default();
    let statuses: Vec<(String, u64)> = http.by_status().into_iter().map(|(s, n)| (s.to_string(), n)).collect();
    w.labelled_counter("jikji_requests_total", "HTTP requests answered, by status code.", "status", &statuses);
    if let Some(m) = total(&snaps) {
        engine_series(&mut w, &m);
    }
    if rows.len() > 1 {
        per_model(&mut w, &rows);
    }
    w.finish()
}

fn engine_series(w: &mut PromWriter, m: &MetricsSnapshot) {
    w.counter("jikji_prompt_tokens_total", "Prompt tokens of admitted requests.", m.prompt_tokens_total);
    w.counter("jikji_generated_tokens_total", "Tokens generated.", m.generated_tokens_total);
    w.counter(
        "jikji_forced_tokens_total",
        "Generated tokens a grammar forced, taken without sampling (part of the generated tokens).",
        m.forced_tokens_total,
    );
    w.counter(
        "jikji_prefix_cache_hit_tokens_total",
        "Prompt tokens whose KV entries were reused from the prefix cache.",
        m.prefix_cache_hit_tokens_total,
    );
    w.counter(
        "jikji_requests_cancelled_total",
        "Generations cancelled because the client went away.",
        m.requests_cancelled_total,
    );
    w.gauge("jikji_queue_depth", "Requests waiting for a batch slot.", m.queue_depth as f64);
    w.gauge("jikji_running_sequences", "Sequences in the running batch.", m.running as f64);
    w.gauge("jikji_kv_cache_blocks_used", "KV-cache blocks in use.", m.kv_blocks_used as f64);
    w.gauge("jikji_kv_cache_blocks_total", "KV-cache blocks in all.", m.kv_blocks_total as f64);
    let ratio = if m.kv_blocks_total > 0 { m.kv_blocks_used as f64 / m.kv_blocks_total as f64 } else { 0.0 };
    w.gauge("jikji_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use.", ratio);
    w.histogram(
        "jikji_time_to_first_token_seconds",
        "Time from admission to the first generated token.",
        &m.ttft_seconds,
    );
    w.histogram("jikji_inter_token_seconds", "Time between consecutive generated tokens.", &m.inter_token_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_lines_are_cumulative_with_inf_sum_and_count() {
        let h = Histogram { buckets: vec![(0.1, 2), (1.0, 5)], sum: 2.5, count: 6 };
        let mut w = PromWriter::default();
        w.histogram("x_seconds", "help", &h);
        let s = w.finish();
        assert!(s.contains("# TYPE x_seconds histogram\n"));
        assert!(s.contains("x_seconds_bucket{le=\"0.1\"} 2\n"));
        assert!(s.contains("x_seconds_bucket{le=\"1\"} 5\n"));
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert!(s.contains("x_seconds_sum 2.5\n"));
        assert!(s.contains("x_seconds_count 6\n"));
    }

    #[test]
    fn requests_are_counted_by_status() {
        let h = HttpMetrics::default();
        h.record(200);
        h.record(200);
        h.record(401);
        let mut w = PromWriter::default();
        let v: Vec<(String, u64)> = h.by_status().into_iter().map(|(s, n)| (s.to_string(), n)).collect();
        w.labelled_counter("jikji_requests_total", "h", "status", &v);
        let s = w.finish();
        assert!(s.contains("jikji_requests_total{status=\"200\"} 2\n"));
        assert!(s.contains("jikji_requests_total{status=\"401\"} 1\n"));
    }
}
