//! Routes and series for operators: `/ready` (the readiness probe) and the `/metrics`
//! series about keys and the KV pool's geometry.
//!
//! `/health` says the process is alive (200 while it runs, draining included, so a
//! liveness probe never kills a replica that is finishing its requests); `/ready` says it
//! should get traffic: 200 once the model is loaded and the server is not draining, 503
//! otherwise. The port opens only after the model is loaded, so before that a probe gets
//! a refused connection, which every balancer and Kubernetes treat as not ready.
//!
//! The Gateway API Inference Extension's endpoint picker reads three gauges from each
//! model server (its "model server protocol"); jikji's names for them:
//!
//! | protocol metric | type | jikji series | vLLM's name, for comparison |
//! |---|---|---|---|
//! | TotalQueuedRequests | gauge | `jikji_queue_depth` | `vllm:num_requests_waiting` |
//! | TotalRunningRequests | gauge | `jikji_running_sequences` | `vllm:num_requests_running` |
//! | KVCacheUtilization (0–1) | gauge | `jikji_kv_cache_usage_ratio` | `vllm:kv_cache_usage_perc` |
//! | BlockSize, NumGPUBlocks (optional, labels) | gauge = 1 | `jikji_cache_config_info{block_size, num_gpu_blocks}` | `vllm:cache_config_info` |
//!
//! jikji serves no LoRA adapters, so the protocol's LoRA series is absent.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::keys::{KeyState, Reason};
use crate::wire::HealthStatus;
use crate::AppState;

/// `GET /ready`: 200 `{"status":"ready"}` when serving, 503 `{"status":"draining"}`.
pub async fn ready(State(st): State<AppState>) -> Response {
    if st.shutdown.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(HealthStatus { status: "draining" })).into_response();
    }
    axum::Json(HealthStatus { status: "ready" }).into_response()
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A per-key series: name, type, help, and how to read it from a key's counts.
type Series = (&'static str, &'static str, &'static str, fn(&KeyState) -> u64);

/// The key and pool series appended to `/metrics`.
pub fn render(st: &AppState) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# HELP jikji_cache_config_info KV pool geometry (the value is always 1).");
    let _ = writeln!(o, "# TYPE jikji_cache_config_info gauge");
    // One line per model's pool; the model label only when there are several.
    let several = st.models.len() > 1;
    for m in st.models.iter() {
        let Some(e) = m.engine() else { continue };
        let (n_blocks, block_size) = e.kv_geometry();
        let model = if several { format!(",model=\"{}\"", label(&m.id)) } else { String::new() };
        let _ = writeln!(o, "jikji_cache_config_info{{block_size=\"{block_size}\",num_gpu_blocks=\"{n_blocks}\"{model}}} 1");
    }
    let ready = !st.shutdown.draining.load(Ordering::SeqCst);
    let _ = writeln!(o, "# HELP jikji_ready 1 while the server takes new requests (what /ready says).");
    let _ = writeln!(o, "# TYPE jikji_ready gauge");
    let _ = writeln!(o, "jikji_ready {}", u8::from(ready));
    let ring = &st.keys;
    if ring.is_open() {
        return o;
    }
    let states = ring.states();
    let series: [Series; 4] = [
        ("jikji_key_requests_total", "counter", "Requests admitted, by key name.", |s| s.requests_total.load(Ordering::Relaxed)),
        ("jikji_key_prompt_tokens_total", "counter", "Prompt tokens charged, by key name.", |s| {
            s.prompt_tokens_total.load(Ordering::Relaxed)
        }),
        ("jikji_key_completion_tokens_total", "counter", "Generated tokens charged, by key name.", |s| {
            s.completion_tokens_total.load(Ordering::Relaxed)
        }),
        ("jikji_key_in_flight", "gauge", "Requests of the key in flight now.", |s| s.in_flight()),
    ];
    for (name, kind, help, get) in series {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for s in &states {
            let _ = writeln!(o, "{name}{{key=\"{}\"}} {}", label(&s.name), get(s));
        }
    }
    let _ = writeln!(o, "# HELP jikji_key_rate_limited_total Requests refused with 429, by key name and limit.");
    let _ = writeln!(o, "# TYPE jikji_key_rate_limited_total counter");
    for s in &states {
        for r in Reason::ALL {
            let _ = writeln!(o, "jikji_key_rate_limited_total{{key=\"{}\",limit=\"{}\"}} {}", label(&s.name), r.as_str(), s.refused(r));
        }
    }
    let _ = writeln!(o, "# HELP jikji_keys_reloads_total Reloads of the keys file, by result.");
    let _ = writeln!(o, "# TYPE jikji_keys_reloads_total counter");
    let _ = writeln!(o, "jikji_keys_reloads_total{{result=\"ok\"}} {}", ring.reloads.load(Ordering::Relaxed));
    let _ = writeln!(o, "jikji_keys_reloads_total{{result=\"error\"}} {}", ring.reload_errors.load(Ordering::Relaxed));
    o
}
