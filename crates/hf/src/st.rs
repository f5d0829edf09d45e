//! Memory-mapped safetensors files: one `model.safetensors`, or the shards an
//! `model.safetensors.index.json` lists (`weight_map`: tensor name → shard file).
//!
//! Checks, before any tensor is read:
//! - per file, by the `safetensors` crate's header parser: the 8-byte header length
//!   within the file and under its 100 MB cap, UTF-8 JSON, every tensor's data offsets
//!   contiguous from 0 (so tensors neither overlap nor leave holes), shape × dtype size =
//!   byte length in checked arithmetic, and the data ending exactly at the end of the
//!   file (a truncated file fails here);
//! - here: a shard named by the index is a plain `.safetensors` file name inside the
//!   directory (no paths), a tensor appears in one shard only, a tensor the index places
//!   in a shard is in that shard, and every indexed tensor exists;
//! - at use ([`SafetensorsSet::tensor`]): the dtype is F32, F16 or BF16 (other dtypes may
//!   sit in a file — `position_ids` buffers are I64 — as long as nothing reads them).
//!
//! Every error names the file, and the tensor when there is one.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::{read_json, HfError};

/// The element types jikji reads from safetensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StDtype {
    F32,
    F16,
    BF16,
}

impl StDtype {
    pub fn size(self) -> usize {
        match self {
            StDtype::F32 => 4,
            StDtype::F16 | StDtype::BF16 => 2,
        }
    }
}

/// One tensor's place: which file, its dtype and shape (row-major, outermost first), and
/// its byte range in that file.
#[derive(Clone, Debug)]
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// A tensor ready to read: a supported dtype, its shape, and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct StTensor<'a> {
    pub name: &'a str,
    pub file: &'a Path,
    pub dtype: StDtype,
    pub shape: &'a [usize],
    /// Little-endian elements, row-major.
    pub bytes: &'a [u8],
}

/// The mapped files of one checkpoint and an index of their tensors.
pub struct SafetensorsSet {
    paths: Vec<PathBuf>,
    maps: Vec<Mmap>,
    tensors: HashMap<String, Entry>,
}

fn st_err(path: &Path, message: impl Into<String>) -> HfError {
    HfError::Safetensors { path: path.to_path_buf(), message: message.into() }
}

fn map(path: &Path) -> Result<Mmap, HfError> {
    let f = File::open(path).map_err(|source| HfError::Io { path: path.to_path_buf(), source })?;
    // SAFETY: the file is opened read-only and the map is only read. Like every memory
    // map it assumes nobody truncates the file while it is mapped; the map lives only
    // for the conversion in `load_dir`.
    unsafe { Mmap::map(&f) }.map_err(|source| HfError::Io { path: path.to_path_buf(), source })
}

/// The shard file names of `model.safetensors.index.json` and where it places each tensor.
fn read_index(index: &Path) -> Result<(Vec<String>, HashMap<String, String>), HfError> {
    let v = read_json(index)?;
    let wm = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| st_err(index, "no `weight_map` object"))?;
    let mut placed = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    for (t, f) in wm {
        let f = f.as_str().ok_or_else(|| st_err(index, format!("tensor `{t}` maps to a non-string")))?;
        let plain = Path::new(f).file_name().is_some_and(|n| n == f) && f.ends_with(".safetensors");
        if !plain {
            return Err(st_err(index, format!("tensor `{t}`: shard `{f}` is not a .safetensors file name in the directory")));
        }
        if !names.iter().any(|n| n == f) {
            names.push(f.to_string());
        }
        placed.insert(t.clone(), f.to_string());
    }
    if names.is_empty() {
        return Err(st_err(index, "`weight_map` names no shard"));
    }
    names.sort();
    Ok((names, placed))
}

