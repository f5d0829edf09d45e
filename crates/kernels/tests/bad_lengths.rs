//! Bad lengths and unsupported types are `KernelError`s, never panics.

use jikji_kernels::ops::{self, RopeMode, RopeParams};
use jikji_kernels::{
    dequantize_row, get_row, matmul, matmul_quantized, quantize_activations, quantize_row, try_vec_dot, vec_dot, GgmlType, KernelError, WeightView,
};

#[test]
fn dequantize_rejects_partial_blocks_and_wrong_byte_counts() {
    let mut dst = vec![0.0f32; 31];
    assert!(matches!(dequantize_row(GgmlType::Q4_0, &[0u8; 18], &mut dst), Err(KernelError::BadLength { .. })));
    let mut dst = vec![0.0f32; 32];
    assert!(matches!(dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut dst), Err(KernelError::Size(_))));
    assert!(matches!(dequantize_row(GgmlType::Q4_0, &[0u8; 19], &mut dst), Err(KernelError::Size(_))));
    let mut dst = vec![0.0f32; 300];
    assert!(dequantize_row(GgmlType::Q4_K, &[0u8; 144 * 2], &mut dst).is_err());
}

#[test]
fn quantize_rejects_partial_blocks_and_wrong_byte_counts() {
    let mut dst = vec![0u8; 292];
    assert!(matches!(quantize_row(GgmlType::Q8_K, &[0.0; 255], &mut dst), Err(KernelError::BadLength { .. })));
    assert!(matches!(quantize_row(GgmlType::Q8_K, &[0.0; 256], &mut dst[..291]), Err(KernelError::Size(_))));
    assert!(quantize_row(GgmlType::F16, &[0.0; 3], &mut [0u8; 5]).is_err());
}

#[test]
fn integer_types_are_unsupported() {
    let mut dst = vec![0.0f32; 4];
    assert!(matches!(dequantize_row(GgmlType::I32, &[0u8; 16], &mut dst), Err(KernelError::Unsupported(GgmlType::I32))));
    assert!(matches!(quantize_row(GgmlType::I8, &[0.0; 4], &mut [0u8; 4]), Err(KernelError::Unsupported(_))));
    let w = WeightView { ty: GgmlType::F64, data: &[0u8; 16], rows: 2, cols: 1 };
    assert!(matmul(&w, &[1.0], 1, &mut [0.0; 2]).is_err());
}

#[test]
fn vec_dot_with_wrong_lengths_is_nan_and_try_vec_dot_errors() {
    let w = vec![0u8; 18];
    let x = vec![0u8; 34];
    assert!(vec_dot(GgmlType::Q4_0, 32, &w, &x).is_finite());
    assert!(vec_dot(GgmlType::Q4_0, 32, &w[..17], &x).is_nan());
    assert!(vec_dot(GgmlType::Q4_0, 33, &w, &x).is_nan());
    assert!(vec_dot(GgmlType::Q4_0, 32, &w, &x[..33]).is_nan());
    assert!(try_vec_dot(GgmlType::Q4_0, 32, &w, &[0u8; 36]).is_err(), "Q8_1 row given where Q8_0 is expected");
}

#[test]
fn matmul_checks_weight_input_and_output_sizes() {
    let data = vec![0u8; 3 * 18];
    let w = WeightView { ty: GgmlType::Q4_0, data: &data, rows: 3, cols: 32 };
    let x = vec![0.0f32; 64];
    let mut y = vec![0.0f32; 6];
    assert!(matmul(&w, &x, 2, &mut y).is_ok());
    assert!(matmul(&w, &x[..63], 2, &mut y).is_err(), "short input");
    assert!(matmul(&w, &x, 2, &mut y[..5]).is_err(), "short output");
    assert!(matmul(&w, &x, 3, &mut y).is_err(), "token count does not match");
    let short = WeightView { data: &data[..53], ..w };
    assert!(matmul(&short, &x, 2, &mut y).is_err(), "truncated weight");
    let odd = WeightView { cols: 31, ..w };
    assert!(matmul(&odd, &x[..62], 2, &mut y).is_err(), "cols not whole blocks");
    let huge = WeightView { rows: usize::MAX, ..w };
    assert!(matmul(&huge, &x, 2, &mut y).is_err(), "overflowing shape");
    let xq = quantize_activations(GgmlType::Q4_0, &x, 32, 2).expect("quantize activations");
    assert!(matmul_quantized(&w, &xq[..xq.len() - 1], 2, &mut y).is_err());
}

#[test]
fn get_row_rejects_out_of_range_rows_and_wrong_destinations() {
    let data = vec![0u8; 2 * 34];
    let w = WeightView { ty: GgmlType::Q8_0, data: &data, rows: 2, cols: 32 };
    let mut dst = vec![0.0f32; 32];
    assert!(get_row(&w, 1, &mut dst).is_ok());
    assert!(get_row(&w, 2, &mut dst).is_err());
    assert!(get_row(&w, usize::MAX, &mut dst).is_err());
    assert!(get_row(&w, 0, &mut dst[..31]).is_err());
}

#[test]
fn ops_reject_mismatched_lengths() {
    let mut out = vec![0.0f32; 3];
    assert!(ops::rms_norm(&[1.0; 4], 1e-6, &mut out).is_err());
    assert!(ops::rms_norm_weighted(&[1.0; 8], &[1.0; 3], 1e-6, &mut [0.0; 8]).is_err());
    assert!(ops::mul_inplace(&mut [1.0; 5], &[1.0; 2]).is_err());
    assert!(ops::add_inplace(&mut [1.0; 5], &[1.0; 2]).is_err());
    assert!(ops::swiglu(&[1.0; 4], &[1.0; 3], &mut [0.0; 4]).is_err());
    assert!(ops::geglu(&[1.0; 4], &[1.0; 4], &mut [0.0; 3]).is_err());
    let p = RopeParams::new(RopeMode::Neox, 6, 10000.0);
    assert!(ops::rope(&mut [0.0; 16], 2, 1, 8, &[0, 1], &p).is_ok());
    assert!(ops::rope(&mut [0.0; 15], 2, 1, 8, &[0, 1], &p).is_err(), "short x");
    assert!(ops::rope(&mut [0.0; 16], 2, 1, 8, &[0], &p).is_err(), "missing position");
    let odd = RopeParams::new(RopeMode::Norm, 5, 10000.0);
    assert!(ops::rope(&mut [0.0; 16], 2, 1, 8, &[0, 1], &odd).is_err(), "odd n_rot");
    let wide = RopeParams::new(RopeMode::Norm, 10, 10000.0);
    assert!(ops::rope(&mut [0.0; 16], 2, 1, 8, &[0, 1], &wide).is_err(), "n_rot > head_dim");
}
