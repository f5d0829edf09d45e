//! GGUF v2/v3 reader (and a writer for tests and tools).
//!
//! CONTRACT (other crates rely on these names; the gguf owner may add, not rename):
//! - `GgufFile::open(path)`, `GgufFile::from_bytes(Vec<u8>)`
//! - `file.metadata() -> &Metadata`, `file.get(key) -> Option<&Value>`,
//!   typed getters `get_u32/get_u64/get_f32/get_bool/get_str/get_str_array/get_i32_array/get_f32_array`
//!   returning `Result<Option<T>, GgufError>` (None = key absent, Err = wrong type).
//! - `file.tensors() -> &[TensorInfo]`, `file.tensor(name) -> Option<&TensorInfo>`,
//!   `file.tensor_data(&TensorInfo) -> &[u8]` (zero-copy view into the mmap).
//! - `TensorInfo { name, dims, ggml_type, offset, n_bytes }`, dims in ggml order:
//!   `dims[0]` is the contiguous (row) length, so a weight `[n_out, n_in]` in PyTorch terms is
//!   `dims = [n_in, n_out]`.
//! - `GgmlType` with `block_size()`, `type_size()` (bytes per block), `row_bytes(n)`.
//!
//! # Design
//!
//! A GGUF file is untrusted input: it may come from anywhere, and a model file is large
//! enough that a careless reader can be made to allocate or read far beyond it. The reader
//! therefore validates the *whole* index once, in [`GgufFile::open`] /
//! [`GgufFile::from_bytes`], and everything handed out afterwards (metadata, [`TensorInfo`],
//! tensor byte slices) is already known to be consistent with the file. See the
//! [`reader`] module docs for the full list of checks; in short:
//!
//! - **Every length is checked against the bytes that remain** before anything is
//!   allocated: a string, an array count, `n_kv` and `n_tensors` can never claim more than
//!   the rest of the file could encode, so memory stays proportional to the file size
//!   (a file claiming 2^60 array elements fails at once). Arrays reserve capacity only in
//!   small steps, so the allocation tracks what was actually read.
//! - **Fixed caps** on string length ([`MAX_STRING_LEN`]), key length ([`MAX_KEY_LEN`]),
//!   tensor-name length ([`MAX_TENSOR_NAME_LEN`], as ggml's `GGML_MAX_NAME`) and array
//!   nesting depth ([`MAX_NESTING_DEPTH`]; recursion is bounded, no stack overflow).
//! - **Checked arithmetic** for element counts, byte sizes, offsets and padding.
//! - **Tensor data layout** is validated the way llama.cpp's loader does: offsets are
//!   multiples of `general.alignment` (a non-zero power of two of type u32, default 32),
//!   the data section starts aligned, tensors are packed in index order (so they can
//!   neither overlap nor leave holes), and every `[offset, offset + n_bytes)` lies inside
//!   the file.
//! - Duplicate metadata keys and duplicate tensor names are errors, as are v1 files,
//!   unknown value types and unknown tensor type codes. Nothing panics on file data: every
//!   problem is a [`GgufError::Malformed`] whose message names the key/tensor and, where
//!   useful, the byte position.
//!
//! Files are memory-mapped ([`memmap2`]); [`GgufFile::from_bytes`] copies the bytes into a
//! 64-byte-aligned buffer so that tensor data has the same alignment guarantees as with a
//! mapping (the data section is aligned relative to the file start, and a mapping starts on
//! a page boundary).
//!
//! Typed getters are lenient where real converters differ (an `i32` or `u64` count is a
//! fine `u32` when the value fits) and strict otherwise ([`GgufError::WrongType`]).

pub mod reader;
mod types;
pub mod writer;

