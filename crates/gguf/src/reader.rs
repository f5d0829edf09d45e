//! Parsing and validation of a GGUF image (little-endian, v2 and v3).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic "GGUF" | version u32 | n_tensors u64 | n_kv u64
//! n_kv ×      { key: string | value_type u32 | value }
//! n_tensors × { name: string | n_dims u32 | dims u64 × n_dims | ggml_type u32 | offset u64 }
//! padding to `general.alignment`
//! tensor data (each tensor at data_start + offset)
//! string = len u64 | bytes (UTF-8)      array = elem_type u32 | count u64 | elems
//! ```
//!
//! Validation, in the order it happens (each failure is a [`GgufError::Malformed`] naming the
//! problem):
//!
//! 1. magic, version (2 or 3; v1 and big-endian files get their own message);
//! 2. `n_kv` and `n_tensors` against the bytes left: every entry takes a minimum number of
//!    bytes ([`MIN_KV_BYTES`], [`MIN_TENSOR_INFO_BYTES`]), so a count the file cannot hold is
//!    rejected before any loop or allocation;
//! 3. each key: length ≤ [`MAX_KEY_LEN`], non-empty, UTF-8, not a duplicate; each value:
//!    known type code, strings ≤ [`MAX_STRING_LEN`] and within the file, array counts ≤ what
//!    the remaining bytes can encode (count × minimum element size), nesting ≤
//!    [`MAX_NESTING_DEPTH`]. Bools follow llama.cpp (any non-zero byte is true);
//! 4. `general.alignment`, if present, is a u32 that is a non-zero power of two;
//! 5. each tensor: name non-empty, ≤ [`MAX_TENSOR_NAME_LEN`] bytes, UTF-8, unique;
//!    `1 ≤ n_dims ≤ 4`; every dim in `1..=i64::MAX` (llama.cpp tolerates zero dims; we do
//!    not: no weight has zero elements, and a zero would make later shape checks vacuous);
//!    known type code; element count (checked, ≤ i64::MAX); row length a multiple of the
//!    type's block size; byte size (checked); offset a multiple of the alignment;
//! 6. data section: starts at the header end rounded up to the alignment; each tensor's
//!    `[start, start + n_bytes)` lies inside the file; and, like llama.cpp, each offset equals
//!    the sum of the aligned sizes of the tensors before it (packed in index order), which
//!    rules out overlaps and holes.

use crate::{GgmlType, GgufError, Metadata, TensorInfo, Value};
use std::collections::HashMap;

/// Default `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Longest string value accepted (64 MiB), in bytes.
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// Longest metadata key accepted, in bytes.
pub const MAX_KEY_LEN: u64 = 1024;
/// Longest tensor name accepted, in bytes (ggml's `GGML_MAX_NAME` is 64 including the NUL).
pub const MAX_TENSOR_NAME_LEN: u64 = 63;
/// Deepest array nesting accepted (an array of arrays has depth 2).
pub const MAX_NESTING_DEPTH: usize = 8;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const GGML_MAX_DIMS: usize = 4;
/// Smallest possible encoding of one key/value pair: key length, a 1-byte key, the type
/// code and a 1-byte value.
pub const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// Smallest possible encoding of one tensor info: name length, a 1-byte name, n_dims, one
/// dim, the type code and the offset.
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;

/// Most entries reserved up front for a counted sequence; beyond this, vectors grow as
/// entries are actually read.
const RESERVE_STEP: usize = 1 << 12;

/// Metadata value type codes.
pub(crate) mod code {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// Name of a value type code, for messages.
fn code_name(c: u32) -> &'static str {
    match c {
        code::U8 => "u8",
        code::I8 => "i8",
        code::U16 => "u16",
        code::I16 => "i16",
        code::U32 => "u32",
        code::I32 => "i32",
        code::F32 => "f32",
        code::BOOL => "bool",
        code::STRING => "string",
        code::ARRAY => "array",
        code::U64 => "u64",
        code::I64 => "i64",
        code::F64 => "f64",
        _ => "unknown",
    }
}

/// Minimum encoded size of one value of type `c`, or `None` for an unknown code.
fn min_encoded_size(c: u32) -> Option<u64> {
    Some(match c {
        code::U8 | code::I8 | code::BOOL => 1,
        code::U16 | code::I16 => 2,
        code::U32 | code::I32 | code::F32 => 4,
        code::U64 | code::I64 | code::F64 => 8,
        code::STRING => 8,
        code::ARRAY => 4 + 8,
        _ => return None,
    })
}

/// The validated index of a GGUF image.
pub(crate) struct Parsed {
    pub version: u32,
    pub alignment: u64,
    pub data_offset: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub index: HashMap<String, usize>,
}

fn malformed(msg: impl Into<String>) -> GgufError {
    GgufError::Malformed(msg.into())
}

