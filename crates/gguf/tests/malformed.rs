//! Malformed GGUF files: each must be rejected with an error that names the problem, without
//! a panic and without allocating memory in proportion to what the file merely claims.
//!
//! The classes follow llama.cpp's `tests/test-gguf.cpp` (header, key/value, tensor-info and
//! data damage) plus truncation at every prefix, deep nesting and random byte damage.
//! Files are built byte by byte with [`Raw`] so that each test states exactly what is wrong.

use jikji_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ---- a per-thread allocation meter, to prove memory stays bounded ----

struct Meter;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: defers every allocation to `System` unchanged; only counts sizes in thread-locals
// initialised with `const` (no allocation, no re-entrancy).
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        // SAFETY: the caller's `GlobalAlloc::alloc` contract (non-zero-size `layout`) is
        // passed on to `System` unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System` with `layout`
        // (every allocation is deferred to it), as `dealloc`'s contract requires.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` / `layout` describe a block `System` allocated (every allocation is
        // deferred to it) and the caller's `realloc` contract on `new_size` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f` and returns its result and the peak extra heap bytes it held on this thread.
fn peak_alloc<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, (peak - base).max(0) as usize)
}

// ---- a raw GGUF byte builder ----

const T_U8: u32 = 0;
const T_I32: u32 = 5;
const T_U32: u32 = 4;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;

#[derive(Clone, Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u32(&mut self, x: u32) -> &mut Self {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    fn u64(&mut self, x: u64) -> &mut Self {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(T_U32).u32(v)
    }
    fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.str(key).u32(T_STRING).str(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Zero padding up to a multiple of `align`.
    fn pad(&mut self, align: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn done(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// Asserts that parsing fails with a message containing every `needle`, within 1 MiB of
/// heap beyond the (aligned) copy of the input, and returns the message.
#[track_caller]
fn expect_err(bytes: Vec<u8>, needles: &[&str]) -> String {
    let budget = (1 << 20) + bytes.len();
    let (res, peak) = peak_alloc(|| GgufFile::from_bytes(bytes));
    let msg = match res {
        Ok(f) => panic!("expected an error containing {needles:?}, got Ok({f:?})"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} does not mention {n:?}");
    }
    assert!(
        peak < budget,
        "parsing a bad file held {peak} bytes (message: {msg})"
    );
    msg
}

/// One valid F32 tensor of 8 elements (32 bytes) at offset 0, after the given metadata.
fn one_tensor_file(meta: impl FnOnce(&mut Raw), n_kv: u64) -> Raw {
    let mut r = Raw::header(3, 1, n_kv);
    meta(&mut r);
    r.tensor("t", &[8], GgmlType::F32 as u32, 0)
        .pad(32)
        .zeros(32);
    r
}

// ---- header ----

#[test]
fn bad_magic_is_rejected() {
    let mut bytes = Raw::header(3, 0, 0).done();
    bytes[..4].copy_from_slice(b"FUGG");
    expect_err(bytes, &["bad magic", "not a GGUF file"]);
}

#[test]
fn version_0_is_rejected() {
    expect_err(Raw::header(0, 0, 0).done(), &["unsupported GGUF version 0"]);
}

#[test]
fn version_1_is_rejected_with_a_clear_message() {
    expect_err(Raw::header(1, 0, 0).done(), &["version 1 is not supported"]);
}

#[test]
fn future_version_is_rejected() {
    expect_err(Raw::header(4, 0, 0).done(), &["unsupported GGUF version 4"]);
}

#[test]
fn big_endian_file_is_named_as_such() {
    let mut r = Raw(b"GGUF".to_vec());
    r.bytes(&3u32.to_be_bytes())
        .bytes(&0u64.to_be_bytes())
        .bytes(&0u64.to_be_bytes());
    expect_err(r.done(), &["big-endian"]);
}

#[test]
fn empty_and_tiny_files_are_truncation_errors() {
    expect_err(Vec::new(), &["unexpected end of file", "magic"]);
    expect_err(b"GG".to_vec(), &["unexpected end of file", "magic"]);
    expect_err(
        b"GGUF\x03\0".to_vec(),
        &["unexpected end of file", "version"],
    );
}

#[test]
fn header_with_no_tensors_and_no_metadata_is_valid() {
    let f = GgufFile::from_bytes(Raw::header(3, 0, 0).pad(32).done()).unwrap();
    assert_eq!(
        (f.version(), f.tensors().len(), f.metadata().len()),
        (3, 0, 0)
    );
    assert_eq!(f.alignment(), 32);
}

#[test]
fn huge_n_tensors_fails_before_allocating() {
    expect_err(
        Raw::header(3, u64::MAX, 0).pad(32).done(),
        &["n_tensors", "cannot fit"],
    );
    expect_err(
        Raw::header(3, 1 << 40, 0).zeros(4096).done(),
        &["n_tensors", "cannot fit"],
    );
}

#[test]
fn huge_n_kv_fails_before_allocating() {
    expect_err(
        Raw::header(3, 0, u64::MAX).pad(32).done(),
        &["n_kv", "cannot fit"],
    );
    expect_err(
        Raw::header(3, 0, 1 << 40).zeros(4096).done(),
        &["n_kv", "cannot fit"],
    );
}

// ---- keys and values ----

#[test]
fn huge_key_length_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX).bytes(b"key").u32(T_U32).u32(1);
    expect_err(r.done(), &["metadata key #0", "over the limit"]);
}

#[test]
fn key_longer_than_the_file_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(500).bytes(b"general.name").u32(T_U32).u32(1);
    expect_err(r.done(), &["metadata key #0", "bytes are left"]);
}

