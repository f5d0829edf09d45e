//! Keys with policies: who may call which route ([`policy`]), how much ([`limiter`]),
//! where the keys come from ([`store`]: the `--keys-file` TOML; plus the plain
//! `--api-key-file` / `JIKJI_API_KEYS` keys), and reloading ([`reload`]).
//!
//! Design choices:
//! - A [`KeyRing`] maps the SHA-256 digest of each key to its policy. A presented key is
//!   hashed and looked up; the lookup's timing can only depend on the digest, which tells
//!   nothing about any stored key (finding a key from its digest is a preimage attack).
//! - The policy table is swapped whole on reload (`RwLock<Arc<_>>`, read for the
//!   nanoseconds of a clone), while the counts ([`limiter::KeyState`]) are kept by key
//!   name in a separate map, so a reload never resets a quota.
//! - Plain keys (`--api-key-file`, `JIKJI_API_KEYS`) become keys named `api-key-XXXXXXXX`
//!   (the first 8 hex digits of their digest) with the scopes every such key had before
//!   policies existed: `inference`, `embeddings` and `metrics`, no limits.
//! - With no key at all the server is open (it binds 127.0.0.1 by default); a keys file
//!   given but empty refuses everything, since its author meant to require keys.

pub mod limiter;
pub mod policy;
pub mod reload;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::http::{HeaderMap, StatusCode};

use crate::auth::{presented_key, ApiKeys};
use crate::error::ApiError;
pub use limiter::{KeyState, Permit, Reason, Refusal};
pub use policy::{route_scopes, Access, KeyPolicy, Limits, Scope};
pub use store::{KeysFile, StoreError};

/// The scopes a plain (`--api-key-file`) key has.
pub const PLAIN_KEY_SCOPES: [Scope; 3] = [Scope::Inference, Scope::Embeddings, Scope::Metrics];

type Table = HashMap<[u8; 32], Arc<KeyPolicy>>;

/// All accepted keys and their counts.
#[derive(Debug)]
pub struct KeyRing {
    file: Option<PathBuf>,
    plain: Table,
    table: RwLock<Arc<Table>>,
    states: Mutex<HashMap<String, Arc<KeyState>>>,
    /// Successful reloads of the keys file since start.
    pub reloads: AtomicU64,
    /// Reloads that failed (the previous keys stayed in force).
    pub reload_errors: AtomicU64,
}

/// A request's key once it is known to be valid.
#[derive(Clone, Debug)]
pub struct Caller {
    pub policy: Arc<KeyPolicy>,
    pub state: Arc<KeyState>,
}

fn plain_table(plain: &ApiKeys) -> Table {
    plain
        .digests()
        .iter()
        .map(|d| {
            let name = format!("api-key-{}", store::hex(&d[..4]));
            (*d, Arc::new(KeyPolicy { name, scopes: PLAIN_KEY_SCOPES.to_vec(), limits: Limits::default() }))
        })
        .collect()
}

fn file_table(f: &KeysFile) -> Table {
    f.keys.iter().filter_map(|k| Some((k.digest()?, Arc::new(k.policy())))).collect()
}

impl KeyRing {
    /// The plain keys and, if given, the keys file (which must exist and parse).
    pub fn new(file: Option<&Path>, plain: &ApiKeys) -> Result<Self, StoreError> {
        let plain = plain_table(plain);
        let mut table = plain.clone();
        if let Some(p) = file {
            table.extend(file_table(&KeysFile::load(p, false)?));
        }
        Ok(Self {
            file: file.map(Path::to_path_buf),
            plain,
            table: RwLock::new(Arc::new(table)),
            states: Mutex::default(),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
        })
    }

    /// The plain keys only.
    pub fn from_plain(plain: &ApiKeys) -> Self {
        let table = plain_table(plain);
        Self {
            file: None,
            plain: table.clone(),
            table: RwLock::new(Arc::new(table)),
            states: Mutex::default(),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
        }
    }