pub use reader::{
    DEFAULT_ALIGNMENT, GGML_MAX_DIMS, MAX_KEY_LEN, MAX_NESTING_DEPTH, MAX_STRING_LEN,
    MAX_TENSOR_NAME_LEN,
};
pub use types::{GgmlType, QK_K};
pub use writer::GgufWriter;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Errors from reading or validating a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed GGUF: {0}")]
    Malformed(String),
    #[error("metadata key `{key}` has type {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// The [`GgufWriter`] was given something it cannot encode as a valid file.
    #[error("invalid GGUF writer input: {0}")]
    InvalidInput(String),
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// The GGUF name of this value's type (`"u32"`, `"string"`, `"array"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        }
    }

    /// `"array of <elem>"` for arrays (by their first element), else [`Value::type_name`].
    fn array_type_name(&self) -> &'static str {
        let Value::Array(items) = self else {
            return self.type_name();
        };
        match items.first() {
            None => "empty array",
            Some(Value::U8(_)) => "array of u8",
            Some(Value::I8(_)) => "array of i8",
            Some(Value::U16(_)) => "array of u16",
            Some(Value::I16(_)) => "array of i16",
            Some(Value::U32(_)) => "array of u32",
            Some(Value::I32(_)) => "array of i32",
            Some(Value::U64(_)) => "array of u64",
            Some(Value::I64(_)) => "array of i64",
            Some(Value::F32(_)) => "array of f32",
            Some(Value::F64(_)) => "array of f64",
            Some(Value::Bool(_)) => "array of bool",
            Some(Value::String(_)) => "array of string",
            Some(Value::Array(_)) => "array of array",
        }
    }

    /// Name used when an integer of this type does not fit the requested type.
    fn out_of_range_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8 (value out of range)",
            Value::I8(_) => "i8 (value out of range)",
            Value::U16(_) => "u16 (value out of range)",
            Value::I16(_) => "i16 (value out of range)",
            Value::U32(_) => "u32 (value out of range)",
            Value::I32(_) => "i32 (value out of range)",
            Value::U64(_) => "u64 (value out of range)",
            Value::I64(_) => "i64 (value out of range)",
            _ => self.type_name(),
        }
    }

    /// The value of any integer variant, widened; `None` for non-integers.
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(x) => x.into(),
            Value::I8(x) => x.into(),
            Value::U16(x) => x.into(),
            Value::I16(x) => x.into(),
            Value::U32(x) => x.into(),
            Value::I32(x) => x.into(),
            Value::U64(x) => x.into(),
            Value::I64(x) => x.into(),
            _ => return None,
        })
    }

    /// The value of an `F32` or `F64`, as f64; `None` otherwise.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::F32(x) => Some(x.into()),
            Value::F64(x) => Some(x),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(x: $t) -> Self {
                Value::$v(x)
            }
        })*
    };
}
value_from!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64,
    i64 => I64, f32 => F32, f64 => F64, bool => Bool, String => String);

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
}

/// Metadata in file order is not needed by users; keys are unique (duplicates are an error).
pub type Metadata = BTreeMap<String, Value>;

/// One tensor's index entry.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset relative to the start of the data section (already validated).
    pub offset: u64,
    /// Bytes of the tensor's data (already validated against the file size).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (validated at load time not to overflow).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The bytes behind a [`GgufFile`].
enum Storage {
    Mmap(memmap2::Mmap),
    Aligned(AlignedBytes),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Aligned(a) => a.as_slice(),
        }
    }
}

