//! `jikji inspect`: a model file's header, the hyper-parameters jikji's architecture reads
//! from it (common ones, then the architecture's own: MLA ranks, experts and routing, YaRN,
//! sliding-window pattern, …), the metadata (long arrays and strings summarised) and the
//! tensor table. A file jikji cannot run still gets its metadata and tensors, with the
//! reason it does not load.

use std::io::{self, Write};

use anyhow::Result;
use jikji_gguf::Value;

/// Array items shown before the rest is summarised.
const ARRAY_ITEMS: usize = 5;
/// Characters of a string value shown (the chat template gets a little more).
const STRING_CHARS: usize = 100;
const TEMPLATE_CHARS: usize = 160;

pub fn inspect(model: &str) -> Result<()> {
    let (path, file) = crate::commands::open_file(model)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let tensors = file.tensors();
    let total: u64 = tensors.iter().map(|t| t.n_bytes).sum();
    writeln!(out, "file: {}", path.display())?;
    writeln!(
        out,
        "GGUF v{}, alignment {}, {} metadata keys, {} tensors, {} of tensor data",
        file.version(),
        file.alignment(),
        file.metadata().len(),
        tensors.len(),
        human_bytes(total)
    )?;
    writeln!(out, "\narchitecture:")?;
    match jikji_models::Model::load(file.clone()) {
        Ok(model) => {
            for (k, v) in architecture_lines(&model) {
                writeln!(out, "  {k:<26} {v}")?;
            }
        }
        Err(e) => writeln!(out, "  (jikji cannot run this file: {e})")?,
    }
    writeln!(out, "\nmetadata:")?;
    for (key, value) in file.metadata() {
        let limit = if key == "tokenizer.chat_template" { TEMPLATE_CHARS } else { STRING_CHARS };
        writeln!(out, "  {key} = {}", show(value, limit))?;
    }
    writeln!(out, "\ntensors:")?;
    let name_w = tensors.iter().map(|t| t.name.chars().count()).max().unwrap_or(4).max(4);
    writeln!(out, "  {:<name_w$}  {:<5}  {:<22}  {:>12}", "name", "type", "dims", "bytes")?;
    for t in tensors {
        let dims = t.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ");
        writeln!(out, "  {:<name_w$}  {:<5}  {:<22}  {:>12}", t.name, t.ggml_type.name(), dims, t.n_bytes)?;
    }
    out.flush()?;
    Ok(())
}

/// The loaded model's hyper-parameters as (name, value) lines.
fn architecture_lines(model: &jikji_models::Model) -> Vec<(String, String)> {
    let hp = model.hparams();
    let info = model.info();
    let (kw, vw) = model.cache_widths();
    let mut lines = vec![
        ("name".to_string(), info.arch.clone()),
        ("backend".into(), model.backend().to_string()),
        ("layers".into(), hp.n_layer.to_string()),
        ("embedding".into(), hp.n_embd.to_string()),
        ("vocabulary".into(), hp.n_vocab.to_string()),
        ("feed-forward".into(), hp.n_ff.to_string()),
        ("heads (q / kv)".into(), format!("{} / {}", hp.n_head, hp.n_head_kv)),
        ("head dims (k / v)".into(), format!("{} / {}", hp.head_dim_k, hp.head_dim_v)),
        ("rope".into(), format!("{} dims, base {}, freq scale {}", hp.n_rot, hp.rope_base, hp.rope_freq_scale)),
        ("rms norm eps".into(), format!("{:e}", hp.rms_eps)),
        ("training context".into(), hp.n_ctx_train.to_string()),
        (
            "KV cache / token".into(),
            format!("{} values ({} B in f16)", (kw + vw) * hp.n_layer, (kw + vw) * hp.n_layer * 2),
        ),
        ("output".into(), if info.tied_output { "tied to the embedding".into() } else { "own matrix".into() }),
    ];
    if let Some(w) = hp.sliding_window {
        lines.push(("sliding window".into(), w.to_string()));
    }
    lines.extend(model.details());
    lines
}

fn show(v: &Value, limit: usize) -> String {
    match v {
        Value::String(s) => show_str(s, limit),
        Value::Array(items) => {
            let shown: Vec<String> = items.iter().take(ARRAY_ITEMS).map(|x| show(x, 40)).collect();
            let more = if items.len() > ARRAY_ITEMS { ", …" } else { "" };
            format!("[{}{more}] (len {})", shown.join(", "), items.len())
        }
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
    }
}

/// A string quoted with escapes, truncated to `limit` characters.
fn show_str(s: &str, limit: usize) -> String {
    let n = s.chars().count();
    if n <= limit {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(limit).collect();
    format!("{head:?}… ({n} chars)")
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_arrays_show_first_items_and_length() {
        let v = Value::Array((0..1000).map(Value::I32).collect());
        assert_eq!(show(&v, 100), "[0, 1, 2, 3, 4, …] (len 1000)");
        let short = Value::Array(vec![Value::String("a".into())]);
        assert_eq!(show(&short, 100), "[\"a\"] (len 1)");
    }

    #[test]
    fn long_strings_are_truncated_on_char_boundaries() {
        let s = "한".repeat(300);
        let shown = show(&Value::String(s), 10);
        assert!(shown.starts_with(&format!("\"{}\"", "한".repeat(10))));
        assert!(shown.ends_with("(300 chars)"));
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
