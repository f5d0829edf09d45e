//! The keys file (`--keys-file`, `jikji keys add|list|remove`): TOML, one `[[keys]]` table
//! per key, the key itself never written, only its SHA-256 digest.
//!
//! ```toml
//! [[keys]]
//! name = "team-a"                 # what the audit log and /metrics show
//! sha256 = "9f86d08188…"          # hex digest of the key
//! scopes = ["inference"]          # inference, embeddings, metrics, admin
//! requests_per_minute = 60        # each limit is optional
//! tokens_per_minute = 20000
//! tokens_per_day = 1000000
//! max_concurrent = 4
//! ```
//!
//! Design choices:
//! - Unknown fields are errors (`deny_unknown_fields`): a misspelt limit must not leave a
//!   key unlimited without a word.
//! - Names are unique and limited to `[A-Za-z0-9._-]`, so they are safe as Prometheus
//!   label values and in log lines without escaping surprises.
//! - Writes go to a temporary file in the same directory and are renamed over the old
//!   one, so a server watching the file never reads half of it; new files are mode 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::policy::{KeyPolicy, Limits, Scope};

/// Errors reading, checking or writing a keys file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the keys file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write the keys file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("the keys file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("the keys file {path} has no key named `{name}`")]
    NoSuchKey { path: String, name: String },
}

/// One `[[keys]]` table as written in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub name: String,
    /// Lower-case hex SHA-256 of the key.
    pub sha256: String,
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
}

