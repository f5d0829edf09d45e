//! Values printed the way Python prints them: the formatter behind `{{ x }}` (Python's
//! `str()`: `None`, `True`, `['a', 1]`, `{'k': 'v'}`), the `string` and `length`/`count`
//! filters, `repr` of strings, and numbers as Python's `repr(float)` or `json.dumps`
//! write them.

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, State, Value};

use super::sandbox::MAX_VALUE_DEPTH;

pub(super) fn python_formatter(
    out: &mut minijinja::Output,
    _state: &State,
    value: &Value,
) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::String => {
            return out
                .write_str(value.as_str().unwrap_or_default())
                .map_err(write_err)
        }
        ValueKind::Undefined => return Ok(()),
        _ => py_str(value),
    };
    out.write_str(&text).map_err(write_err)
}

fn write_err(_: std::fmt::Error) -> Error {
    Error::new(ErrorKind::WriteFailure, "failed to write output")
}

/// `length`/`count` as Jinja2 computes them: an undefined value has length 0.
pub(super) fn length_filter(value: &Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Ok(Value::from(0));
    }
    value.len().map(Value::from).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "cannot calculate the length of a value of kind {}",
                value.kind()
            ),
        )
    })
}

/// `{{ x | string }}` as Python's `str(x)`.
pub(super) fn string_filter(value: &Value) -> Value {
    if value.kind() == ValueKind::String {
        return value.clone();
    }
    if value.is_undefined() {
        return Value::from("");
    }
    Value::from(py_str(value))
}

/// Python's `str(value)`.
pub(super) fn py_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        _ => {
            let mut s = String::new();
            py_repr(value, &mut s, 0);
            s
        }
    }
}

/// Python's `repr(value)`, the form containers print their items in.
fn py_repr(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_VALUE_DEPTH {
        out.push_str("...");
        return;
    }
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&py_number(value)),
        ValueKind::String => py_repr_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = value.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&item, out, depth + 1);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Some(pairs) = value.as_object().and_then(|o| o.try_iter_pairs()) {
                for (i, (k, v)) in pairs.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&k, out, depth + 1);
                    out.push_str(": ");
                    py_repr(&v, out, depth + 1);
                }
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
}

fn py_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// An integer as digits, a float as Python's `repr(float)`.
fn py_number(value: &Value) -> String {
    number_text(value, false)
}

/// A number as `json.dumps` writes it (non-finite floats as `NaN` / `Infinity`).
pub(super) fn json_number(value: &Value) -> String {
    number_text(value, true)
}

fn number_text(value: &Value, json: bool) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) if f.is_nan() => if json { "NaN" } else { "nan" }.to_owned(),
        Ok(f) if f.is_infinite() => match (json, f > 0.0) {
            (true, true) => "Infinity".to_owned(),
            (true, false) => "-Infinity".to_owned(),
            (false, true) => "inf".to_owned(),
            (false, false) => "-inf".to_owned(),
        },
        Ok(f) => py_float(f),
        Err(_) => value.to_string(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents in
/// `-4..16`, otherwise `d.ddde±XX`.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{f:e}"); // e.g. "-1.2345e-5", shortest round-trip digits
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.abs())
    }
}
