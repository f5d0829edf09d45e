//! `jikji keys add|list|remove`: edit a `--keys-file` (the format and checks live in
//! `jikji_server::keys::store`). `add` prints the new key once, as the last line of its
//! output, and stores only its SHA-256 digest.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use jikji_server::keys::{KeysFile, Limits, Scope};

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a key NAME with scopes and limits; prints the key once (last line).
    Add(AddArgs),
    /// List the keys of a file (names, scopes, limits, digest prefixes; never keys).
    List {
        #[arg(long = "file", short = 'f')]
        file: PathBuf,
    },
    /// Remove the key NAME.
    Remove {
        name: String,
        #[arg(long = "file", short = 'f')]
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The key's name, as the audit log and /metrics show it ([A-Za-z0-9._-]).
    name: String,
    /// The keys file (created if missing).
    #[arg(long = "file", short = 'f')]
    file: PathBuf,
    /// A scope: inference, embeddings, metrics or admin (repeatable) [default: inference].
    #[arg(long = "scope", value_parser = parse_scope)]
    scope: Vec<Scope>,
    #[arg(long = "requests-per-minute")]
    requests_per_minute: Option<u64>,
    /// Prompt + completion tokens per minute.
    #[arg(long = "tokens-per-minute")]
    tokens_per_minute: Option<u64>,
    /// Prompt + completion tokens per UTC day.
    #[arg(long = "tokens-per-day")]
    tokens_per_day: Option<u64>,
    /// Requests in flight at once.
    #[arg(long = "max-concurrent")]
    max_concurrent: Option<u64>,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| format!("unknown scope `{s}` (inference, embeddings, metrics, admin)"))
}

fn limits_text(l: &Limits) -> String {
    let mut parts = Vec::new();
    for (what, v) in [
        ("rpm", l.requests_per_minute),
        ("tpm", l.tokens_per_minute),
        ("tpd", l.tokens_per_day),
        ("concurrent", l.max_concurrent),
    ] {
        if let Some(v) = v {
            parts.push(format!("{what}={v}"));
        }
    }
    if parts.is_empty() {
        "unlimited".into()
    } else {
        parts.join(" ")
    }
}

pub fn run(cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Add(a) => {
            let name = a.file.display().to_string();
            let mut f = KeysFile::load(&a.file, true)?;
            if f.keys.iter().any(|k| k.name == a.name) {
                bail!("the keys file {name} already has a key named `{}` (remove it first)", a.name);
            }
            let scopes = if a.scope.is_empty() { vec![Scope::Inference] } else { a.scope };
            let limits = Limits {
                requests_per_minute: a.requests_per_minute,
                tokens_per_minute: a.tokens_per_minute,
                tokens_per_day: a.tokens_per_day,
                max_concurrent: a.max_concurrent,
            };
            let key = f.add(&a.name, scopes.clone(), limits, &name)?;
            f.save(&a.file)?;
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            println!("added key `{}` to {name} (scopes: {}; {})", a.name, scopes.join(", "), limits_text(&limits));
            println!("the key is shown once and stored only as its SHA-256 digest:");
            println!("{key}");
        }
        KeysCmd::List { file } => {
            let f = KeysFile::load(&file, false)?;
            println!("{:<24} {:<32} {:<40} digest", "name", "scopes", "limits");
            for k in &f.keys {
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                let prefix = k.sha256.get(..12).unwrap_or(&k.sha256);
                println!("{:<24} {:<32} {:<40} {prefix}…", k.name, scopes.join(","), limits_text(&k.limits()));
            }
        }
        KeysCmd::Remove { name, file } => {
            let path = file.display().to_string();
            let mut f = KeysFile::load(&file, false)?;
            f.remove(&name, &path)?;
            f.save(&file)?;
            println!("removed key `{name}` from {path}");
        }
    }
    Ok(())
}