/// A bounds-checked little-endian reader over the file bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let rem = self.remaining();
        if n > rem {
            return Err(malformed(format!(
                "unexpected end of file reading {}: need {n} bytes at byte {}, only {rem} left",
                what(),
                self.pos
            )));
        }
        // `n <= rem <= usize::MAX`, so the conversion and the range are in bounds.
        let n = n as usize;
        let out = self.buf.get(self.pos..self.pos + n).unwrap_or_default();
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16, GgufError> {
        self.array(what).map(u16::from_le_bytes)
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let at = self.pos;
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > max {
            return Err(malformed(format!(
                "{} at byte {at} has length {len}, over the limit of {max} bytes",
                what()
            )));
        }
        let rem = self.remaining();
        if len > rem {
            return Err(malformed(format!(
                "{} at byte {at} has length {len}, but only {rem} bytes are left in the file",
                what()
            )));
        }
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| malformed(format!("{} at byte {at} is not valid UTF-8: {e}", what())))
    }
}

/// Parses and validates a whole GGUF image.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, GgufError> {
    let mut c = Cursor { buf, pos: 0 };
    let file_len = buf.len() as u64;

    let magic = c.array::<4>(&|| "the magic number".into())?;
    if &magic != b"GGUF" {
        return Err(malformed(format!(
            "bad magic {:?} (expected \"GGUF\"): not a GGUF file",
            String::from_utf8_lossy(&magic)
        )));
    }
    let version = c.u32(&|| "the version".into())?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(malformed(
                "GGUF version 1 is not supported (only versions 2 and 3); re-convert the model",
            ))
        }
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err(malformed(format!(
                "big-endian GGUF (version {}) is not supported",
                v.swap_bytes()
            )))
        }
        v => {
            return Err(malformed(format!(
                "unsupported GGUF version {v} (only versions 2 and 3 are supported)"
            )))
        }
    }
    let n_tensors = c.u64(&|| "n_tensors".into())?;
    let n_kv = c.u64(&|| "n_kv".into())?;
    let rem = c.remaining();
    if n_kv > rem / MIN_KV_BYTES {
        return Err(malformed(format!(
            "n_kv = {n_kv} key/value pairs cannot fit in the {rem} bytes left in the file"
        )));
    }
    if n_tensors > rem / MIN_TENSOR_INFO_BYTES {
        return Err(malformed(format!(
            "n_tensors = {n_tensors} tensor infos cannot fit in the {rem} bytes left in the file"
        )));
    }

    // ---- metadata ----
    let mut metadata = Metadata::new();
    for i in 0..n_kv {
        let key = c.string(MAX_KEY_LEN, &|| format!("metadata key #{i}"))?;
        if key.is_empty() {
            return Err(malformed(format!("metadata key #{i} is empty")));
        }
        if metadata.contains_key(&key) {
            return Err(malformed(format!("duplicate metadata key `{key}`")));
        }
        let ty = c.u32(&|| format!("the value type of key `{key}`"))?;
        let value = read_value(&mut c, ty, 0, &key)?;
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(Value::U32(a)) => {
            return Err(malformed(format!(
                "general.alignment = {a} is not a non-zero power of two"
            )))
        }
        Some(v) => {
            return Err(malformed(format!(
                "general.alignment must be of type u32, found {}",
                v.type_name()
            )))
        }
    };

    // ---- tensor infos ----
    // The count is bounded by the file size; still reserve in bounded steps so that a large
    // mapped file with a lying count does not reserve gigabytes before failing.
    let reserve = (n_tensors as usize).min(RESERVE_STEP);
    let mut tensors = Vec::with_capacity(reserve);
    let mut index = HashMap::with_capacity(reserve);
    for i in 0..n_tensors {
        let info = read_tensor_info(&mut c, i, alignment)?;
        if index.contains_key(&info.name) {
            return Err(malformed(format!("duplicate tensor name `{}`", info.name)));
        }
        index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
    }

    // ---- data section ----
    let header_end = c.pos as u64;
    let data_offset = align_up(header_end, alignment).ok_or_else(|| {
        malformed(format!(
            "data section start {header_end} overflows when aligned"
        ))
    })?;
    let mut expected = 0u64;
    for t in &tensors {
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.n_bytes));
        if !matches!(end, Some(e) if e <= file_len) {
            return Err(malformed(format!(
                "tensor `{}` data (offset {} + {} bytes from the data section at {data_offset}) \
                 extends past the end of the file ({file_len} bytes)",
                t.name, t.offset, t.n_bytes
            )));
        }
        if t.offset != expected {
            return Err(malformed(format!(
                "tensor `{}` has offset {}, expected {expected}: tensors must be packed in index \
                 order without overlaps or holes",
                t.name, t.offset
            )));
        }
        // Cannot overflow: offset + n_bytes <= file_len was checked just above, and padding
        // adds less than `alignment`; still checked, for clarity.
        expected = t
            .n_bytes
            .checked_add(expected)
            .and_then(|e| align_up(e, alignment))
            .ok_or_else(|| malformed(format!("tensor `{}` size overflows", t.name)))?;
    }

    Ok(Parsed {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
        index,
    })
}

