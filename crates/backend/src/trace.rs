//! Named intermediates: `trace("attn_norm", Some(layer), &x)` at each step of a forward pass.
//!
//! A no-op unless the environment variable `JIKJI_TRACE` is set (read once); then one line
//! per call goes to stderr with the length, the first values, the sum and the RMS, in the
//! spirit of llama.cpp's `cb(cur, name, il)` callbacks, so a run can be diffed against a
//! peer's dump. Set `JIKJI_TRACE=<name>` to print only intermediates whose name contains it.
//! With `JIKJI_TRACE_DIR=<dir>` as well, each traced tensor is also written in full to
//! `<dir>/<name>-<layer>.bin` (four little-endian i64 dims — length, 1, 1, 1 — then the f32
//! values), for an element-by-element diff; the last call of a name and layer wins.

use std::sync::OnceLock;

fn filter() -> &'static Option<String> {
    static F: OnceLock<Option<String>> = OnceLock::new();
    F.get_or_init(|| std::env::var("JIKJI_TRACE").ok())
}

/// Whether tracing is on (`JIKJI_TRACE` set).
pub fn enabled() -> bool {
    filter().is_some()
}

/// Prints a one-line summary of `x` when tracing is on.
pub fn trace(name: &str, layer: Option<usize>, x: &[f32]) {
    let Some(f) = filter() else { return };
    if !f.is_empty() && f != "1" && !name.contains(f.as_str()) {
        return;
    }
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let rms = (x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len().max(1) as f64).sqrt();
    let head: Vec<String> = x.iter().take(4).map(|v| format!("{v:.5}")).collect();
    let l = layer.map_or_else(|| "-".to_string(), |l| l.to_string());
    eprintln!("[trace] {name:<16} layer {l:>3} n={:<8} sum={sum:<14.6} rms={rms:<12.6} [{}]", x.len(), head.join(", "));
    if let Some(dir) = std::env::var_os("JIKJI_TRACE_DIR") {
        let file = match layer {
            Some(l) => format!("{name}-{l}.bin"),
            None => format!("{name}.bin"),
        };
        let mut bytes = Vec::with_capacity(32 + 4 * x.len());
        for d in [x.len() as i64, 1, 1, 1] {
            bytes.extend_from_slice(&d.to_le_bytes());
        }
        x.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        if let Err(e) = std::fs::write(std::path::Path::new(&dir).join(&file), bytes) {
            eprintln!("[trace] cannot write {file}: {e}");
        }
    }
}
