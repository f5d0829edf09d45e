//! What the per-key checks cost in CPU time, measured alone (the end-to-end comparison in
//! `scripts/bench-keys.sh` is within the noise of a shared machine):
//! - per request: find the key (SHA-256 of the presented key, table lookup among 51 keys),
//!   check the route's scope, admit it under all four limits, free the slot;
//! - per generated token: charge it to the key (per-minute bucket and day count).
//!
//! `cargo run --release -p jikji-server --example keys_cost -- [TOK_PER_S] [REQ_PER_S]`
//! prints nanoseconds per operation and, given a measured aggregate tokens/s and
//! requests/s, the fraction of one core those checks take at that load.

use std::hint::black_box;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue};
use jikji_server::keys::{route_scopes, KeyRing, KeysFile, Limits, Scope};
use jikji_server::ApiKeys;

fn main() {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let mut f = KeysFile::default();
    for i in 0..50 {
        f.add(&format!("team-{i}"), vec![Scope::Inference], Limits::default(), "bench").expect("add");
    }
    let limits = Limits {
        requests_per_minute: Some(1_000_000_000),
        tokens_per_minute: Some(1_000_000_000),
        tokens_per_day: Some(u64::MAX / 4),
        max_concurrent: Some(1_000_000),
    };
    let key = f.add("bench", vec![Scope::Inference], limits, "bench").expect("add");
    let dir = std::env::temp_dir().join(format!("jikji-keys-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("keys.toml");
    f.save(&path).expect("save");
    let ring = KeyRing::new(Some(&path), &ApiKeys::none()).expect("ring");
    let _ = std::fs::remove_dir_all(&dir);
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_str(&format!("Bearer {key}")).expect("header"));
    let access = route_scopes("/v1/chat/completions");

    let n_req = 200_000;
    let t = Instant::now();
    for _ in 0..n_req {
        let caller = ring.authorize(black_box(&h), access).expect("ok").expect("caller");
        let permit = caller.state.admit(&caller.policy.limits).expect("admitted");
        black_box(&permit);
    }
    let ns_req = t.elapsed().as_nanos() as f64 / n_req as f64;

    let caller = ring.authorize(&h, access).expect("ok").expect("caller");
    let n_tok = 2_000_000;
    let t = Instant::now();
    for _ in 0..n_tok {
        caller.state.charge(0, black_box(1), &caller.policy.limits);
    }
    let ns_tok = t.elapsed().as_nanos() as f64 / n_tok as f64;
    println!("per request (authorize + scope + admit under 4 limits + release): {ns_req:.0} ns");
    println!("per generated token (charge): {ns_tok:.0} ns");
    if let [tps, rps, ..] = args[..] {
        let frac = (tps * ns_tok + rps * ns_req) / 1e9;
        println!("at {tps:.1} tokens/s and {rps:.2} requests/s: {:.4} % of one core", frac * 100.0);
    }
}
