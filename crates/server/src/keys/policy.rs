//! What a key may do: its [`Scope`]s, its [`Limits`], and which scope each route needs
//! ([`route_scopes`]).
//!
//! Scopes are a closed set so a typo in a keys file is an error at load, not a key that
//! silently can do nothing. `admin` implies every other scope: an operator's key can do
//! what any team's key can.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One permission a key can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Chat and text completions, tokenize/detokenize, the model list, `/props`.
    Inference,
    /// `/v1/embeddings` (and the model list).
    Embeddings,
    /// `GET /metrics`.
    Metrics,
    /// Everything, including the operator routes.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Inference, Scope::Embeddings, Scope::Metrics, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Inference => "inference",
            Scope::Embeddings => "embeddings",
            Scope::Metrics => "metrics",
            Scope::Admin => "admin",
        }
    }

    /// Parses a scope name as written in a keys file or on the command line.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The per-key limits; `None` = unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Prompt + completion tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Prompt + completion tokens per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Requests of this key in flight at once (streams count until they end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }
}

/// One key as the server knows it: a name (what logs and metrics show) and its policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub limits: Limits,
}

impl KeyPolicy {
    /// True when the key holds one of `needed` (or `admin`).
    pub fn allows_any(&self, needed: &[Scope]) -> bool {
        self.scopes.contains(&Scope::Admin) || needed.iter().any(|s| self.scopes.contains(s))
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key: probes and the web page's static files.
    Public,
    /// A valid key holding one of these scopes.
    Scoped(&'static [Scope]),
    /// Any valid key (unknown URLs: a 404 only for those who may know the server).
    AnyKey,
}

/// The scope each route needs. Unknown paths need a valid key of any scope, so the 404
/// page tells nothing to an anonymous caller.
pub fn route_scopes(path: &str) -> Access {
    const INFER: &[Scope] = &[Scope::Inference];
    const EMBED: &[Scope] = &[Scope::Embeddings];
    const MODELS: &[Scope] = &[Scope::Inference, Scope::Embeddings];
    const METRICS: &[Scope] = &[Scope::Metrics];
    let p = path.strip_prefix("/v1").filter(|r| r.starts_with('/')).unwrap_or(path);
    match p {
        "/health" | "/ready" => Access::Public,
        "/chat/completions" | "/completions" | "/tokenize" | "/detokenize" | "/props" | "/responses" => {
            Access::Scoped(INFER)
        }
        "/embeddings" => Access::Scoped(EMBED),
        "/models" => Access::Scoped(MODELS),
        _ if p.starts_with("/models/") => Access::Scoped(MODELS),
        "/metrics" => Access::Scoped(METRICS),
        _ => Access::AnyKey,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[Scope]) -> KeyPolicy {
        KeyPolicy { name: "t".into(), scopes: scopes.to_vec(), limits: Limits::default() }
    }

    #[test]
    fn metrics_needs_the_metrics_scope_and_inference_does_not_grant_it() {
        let Access::Scoped(need) = route_scopes("/metrics") else { panic!("scoped") };
        assert!(!key(&[Scope::Inference]).allows_any(need));
        assert!(key(&[Scope::Metrics]).allows_any(need));
        let Access::Scoped(need) = route_scopes("/v1/chat/completions") else { panic!("scoped") };
        assert!(!key(&[Scope::Metrics]).allows_any(need));
        assert!(key(&[Scope::Admin]).allows_any(need), "admin implies every scope");
    }

    #[test]
    fn both_prefixed_and_bare_routes_are_classified() {
        assert_eq!(route_scopes("/completions"), route_scopes("/v1/completions"));
        assert_eq!(route_scopes("/v1/models/x"), Access::Scoped(&[Scope::Inference, Scope::Embeddings]));
        assert_eq!(route_scopes("/v1/embeddings"), Access::Scoped(&[Scope::Embeddings]));
        assert_eq!(route_scopes("/ready"), Access::Public);
        assert_eq!(route_scopes("/v1health"), Access::AnyKey);
        assert_eq!(route_scopes("/admin/secret"), Access::AnyKey);
    }

    #[test]
    fn scope_names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("Inference"), None);
    }
}