impl KeyRecord {
    pub fn limits(&self) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            max_concurrent: self.max_concurrent,
        }
    }

    pub fn policy(&self) -> KeyPolicy {
        KeyPolicy { name: self.name.clone(), scopes: self.scopes.clone(), limits: self.limits() }
    }

    /// The digest as bytes (checked by [`KeysFile::parse`]).
    pub fn digest(&self) -> Option<[u8; 32]> {
        parse_hex32(&self.sha256)
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

const HEADER: &str = "# jikji keys file: `jikji keys add|list|remove` edit it; `jikji serve --keys-file` reads it\n\
# (and reloads it on SIGHUP or when it changes). Keys are stored as SHA-256 digests only.\n\n";

/// True for names made of `[A-Za-z0-9._-]`, 1 to 64 characters.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a key, the form stored in the file and compared at request time.
pub fn digest_of(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key: `sk-jikji-` and 48 hex digits (192 bits from the thread's CSPRNG,
/// which the operating system seeds).
pub fn generate_key() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("sk-jikji-{}", hex(&bytes))
}

impl KeysFile {
    /// Parses and checks the file's text (`path` only names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<KeysFile, StoreError> {
        let err = |message: String| StoreError::Parse { path: path.to_string(), message };
        let f: KeysFile = toml::from_str(text).map_err(|e| err(e.to_string().trim().to_string()))?;
        let mut names = std::collections::HashSet::new();
        let mut digests = std::collections::HashSet::new();
        for k in &f.keys {
            if !valid_name(&k.name) {
                return Err(err(format!("key name `{}` must be 1-64 characters of A-Z a-z 0-9 . _ -", k.name)));
            }
            if !names.insert(k.name.as_str()) {
                return Err(err(format!("two keys are named `{}`", k.name)));
            }
            let Some(d) = k.digest() else {
                return Err(err(format!("key `{}`: sha256 must be 64 hex digits", k.name)));
            };
            if !digests.insert(d) {
                return Err(err(format!("key `{}` has the same digest as another key", k.name)));
            }
            if k.scopes.is_empty() {
                return Err(err(format!("key `{}` has no scope (inference, embeddings, metrics, admin)", k.name)));
            }
            let l = k.limits();
            for (what, v) in [
                ("requests_per_minute", l.requests_per_minute),
                ("tokens_per_minute", l.tokens_per_minute),
                ("tokens_per_day", l.tokens_per_day),
                ("max_concurrent", l.max_concurrent),
            ] {
                if v == Some(0) {
                    return Err(err(format!("key `{}`: {what} must be at least 1 (leave it out for no limit)", k.name)));
                }
            }
        }
        Ok(f)
    }

    /// Reads a file; a missing file is an empty one when `missing_ok`.
    pub fn load(path: &Path, missing_ok: bool) -> Result<KeysFile, StoreError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &name),
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::default()),
            Err(source) => Err(StoreError::Read { path: name, source }),
        }
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!("{HEADER}{body}")
    }

    /// Writes the file atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let werr = |source| StoreError::Write { path: path.display().to_string(), source };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "keys".into());
        let tmp: PathBuf = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        write_private(&tmp, self.to_text().as_bytes()).map_err(werr)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            werr(e)
        })
    }

    /// Adds a key named `name`; returns the key (the only time it exists in clear).
    pub fn add(&mut self, name: &str, scopes: Vec<Scope>, limits: Limits, path: &str) -> Result<String, StoreError> {
        let key = generate_key();
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        self.keys.push(KeyRecord {
            name: name.to_string(),
            sha256: hex(&digest_of(&key)),
            scopes,
            requests_per_minute: limits.requests_per_minute,
            tokens_per_minute: limits.tokens_per_minute,
            tokens_per_day: limits.tokens_per_day,
            max_concurrent: limits.max_concurrent,
        });
        // The same checks as at load (name, duplicates, zero limits).
        let checked = Self::parse(&self.to_text(), path);
        if let Err(e) = checked {
            self.keys.pop();
            return Err(e);
        }
        Ok(key)
    }

    /// Removes the key named `name`.
    pub fn remove(&mut self, name: &str, path: &str) -> Result<(), StoreError> {
        let before = self.keys.len();
        self.keys.retain(|k| k.name != name);
        if self.keys.len() == before {
            return Err(StoreError::NoSuchKey { path: path.to_string(), name: name.to_string() });
        }
        Ok(())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_key_is_stored_as_its_digest_only() {
        let mut f = KeysFile::default();
        let key = f.add("team-a", vec![Scope::Inference], Limits::default(), "t").expect("add");
        assert!(key.starts_with("sk-jikji-") && key.len() == 9 + 48);
        let text = f.to_text();
        assert!(!text.contains(&key));
        assert!(text.contains(&hex(&digest_of(&key))));
        let back = KeysFile::parse(&text, "t").expect("parse");
        assert_eq!(back, f);
    }

    #[test]
    fn misspelt_limit_is_an_error_not_an_unlimited_key() {
        let text = format!("[[keys]]\nname = \"a\"\nsha256 = \"{}\"\nscopes = [\"inference\"]\nrequest_per_minute = 5\n", "0".repeat(64));
        let e = KeysFile::parse(&text, "k.toml").expect_err("unknown field");
        assert!(e.to_string().contains("request_per_minute"), "{e}");
    }

    #[test]
    fn duplicate_names_bad_digests_unknown_scopes_and_zero_limits_are_refused() {
        let d = "a".repeat(64);
        let two = format!("[[keys]]\nname=\"x\"\nsha256=\"{d}\"\nscopes=[\"inference\"]\n[[keys]]\nname=\"x\"\nsha256=\"{}\"\nscopes=[\"metrics\"]\n", "b".repeat(64));
        assert!(KeysFile::parse(&two, "t").expect_err("dup").to_string().contains("two keys are named"));
        let bad = "[[keys]]\nname=\"x\"\nsha256=\"abc\"\nscopes=[\"inference\"]\n";
        assert!(KeysFile::parse(bad, "t").expect_err("digest").to_string().contains("64 hex"));
        let scope = format!("[[keys]]\nname=\"x\"\nsha256=\"{d}\"\nscopes=[\"everything\"]\n");
        assert!(KeysFile::parse(&scope, "t").is_err());
        let zero = format!("[[keys]]\nname=\"x\"\nsha256=\"{d}\"\nscopes=[\"inference\"]\nmax_concurrent=0\n");
        assert!(KeysFile::parse(&zero, "t").expect_err("zero").to_string().contains("max_concurrent"));
        let mut f = KeysFile::default();
        assert!(f.add("bad name", vec![Scope::Inference], Limits::default(), "t").is_err());
        assert!(f.keys.is_empty(), "a refused key is not kept");
    }

    #[test]
    fn remove_of_an_unknown_name_says_so() {
        let mut f = KeysFile::default();
        f.add("a", vec![Scope::Metrics], Limits::default(), "t").expect("add");
        assert!(matches!(f.remove("b", "t"), Err(StoreError::NoSuchKey { .. })));
        f.remove("a", "t").expect("remove");
        assert!(f.keys.is_empty());
    }
}
