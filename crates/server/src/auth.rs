//! API keys: loading (`--api-key-file`, `JIKJI_API_KEYS`) and checking.
//!
//! Design choices:
//! - Keys are kept only as SHA-256 digests and a presented key is hashed before the
//!   comparison, so every comparison is between two 32-byte strings: the time taken does
//!   not depend on where the first differing byte is (constant-time `subtle::ct_eq`), nor
//!   on the length of the stored keys. Every configured key is compared (no early exit).
//! - A key is accepted from `Authorization: Bearer KEY` (what OpenAI's SDKs send) or from
//!   `x-api-key: KEY` (what some other clients send).
//! - With no key configured the server is open; `jikji serve` binds 127.0.0.1 by default,
//!   so an open server is only reachable from the machine itself unless told otherwise.

use std::path::Path;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Errors reading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the API key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the API key file {0} holds no key (one key per line; `#` starts a comment)")]
    Empty(String),
    #[error("API keys must be printable ASCII without spaces (line {line} of {source_name})")]
    BadKey { source_name: String, line: usize },
}

/// The set of accepted keys (as digests). Empty = no authentication.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic())
}

impl ApiKeys {
    /// No keys: every request is allowed.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// The keys' SHA-256 digests (the key ring builds its table from them).
    pub fn digests(&self) -> &[[u8; 32]] {
        &self.digests
    }

    /// Adds keys from text: one per line (file) or separated by commas (environment);
    /// blank lines and `#` comments are skipped, surrounding whitespace trimmed.
    pub fn add_from_text(&mut self, text: &str, source_name: &str) -> Result<usize, KeyError> {
        let mut added = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for key in line.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                if !valid_key(key) {
                    return Err(KeyError::BadKey { source_name: source_name.to_string(), line: i + 1 });
                }
                self.digests.push(digest(key.as_bytes()));
                added += 1;
            }
        }
        Ok(added)
    }

    /// Adds the keys of a file (one per line); a file with no key is an error, since the
    /// user clearly meant to require one.
    pub fn add_file(&mut self, path: &Path) -> Result<usize, KeyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: name.clone(), source })?;
        let n = self.add_from_text(&text, &name)?;
        if n == 0 {
            return Err(KeyError::Empty(name));
        }
        Ok(n)
    }

    /// True when `presented` is one of the keys. Compares against every key in constant time.
    pub fn accepts(&self, presented: &str) -> bool {
        let d = digest(presented.as_bytes());
        let mut ok = subtle::Choice::from(0u8);
        for k in &self.digests {
            ok |= k.ct_eq(&d);
        }
        bool::from(ok)
    }

    /// Checks a request's headers; `Ok` when no keys are configured.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.is_empty() {
            return Ok(());
        }
        let presented = presented_key(headers);
        match presented {
            None => Err(ApiError::unauthorized(
                "You didn't provide an API key. Send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.",
            )),
            Some(k) if self.accepts(k) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("Incorrect API key provided.")),
        }
    }
}

/// The key a request carries, if any: `Authorization: Bearer KEY`, else `x-api-key`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let k = rest.trim();
            if !k.is_empty() {
                return Some(k);
            }
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys(text: &str) -> ApiKeys {
        let mut k = ApiKeys::none();
        k.add_from_text(text, "test").expect("valid keys");
        k
    }

    #[test]
    fn keys_file_skips_comments_and_blank_lines() {
        let k = keys("# staff keys\n\nsk-one\n  sk-two  \n");
        assert_eq!(k.len(), 2);
        assert!(k.accepts("sk-one"));
        assert!(k.accepts("sk-two"));
        assert!(!k.accepts("sk-three"));
        assert!(!k.accepts(""));
    }

    #[test]
    fn environment_keys_are_comma_separated() {
        let k = keys("a1,b2, c3");
        assert!(k.accepts("a1") && k.accepts("b2") && k.accepts("c3"));
        assert!(!k.accepts("a1,b2"));
    }

    #[test]
    fn key_with_inner_space_is_rejected_at_load() {
        let mut k = ApiKeys::none();
        assert!(matches!(k.add_from_text("bad key", "env"), Err(KeyError::BadKey { .. })));
    }

    #[test]
    fn bearer_and_x_api_key_headers_are_both_accepted() {
        let k = keys("secret");
        let mut h = HeaderMap::new();
        assert!(k.check(&h).is_err());
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        assert!(k.check(&h).is_ok());
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("secret"));
        assert!(k.check(&h).is_ok());
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer wrong"));
        let e = k.check(&h).expect_err("wrong key");
        assert_eq!(e.status.as_u16(), 401);
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Basic secret"));
        assert!(k.check(&h).is_err(), "only the Bearer scheme carries a key");
    }

    #[test]
    fn no_keys_means_open() {
        assert!(ApiKeys::none().check(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn empty_key_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("jikji-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("keys");
        std::fs::write(&p, "# nothing\n\n").expect("write");
        assert!(matches!(ApiKeys::none().add_file(&p), Err(KeyError::Empty(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
