//! Llama 3.x built-in tool calls (`brave_search.call(query="...")`, written after
//! `<|python_tag|>`) read into a name and JSON arguments.

use serde_json::Value;

/// `name.call(key="value", n=3)` → (name, JSON arguments).
pub(crate) fn builtin_call(code: &str) -> Option<(String, String)> {
    let open = code.find(".call(")?;
    let name = &code[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let inner = code[open + ".call(".len()..].strip_suffix(')')?;
    let mut args = serde_json::Map::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let (value, used) = python_literal(rest)?;
        args.insert(key.to_string(), value);
        rest = rest[used..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some((name.to_string(), Value::Object(args).to_string()))
}

/// A Python string / number / bool / None literal at the start of `s`, and its length.
fn python_literal(s: &str) -> Option<(Value, usize)> {
    let q = s.chars().next()?;
    if q == '"' || q == '\'' {
        let mut out = String::new();
        let mut esc = false;
        for (i, c) in s.char_indices().skip(1) {
            if esc {
                out.push(match c {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == q {
                return Some((Value::String(out), i + 1));
            } else {
                out.push(c);
            }
        }
        return None;
    }
    let end = s.find([',', ')']).unwrap_or(s.len());
    let word = s[..end].trim();
    let v = match word {
        "True" => Value::Bool(true),
        "False" => Value::Bool(false),
        "None" => Value::Null,
        w => serde_json::from_str::<serde_json::Number>(w).ok().map(Value::Number)?,
    };
    Some((v, end))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_calls_become_json_arguments() {
        assert_eq!(
            builtin_call(r#"brave_search.call(query="서울 날씨", n=3)"#),
            Some(("brave_search".into(), r#"{"query":"서울 날씨","n":3}"#.into()))
        );
        assert_eq!(builtin_call("print('hi')"), None);
        assert_eq!(builtin_call("wolfram_alpha.call(query='2+2')"), Some(("wolfram_alpha".into(), r#"{"query":"2+2"}"#.into())));
    }
}
