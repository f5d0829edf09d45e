//! An in-memory GGUF writer (v3 by default), used by tests, the tiny-model generator and
//! tools.
//!
//! The writer lays a file out exactly as the reader expects it: metadata in insertion order,
//! tensor infos in insertion order, the data section aligned to `general.alignment`, and
//! tensors packed in order, each padded with zeros to the alignment. It checks its input
//! (non-empty unique keys, unique tensor names, homogeneous arrays, shapes and data lengths
//! consistent with the tensor type) and finally re-reads what it produced, so it can never
//! hand out a file the reader would reject.
//!
//! The alignment is 32 unless a `general.alignment` key (u32) is added; [`GgufWriter::alignment`]
//! adds that key. An empty array is written with element type u8 (GGUF needs some type, and
//! the reader gives back an empty array whatever it is).

use crate::reader::{code, GGML_MAX_DIMS, MAX_TENSOR_NAME_LEN};
use crate::{GgmlType, GgufError, Value, DEFAULT_ALIGNMENT};
use std::path::Path;

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF file in memory.
///
/// ```
/// use jikji_gguf::{GgmlType, GgufFile, GgufWriter};
/// let mut w = GgufWriter::new();
/// w.add_kv("general.architecture", "llama");
/// w.add_tensor("x", &[4], GgmlType::F32, vec![0u8; 16]);
/// let file = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
/// assert_eq!(file.get_str("general.architecture").unwrap(), Some("llama"));
/// ```
pub struct GgufWriter {
    version: u32,
    kvs: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn invalid(msg: impl Into<String>) -> GgufError {
    GgufError::InvalidInput(msg.into())
}

impl GgufWriter {
    /// An empty GGUF v3 file.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version written in the header (2 or 3; the layout is the same).
    pub fn version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Sets `general.alignment` (replacing an earlier value).
    pub fn alignment(&mut self, alignment: u32) -> &mut Self {
        self.kvs.retain(|(k, _)| k != "general.alignment");
        self.add_kv("general.alignment", Value::U32(alignment))
    }

    /// Appends a metadata key/value pair.
    pub fn add_kv(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.kvs.push((key.into(), value.into()));
        self
    }

    /// Appends a tensor: `dims` in ggml order (`dims[0]` = row length), `data` its raw bytes
    /// in `ggml_type`'s block layout.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
        data: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type,
            data: data.into(),
        });
        self
    }

    fn alignment_value(&self) -> Result<u64, GgufError> {
        match self.kvs.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, Value::U32(a))) if a.is_power_of_two() => Ok(u64::from(*a)),
            Some((_, v)) => Err(invalid(format!(
                "general.alignment must be a u32 power of two, got {v:?}"
            ))),
        }
    }

    /// Encodes the file. Fails on invalid input (see the module docs).
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        if !matches!(self.version, 2 | 3) {
            return Err(invalid(format!(
                "cannot write GGUF version {}",
                self.version
            )));
        }
        let alignment = self.alignment_value()?;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        put_u32(&mut out, self.version);
        put_u64(&mut out, self.tensors.len() as u64);
        put_u64(&mut out, self.kvs.len() as u64);

        let mut seen = std::collections::HashSet::new();
        for (key, value) in &self.kvs {
            if key.is_empty() {
                return Err(invalid("empty metadata key"));
            }
            if !seen.insert(key.as_str()) {
                return Err(invalid(format!("duplicate metadata key `{key}`")));
            }
            put_str(&mut out, key);
            put_u32(&mut out, value_code(value));
            put_value(&mut out, value, key)?;
        }

        let mut names = std::collections::HashSet::new();
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            if t.name.is_empty() || t.name.len() as u64 > MAX_TENSOR_NAME_LEN {
                return Err(invalid(format!(
                    "tensor name `{}` must be 1..={MAX_TENSOR_NAME_LEN} bytes",
                    t.name
                )));
            }
            if !names.insert(t.name.as_str()) {
                return Err(invalid(format!("duplicate tensor name `{}`", t.name)));
            }
            if t.dims.is_empty() || t.dims.len() > GGML_MAX_DIMS || t.dims.contains(&0) {
                return Err(invalid(format!(
                    "tensor `{}` has dims {:?}: need 1..={GGML_MAX_DIMS} non-zero dims",
                    t.name, t.dims
                )));
            }
            let n_bytes = t
                .ggml_type
                .row_bytes(t.dims[0])
                .and_then(|rb| t.dims[1..].iter().try_fold(rb, |a, &d| a.checked_mul(d)))
                .ok_or_else(|| {
                    invalid(format!(
                        "tensor `{}` dims {:?} do not fit {} (row length must be a multiple of \
                         {} and the size must not overflow)",
                        t.name,
                        t.dims,
                        t.ggml_type,
                        t.ggml_type.block_size()
                    ))
                })?;
            if n_bytes != t.data.len() as u64 {
                return Err(invalid(format!(
                    "tensor `{}` has {} bytes of data, but {} dims {:?} need {n_bytes}",
                    t.name,
                    t.data.len(),
                    t.ggml_type,
                    t.dims
                )));
            }
            put_str(&mut out, &t.name);
            put_u32(&mut out, t.dims.len() as u32);
            for &d in &t.dims {
                put_u64(&mut out, d);
            }
            put_u32(&mut out, t.ggml_type as u32);
            put_u64(&mut out, offset);
            offsets.push(offset);
            offset = pad_to(offset + n_bytes, alignment);
        }

        if !self.tensors.is_empty() {
            out.resize(pad_to(out.len() as u64, alignment) as usize, 0);
            let data_start = out.len();
            for (t, off) in self.tensors.iter().zip(offsets) {
                out.resize(data_start + off as usize, 0);
                out.extend_from_slice(&t.data);
            }
            out.resize(data_start + offset as usize, 0);
        }

        // Self-check: what we write, we must be able to read.
        crate::reader::parse(&out)
            .map_err(|e| invalid(format!("writer produced an unreadable file: {e}")))?;
        Ok(out)
    }

    /// Encodes the file and writes it to `path`.
    pub fn write_to_path(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        std::fs::write(path, self.to_bytes()?)?;
        Ok(())
    }
}

fn pad_to(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

fn put_u32(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn value_code(v: &Value) -> u32 {
    match v {
        Value::U8(_) => code::U8,
        Value::I8(_) => code::I8,
        Value::U16(_) => code::U16,
        Value::I16(_) => code::I16,
        Value::U32(_) => code::U32,
        Value::I32(_) => code::I32,
        Value::U64(_) => code::U64,
        Value::I64(_) => code::I64,
        Value::F32(_) => code::F32,
        Value::F64(_) => code::F64,
        Value::Bool(_) => code::BOOL,
        Value::String(_) => code::STRING,
        Value::Array(_) => code::ARRAY,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value, key: &str) -> Result<(), GgufError> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::Array(items) => {
            let elem = items.first().map_or(code::U8, value_code);
            if items.iter().any(|i| value_code(i) != elem) {
                return Err(invalid(format!("array of key `{key}` mixes element types")));
            }
            put_u32(out, elem);
            put_u64(out, items.len() as u64);
            for item in items {
                put_value(out, item, key)?;
            }
        }
    }
    Ok(())
}
