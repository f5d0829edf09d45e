//! Row-broadcast elementwise products, sums and scaling (ggml's `mul`, `add`, `scale`).
//!
//! Each loop is independent per element, so it is one generic body compiled twice by
//! `multiversion!` (portable and AVX2 + FMA): Rust never contracts `a * b + c` into an
//! FMA nor reorders these operations, so the wide build gives identical results and needs
//! no separate scalar twin.

use super::{check_rows, same_len};
use crate::KernelError;

#[inline(always)]
fn mul_rows(x: &[f32], w: &[f32], out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        for ((o, &a), &b) in or.iter_mut().zip(xr).zip(w) {
            *o = a * b;
        }
    }
}
multiversion!(mul_rows_mv, mul_rows, (x: &[f32], w: &[f32], out: &mut [f32]));

#[inline(always)]
fn mul_rows_inplace(x: &mut [f32], w: &[f32]) {
    for xr in x.chunks_exact_mut(w.len()) {
        for (a, &b) in xr.iter_mut().zip(w) {
            *a *= b;
        }
    }
}
multiversion!(mul_rows_inplace_mv, mul_rows_inplace, (x: &mut [f32], w: &[f32]));

#[inline(always)]
fn add_rows_inplace(x: &mut [f32], y: &[f32]) {
    for xr in x.chunks_exact_mut(y.len()) {
        for (a, &b) in xr.iter_mut().zip(y) {
            *a += b;
        }
    }
}
multiversion!(add_rows_inplace_mv, add_rows_inplace, (x: &mut [f32], y: &[f32]));

#[inline(always)]
fn scale_slice(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}
multiversion!(scale_slice_mv, scale_slice, (x: &mut [f32], s: f32));

/// `out[i] = x[i] * w[i % w.len()]`: multiply each row of `x` by the weight `w`
/// (`x.len()` must be a multiple of `w.len()`).
pub fn mul(x: &[f32], w: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    same_len("mul", x.len(), out.len())?;
    check_rows("mul", x.len(), w.len())?;
    if w.is_empty() {
        return Ok(());
    }
    mul_rows_mv(x, w, out);
    Ok(())
}

/// In-place row-broadcast multiplication: `x[i] *= w[i % w.len()]`.
pub fn mul_inplace(x: &mut [f32], w: &[f32]) -> Result<(), KernelError> {
    check_rows("mul_inplace", x.len(), w.len())?;
    if w.is_empty() {
        return Ok(());
    }
    mul_rows_inplace_mv(x, w);
    Ok(())
}

/// `x[i] += y[i % y.len()]` (same length, or `y` a row broadcast over rows of `x`, e.g. a
/// bias).
pub fn add_inplace(x: &mut [f32], y: &[f32]) -> Result<(), KernelError> {
    check_rows("add_inplace", x.len(), y.len())?;
    if y.is_empty() {
        return Ok(());
    }
    add_rows_inplace_mv(x, y);
    Ok(())
}

/// `x[i] *= s`.
pub fn scale_inplace(x: &mut [f32], s: f32) {
    scale_slice_mv(x, s);
}
