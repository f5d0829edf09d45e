//! Python `str` / `list` / `dict` methods that templates call and minijinja lacks:
//! everything `minijinja_contrib::pycompat` provides, plus `rsplit`, `partition`,
//! `rpartition`, `removeprefix`, `removesuffix`, `center`, `ljust`, `rjust`, `list.index`
//! and `copy`; in-place mutators (`append`, `update`, …) fail as in transformers'
//! immutable sandbox.

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, State, Value};

use super::sandbox::MAX_OUTPUT_BYTES;

pub(super) fn unknown_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    match (value.kind(), method) {
        (ValueKind::String, "rsplit") => {
            let s = value.as_str().unwrap_or_default();
            let (sep, maxsplit): (Option<Value>, Option<i64>) = minijinja::value::from_args(args)?;
            let sep = sep.filter(|v| !v.is_none());
            let maxsplit = maxsplit.filter(|&m| m >= 0).map(|m| m as usize);
            let mut parts: Vec<Value> = match (sep.as_ref().and_then(|v| v.as_str()), maxsplit) {
                (Some(""), _) => {
                    return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"))
                }
                (Some(sep), Some(n)) => s.rsplitn(n + 1, sep).map(Value::from).collect(),
                (Some(sep), None) => s.rsplit(sep).map(Value::from).collect(),
                (None, _) => rsplit_whitespace(s, maxsplit)
                    .into_iter()
                    .rev()
                    .map(Value::from)
                    .collect(),
            };
            parts.reverse();
            Ok(Value::from(parts))
        }
        (ValueKind::String, "removeprefix" | "removesuffix") => {
            let s = value.as_str().unwrap_or_default();
            let (affix,): (&str,) = minijinja::value::from_args(args)?;
            let out = if method == "removeprefix" {
                s.strip_prefix(affix)
            } else {
                s.strip_suffix(affix)
            };
            Ok(Value::from(out.unwrap_or(s)))
        }
        (ValueKind::String, "partition" | "rpartition") => {
            let s = value.as_str().unwrap_or_default();
            let (sep,): (&str,) = minijinja::value::from_args(args)?;
            if sep.is_empty() {
                return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
            }
            let found = if method == "partition" {
                s.split_once(sep)
            } else {
                s.rsplit_once(sep)
            };
            let parts = match (found, method) {
                (Some((a, b)), _) => [a, sep, b],
                (None, "partition") => [s, "", ""],
                (None, _) => ["", "", s],
            };
            Ok(Value::from(
                parts.iter().map(|p| Value::from(*p)).collect::<Vec<_>>(),
            ))
        }
        (ValueKind::String, "center" | "ljust" | "rjust") => {
            let s = value.as_str().unwrap_or_default();
            let (width, fill): (usize, Option<&str>) = minijinja::value::from_args(args)?;
            let fill = match fill.map(|f| {
                let mut chars = f.chars();
                (chars.next(), chars.next())
            }) {
                None => ' ',
                Some((Some(c), None)) => c,
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "the fill character must be exactly one character long",
                    ))
                }
            };
            let len = s.chars().count();
            let width = width.min(MAX_OUTPUT_BYTES);
            if width <= len {
                return Ok(value.clone());
            }
            let pad = width - len;
            // Python's center puts the extra character on the left when `width` is odd.
            let left = match method {
                "ljust" => 0,
                "rjust" => pad,
                _ => pad / 2 + (pad & width & 1),
            };
            let mut out = String::with_capacity(width);
            for _ in 0..left {
                out.push(fill);
            }
            out.push_str(s);
            for _ in left..pad {
                out.push(fill);
            }
            Ok(Value::from(out))
        }
        (ValueKind::Seq, "index") => {
            let (needle,): (Value,) = minijinja::value::from_args(args)?;
            let iter = value.try_iter()?;
            for (i, item) in iter.enumerate() {
                if item == needle {
                    return Ok(Value::from(i));
                }
            }
            Err(Error::new(
                ErrorKind::InvalidOperation,
                "list.index(x): x not in list",
            ))
        }
        (ValueKind::Map | ValueKind::Seq, "copy") => {
            let () = minijinja::value::from_args(args)?;
            Ok(value.clone())
        }
        (
            ValueKind::Seq,
            "append" | "extend" | "insert" | "pop" | "remove" | "clear" | "sort" | "reverse",
        )
        | (ValueKind::Map, "update" | "pop" | "setdefault" | "clear" | "popitem") => {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "`{method}` would modify a value in place, which the immutable sandbox \
                     (as in Hugging Face transformers) does not allow"
                ),
            ))
        }
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

/// Python's `s.rsplit(None, maxsplit)`: split on runs of whitespace from the right; the
/// unsplit head keeps its leading whitespace.
fn rsplit_whitespace(s: &str, maxsplit: Option<usize>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s.trim_end();
    while !rest.is_empty() {
        if maxsplit == Some(parts.len()) {
            parts.push(rest);
            break;
        }
        match rest.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
            Some((pos, c)) => {
                parts.push(&rest[pos + c.len_utf8()..]);
                rest = rest[..pos].trim_end();
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    parts.reverse();
    parts
}