#[test]
fn empty_key_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("", 1);
    expect_err(r.done(), &["metadata key #0 is empty"]);
}

#[test]
fn unknown_value_type_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.str("my_key_0").u32(13).u32(0);
    expect_err(r.done(), &["my_key_0", "unknown value type 13"]);
    let mut r = Raw::header(3, 0, 1);
    r.str("my_key_0").u32(u32::MAX).u32(0);
    expect_err(r.done(), &["unknown value type 4294967295"]);
}

#[test]
fn unknown_array_element_type_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.str("arr").u32(T_ARRAY).u32(13).u64(1).u32(0);
    expect_err(r.done(), &["arr", "unknown element type 13"]);
}

#[test]
fn duplicate_key_is_rejected() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("my_key_0", 1).kv_str("my_key_0", "again");
    expect_err(r.done(), &["duplicate metadata key `my_key_0`"]);
}

#[test]
fn huge_string_length_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.str("general.name")
        .u32(T_STRING)
        .u64(1 << 63)
        .bytes(b"abc");
    expect_err(
        r.done(),
        &["general.name", "over the limit of 67108864 bytes"],
    );
}

#[test]
fn string_longer_than_the_file_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.str("general.name").u32(T_STRING).u64(1000).bytes(b"abc");
    expect_err(
        r.done(),
        &["general.name", "length 1000", "only 3 bytes are left"],
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.str("general.name")
        .u32(T_STRING)
        .u64(2)
        .bytes(&[0xC3, 0x28]);
    expect_err(r.done(), &["general.name", "not valid UTF-8"]);
    let mut r = Raw::header(3, 0, 1);
    r.u64(2).bytes(&[0xFF, 0xFE]).u32(T_U32).u32(0);
    expect_err(r.done(), &["metadata key #0", "not valid UTF-8"]);
}

