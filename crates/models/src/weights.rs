//! Weights: validated references into the GGUF file, handed to the backend.
//!
//! Every tensor is checked when the model loads: present, of a usable type, of the exact
//! shape the hyper-parameters imply, with a byte size matching that shape. Only then does
//! the backend see it ([`Backend::load_matrix`]), so a forward pass never re-checks a
//! weight and a backend never sees a malformed one. Matrices stay in the file's type
//! (quantized); small vectors (norm weights, biases) are read to f32 here.

use crate::error::ModelError;
use jikji_backend::{Backend, MatrixRef};
use jikji_gguf::{GgmlType, GgufFile, TensorInfo};
use std::sync::Arc;

/// Types the matmul kernels accept for weights.
fn matrix_type_ok(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K)
}

/// Looks up, validates and loads the tensors of one file onto a backend.
pub struct Loader<'a, B: Backend> {
    pub file: &'a Arc<GgufFile>,
    pub be: &'a B,
}

impl<'a, B: Backend> Loader<'a, B> {
    pub fn new(file: &'a Arc<GgufFile>, be: &'a B) -> Self {
        Loader { file, be }
    }

    pub fn has(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }

    fn find(&self, name: &str) -> Result<&'a TensorInfo, ModelError> {
        self.file.tensor(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }

    fn check_shape(info: &TensorInfo, expected: &[u64]) -> Result<(), ModelError> {
        if info.dims.as_slice() != expected {
            return Err(ModelError::TensorShape { name: info.name.clone(), expected: expected.to_vec(), found: info.dims.clone() });
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

    /// A validated `[rows, cols]` matrix reference (ggml dims `[cols, rows]`).
    pub fn matrix_ref(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixRef, ModelError> {
        let info = self.find(name)?;
        Self::check_shape(info, &[cols as u64, rows as u64])?;
        if !matrix_type_ok(info.ggml_type) {
            return Err(ModelError::TensorType { name: name.to_string(), ty: info.ggml_type });
        }
        Self::check_bytes(info, rows, cols)?;
        Ok(MatrixRef { file: self.file.clone(), info: info.clone(), rows, cols })
    }

    /// A `[rows, cols]` matrix on the backend.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<B::Matrix, ModelError> {
        self.load(&self.matrix_ref(name, rows, cols)?)
    }

    pub fn opt_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Option<B::Matrix>, ModelError> {
        if self.has(name) {
            self.matrix(name, rows, cols).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A validated reference onto the backend.
    pub fn load(&self, m: &MatrixRef) -> Result<B::Matrix, ModelError> {
        Ok(self.be.load_matrix(m)?)
    }

    /// A 3-D tensor of `n` stacked `[rows, cols]` matrices (ggml dims `[cols, rows, n]`:
    /// MoE experts, MLA's per-head `attn_k_b` / `attn_v_b`), as `n` references to their
    /// own slices of the file (experts stay quantized; a token reads only its experts).
    pub fn stacked_refs(&self, name: &str, n: usize, rows: usize, cols: usize) -> Result<Vec<MatrixRef>, ModelError> {
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
                MatrixRef { file: self.file.clone(), info: part, rows, cols }
            })
            .collect())
    }

    /// [`Loader::stacked_refs`] loaded onto the backend.
    pub fn stacked(&self, name: &str, n: usize, rows: usize, cols: usize) -> Result<Vec<B::Matrix>, ModelError> {
        self.stacked_refs(name, n, rows, cols)?.iter().map(|m| self.load(m)).collect()
    }

    /// Rows `first .. first + rows` of a `[total_rows, cols]` matrix, as its own reference
    /// to that slice of the file.
    pub fn row_slice(m: &MatrixRef, first: usize, rows: usize) -> Result<MatrixRef, ModelError> {
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
        Ok(MatrixRef { file: m.file.clone(), info: part, rows, cols: m.cols })
    }

    /// A length-`n` vector read to f32 on the host.
    pub fn host_vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
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

    pub fn opt_host_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>, ModelError> {
        if self.has(name) {
            self.host_vector(name, n).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A length-`n` vector on the backend.
    pub fn vector(&self, name: &str, n: usize) -> Result<B::Vector, ModelError> {
        Ok(self.be.load_vector(self.host_vector(name, n)?)?)
    }

    /// A vector that must be present when `required`, else may be absent.
    pub fn vector_if(&self, name: &str, n: usize, required: bool) -> Result<Option<B::Vector>, ModelError> {
        if required || self.has(name) {
            self.vector(name, n).map(Some)
        } else {
            Ok(None)
        }
    }
}
