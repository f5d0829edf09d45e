//! Elementwise and row operations of transformer forward passes, on f32, with ggml's CPU
//! numerics where they matter:
//!
//! - `rms_norm`: sum of squares accumulated in f64 (ggml's `ggml_float`), `scale =
//!   1 / sqrt(mean + eps)` in f32, `y = x * scale`; the weight is a separate `mul`, as in
//!   llama.cpp's graph (`rms_norm_weighted` fuses the two with the same rounding).
//! - `softmax_inplace`: max subtraction, `expf`, sum in f64, multiply by `(1/sum) as f32`.
//! - `rope`: ggml's rotation cache: `theta_scale = powf(base, -2 / n_rot)`, per-pair angle
//!   built by repeated f32 multiplication from the position, `freq_scale`, optional
//!   per-pair frequency factors and `attn_factor` (YaRN's ext_factor = 0 only).
//! - `gelu`: ggml's CPU backend evaluates GELU (tanh approximation) through a table over
//!   f16 inputs: the input is rounded to f16, `0.5x(1 + tanh(√(2/π)·x·(1 + 0.044715x²)))`
//!   computed in f32, the result rounded to f16; |x| ≥ 10 short-cuts to 0 or x. `gelu`
//!   reproduces exactly that; `gelu_exact_f32` is the formula without f16 rounding.
//! - `silu`: `x / (1 + expf(-x))`.
//!
//! Loops are plain slices/`chunks_exact` so the compiler can vectorize them. Functions that
//! take several buffers check their lengths and return [`KernelError`] instead of panicking.

use crate::KernelError;

fn size_err(what: &str, detail: String) -> KernelError {
    KernelError::Size(format!("{what}: {detail}"))
}

fn same_len(what: &str, a: usize, b: usize) -> Result<(), KernelError> {
    if a != b {
        return Err(size_err(what, format!("lengths differ ({a} vs {b})")));
    }
    Ok(())
}

// ------------------------------------------------------------------ norms

/// Sum of squares of one row: f32 products accumulated in f64 (four lanes).
#[inline]
fn sum_sq(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let rem = chunks.remainder();
    for c in chunks {
        for l in 0..4 {
            acc[l] += (c[l] * c[l]) as f64;
        }
    }
    let tail: f64 = rem.iter().map(|&v| (v * v) as f64).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// ggml's RMS scale of one row: `1 / sqrtf(mean(x²) + eps)`.
#[inline]
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let mean = (sum_sq(x) / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// RMS norm of one row, no weight: `out = x / sqrt(mean(x²) + eps)`.
pub fn rms_norm(x: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm", x.len(), out.len())?;
    let scale = rms_scale(x, eps);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * scale;
    }
    Ok(())
}

/// RMS norm of each row of `x` ([n_rows, dim]) into `out` (same shape), no weight.
pub fn rms_norm_rows(x: &[f32], dim: usize, eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm_rows", x.len(), out.len())?;
    check_rows("rms_norm_rows", x.len(), dim)?;
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        rms_norm(xr, eps, or)?;
    }
    Ok(())
}

/// RMS norm then multiplication by `w` (`[dim]`) for each row of `x` (`[n_rows, dim]`):
/// `out = (x * scale) * w`, the same roundings as ggml's separate `rms_norm` and `mul`.
pub fn rms_norm_weighted(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm_weighted", x.len(), out.len())?;
    let dim = w.len();
    check_rows("rms_norm_weighted", x.len(), dim)?;
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let scale = rms_scale(xr, eps);
        for ((o, &v), &wv) in or.iter_mut().zip(xr).zip(w) {
            *o = (v * scale) * wv;
        }
    }
    Ok(())
}

/// In-place [`rms_norm_weighted`] over rows of `x`.
pub fn rms_norm_weighted_inplace(x: &mut [f32], w: &[f32], eps: f32) -> Result<(), KernelError> {
    let dim = w.len();
    check_rows("rms_norm_weighted_inplace", x.len(), dim)?;
    for xr in x.chunks_exact_mut(dim) {
        let scale = rms_scale(xr, eps);
        for (v, &wv) in xr.iter_mut().zip(w) {
            *v = (*v * scale) * wv;
        }
    }
    Ok(())
}

fn check_rows(what: &str, len: usize, dim: usize) -> Result<(), KernelError> {
    if dim == 0 {
        if len == 0 {
            return Ok(());
        }
        return Err(size_err(what, "row width is 0".into()));
    }
    if len % dim != 0 {
        return Err(size_err(what, format!("{len} values are not whole rows of {dim}")));
    }
    Ok(())
}

// ------------------------------------------------------------------ elementwise

/// `out[i] = x[i] * w[i % w.len()]`: multiply each row of `x` by the weight `w`
/// (`x.len()` must be a multiple of `w.len()`).
pub fn mul(x: &[f32], w: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    same_len("mul", x.len(), out.len())?;
    check_rows("mul", x.len(), w.len())?;
    if w.is_empty() {
        return Ok(());
    }
    for (xr, or) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        for ((o, &a), &b) in or.iter_mut().zip(xr).zip(w) {
            *o = a * b;
        }
    }
    Ok(())
}

