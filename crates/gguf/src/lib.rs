//! GGUF v2/v3 reader (and a writer for tests), see the module docs of `reader`.
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
#![allow(dead_code)]

mod types;
pub use types::GgmlType;

// ---- CONTRACT SKELETON (the gguf owner replaces the todo!() bodies; keep the signatures) ----

use std::collections::BTreeMap;
use std::path::Path;

/// Errors from reading or validating a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed GGUF: {0}")]
    Malformed(String),
    #[error("metadata key `{key}` has type {found}, expected {expected}")]
    WrongType { key: String, expected: &'static str, found: &'static str },
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
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// An opened, fully validated GGUF file.
pub struct GgufFile {
    _private: (),
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let _ = path;
        todo!()
    }
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        let _ = bytes;
        todo!()
    }
    pub fn version(&self) -> u32 {
        todo!()
    }
    pub fn alignment(&self) -> u64 {
        todo!()
    }
    pub fn metadata(&self) -> &Metadata {
        todo!()
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata().get(key)
    }
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn get_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>, GgufError> {
        let _ = key;
        todo!()
    }
    pub fn tensors(&self) -> &[TensorInfo] {
        todo!()
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        let _ = name;
        todo!()
    }
    /// Zero-copy view of a tensor's bytes.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let _ = info;
        todo!()
    }
}