#[test]
fn array_claiming_2_pow_60_elements_fails_fast_without_allocating() {
    for (elem, name) in [
        (T_U8, "u8"),
        (T_I32, "i32"),
        (T_STRING, "string"),
        (T_ARRAY, "array"),
    ] {
        let mut r = Raw::header(3, 0, 1);
        r.str("tokenizer.ggml.tokens")
            .u32(T_ARRAY)
            .u32(elem)
            .u64(1 << 60)
            .zeros(64);
        let started = std::time::Instant::now();
        expect_err(
            r.done(),
            &[
                "tokenizer.ggml.tokens",
                "array of 1152921504606846976",
                name,
            ],
        );
        assert!(
            started.elapsed().as_secs() < 1,
            "rejecting took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn array_count_just_over_the_remaining_bytes_is_rejected() {
    // 16 bytes follow the count: 4 i32 fit, 5 do not.
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(T_ARRAY).u32(T_I32).u64(5).zeros(16);
    expect_err(r.done(), &["array of 5 i32 elements", "16 bytes left"]);
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(T_ARRAY).u32(T_I32).u64(4).zeros(16);
    let f = GgufFile::from_bytes(r.done()).unwrap();
    assert_eq!(f.get_i32_array("a").unwrap(), Some(vec![0; 4]));
}

fn nested_array(depth: usize) -> Raw {
    let mut r = Raw::header(3, 0, 1);
    r.str("deep").u32(T_ARRAY);
    for _ in 1..depth {
        r.u32(T_ARRAY).u64(1);
    }
    r.u32(T_U8).u64(1).bytes(&[42]);
    r
}

#[test]
fn nesting_up_to_8_levels_is_accepted() {
    let f = GgufFile::from_bytes(nested_array(8).done()).unwrap();
    let mut v = f.get("deep").unwrap();
    for _ in 0..8 {
        v = &v.as_array().unwrap()[0];
    }
    assert_eq!(v, &Value::U8(42));
}

#[test]
fn nesting_deeper_than_8_levels_is_rejected() {
    expect_err(nested_array(9).done(), &["deep", "nested deeper than 8"]);
    // A very deep claim must not overflow the stack either.
    expect_err(nested_array(100_000).done(), &["nested deeper than 8"]);
}

#[test]
fn alignment_zero_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", 0);
    expect_err(r.done(), &["general.alignment = 0", "power of two"]);
}

#[test]
fn alignment_not_a_power_of_two_is_rejected() {
    let r = one_tensor_file(
        |r| {
            r.kv_u32("general.alignment", 13);
        },
        1,
    );
    expect_err(r.done(), &["general.alignment = 13", "power of two"]);
}

#[test]
fn alignment_of_the_wrong_type_is_rejected() {
    let mut r = Raw::header(3, 0, 1);
    r.str("general.alignment").u32(T_I32).u32(32);
    expect_err(
        r.done(),
        &["general.alignment must be of type u32, found i32"],
    );
    let mut r = Raw::header(3, 0, 1);
    r.str("general.alignment").u32(T_STRING).str("32");
    expect_err(
        r.done(),
        &["general.alignment must be of type u32, found string"],
    );
}

// ---- tensor infos ----

#[test]
fn tensor_name_longer_than_ggml_allows_is_rejected() {
    let name = format!("my_tensor_0{}", "_with_a_very_long_name".repeat(4));
    let mut r = Raw::header(3, 1, 0);
    r.tensor(&name, &[8], 0, 0).pad(32).zeros(32);
    expect_err(
        r.done(),
        &["name of tensor #0", "over the limit of 63 bytes"],
    );
}

#[test]
fn empty_tensor_name_is_rejected() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("", &[8], 0, 0).pad(32).zeros(32);
    expect_err(r.done(), &["tensor #0 has an empty name"]);
}

#[test]
fn bad_n_dims_is_rejected() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1, 1, 1, 1, 8], 0, 0).pad(32).zeros(32);
    expect_err(r.done(), &["tensor `t` has n_dims = 5"]);
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[], 0, 0).pad(32).zeros(32);
    expect_err(r.done(), &["tensor `t` has n_dims = 0"]);
    let mut r = Raw::header(3, 1, 0);
    r.str("t").u32(u32::MAX).zeros(64);
    expect_err(r.done(), &["n_dims = 4294967295"]);
}

#[test]
fn negative_dimension_is_rejected() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[u64::MAX, u64::MAX], 0, 0).pad(32).zeros(32);
    expect_err(
        r.done(),
        &[
            "tensor `t`",
            "negative or too large dimension",
            "dims[0] = -1",
        ],
    );
}