/// In-place row-broadcast multiplication: `x[i] *= w[i % w.len()]`.
pub fn mul_inplace(x: &mut [f32], w: &[f32]) -> Result<(), KernelError> {
    check_rows("mul_inplace", x.len(), w.len())?;
    if w.is_empty() {
        return Ok(());
    }
    for xr in x.chunks_exact_mut(w.len()) {
        for (a, &b) in xr.iter_mut().zip(w) {
            *a *= b;
        }
    }
    Ok(())
}

/// `x[i] += y[i % y.len()]` (same length, or `y` a row broadcast over rows of `x`, e.g. a
/// bias).
pub fn add_inplace(x: &mut [f32], y: &[f32]) -> Result<(), KernelError> {
    check_rows("add_inplace", x.len(), y.len())?;
    if y.is_empty() {
        return Ok(());
    }
    for xr in x.chunks_exact_mut(y.len()) {
        for (a, &b) in xr.iter_mut().zip(y) {
            *a += b;
        }
    }
    Ok(())
}

/// `x[i] *= s`.
pub fn scale_inplace(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

// ------------------------------------------------------------------ softmax

/// Softmax of one row in place, as ggml computes it: subtract the max, `expf`, sum in f64,
/// multiply by `(1 / sum) as f32`. A row that is entirely `-inf` (fully masked) becomes all
/// zeros rather than NaN.
pub fn softmax_inplace(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        let e = (*v - max).exp();
        sum += e as f64;
        *v = e;
    }
    let inv = (1.0 / sum) as f32;
    scale_inplace(x, inv);
}

// ------------------------------------------------------------------ rope

/// Which dimensions rotate together (llama.cpp's `rope_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs `(2i, 2i+1)` (llama, mistral; ggml `GGML_ROPE_TYPE_NORM` = 0).
    Norm,
    /// Pairs `(i, i + n_rot/2)` (qwen2, qwen3, gemma3, GPT-NeoX; `GGML_ROPE_TYPE_NEOX`).
    Neox,
}

/// Rotary embedding parameters (ggml's `ggml_rope_ext` with `ext_factor = 0`).
#[derive(Clone, Copy, Debug)]
pub struct RopeParams<'a> {
    pub mode: RopeMode,
    /// Rotated dimensions per head (even, ≤ head_dim); the rest pass through.
    pub n_rot: usize,
    /// `rope.freq_base` (theta base), e.g. 10000.
    pub theta_base: f32,
    /// `1 / rope.scaling.factor` for linear scaling; 1 otherwise.
    pub freq_scale: f32,
    /// Multiplies cos and sin (ggml `attn_factor`); 1 normally.
    pub attn_factor: f32,
    /// Optional per-pair frequency divisors (`rope_freqs.weight`, len `n_rot / 2`).
    pub freq_factors: Option<&'a [f32]>,
}

impl RopeParams<'_> {
    /// Plain rope: no scaling, no frequency factors.
    pub fn new(mode: RopeMode, n_rot: usize, theta_base: f32) -> Self {
        RopeParams { mode, n_rot, theta_base, freq_scale: 1.0, attn_factor: 1.0, freq_factors: None }
    }
}

/// Fills `cache` (len n_rot) with interleaved (cos, sin) for each pair at position `pos`,
/// exactly as ggml's `ggml_rope_cache_init` does.
fn rope_cache(pos: f32, p: &RopeParams, theta_scale: f32, cache: &mut [f32]) {
    let mut theta = pos;
    for (k, cs) in cache.chunks_exact_mut(2).enumerate() {
        let ff = p.freq_factors.and_then(|f| f.get(k).copied()).unwrap_or(1.0);
        let t = p.freq_scale * (theta / ff);
        cs[0] = t.cos() * p.attn_factor;
        cs[1] = t.sin() * p.attn_factor;
        theta *= theta_scale;
    }
}

