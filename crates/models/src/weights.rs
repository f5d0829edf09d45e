//! Weights as references into the GGUF file: a matrix stays in its file type (quantized,
//! mmap'd, never copied); only small vectors (norm weights, biases) are dequantized to f32
//! at load time.
//!
//! Every tensor is checked when the model loads: present, of a usable type, of the exact
//! shape the hyper-parameters imply, with a byte size matching that shape. A forward pass
//! can then slice without re-checking.

use crate::error::ModelError;
use jikji_gguf::{GgmlType, GgufFile, TensorInfo};
use jikji_kernels::WeightView;

/// A weight matrix of `rows` rows of `cols` elements (ggml `dims = [cols, rows]`),
/// stored in the file's type.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub info: TensorInfo,
    pub rows: usize,
    pub cols: usize,
}

impl Matrix {
    /// The kernel view of this matrix's bytes inside `file`.
    pub fn view<'a>(&self, file: &'a GgufFile) -> WeightView<'a> {
        WeightView { ty: self.info.ggml_type, data: file.tensor_data(&self.info), rows: self.rows, cols: self.cols }
    }
}

/// Types the matmul kernels accept for weights.
fn matrix_type_ok(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K)
}

/// Looks up and validates tensors of one file.
pub struct Loader<'a> {
    pub file: &'a GgufFile,
}

impl<'a> Loader<'a> {
    pub fn new(file: &'a GgufFile) -> Self {
        Loader { file }
    }

    pub fn has(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }

    fn find(&self, name: &str) -> Result<&'a TensorInfo, ModelError> {
        self.file.tensor(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }

    fn check_shape(info: &TensorInfo, expected: &[u64]) -> Result<(), ModelError> {
        if info.dims.as_slice() != expected {
            return Err(ModelError::TensorShape {
                name: info.name.clone(),
                expected: expected.to_vec(),
                found: info.dims.clone(),
            });
        }
        Ok(())
    }

    fn check_bytes(info: &TensorInfo, rows: usize, cols: usize) -> Result<(), ModelError> {
        let bad = || ModelError::TensorType { name: info.name.clone(), ty: info.ggml_type };
        let row = info.ggml_type.row_bytes(cols as u64).ok_or_else(bad)?;
        let total = row.checked_mul(rows as u64).ok_or_else(bad)?;
        if total != info.n_bytes {
            return Err(ModelError::TensorShape {
                name: format!("{} (byte size {} != {})", info.name, info.n_bytes, total),
                expected: vec![cols as u64, rows as u64],
                found: info.dims.clone(),
            });
        }
        Ok(())
    }

    /// A `[rows, cols]` matrix (ggml dims `[cols, rows]`).
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix, ModelError> {
        let info = self.find(name)?;
        Self::check_shape(info, &[cols as u64, rows as u64])?;
        if !matrix_type_ok(info.ggml_type) {
            return Err(ModelError::TensorType { name: name.to_string(), ty: info.ggml_type });
        }
        Self::check_bytes(info, rows, cols)?;
        Ok(Matrix { info: info.clone(), rows, cols })
    }

    /// A 3-D tensor of `n` stacked `[rows, cols]` matrices (ggml dims `[cols, rows, n]`:
    /// MoE experts, MLA's per-head `attn_k_b` / `attn_v_b`), as `n` matrices that each
    /// reference their own slice of the file (nothing is copied; experts stay quantized).
    pub fn stacked(&self, name: &str, n: usize, rows: usize, cols: usize) -> Result<Vec<Matrix>, ModelError> {
        let info = self.find(name)?;
        Self::check_shape(info, &[cols as u64, rows as u64, n as u64])?;
        if !matrix_type_ok(info.ggml_type) || n == 0 {
            return Err(ModelError::TensorType { name: name.to_string(), ty: info.ggml_type });
        }
        let rows_total = rows.checked_mul(n).ok_or_else(|| ModelError::BadHparams(format!("{name}: {n} x {rows} rows overflow")))?;
        Self::check_bytes(info, rows_total, cols)?;
        let slice = info.n_bytes / n as u64;
        Ok((0..n)
            .map(|i| {
                let mut part = info.clone();
                part.name = format!("{name}[{i}]");
                part.dims = vec![cols as u64, rows as u64];
                part.offset = info.offset + slice * i as u64;
                part.n_bytes = slice;
                Matrix { info: part, rows, cols }
            })
            .collect())
    }

    /// Rows `first .. first + rows` of a `[total_rows, cols]` matrix, as its own matrix
    /// referencing that slice of the file.
    pub fn row_slice(m: &Matrix, first: usize, rows: usize) -> Result<Matrix, ModelError> {
        let bad = || ModelError::TensorType { name: m.info.name.clone(), ty: m.info.ggml_type };
        if first + rows > m.rows {
            return Err(bad());
        }
        let row_bytes = m.info.ggml_type.row_bytes(m.cols as u64).ok_or_else(bad)?;
        let mut part = m.info.clone();
        part.name = format!("{}[{first}..{}]", m.info.name, first + rows);
        part.dims = vec![m.cols as u64, rows as u64];
        part.offset = m.info.offset + row_bytes * first as u64;
        part.n_bytes = row_bytes * rows as u64;
        Ok(Matrix { info: part, rows, cols: m.cols })
    }

    /// A whole matrix dequantized to f32, `[rows, cols]` row-major (for small weights that
    /// must be rearranged at load, such as a combined MLA `attn_kv_b`).
    pub fn dequantized(&self, m: &Matrix) -> Result<Vec<f32>, ModelError> {
        let view = m.view(self.file);
        let mut out = vec![0.0f32; m.rows * m.cols];
        for (r, row) in out.chunks_exact_mut(m.cols.max(1)).enumerate() {
            jikji_kernels::get_row(&view, r, row)?;
        }
        Ok(out)
    }

    pub fn opt_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Option<Matrix>, ModelError> {
        if self.has(name) {
            self.matrix(name, rows, cols).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A length-`n` vector, dequantized to f32.
    pub fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        let info = self.find(name)?;
        Self::check_shape(info, &[n as u64])?;
        if !matches!(info.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            return Err(ModelError::TensorType { name: name.to_string(), ty: info.ggml_type });
        }
        Self::check_bytes(info, 1, n)?;
        let data = self.file.tensor_data(info);
        let mut out = vec![0.0f32; n];
        match info.ggml_type {
            GgmlType::F32 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            GgmlType::F16 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            _ => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                    *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
        }
        Ok(out)
    }

    pub fn opt_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>, ModelError> {
        if self.has(name) {
            self.vector(name, n).map(Some)
        } else {
            Ok(None)
        }
    }
}