/// `x` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
fn align_up(x: u64, align: u64) -> Option<u64> {
    let mask = align - 1;
    x.checked_add(mask).map(|y| y & !mask)
}

fn read_value(c: &mut Cursor, ty: u32, depth: usize, key: &str) -> Result<Value, GgufError> {
    let w = || format!("the value of key `{key}`");
    Ok(match ty {
        code::U8 => Value::U8(c.u8(&w)?),
        code::I8 => Value::I8(c.u8(&w)? as i8),
        code::U16 => Value::U16(c.u16(&w)?),
        code::I16 => Value::I16(c.u16(&w)? as i16),
        code::U32 => Value::U32(c.u32(&w)?),
        code::I32 => Value::I32(c.u32(&w)? as i32),
        code::U64 => Value::U64(c.u64(&w)?),
        code::I64 => Value::I64(c.u64(&w)? as i64),
        code::F32 => Value::F32(f32::from_bits(c.u32(&w)?)),
        code::F64 => Value::F64(f64::from_bits(c.u64(&w)?)),
        code::BOOL => Value::Bool(c.u8(&w)? != 0),
        code::STRING => {
            Value::String(c.string(MAX_STRING_LEN, &|| format!("string of key `{key}`"))?)
        }
        code::ARRAY => read_array(c, depth + 1, key)?,
        other => {
            return Err(malformed(format!(
                "key `{key}` has unknown value type {other} (at byte {})",
                c.pos.saturating_sub(4)
            )))
        }
    })
}

fn read_array(c: &mut Cursor, depth: usize, key: &str) -> Result<Value, GgufError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(malformed(format!(
            "key `{key}` has arrays nested deeper than {MAX_NESTING_DEPTH} levels"
        )));
    }
    let at = c.pos;
    let elem = c.u32(&|| format!("the array element type of key `{key}`"))?;
    let Some(min) = min_encoded_size(elem) else {
        return Err(malformed(format!(
            "key `{key}` is an array with unknown element type {elem} (at byte {at})"
        )));
    };
    let count = c.u64(&|| format!("the array length of key `{key}`"))?;
    let rem = c.remaining();
    if count > rem / min {
        return Err(malformed(format!(
            "key `{key}` claims an array of {count} {} elements, more than the {rem} bytes left \
             in the file can hold",
            code_name(elem)
        )));
    }
    // Reserve in bounded steps: the count is plausible but not yet proven by the data.
    let mut items = Vec::with_capacity((count as usize).min(RESERVE_STEP));
    for _ in 0..count {
        items.push(read_value(c, elem, depth, key)?);
    }
    Ok(Value::Array(items))
}

fn read_tensor_info(c: &mut Cursor, i: u64, alignment: u64) -> Result<TensorInfo, GgufError> {
    let name = c.string(MAX_TENSOR_NAME_LEN, &|| format!("the name of tensor #{i}"))?;
    if name.is_empty() {
        return Err(malformed(format!("tensor #{i} has an empty name")));
    }
    let n_dims = c.u32(&|| format!("n_dims of tensor `{name}`"))?;
    if n_dims == 0 || n_dims as usize > GGML_MAX_DIMS {
        return Err(malformed(format!(
            "tensor `{name}` has n_dims = {n_dims}, expected 1..={GGML_MAX_DIMS}"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for j in 0..n_dims {
        let d = c.u64(&|| format!("dimension {j} of tensor `{name}`"))?;
        if d == 0 {
            return Err(malformed(format!(
                "tensor `{name}` has a zero dimension (dims[{j}] = 0)"
            )));
        }
        if d > i64::MAX as u64 {
            return Err(malformed(format!(
                "tensor `{name}` has a negative or too large dimension (dims[{j}] = {})",
                d as i64
            )));
        }
        dims.push(d);
    }
    let type_code = c.u32(&|| format!("the type of tensor `{name}`"))?;
    let Some(ggml_type) = GgmlType::from_u32(type_code) else {
        return Err(malformed(format!(
            "tensor `{name}` has unknown or unsupported ggml type code {type_code}"
        )));
    };
    let offset = c.u64(&|| format!("the offset of tensor `{name}`"))?;

    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64);
    if n_elements.is_none() {
        return Err(malformed(format!(
            "tensor `{name}` element count overflows (dims {dims:?})"
        )));
    }
    let row = dims[0];
    let block = ggml_type.block_size() as u64;
    if !row.is_multiple_of(block) {
        return Err(malformed(format!(
            "tensor `{name}` row length {row} is not a multiple of the block size {block} of {ggml_type}"
        )));
    }
    let n_bytes = ggml_type
        .row_bytes(row)
        .and_then(|rb| dims[1..].iter().try_fold(rb, |acc, &d| acc.checked_mul(d)))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| {
            malformed(format!(
                "tensor `{name}` byte size overflows ({ggml_type}, dims {dims:?})"
            ))
        })?;
    if !offset.is_multiple_of(alignment) {
        return Err(malformed(format!(
            "tensor `{name}` offset {offset} is not a multiple of the alignment {alignment}"
        )));
    }
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_bytes,
    })
}
