//! Server-sent events framed exactly as OpenAI frames them: each event is one
//! `data: <json>\n\n` line, and the stream ends with `data: [DONE]\n\n`.
//!
//! JSON from `serde_json` never contains a raw newline (newlines inside strings are
//! escaped), so one `data:` line per event is always a complete event.

use bytes::Bytes;
use serde::Serialize;

/// `data: {json}\n\n`, for any body of the wire schema ([`crate::wire`]) or a JSON value.
pub fn event<T: Serialize + ?Sized>(v: &T) -> Bytes {
    let json = crate::wire::to_json_string(v);
    let mut s = String::with_capacity(json.len() + 8);
    s.push_str("data: ");
    s.push_str(&json);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// `data: [DONE]\n\n`
pub fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn event_is_one_data_line_with_blank_line_after() {
        let b = event(&json!({"content": "줄\n바꿈"}));
        let s = std::str::from_utf8(&b).expect("utf-8");
        assert!(s.starts_with("data: {"));
        assert!(s.ends_with("}\n\n"));
        assert_eq!(s.matches('\n').count(), 2, "the newline in the text is escaped: {s:?}");
        let parsed: Value = serde_json::from_str(s.trim_start_matches("data: ").trim_end()).expect("json");
        assert_eq!(parsed["content"], "줄\n바꿈");
    }

    #[test]
    fn done_marker_is_exact() {
        assert_eq!(&done()[..], b"data: [DONE]\n\n");
    }
}
