//! Finding where a JSON value ends in text that arrives in pieces.
//!
//! [`ValueScan`] is not a validator: it tracks strings, escapes and bracket depth just well
//! enough to know where a value stops, so the parser can stream an object's `arguments`
//! as they arrive; the finished text is then checked by `serde_json`.

/// Incremental end-of-value detection for one JSON value (leading whitespace skipped).
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueScan {
    depth: usize,
    in_str: bool,
    esc: bool,
    /// The value's first byte has been seen.
    started: bool,
    /// The value is a number / `true` / `false` / `null` (it ends at a delimiter).
    scalar: bool,
    done: bool,
}

/// What [`ValueScan::feed`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// The value continues past this text.
    More,
    /// The value ends after `n` bytes of this text.
    End(usize),
    /// Not a JSON value (a stray `}` or `]`, a control character outside a string).
    Invalid,
}

impl ValueScan {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether the value is a scalar that may still be ending (it needs a delimiter or the
    /// end of input to end).
    pub(crate) fn open_scalar(&self) -> bool {
        self.started && self.scalar && !self.done
    }

    /// Whether the first byte was `"`, `{` or `[`.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Feeds the next text of the value.
    pub(crate) fn feed(&mut self, s: &str) -> Scanned {
        if self.done {
            return Scanned::End(0);
        }
        for (i, b) in s.bytes().enumerate() {
            if !self.started {
                match b {
                    b' ' | b'\t' | b'\n' | b'\r' => continue,
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth = 1,
                    b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scalar = true,
                    _ => return Scanned::Invalid,
                }
                self.started = true;
                continue;
            }
            if self.scalar {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    self.done = true;
                    return Scanned::End(i);
                }
                if !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')) {
                    return Scanned::Invalid;
                }
                continue;
            }
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                    if self.depth == 0 {
                        self.done = true;
                        return Scanned::End(i + 1);
                    }
                } else if b < 0x20 {
                    return Scanned::Invalid;
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.done = true;
                        return Scanned::End(i + 1);
                    }
                }
                _ => {}
            }
        }
        Scanned::More
    }
}

#[cfg(test)]
/// The end of the JSON value at the start of `s` (after whitespace), if it is complete;
/// a scalar at the very end counts as complete when `eof`.
pub(crate) fn value_end(s: &str, eof: bool) -> Option<usize> {
    let mut v = ValueScan::new();
    match v.feed(s) {
        Scanned::End(n) => Some(n),
        Scanned::More if eof && v.open_scalar() => Some(s.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_found_whatever_the_pieces() {
        for (text, end) in [
            (r#"{"a": "}", "b": [1, {"c": "\"]"}]} tail"#, 34),
            (r#"  "x\\" , 1"#, 7),
            ("12.5e3, 2", 6),
            ("[[]]]", 4),
            ("true}", 4),
        ] {
            assert_eq!(value_end(text, false), Some(end), "{text}");
            // Byte by byte (every cut lands on an ASCII boundary here).
            let mut v = ValueScan::new();
            let mut seen = None;
            for i in 0..text.len() {
                if let Scanned::End(n) = v.feed(&text[i..i + 1]) {
                    seen = Some(i + n);
                    break;
                }
            }
            assert_eq!(seen, Some(end), "{text} byte by byte");
        }
        assert_eq!(value_end("{\"a\": 1", true), None);
        assert_eq!(value_end("42", true), Some(2));
        assert_eq!(value_end("42", false), None);
        assert_eq!(value_end("}", false), None);
    }
}