#[test]
fn zero_dimension_is_rejected() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[8, 0], 0, 0).pad(32).zeros(32);
    expect_err(r.done(), &["tensor `t` has a zero dimension (dims[1] = 0)"]);
}

#[test]
fn element_count_overflow_is_rejected() {
    let big = 4 * i32::MAX as u64;
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[big, big], 0, 0).pad(32).zeros(32);
    expect_err(r.done(), &["tensor `t` element count overflows"]);
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 20, 1 << 20, 1 << 20, 1 << 20], 0, 0)
        .pad(32)
        .zeros(32);
    expect_err(r.done(), &["element count overflows"]);
}

#[test]
fn byte_size_overflow_is_rejected() {
    // 2^61 i64 elements fit an i64 count, but take 2^64 bytes.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 61], GgmlType::I64 as u32, 0)
        .pad(32)
        .zeros(32);
    expect_err(r.done(), &["tensor `t` byte size overflows"]);
    // 2^62 f32 elements: 2^64 bytes.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 31, 1 << 31], GgmlType::F32 as u32, 0)
        .pad(32)
        .zeros(32);
    expect_err(r.done(), &["byte size overflows"]);
}

#[test]
fn unknown_tensor_type_is_rejected() {
    for code in [4u32, 5, 39, 1000, u32::MAX] {
        let mut r = Raw::header(3, 1, 0);
        r.tensor("t", &[32], code, 0).pad(32).zeros(128);
        expect_err(
            r.done(),
            &["tensor `t`", &format!("unsupported ggml type code {code}")],
        );
    }
}

#[test]
fn row_not_a_multiple_of_the_block_size_is_rejected() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[33, 2], GgmlType::Q4_0 as u32, 0)
        .pad(32)
        .zeros(128);
    expect_err(
        r.done(),
        &["row length 33 is not a multiple of the block size 32 of Q4_0"],
    );
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[128], GgmlType::Q4_K as u32, 0)
        .pad(32)
        .zeros(256);
    expect_err(r.done(), &["row length 128", "block size 256 of Q4_K"]);
}

#[test]
fn misaligned_offset_is_rejected() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 0)
        .tensor("b", &[8], 0, 16)
        .pad(32)
        .zeros(64);
    expect_err(
        r.done(),
        &["tensor `b` offset 16 is not a multiple of the alignment 32"],
    );
    // llama.cpp's BAD_OFFSET: an offset of u64::MAX.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[8], 0, u64::MAX).pad(32).zeros(32);
    expect_err(r.done(), &["not a multiple of the alignment"]);
}

#[test]
fn offset_past_the_end_is_rejected() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[8], 0, u64::MAX - 31).pad(32).zeros(32);
    expect_err(
        r.done(),
        &["tensor `t` data", "extends past the end of the file"],
    );
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[8], 0, 1 << 20).pad(32).zeros(32);
    expect_err(r.done(), &["extends past the end of the file"]);
}

#[test]
fn offsets_inconsistent_with_custom_alignment_are_rejected() {
    // llama.cpp's INCONSISTENT_ALIGN: offsets computed with alignment 1, file says 32.
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[2], GgmlType::I8 as u32, 0)
        .tensor("b", &[2], GgmlType::I8 as u32, 2)
        .pad(32)
        .zeros(64);
    expect_err(
        r.done(),
        &["tensor `b` offset 2 is not a multiple of the alignment 32"],
    );
}

#[test]
fn overlapping_tensors_are_rejected() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[16], 0, 0)
        .tensor("b", &[16], 0, 32)
        .pad(32)
        .zeros(128);
    expect_err(
        r.done(),
        &["tensor `b` has offset 32, expected 64", "overlaps"],
    );
}

#[test]
fn tensors_out_of_index_order_or_with_holes_are_rejected() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 32)
        .tensor("b", &[8], 0, 0)
        .pad(32)
        .zeros(64);
    expect_err(r.done(), &["tensor `a` has offset 32, expected 0"]);
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 0)
        .tensor("b", &[8], 0, 64)
        .pad(32)
        .zeros(128);
    expect_err(r.done(), &["tensor `b` has offset 64, expected 32"]);
}