/// Applies rotary position embedding in place to `x` ([n_tokens, n_heads, head_dim]),
/// token `t` at position `positions[t]`; only the first `p.n_rot` dims of each head rotate.
pub fn rope(x: &mut [f32], n_tokens: usize, n_heads: usize, head_dim: usize, positions: &[usize], p: &RopeParams) -> Result<(), KernelError> {
    let n_rot = p.n_rot;
    if n_rot % 2 != 0 || n_rot > head_dim {
        return Err(size_err("rope", format!("n_rot {n_rot} must be even and at most head_dim {head_dim}")));
    }
    let need = n_tokens
        .checked_mul(n_heads)
        .and_then(|v| v.checked_mul(head_dim))
        .ok_or_else(|| size_err("rope", "shape overflows".into()))?;
    if x.len() != need {
        return Err(size_err("rope", format!("x has {} values, shape [{n_tokens}, {n_heads}, {head_dim}] needs {need}", x.len())));
    }
    if positions.len() != n_tokens {
        return Err(size_err("rope", format!("{} positions for {n_tokens} tokens", positions.len())));
    }
    if let Some(f) = p.freq_factors {
        if f.len() < n_rot / 2 {
            return Err(size_err("rope", format!("{} frequency factors, need {}", f.len(), n_rot / 2)));
        }
    }
    if n_rot == 0 || need == 0 {
        return Ok(());
    }
    let theta_scale = p.theta_base.powf(-2.0 / n_rot as f32);
    let mut cache = vec![0.0f32; n_rot];
    let half = n_rot / 2;
    for (tok, &pos) in x.chunks_exact_mut(n_heads * head_dim).zip(positions) {
        rope_cache(pos as f32, p, theta_scale, &mut cache);
        for head in tok.chunks_exact_mut(head_dim) {
            match p.mode {
                RopeMode::Norm => {
                    for (pair, cs) in head[..n_rot].chunks_exact_mut(2).zip(cache.chunks_exact(2)) {
                        let (x0, x1) = (pair[0], pair[1]);
                        pair[0] = x0 * cs[0] - x1 * cs[1];
                        pair[1] = x0 * cs[1] + x1 * cs[0];
                    }
                }
                RopeMode::Neox => {
                    let (lo, hi) = head[..n_rot].split_at_mut(half);
                    for ((a, b), cs) in lo.iter_mut().zip(hi.iter_mut()).zip(cache.chunks_exact(2)) {
                        let (x0, x1) = (*a, *b);
                        *a = x0 * cs[0] - x1 * cs[1];
                        *b = x0 * cs[1] + x1 * cs[0];
                    }
                }
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ activations

/// SiLU (swish): `x / (1 + expf(-x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// In-place SiLU.
pub fn silu_inplace(x: &mut [f32]) {
    for v in x {
        *v = silu(*v);
    }
}

const GELU_COEF_A: f32 = 0.044715;
/// √(2/π), rounded to f32 as ggml's `SQRT_2_OVER_PI` literal is.
const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_4_f64 as f32;

/// The tanh-approximation GELU evaluated in f32 (ggml's `ggml_gelu_f32`).
#[inline]
pub fn gelu_exact_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// GELU with ggml's CPU numerics: input rounded to f16, [`gelu_exact_f32`], result rounded
/// to f16 (what ggml's f16 lookup table holds); `x <= -10` gives 0 and `x >= 10` gives x.
#[inline]
pub fn gelu(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let xh = half::f16::from_f32(x).to_f32();
        half::f16::from_f32(gelu_exact_f32(xh)).to_f32()
    }
}

/// In-place [`gelu`].
pub fn gelu_inplace(x: &mut [f32]) {
    for v in x {
        *v = gelu(*v);
    }
}

/// SwiGLU: `out[i] = silu(gate[i]) * up[i]` (ggml `swiglu`, llama/qwen FFN).
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    same_len("swiglu", gate.len(), up.len())?;
    same_len("swiglu", gate.len(), out.len())?;
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu(g) * u;
    }
    Ok(())
}

/// In-place SwiGLU: `gate[i] = silu(gate[i]) * up[i]`.
pub fn swiglu_inplace(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    same_len("swiglu_inplace", gate.len(), up.len())?;
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
    Ok(())
}

/// GeGLU: `out[i] = gelu(gate[i]) * up[i]` with ggml's GELU numerics (gemma FFN); for
/// `gate >= 10` ggml multiplies the raw value.
pub fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    same_len("geglu", gate.len(), up.len())?;
    same_len("geglu", gate.len(), out.len())?;
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = gelu(g) * u;
    }
    Ok(())
}

/// In-place GeGLU: `gate[i] = gelu(gate[i]) * up[i]`.
pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    same_len("geglu_inplace", gate.len(), up.len())?;
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = gelu(*g) * u;
    }
    Ok(())
}

// ------------------------------------------------------------------ f16 / bf16 rows

/// f32 → f16 (round to nearest even).
pub fn f32_to_f16_row(src: &[f32], dst: &mut [half::f16]) -> Result<(), KernelError> {
    same_len("f32_to_f16_row", src.len(), dst.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_f32(s);
    }
    Ok(())
}

/// f16 → f32 (exact).
pub fn f16_to_f32_row(src: &[half::f16], dst: &mut [f32]) -> Result<(), KernelError> {
    same_len("f16_to_f32_row", src.len(), dst.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
    Ok(())
}

/// f32 → bf16 (round to nearest even, NaN stays NaN).
pub fn f32_to_bf16_row(src: &[f32], dst: &mut [half::bf16]) -> Result<(), KernelError> {
    same_len("f32_to_bf16_row", src.len(), dst.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::bf16::from_f32(s);
    }
    Ok(())
}

/// bf16 → f32 (exact).
pub fn bf16_to_f32_row(src: &[half::bf16], dst: &mut [f32]) -> Result<(), KernelError> {
    same_len("bf16_to_f32_row", src.len(), dst.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
    Ok(())
}
