//! The audit log (`--audit-log PATH`): one JSON line per request, written by one thread.
//!
//! Fields of each line ([`Record`], in this order):
//!
//! | field | meaning |
//! |---|---|
//! | `time` | when the request arrived, RFC 3339 UTC with milliseconds |
//! | `key` | the key's name (`null` on an open server or a public route); never the key |
//! | `client` | the peer address `ip:port` (the balancer's, behind one) |
//! | `forwarded_for` | the `X-Forwarded-For` header as sent, if any (not trusted, only recorded) |
//! | `method`, `route` | HTTP method and path (no query string) |
//! | `model` | the model that served a generation, else `null` |
//! | `prompt_tokens`, `completion_tokens` | tokens of the request (0 where none) |
//! | `status` | the HTTP status sent (499 when the client left before any reply) |
//! | `duration_ms` | arrival to the last byte of the reply (of the stream, for streams) |
//! | `cancelled` | the client went away before the reply ended |
//! | `limit` | which key limit refused the request (`requests_per_minute`, …), else absent |
//! | `prompt`, `output` | only with `--audit-content`: the request's `messages`/`prompt`/`input` and each choice's text |
//!
//! Design choices:
//! - Handlers never touch the file: each line is serialized on the request's task and sent
//!   over an unbounded channel to one writer thread, which writes whole lines, so lines
//!   never interleave and a slow disk never stalls a reply. Nothing is dropped: the
//!   channel has no bound (a line is a few hundred bytes) and [`AuditLog::close`] (called
//!   after the server drained) writes what is queued before the process exits.
//! - The writer flushes whenever its queue is empty, so a line reaches the file within
//!   microseconds of the request's end, and batches lines under load.
//! - Size-based rotation: before a line would take the file past `max_bytes`, `PATH` is
//!   renamed `PATH.1` (`PATH.1` → `PATH.2` …, the oldest beyond `keep` deleted) and a new
//!   `PATH` opened. The renames happen on the writer thread between two lines.
//! - Prompt and output text are personal data: they are written only with
//!   `--audit-content`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

/// One request, as written.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Record {
    pub time: String,
    pub key: Option<String>,
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_for: Option<String>,
    pub method: String,
    pub route: String,
    pub model: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub status: u16,
    pub duration_ms: f64,
    pub cancelled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<String>>,
}

enum Msg {
    Line(String),
    Close(mpsc::SyncSender<()>),
}

/// Rotation settings.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    /// Largest size of the live file before it is rotated.
    pub max_bytes: u64,
    /// Rotated files kept (`PATH.1` … `PATH.keep`).
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Self { max_bytes: 100 * 1024 * 1024, keep: 5 }
    }
}

/// The audit log's sending side; cheap to share.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// `--audit-content`: prompt and output text are written too.
    pub content: bool,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Line(_) => "Line",
            Msg::Close(_) => "Close",
        })
    }
}

struct Writer {
    path: PathBuf,
    rot: Rotation,
    out: BufWriter<File>,
    size: u64,
}

fn open_append(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let size = f.metadata()?.len();
    Ok((BufWriter::with_capacity(64 * 1024, f), size))
}

fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

impl Writer {
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.rot.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(&self.path, self.rot.keep));
            for i in (1..self.rot.keep).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, i + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let (out, size) = open_append(&self.path)?;
        self.out = out;
        self.size = size;
        Ok(())
    }

    fn line(&mut self, line: &str) {
        let n = line.len() as u64 + 1;
        if self.size > 0 && self.size + n > self.rot.max_bytes {
            if let Err(e) = self.rotate() {
                eprintln!("jikji serve: cannot rotate the audit log {}: {e}", self.path.display());
            }
        }
        let res = self.out.write_all(line.as_bytes()).and_then(|_| self.out.write_all(b"\n"));
        match res {
            Ok(()) => self.size += n,
            Err(e) => eprintln!("jikji serve: cannot write the audit log {}: {e}", self.path.display()),
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            eprintln!("jikji serve: cannot write the audit log {}: {e}", self.path.display());
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            let mut next = Some(msg);
            // Drain what is queued, then flush once.
            while let Some(m) = next.take() {
                match m {
                    Msg::Line(l) => self.line(&l),
                    Msg::Close(done) => {
                        self.flush();
                        let _ = done.send(());
                        return;
                    }
                }
                next = rx.try_recv().ok();
            }
            self.flush();
        }
        self.flush();
    }
}

impl AuditLog {
    /// Opens (appends to) `path` and starts the writer thread.
    pub fn open(path: &Path, rot: Rotation, content: bool) -> std::io::Result<Self> {
        let (out, size) = open_append(path)?;
        let w = Writer { path: path.to_path_buf(), rot, out, size };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name("jikji-audit".into()).spawn(move || w.run(rx))?;
        Ok(Self { tx, thread: Mutex::new(Some(thread)), content })
    }

    /// Queues one line.
    pub fn write(&self, rec: &Record) {
        if let Ok(line) = serde_json::to_string(rec) {
            let _ = self.tx.send(Msg::Line(line));
        }
    }

    /// Writes everything queued and stops the writer (later lines are dropped).
    pub fn close(&self) {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Close(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// `time` as RFC 3339 UTC with milliseconds, e.g. `2026-12-03T13:24:25.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (the era arithmetic of the standard days-to-civil conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jikji-audit-{}-{:x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&d).expect("tmp");
        d.join(name)
    }

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_208_000_250); // 2024-02-29 12:00
        assert_eq!(rfc3339(t), "2024-02-29T12:00:00.250Z");
    }

    #[test]
    fn concurrent_writers_give_whole_lines_and_lose_none_across_rotations() {
        let p = tmp("audit.jsonl");
        let log = std::sync::Arc::new(AuditLog::open(&p, Rotation { max_bytes: 20_000, keep: 100 }, false).expect("open"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        log.write(&Record { route: format!("/t{t}/{i}"), status: 200, ..Record::default() });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer");
        }
        log.close();
        let mut seen = std::collections::HashSet::new();
        let mut files = 0;
        for i in 0..=100 {
            let f = if i == 0 { p.clone() } else { numbered(&p, i) };
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            files += 1;
            assert!(text.len() as u64 <= 20_000, "rotated before the limit");
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).expect("each line is one JSON object");
                assert!(seen.insert(v["route"].as_str().expect("route").to_string()), "no duplicate");
            }
        }
        assert_eq!(seen.len(), 2000, "every line written once");
        assert!(files > 5, "rotation happened ({files} files)");
        let _ = std::fs::remove_dir_all(p.parent().expect("dir"));
    }

    #[test]
    fn rotation_keeps_only_the_newest_files() {
        let p = tmp("a.log");
        let log = AuditLog::open(&p, Rotation { max_bytes: 300, keep: 2 }, false).expect("open");
        for i in 0..40 {
            log.write(&Record { route: format!("/{i}"), ..Record::default() });
        }
        log.close();
        assert!(numbered(&p, 1).exists() && numbered(&p, 2).exists());
        assert!(!numbered(&p, 3).exists());
        let last = std::fs::read_to_string(&p).expect("live file");
        assert!(last.contains("\"/39\""));
        let _ = std::fs::remove_dir_all(p.parent().expect("dir"));
    }
}