#[test]
fn duplicate_tensor_name_is_rejected() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("my_tensor", &[8], 0, 0)
        .tensor("my_tensor", &[8], 0, 32)
        .pad(32)
        .zeros(64);
    expect_err(r.done(), &["duplicate tensor name `my_tensor`"]);
}

#[test]
fn data_one_byte_short_is_rejected() {
    let mut bytes = one_tensor_file(|_| {}, 0).done();
    bytes.pop();
    expect_err(
        bytes,
        &["tensor `t` data", "extends past the end of the file"],
    );
}

#[test]
fn data_size_overflow_across_tensors_is_rejected() {
    // llama.cpp's DATA_MEM_SIZE_OVERFLOW: two i8 tensors of 0x7FFFFFFFFFFFFFC0 elements.
    let n = 0x7FFF_FFFF_FFFF_FFC0;
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[n], GgmlType::I8 as u32, 0)
        .tensor("b", &[n], GgmlType::I8 as u32, n)
        .pad(32)
        .zeros(32);
    expect_err(
        r.done(),
        &["tensor `a` data", "extends past the end of the file"],
    );
}

#[test]
fn fewer_tensor_infos_than_n_tensors_is_rejected() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 0).pad(32).zeros(32);
    expect_err(r.done(), &["tensor #1 has an empty name"]);
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 0)
        .str("b_with_a_longer_name")
        .u32(1)
        .bytes(&[0; 7]);
    expect_err(
        r.done(),
        &[
            "unexpected end of file",
            "dimension 0 of tensor `b_with_a_longer_name`",
        ],
    );
}

// ---- whole-file damage ----

/// A small valid file using several value and tensor types; its last tensor ends exactly
/// at the end of the file, so every proper prefix is damaged.
fn small_valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama")
        .add_kv("llama.block_count", 2u32)
        .add_kv("llama.rope.freq_base", 10000.0f32)
        .add_kv("tokenizer.ggml.tokens", vec!["<s>", "a", "b"])
        .add_kv("tokenizer.ggml.scores", vec![0.0f32, -1.0, -2.0])
        .add_kv(
            "nested",
            Value::Array(vec![vec![1i64].into(), vec![2i64, 3].into()]),
        )
        .add_kv("flag", true)
        .add_tensor(
            "token_embd.weight",
            &[32, 3],
            GgmlType::Q8_0,
            vec![1u8; 3 * 34],
        )
        .add_tensor("output_norm.weight", &[8], GgmlType::F32, vec![2u8; 32]);
    w.to_bytes().unwrap()
}

#[test]
fn every_truncated_prefix_of_a_valid_file_is_an_error() {
    let full = small_valid_file();
    let f = GgufFile::from_bytes(full.clone()).unwrap();
    assert_eq!(f.tensors().len(), 2);
    for len in 0..full.len() {
        let msg = expect_err(full[..len].to_vec(), &[]);
        assert!(
            [
                "unexpected end of file",
                "past the end",
                "cannot fit",
                "bytes are left",
                "bytes left"
            ]
            .iter()
            .any(|n| msg.contains(n)),
            "prefix {len}: unexpected message {msg:?}"
        );
    }
}

#[test]
fn random_byte_damage_never_panics() {
    let full = small_valid_file();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = full.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = match next() % 3 {
                0 => next() as u8,
                1 => 0xFF,
                _ => bytes[i] ^ (1 << (next() % 8)),
            };
        }
        let (res, peak) = peak_alloc(|| GgufFile::from_bytes(bytes));
        assert!(peak < 1 << 20, "held {peak} bytes");
        match res {
            Ok(f) => {
                ok += 1;
                for t in f.tensors() {
                    assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
                }
            }
            Err(GgufError::Malformed(_)) => err += 1,
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
    assert!(
        err > 10_000,
        "most damage must be detected ({ok} ok, {err} errors)"
    );
}
