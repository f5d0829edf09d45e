//! The sandbox a template runs in: the minijinja environment configured the way
//! transformers configures Jinja2 (whitespace options, loop controls, the Python-compatible
//! filters, formatter and methods, the `raise_exception` and `strftime_now` globals), the
//! fuel / recursion / output-size limits, and the mapping of minijinja errors to
//! [`ChatTemplateError`].

use std::fmt::Write as _;
use std::io;

use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

use super::pyformat::{length_filter, py_str, python_formatter, string_filter};
use super::pymethods::unknown_method;
use super::strftime::strftime_now;
use super::tojson::tojson_filter;
use super::ChatTemplateError;

/// Instructions a single render may execute before it is stopped.
///
/// Qwen3's template renders 15 000 short messages within this budget (filters such as
/// `tojson` count once however large their input), while a hostile loop stops after about
/// a quarter of a second.
pub const DEFAULT_FUEL: u64 = 3_000_000;

/// Nesting depth (loops, ifs, macro calls) a render may reach.
pub const RECURSION_LIMIT: usize = 200;

/// Largest rendered prompt accepted (16 MiB).
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// Deepest value nesting `tojson` and the Python-style printer walk.
pub(super) const MAX_VALUE_DEPTH: usize = 128;

/// A fresh environment configured as transformers configures its Jinja2 sandbox.
pub(super) fn sandboxed_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(DEFAULT_FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_formatter(python_formatter);
    env.set_unknown_method_callback(unknown_method);
    env.add_filter("tojson", tojson_filter);
    env.add_filter("string", string_filter);
    env.add_filter("length", length_filter);
    env.add_filter("count", length_filter);
    env.add_test("iterable", is_iterable);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env
}

/// `x is iterable` as Jinja2 answers it: `None` and numbers are not iterable, undefined
/// is (Jinja2's `Undefined` iterates as empty), strings, lists and mappings are.
/// minijinja's own test calls `none` iterable, which sends templates such as
/// `tools is iterable and tools | length > 0` into `length(none)` when no tools are given.
fn is_iterable(value: &Value) -> bool {
    match value.kind() {
        minijinja::value::ValueKind::None => false,
        minijinja::value::ValueKind::Undefined => true,
        _ => value.try_iter().is_ok(),
    }
}

/// The payload of an error produced by `raise_exception`, found again in [`classify`].
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: Rest<Value>) -> Result<Value, Error> {
    let text = message.iter().map(py_str).collect::<Vec<_>>().join(" ");
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {text}"),
    )
    .with_source(Raised(text)))
}

/// Maps a minijinja error to the public error type.
pub(super) fn classify(err: &Error) -> ChatTemplateError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(raised) = e.downcast_ref::<Raised>() {
            return ChatTemplateError::Raised(raised.0.clone());
        }
        source = e.source();
    }
    match err.kind() {
        ErrorKind::SyntaxError => ChatTemplateError::Syntax(describe(err)),
        ErrorKind::OutOfFuel => ChatTemplateError::LimitExceeded(format!(
            "ran out of fuel after {DEFAULT_FUEL} instructions ({})",
            describe(err)
        )),
        _ if err.to_string().contains("recursion limit") => {
            ChatTemplateError::LimitExceeded(describe(err))
        }
        _ => ChatTemplateError::Render(describe(err)),
    }
}

/// One line: what went wrong and on which template line, then any underlying causes.
pub(super) fn describe(err: &Error) -> String {
    let mut text = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line() {
        let _ = write!(text, " (template line {line})");
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        let _ = write!(text, ": {e}");
        source = e.source();
    }
    text
}

/// Collects the rendered text and refuses to grow past `limit` bytes.
pub(super) struct CappedWriter {
    pub(super) buf: Vec<u8>,
    pub(super) limit: usize,
    pub(super) overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("chat template output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