/// The first tensor whose byte range does not match its dtype and shape (for naming it
/// in the error the `safetensors` crate reports without a name).
fn wrong_size_tensor(file: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(file.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(file.get(8..8usize.checked_add(n)?)?).ok()?;
    for (name, t) in header.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let size = match t.get("dtype")?.as_str()? {
            "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => 1u128,
            "I16" | "U16" | "F16" | "BF16" => 2,
            "I32" | "U32" | "F32" => 4,
            "I64" | "U64" | "F64" => 8,
            _ => continue,
        };
        let elems = t.get("shape")?.as_array()?.iter().try_fold(1u128, |a, d| d.as_u64().map(|d| a.saturating_mul(d as u128)))?;
        let off = t.get("data_offsets")?.as_array()?;
        let (b, e) = (off.first()?.as_u64()? as u128, off.get(1)?.as_u64()? as u128);
        if e < b || e - b != elems.saturating_mul(size) {
            return Some(name.clone());
        }
    }
    None
}

impl SafetensorsSet {
    /// Opens `model.safetensors`, or the shards of `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self, HfError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let (names, placed) = if single.is_file() {
            (vec!["model.safetensors".to_string()], None)
        } else if index.is_file() {
            let (n, p) = read_index(&index)?;
            (n, Some(p))
        } else {
            return Err(st_err(dir, "neither model.safetensors nor model.safetensors.index.json is present"));
        };
        let mut set = Self { paths: Vec::new(), maps: Vec::new(), tensors: HashMap::new() };
        for (fi, name) in names.iter().enumerate() {
            let path = dir.join(name);
            let m = map(&path)?;
            let (n, meta) = SafeTensors::read_metadata(&m).map_err(|e| {
                let which = match e {
                    safetensors::SafeTensorError::TensorInvalidInfo => wrong_size_tensor(&m).map(|t| format!(" (tensor `{t}`)")),
                    _ => None,
                };
                st_err(&path, format!("invalid safetensors header: {e}{}", which.unwrap_or_default()))
            })?;
            let data_start = n + 8; // within the file: read_metadata checked n + 8 + data = len
            for (tname, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                let range = data_start.checked_add(s).zip(data_start.checked_add(e)).filter(|&(b, end)| b <= end && end <= m.len());
                let Some((begin, end)) = range else {
                    return Err(st_err(&path, format!("tensor `{tname}`: data [{s}, {e}) lies outside the file")));
                };
                if let Some(p) = placed.as_ref().and_then(|p| p.get(&tname)) {
                    if p != name {
                        return Err(st_err(&path, format!("tensor `{tname}` is indexed in `{p}`")));
                    }
                }
                let entry = Entry { file: fi, dtype: info.dtype, shape: info.shape.clone(), begin, end };
                if set.tensors.insert(tname.clone(), entry).is_some() {
                    return Err(st_err(&path, format!("tensor `{tname}` appears in two shards")));
                }
            }
            set.paths.push(path);
            set.maps.push(m);
        }
        if let Some(p) = &placed {
            let mut missing: Vec<&String> = p.keys().filter(|t| !set.tensors.contains_key(*t)).collect();
            missing.sort();
            if let Some(t) = missing.first() {
                return Err(st_err(&index, format!("tensor `{t}` is indexed in `{}` but is not there", p[*t])));
            }
        }
        Ok(set)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The first file (for messages about the checkpoint as a whole).
    pub fn first_path(&self) -> &Path {
        self.paths.first().map(PathBuf::as_path).unwrap_or(Path::new("model.safetensors"))
    }

    /// Tensor `name`, `None` when absent; an error when its dtype is not F32/F16/BF16.
    pub fn tensor(&self, name: &str) -> Result<Option<StTensor<'_>>, HfError> {
        let Some((key, e)) = self.tensors.get_key_value(name) else { return Ok(None) };
        let file = self.paths.get(e.file).map(PathBuf::as_path).unwrap_or(Path::new(""));
        let dtype = match e.dtype {
            Dtype::F32 => StDtype::F32,
            Dtype::F16 => StDtype::F16,
            Dtype::BF16 => StDtype::BF16,
            other => {
                return Err(HfError::Tensor {
                    path: file.to_path_buf(),
                    name: name.into(),
                    message: format!("dtype {other:?} is not supported (F32, F16, BF16)"),
                })
            }
        };
        // Ranges were checked against the map's length when the index was built.
        let bytes = self.maps.get(e.file).and_then(|m| m.get(e.begin..e.end)).unwrap_or(&[]);
        Ok(Some(StTensor { name: key, file, dtype, shape: &e.shape, bytes }))
    }
}