    /// No key configured at all: every request is allowed.
    pub fn is_open(&self) -> bool {
        self.file.is_none() && self.plain.is_empty()
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Number of keys in force.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the keys file from `text` (its current contents) and swaps the policies in;
    /// on an error the previous keys stay in force. Counts are kept.
    pub fn reload_from(&self, text: &str) -> Result<usize, StoreError> {
        let name = self.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let parsed = KeysFile::parse(text, &name);
        let f = match parsed {
            Ok(f) => f,
            Err(e) => {
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let mut table = self.plain.clone();
        table.extend(file_table(&f));
        let n = table.len();
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// The counts of the key named `name` (created on first use, kept across reloads).
    pub fn state(&self, name: &str) -> Arc<KeyState> {
        let mut m = self.states.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(name.to_string()).or_insert_with(|| Arc::new(KeyState::new(name))).clone()
    }

    /// Every key's counts, by name.
    pub fn states(&self) -> Vec<Arc<KeyState>> {
        let m = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = m.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The caller of a request to `path`: `Ok(None)` for an open server or a public route,
    /// the valid key otherwise; 401 without a valid key, 403 without the route's scope
    /// (with the key's name, for the audit log).
    pub fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<Option<Caller>, Denied> {
        if self.is_open() || access == Access::Public {
            return Ok(None);
        }
        let Some(presented) = presented_key(headers) else {
            return Err(Denied {
                error: Box::new(ApiError::unauthorized(
                    "You didn't provide an API key. Send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.",
                )),
                key: None,
            });
        };
        let table = self.current();
        let Some(policy) = table.get(&store::digest_of(presented)).cloned() else {
            return Err(Denied { error: Box::new(ApiError::unauthorized("Incorrect API key provided.")), key: None });
        };
        if let Access::Scoped(needed) = access {
            if !policy.allows_any(needed) {
                let names: Vec<&str> = needed.iter().map(|s| s.as_str()).collect();
                let error = ApiError {
                    status: StatusCode::FORBIDDEN,
                    message: format!(
                        "The key `{}` may not use this route: it needs the scope {} (the key has {}).",
                        policy.name,
                        names.join(" or "),
                        policy.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    kind: "permission_error",
                    param: None,
                    code: Some("insufficient_scope"),
                    retry_after_secs: None,
                };
                return Err(Denied { error: Box::new(error), key: Some(policy.name.clone()) });
            }
        }
        let state = self.state(&policy.name);
        Ok(Some(Caller { policy, state }))
    }
}

/// A refused request: the error to send, and the key's name when the key was valid.
#[derive(Debug)]
pub struct Denied {
    pub error: Box<ApiError>,
    pub key: Option<String>,
}

/// The 429 for a key over one of its limits, in OpenAI's shape with `Retry-After`.
pub fn rate_limited(name: &str, r: &Refusal) -> ApiError {
    let what = match r.reason {
        Reason::Requests => format!("requests per minute (RPM): limit {}", r.limit),
        Reason::Tokens => format!("tokens per minute (TPM): limit {}", r.limit),
        Reason::DailyTokens => format!("tokens per day (TPD): limit {}", r.limit),
        Reason::Concurrency => format!("concurrent requests: limit {}", r.limit),
    };
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!("Rate limit reached for key `{name}` on {what}. Please try again in {}s.", r.retry_after_secs),
        kind: "rate_limit_error",
        param: None,
        code: Some("rate_limit_exceeded"),
        retry_after_secs: Some(r.retry_after_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(&format!("Bearer {key}")).expect("header"));
        h
    }

    #[test]
    fn reload_swaps_policies_and_keeps_counts() {
        let mut f = KeysFile::default();
        let key = f.add("team", vec![Scope::Inference], Limits::default(), "t").expect("add");
        let dir = tempdir();
        let p = dir.join("keys.toml");
        f.save(&p).expect("save");
        let ring = KeyRing::new(Some(&p), &ApiKeys::none()).expect("ring");
        let infer = route_scopes("/v1/completions");
        let c = ring.authorize(&headers(&key), infer).expect("ok").expect("caller");
        c.state.charge(5, 7, &c.policy.limits);
        assert!(ring.authorize(&headers(&key), route_scopes("/metrics")).is_err());
        f.keys[0].scopes.push(Scope::Metrics);
        ring.reload_from(&f.to_text()).expect("reload");
        let c = ring.authorize(&headers(&key), route_scopes("/metrics")).expect("ok").expect("caller");
        assert_eq!(c.state.day_tokens(), 12, "counts survive the reload");
        assert!(ring.reload_from("not toml [[").is_err());
        assert!(ring.authorize(&headers(&key), infer).is_ok(), "a bad file keeps the old keys");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn plain_keys_have_the_inference_scopes_but_not_admin() {
        let mut plain = ApiKeys::none();
        plain.add_from_text("sk-plain", "t").expect("key");
        let ring = KeyRing::new(None, &plain).expect("ring");
        let c = ring.authorize(&headers("sk-plain"), route_scopes("/v1/chat/completions")).expect("ok").expect("caller");
        assert!(c.policy.name.starts_with("api-key-") && !c.policy.name.contains("sk-plain"));
        assert!(ring.authorize(&headers("sk-plain"), route_scopes("/metrics")).is_ok());
        assert!(!c.policy.allows_any(&[Scope::Admin]));
        assert_eq!(ring.authorize(&headers("nope"), route_scopes("/metrics")).expect_err("bad").error.status, 401);
        assert_eq!(ring.authorize(&HeaderMap::new(), route_scopes("/health")).expect("public").map(|c| c.policy), None);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("jikji-ring-{}-{:x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&d).expect("tmp");
        d
    }
}