/// A 64-byte-aligned copy of in-memory file bytes.
struct AlignedBytes {
    chunks: Vec<Chunk>,
    len: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Chunk([u8; 64]);

impl AlignedBytes {
    fn new(bytes: &[u8]) -> Self {
        let mut chunks = vec![Chunk([0; 64]); bytes.len().div_ceil(64)];
        for (chunk, src) in chunks.iter_mut().zip(bytes.chunks(64)) {
            chunk.0[..src.len()].copy_from_slice(src);
        }
        AlignedBytes {
            chunks,
            len: bytes.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        debug_assert!(self.len <= self.chunks.len() * 64);
        // SAFETY: `Chunk` is `repr(C)` around `[u8; 64]` with size 64 == align 64, so it has
        // no padding and `chunks` is one contiguous run of `chunks.len() * 64` initialized
        // bytes; `len` never exceeds that (set in `new` from the source length). The slice
        // borrows `self`, so the vector outlives it and is not mutated meanwhile.
        unsafe { std::slice::from_raw_parts(self.chunks.as_ptr().cast::<u8>(), self.len) }
    }
}

/// An opened, fully validated GGUF file.
pub struct GgufFile {
    storage: Storage,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

fn wrong(key: &str, expected: &'static str, found: &'static str) -> GgufError {
    GgufError::WrongType {
        key: key.to_owned(),
        expected,
        found,
    }
}

fn int_as<T: TryFrom<i128>>(key: &str, v: &Value, expected: &'static str) -> Result<T, GgufError> {
    match v.as_int() {
        Some(i) => T::try_from(i).map_err(|_| wrong(key, expected, v.out_of_range_name())),
        None => Err(wrong(key, expected, v.type_name())),
    }
}

impl GgufFile {
    /// Memory-maps and validates the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| {
            GgufError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        })?;
        let len = file.metadata()?.len();
        if len == 0 {
            // mmap of an empty file fails on some systems; report it as what it is.
            return Self::from_bytes(Vec::new());
        }
        // SAFETY: the mapping is read-only and private to this process. memmap2 cannot
        // prevent another process from truncating or rewriting the file while it is mapped
        // (that would be undefined behaviour / SIGBUS); model files are not modified while
        // in use, which is the same assumption llama.cpp's mmap loader makes, and it is what
        // lets multi-GB weights be used zero-copy. All bounds are validated before any
        // tensor slice is handed out, so no access goes past the mapped length.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| {
            GgufError::Io(std::io::Error::new(
                e.kind(),
                format!("mmap {}: {e}", path.display()),
            ))
        })?;
        Self::from_storage(Storage::Mmap(mmap))
    }

    /// Validates an in-memory GGUF image (copied into a 64-byte-aligned buffer).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::from_storage(Storage::Aligned(AlignedBytes::new(&bytes)))
    }

    fn from_storage(storage: Storage) -> Result<Self, GgufError> {
        let parsed = reader::parse(storage.bytes())?;
        Ok(GgufFile {
            storage,
            version: parsed.version,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            index: parsed.index,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }
    /// `general.alignment` (default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Absolute byte position of the (aligned) tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    /// The whole file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata().get(key)
    }
    /// Any integer type whose value fits in u32.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.get(key).map(|v| int_as(key, v, "u32")).transpose()
    }
    /// Any non-negative integer.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.get(key).map(|v| int_as(key, v, "u64")).transpose()
    }
    /// Any integer type whose value fits in i32.
    pub fn get_i32(&self, key: &str) -> Result<Option<i32>, GgufError> {
        self.get(key).map(|v| int_as(key, v, "i32")).transpose()
    }
    /// F32, or F64 narrowed to f32.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        self.get(key)
            .map(|v| {
                v.as_float()
                    .map(|x| x as f32)
                    .ok_or_else(|| wrong(key, "f32", v.type_name()))
            })
            .transpose()
    }
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.get(key)
            .map(|v| match v {
                Value::Bool(b) => Ok(*b),
                _ => Err(wrong(key, "bool", v.type_name())),
            })
            .transpose()
    }
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| wrong(key, "string", v.type_name()))
            })
            .transpose()
    }
    /// An array of strings (an empty array gives an empty vector).
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        self.get_array(key, "array of string", false, Value::as_str)
    }
    /// An array of any integer type whose values all fit in i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>, GgufError> {
        self.get_array(key, "array of i32", true, |item| {
            item.as_int().and_then(|i| i32::try_from(i).ok())
        })
    }
    /// An array of F32 (or F64, narrowed).
    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>, GgufError> {
        self.get_array(key, "array of f32", false, |item| {
            item.as_float().map(|x| x as f32)
        })
    }

    fn get_array<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        integer_elems: bool,
        convert: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<Vec<T>>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(wrong(key, expected, v.type_name()));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(x) = convert(item) else {
                // An integer that an integer getter refused is out of range; anything else
                // is the wrong element type.
                let found = if integer_elems && item.as_int().is_some() {
                    item.out_of_range_name()
                } else {
                    v.array_type_name()
                };
                return Err(wrong(key, expected, found));
            };
            out.push(x);
        }
        Ok(Some(out))
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }
    /// Zero-copy view of a tensor's bytes. `info` must come from this file (its bounds were
    /// validated at load time); an entry that does not fit this file yields an empty slice.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let range = self
            .data_offset
            .checked_add(info.offset)
            .and_then(|start| Some((start, start.checked_add(info.n_bytes)?)))
            .and_then(|(s, e)| Some(usize::try_from(s).ok()?..usize::try_from(e).ok()?));
        debug_assert!(range.is_some(), "tensor info not from this file");
        range
            .and_then(|r| self.as_bytes().get(r))
            .unwrap_or_default()
    }
    /// The bytes of the tensor called `name`, if present.
    pub fn tensor_data_by_name(&self, name: &str) -> Option<&[u8]> {
        self.tensor(name).map(|t| self.tensor_data(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_file_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<GgufFile>();
    }

    #[test]
    fn aligned_bytes_keep_content_and_alignment() {
        let src: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        let a = AlignedBytes::new(&src);
        assert_eq!(a.as_slice(), &src[..]);
        assert_eq!(a.as_slice().as_ptr() as usize % 64, 0);
        assert!(AlignedBytes::new(&[]).as_slice().is_empty());
    }
}
