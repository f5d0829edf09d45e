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
//!   reproduces exactly that (through the same 64 Ki-entry table, built once in a
//!   `OnceLock`); `gelu_exact_f32` is the formula without f16 rounding.
//! - `silu`: `x / (1 + expf(-x))`.
//! - `v_expf`, `exp_sub_ggml_inplace`, `silu_ggml`, `swiglu_ggml_inplace`: ggml's
//!   *vectorized* x86 numerics (`ggml_v_expf`, a degree-5 polynomial and a `scalef`,
//!   within about 1 ulp of `expf` but not always equal; `ggml_vec_swiglu_f32` uses it on
//!   whole chunks of 16 and `expf` on the tail), for forward passes that must match a peer
//!   built with AVX-512 bit for bit.
//!
//! **Speed without changing a bit.** Every public function computes exactly what its
//! scalar twin in [`scalar`] computes — the twins are the reference and the tests compare
//! the two bit for bit. The fast paths are chosen once at run time ([`isa`]):
//! - loops whose arithmetic is already independent per element (scaling, `mul`, `add`,
//!   the rope rotation) are the same generic bodies compiled a second time with
//!   `#[target_feature(enable = "avx2,fma")]` (Rust never contracts `a * b + c` into an
//!   FMA nor reorders float sums, so the wider vectors give identical results);
//! - reductions and lookups are written with `std::arch` intrinsics in the exact order of
//!   the scalar twin: the rms sum of squares keeps its four f64 lanes, the GELU lookup
//!   converts to f16 with `vcvtps2ph` (round to nearest even, like `half`) and gathers
//!   from the table, and `v_expf` is ggml's AVX-512 sequence whose scalar twin reproduces
//!   each fused multiply-add and the single rounding of `scalef`;
//! - `expf` itself (softmax, `silu`) stays libm's, so those loops are only partly faster.
//!
//! Functions that take several buffers check their lengths and return [`KernelError`]
//! instead of panicking.

use std::sync::OnceLock;

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

// ------------------------------------------------------------------ dispatch

/// The instruction set the fast paths of this module use, detected once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpsIsa {
    /// Portable code only (the [`scalar`] twins).
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX-512 F/BW/VL on top of AVX2.
    Avx512,
}

/// The instruction set chosen for this CPU (detected on first use).
pub fn isa() -> OpsIsa {
    static ISA: OnceLock<OpsIsa> = OnceLock::new();
    *ISA.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> OpsIsa {
    let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c");
    let avx512 = avx2
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl");
    if avx512 {
        OpsIsa::Avx512
    } else if avx2 {
        OpsIsa::Avx2
    } else {
        OpsIsa::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> OpsIsa {
    OpsIsa::Scalar
}

/// True when the AVX2 (+FMA, F16C) paths may run.
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn use_avx2() -> bool {
    isa() >= OpsIsa::Avx2
}

/// Runs the generic body `$body` compiled for AVX2+FMA when the CPU has it, else the
/// portable build of the same body. `$name` is a fresh wrapper name; arguments are typed.
macro_rules! multiversion {
    ($name:ident, $body:ident, ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
        #[inline]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if use_avx2() {
                    // SAFETY: `use_avx2()` checked at run time that the CPU supports
                    // AVX2 and FMA, the features `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

// ------------------------------------------------------------------ norms

/// ggml's RMS scale of one row: `1 / sqrtf(mean(x²) + eps)`.
#[inline]
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let mean = (sum_sq(x) / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// Sum of squares of one row (see [`scalar::sum_sq`] for the order of operations).
#[inline]
fn sum_sq(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { x86::sum_sq_avx2(x) };
    }
    scalar::sum_sq(x)
}

#[inline(always)]
fn scale_into(x: &[f32], s: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * s;
    }
}
multiversion!(scale_into_mv, scale_into, (x: &[f32], s: f32, out: &mut [f32]));

#[inline(always)]
fn scale_mul_into(x: &[f32], s: f32, w: &[f32], out: &mut [f32]) {
    for ((o, &v), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = (v * s) * wv;
    }
}
multiversion!(scale_mul_into_mv, scale_mul_into, (x: &[f32], s: f32, w: &[f32], out: &mut [f32]));

#[inline(always)]
fn scale_mul_inplace(x: &mut [f32], s: f32, w: &[f32]) {
    for (v, &wv) in x.iter_mut().zip(w) {
        *v = (*v * s) * wv;
    }
}
multiversion!(scale_mul_inplace_mv, scale_mul_inplace, (x: &mut [f32], s: f32, w: &[f32]));

/// RMS norm of one row, no weight: `out = x / sqrt(mean(x²) + eps)`.
pub fn rms_norm(x: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm", x.len(), out.len())?;
    scale_into_mv(x, rms_scale(x, eps), out);
    Ok(())
}

/// RMS norm of each row of `x` ([n_rows, dim]) into `out` (same shape), no weight.
pub fn rms_norm_rows(x: &[f32], dim: usize, eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm_rows", x.len(), out.len())?;
    check_rows("rms_norm_rows", x.len(), dim)?;
    if dim == 0 {
        return Ok(());
    }
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        scale_into_mv(xr, rms_scale(xr, eps), or);
    }
    Ok(())
}

/// RMS norm then multiplication by `w` (`[dim]`) for each row of `x` (`[n_rows, dim]`):
/// `out = (x * scale) * w`, the same roundings as ggml's separate `rms_norm` and `mul`.
pub fn rms_norm_weighted(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    same_len("rms_norm_weighted", x.len(), out.len())?;
    let dim = w.len();
    check_rows("rms_norm_weighted", x.len(), dim)?;
    if dim == 0 {
        return Ok(());
    }
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        scale_mul_into_mv(xr, rms_scale(xr, eps), w, or);
    }
    Ok(())
}

/// In-place [`rms_norm_weighted`] over rows of `x`.
pub fn rms_norm_weighted_inplace(x: &mut [f32], w: &[f32], eps: f32) -> Result<(), KernelError> {
    let dim = w.len();
    check_rows("rms_norm_weighted_inplace", x.len(), dim)?;
    if dim == 0 {
        return Ok(());
    }
    for xr in x.chunks_exact_mut(dim) {
        let s = rms_scale(xr, eps);
        scale_mul_inplace_mv(xr, s, w);
    }
    Ok(())
}

// ------------------------------------------------------------------ elementwise

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

// ------------------------------------------------------------------ softmax

/// Largest element (`-inf` for an empty slice; NaNs are ignored as `f32::max` does).
#[inline]
fn max_of(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { x86::max_avx2(x) };
    }
    scalar::max_of(x)
}

/// Softmax of one row in place, as ggml computes it: subtract the max, `expf`, sum in f64,
/// multiply by `(1 / sum) as f32`. A row that is entirely `-inf` (fully masked) becomes all
/// zeros rather than NaN.
pub fn softmax_inplace(x: &mut [f32]) {
    let max = max_of(x);
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

/// Fills `cos`/`sin` (len n_rot / 2 each) for each pair at position `pos`, exactly as
/// ggml's `ggml_rope_cache_init` does.
fn rope_cache(pos: f32, p: &RopeParams, theta_scale: f32, cos: &mut [f32], sin: &mut [f32]) {
    let mut theta = pos;
    for (k, (c, s)) in cos.iter_mut().zip(sin.iter_mut()).enumerate() {
        let ff = p.freq_factors.and_then(|f| f.get(k).copied()).unwrap_or(1.0);
        let t = p.freq_scale * (theta / ff);
        *c = t.cos() * p.attn_factor;
        *s = t.sin() * p.attn_factor;
        theta *= theta_scale;
    }
}

/// Rotates every head of one token: `tok` = `[n_heads, head_dim]`, the first `2 *
/// cos.len()` dims of each head. Generic body, compiled twice by `multiversion!`.
#[inline(always)]
fn rope_token(tok: &mut [f32], head_dim: usize, neox: bool, cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in tok.chunks_exact_mut(head_dim) {
        if neox {
            let (lo, hi) = head[..2 * half].split_at_mut(half);
            for (((a, b), &c), &s) in lo.iter_mut().zip(hi.iter_mut()).zip(cos).zip(sin) {
                let (x0, x1) = (*a, *b);
                *a = x0 * c - x1 * s;
                *b = x0 * s + x1 * c;
            }
        } else {
            for ((pair, &c), &s) in head[..2 * half].chunks_exact_mut(2).zip(cos).zip(sin) {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * c - x1 * s;
                pair[1] = x0 * s + x1 * c;
            }
        }
    }
}
multiversion!(rope_token_mv, rope_token, (tok: &mut [f32], head_dim: usize, neox: bool, cos: &[f32], sin: &[f32]));

fn check_rope(x: &[f32], n_tokens: usize, n_heads: usize, head_dim: usize, positions: &[usize], p: &RopeParams) -> Result<usize, KernelError> {
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
    Ok(need)
}

/// Applies rotary position embedding in place to `x` ([n_tokens, n_heads, head_dim]),
/// token `t` at position `positions[t]`; only the first `p.n_rot` dims of each head rotate.
pub fn rope(x: &mut [f32], n_tokens: usize, n_heads: usize, head_dim: usize, positions: &[usize], p: &RopeParams) -> Result<(), KernelError> {
    let need = check_rope(x, n_tokens, n_heads, head_dim, positions, p)?;
    if p.n_rot == 0 || need == 0 {
        return Ok(());
    }
    let theta_scale = p.theta_base.powf(-2.0 / p.n_rot as f32);
    let half = p.n_rot / 2;
    let (mut cos, mut sin) = (vec![0.0f32; half], vec![0.0f32; half]);
    let neox = p.mode == RopeMode::Neox;
    for (tok, &pos) in x.chunks_exact_mut(n_heads * head_dim).zip(positions) {
        rope_cache(pos as f32, p, theta_scale, &mut cos, &mut sin);
        rope_token_mv(tok, head_dim, neox, &cos, &sin);
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

/// ggml's GELU table: entry `h` is `f16(gelu_exact_f32(f16 h))` as f32, for all 2^16 f16
/// bit patterns (256 KiB, built on first use).
fn gelu_table() -> &'static [f32] {
    static TABLE: OnceLock<Box<[f32]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // No ±10 short-cuts here: they apply to the unrounded input (an input just above
        // -10 rounds to the f16 -10, whose entry is the formula's -0).
        (0..=u16::MAX)
            .map(|h| half::f16::from_f32(gelu_exact_f32(half::f16::from_bits(h).to_f32())).to_f32())
            .collect()
    })
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
        gelu_table()[half::f16::from_f32(x).to_bits() as usize]
    }
}

/// In-place [`gelu`].
pub fn gelu_inplace(x: &mut [f32]) {
    geglu_impl(x, None);
}

/// `x[i] = gelu(x[i]) * up[i]` (or just `gelu(x[i])` without `up`), equal lengths.
fn geglu_impl(x: &mut [f32], up: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        let table = gelu_table();
        // SAFETY: AVX2 (and F16C) checked at run time; `table` has 65536 entries so every
        // f16 bit pattern indexes inside it.
        let done = unsafe {
            if isa() >= OpsIsa::Avx512 {
                x86::geglu_avx512(x, up, table)
            } else {
                x86::geglu_avx2(x, up, table)
            }
        };
        let rest = &mut x[done..];
        match up {
            Some(u) => rest.iter_mut().zip(&u[done..]).for_each(|(g, &u)| *g = gelu(*g) * u),
            None => rest.iter_mut().for_each(|g| *g = gelu(*g)),
        }
        return;
    }
    match up {
        Some(u) => x.iter_mut().zip(u).for_each(|(g, &u)| *g = gelu(*g) * u),
        None => x.iter_mut().for_each(|g| *g = gelu(*g)),
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
    out.copy_from_slice(gate);
    geglu_impl(out, Some(up));
    Ok(())
}

/// In-place GeGLU: `gate[i] = gelu(gate[i]) * up[i]`.
pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    same_len("geglu_inplace", gate.len(), up.len())?;
    geglu_impl(gate, Some(up));
    Ok(())
}

// ------------------------------------------------------------------ ggml's vectorized exp

/// ggml's `ggml_v_expf` (the AVX-512 version) for one value: a degree-5 polynomial after a
/// range reduction by `ln 2`, then `scalef`. Within about 1 ulp of `expf`, not always
/// equal; what llama.cpp's AVX-512 build computes in softmax and SiLU.
#[inline]
pub fn v_expf(x: f32) -> f32 {
    scalar::v_expf(x)
}

/// `x[i] = v_expf(x[i] - sub)` (the exponentials of a softmax after its max subtraction).
pub fn exp_sub_ggml_inplace(x: &mut [f32], sub: f32) {
    #[cfg(target_arch = "x86_64")]
    if isa() >= OpsIsa::Avx512 {
        // SAFETY: AVX-512F checked at run time.
        let done = unsafe { x86::exp_sub_avx512(x, sub) };
        scalar::exp_sub_ggml_inplace(&mut x[done..], sub);
        return;
    }
    scalar::exp_sub_ggml_inplace(x, sub)
}

/// ggml's vectorized SiLU for one value: `x / (1 + v_expf(0 - x))`.
#[inline]
pub fn silu_ggml(x: f32) -> f32 {
    x / (1.0 + v_expf(0.0 - x))
}

/// `ggml_vec_swiglu_f32` on one row, in place: `gate[i] = silu(gate[i]) * up[i]`, where
/// the whole chunks of 16 use [`silu_ggml`] and the tail uses `expf` ([`silu`]), as
/// llama.cpp's AVX-512 build does.
pub fn swiglu_ggml_inplace(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    same_len("swiglu_ggml_inplace", gate.len(), up.len())?;
    #[cfg(target_arch = "x86_64")]
    if isa() >= OpsIsa::Avx512 {
        // SAFETY: AVX-512F checked at run time; lengths are equal.
        let done = unsafe { x86::swiglu_avx512(gate, up) };
        let rest = gate.len() - done;
        scalar::swiglu_ggml_tail(&mut gate[done..], &up[done..], rest);
        return Ok(());
    }
    scalar::swiglu_ggml_tail(gate, up, gate.len());
    Ok(())
}

// ------------------------------------------------------------------ f16 / bf16 rows

/// f32 → f16 (round to nearest even; F16C eight at a time, the same bits as
/// `half::f16::from_f32`).
pub fn f32_to_f16_row(src: &[f32], dst: &mut [half::f16]) -> Result<(), KernelError> {
    same_len("f32_to_f16_row", src.len(), dst.len())?;
    #[allow(unused_mut)] // only the x86 fast path advances it
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2/F16C detected; equal lengths checked above.
        done = unsafe { x86::f32_to_f16_f16c(src, dst) };
    }
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = half::f16::from_f32(s);
    }
    Ok(())
}

/// f16 → f32 (exact).
pub fn f16_to_f32_row(src: &[half::f16], dst: &mut [f32]) -> Result<(), KernelError> {
    same_len("f16_to_f32_row", src.len(), dst.len())?;
    #[allow(unused_mut)] // only the x86 fast path advances it
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2/F16C detected; equal lengths checked above.
        done = unsafe { x86::f16_to_f32_f16c(src, dst) };
    }
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = s.to_f32();
    }
    Ok(())
}

/// Rounds every value to the nearest f16 and back (what storing into an f16 cache and
/// reading it again gives): ggml's f16 operands of attention, in place.
pub fn round_f16_inplace(x: &mut [f32]) {
    #[allow(unused_mut)] // only the x86 fast path advances it
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2/F16C detected.
        done = unsafe { x86::round_f16_f16c(x) };
    }
    for v in &mut x[done..] {
        *v = half::f16::from_f32(*v).to_f32();
    }
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

// ------------------------------------------------------------------ scalar twins

/// The portable reference of every fast path in this module. Each function here is what
/// the dispatched public function must reproduce bit for bit (tests compare the two).
pub mod scalar {
    use super::*;

    /// Sum of squares of one row: f32 products accumulated in f64 in four lanes (element
    /// `i` into lane `i % 4`), lanes combined as `(l0 + l1) + (l2 + l3)`, plus the tail
    /// summed in order.
    pub fn sum_sq(x: &[f32]) -> f64 {
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

    /// Largest element, NaNs ignored; `-inf` for an empty slice.
    pub fn max_of(x: &[f32]) -> f32 {
        x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
    }

    fn rms_scale(x: &[f32], eps: f32) -> f32 {
        if x.is_empty() {
            return 0.0;
        }
        let mean = (sum_sq(x) / x.len() as f64) as f32;
        1.0 / (mean + eps).sqrt()
    }

    /// Reference of [`super::rms_norm_weighted`] and [`super::rms_norm_weighted_inplace`].
    pub fn rms_norm_weighted(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        if w.is_empty() {
            return;
        }
        for (xr, or) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
            let s = rms_scale(xr, eps);
            for ((o, &v), &wv) in or.iter_mut().zip(xr).zip(w) {
                *o = (v * s) * wv;
            }
        }
    }

    /// Reference of [`super::rms_norm_rows`].
    pub fn rms_norm_rows(x: &[f32], dim: usize, eps: f32, out: &mut [f32]) {
        if dim == 0 {
            return;
        }
        for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let s = rms_scale(xr, eps);
            for (o, &v) in or.iter_mut().zip(xr) {
                *o = v * s;
            }
        }
    }

    /// Reference of [`super::softmax_inplace`].
    pub fn softmax_inplace(x: &mut [f32]) {
        let max = max_of(x);
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
        for v in x.iter_mut() {
            *v *= inv;
        }
    }

    /// Reference of [`super::rope`] (no validation: call with checked shapes).
    pub fn rope(x: &mut [f32], n_heads: usize, head_dim: usize, positions: &[usize], p: &RopeParams) {
        let n_rot = p.n_rot;
        if n_rot == 0 || n_heads * head_dim == 0 {
            return;
        }
        let theta_scale = p.theta_base.powf(-2.0 / n_rot as f32);
        let half = n_rot / 2;
        for (tok, &pos) in x.chunks_exact_mut(n_heads * head_dim).zip(positions) {
            let mut theta = pos as f32;
            let mut cs = vec![(0.0f32, 0.0f32); half];
            for (k, c) in cs.iter_mut().enumerate() {
                let ff = p.freq_factors.and_then(|f| f.get(k).copied()).unwrap_or(1.0);
                let t = p.freq_scale * (theta / ff);
                *c = (t.cos() * p.attn_factor, t.sin() * p.attn_factor);
                theta *= theta_scale;
            }
            for head in tok.chunks_exact_mut(head_dim) {
                for (i, &(c, s)) in cs.iter().enumerate() {
                    let (a, b) = match p.mode {
                        RopeMode::Norm => (2 * i, 2 * i + 1),
                        RopeMode::Neox => (i, i + half),
                    };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * c - x1 * s;
                    head[b] = x0 * s + x1 * c;
                }
            }
        }
    }

    /// GELU computed directly (no table): input rounded to f16, the f32 formula, result
    /// rounded to f16, with ggml's ±10 short-cuts. Reference of [`super::gelu`].
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

    /// Reference of [`super::geglu_inplace`].
    pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) {
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = gelu(*g) * u;
        }
    }

    /// ggml's `ggml_v_expf` (AVX-512) for one lane, each fused multiply-add written as
    /// `mul_add` and `scalef(j, n)` as one rounding of the exact f64 product.
    pub fn v_expf(x: f32) -> f32 {
        let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
        let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
        let n = z - r;
        let b = (-n).mul_add(f32::from_bits(0x35bf_be8e), (-n).mul_add(f32::from_bits(0x3f31_7200), x));
        let u = b * b;
        let p = f32::from_bits(0x3c07_2010).mul_add(b, f32::from_bits(0x3d2b_9f17));
        let q = f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb));
        let s = f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0);
        let j = p.mul_add(u, q).mul_add(u, s);
        if n.abs() > 192.0 {
            return if n <= 0.0 { 0.0 } else { f32::INFINITY };
        }
        (j as f64 * 2f64.powi(n as i32)) as f32
    }

    /// Reference of [`super::exp_sub_ggml_inplace`].
    pub fn exp_sub_ggml_inplace(x: &mut [f32], sub: f32) {
        for v in x {
            *v = v_expf(*v - sub);
        }
    }

    /// Reference of [`super::swiglu_ggml_inplace`].
    pub fn swiglu_ggml_inplace(gate: &mut [f32], up: &[f32]) {
        swiglu_ggml_tail(gate, up, gate.len());
    }

    /// SwiGLU over a row of which `row_len` elements remain (counting from `gate[0]`): the
    /// elements in whole chunks of 16 of the row use `v_expf`, the tail `expf`.
    pub(super) fn swiglu_ggml_tail(gate: &mut [f32], up: &[f32], row_len: usize) {
        let full = row_len - row_len % 16;
        for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
            let x = *g;
            let e = if i < full { v_expf(0.0 - x) } else { (-x).exp() };
            *g = (x / (1.0 + e)) * u;
        }
    }
}

// ------------------------------------------------------------------ x86 kernels

// The AVX-512 intrinsics are stable since Rust 1.89, newer than the workspace's declared
// rust-version (1.80); the AVX2 ones are older.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::scalar::sum_sq`] with the four f64 lanes in one `__m256d`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn sum_sq_avx2(x: &[f32]) -> f64 {
        let chunks = x.chunks_exact(4);
        let rem = chunks.remainder();
        let mut acc = _mm256_setzero_pd();
        for c in chunks {
            // SAFETY: `c` has exactly 4 floats; unaligned load.
            let v = unsafe { _mm_loadu_ps(c.as_ptr()) };
            acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm_mul_ps(v, v)));
        }
        let mut l = [0.0f64; 4];
        // SAFETY: `l` has room for 4 f64.
        unsafe { _mm256_storeu_pd(l.as_mut_ptr(), acc) };
        let tail: f64 = rem.iter().map(|&v| (v * v) as f64).sum();
        (l[0] + l[1]) + (l[2] + l[3]) + tail
    }

    /// Max of a slice, NaNs ignored (`vmaxps` returns its second operand when either is
    /// NaN, and the running max is always passed second).
    #[target_feature(enable = "avx2")]
    pub unsafe fn max_avx2(x: &[f32]) -> f32 {
        let chunks = x.chunks_exact(8);
        let rem = chunks.remainder();
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in chunks {
            // SAFETY: `c` has exactly 8 floats; unaligned load.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            // max(v, m) returns m where v is NaN: NaNs never enter the running max.
            m = _mm256_max_ps(v, m);
        }
        let mut l = [0.0f32; 8];
        // SAFETY: `l` has room for 8 floats.
        unsafe { _mm256_storeu_ps(l.as_mut_ptr(), m) };
        l.iter().chain(rem).fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }

    /// f32 → f16 on the whole chunks of 8; returns how many were done.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn f32_to_f16_f16c(src: &[f32], dst: &mut [half::f16]) -> usize {
        let n = src.len().min(dst.len()) / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n, in bounds of both slices; f16 is 2 bytes.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            }
        }
        n
    }

    /// f16 → f32 on the whole chunks of 8; returns how many were done.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn f16_to_f32_f16c(src: &[half::f16], dst: &mut [f32]) -> usize {
        let n = src.len().min(dst.len()) / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n, in bounds of both slices; f16 is 2 bytes.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        n
    }

    /// f32 → f16 → f32 in place on the whole chunks of 8; returns how many were done.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn round_f16_f16c(x: &mut [f32]) -> usize {
        let n = x.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len().
            unsafe {
                let p = x.as_mut_ptr().add(i);
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(p));
                _mm256_storeu_ps(p, _mm256_cvtph_ps(h));
            }
        }
        n
    }

    /// GeGLU (or GELU without `up`) on the whole chunks of 8 of `x`; returns how many
    /// elements were done. `table` must hold 65536 entries.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn geglu_avx2(x: &mut [f32], up: Option<&[f32]>, table: &[f32]) -> usize {
        debug_assert!(table.len() == 65536);
        let n = x.len() - x.len() % 8;
        let lo = _mm256_set1_ps(-10.0);
        let hi = _mm256_set1_ps(10.0);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len() (and up.len() == x.len()); every gathered
            // index is a u16 < 65536 = table.len().
            unsafe {
                let v = _mm256_loadu_ps(x.as_ptr().add(i));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                let idx = _mm256_cvtepu16_epi32(h);
                let g = _mm256_i32gather_ps::<4>(table.as_ptr(), idx);
                // x >= 10 keeps x; x <= -10 gives 0 (NaN compares false: table value).
                let big = _mm256_cmp_ps::<_CMP_GE_OQ>(v, hi);
                let small = _mm256_cmp_ps::<_CMP_LE_OQ>(v, lo);
                let g = _mm256_blendv_ps(g, v, big);
                let g = _mm256_andnot_ps(small, g);
                let r = match up {
                    Some(u) => _mm256_mul_ps(g, _mm256_loadu_ps(u.as_ptr().add(i))),
                    None => g,
                };
                _mm256_storeu_ps(x.as_mut_ptr().add(i), r);
            }
        }
        n
    }

    /// As [`geglu_avx2`] with 16 lanes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn geglu_avx512(x: &mut [f32], up: Option<&[f32]>, table: &[f32]) -> usize {
        debug_assert!(table.len() == 65536);
        let n = x.len() - x.len() % 16;
        let lo = _mm512_set1_ps(-10.0);
        let hi = _mm512_set1_ps(10.0);
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= x.len() (and up.len() == x.len()); every gathered
            // index is a u16 < 65536 = table.len().
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr().add(i));
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                let idx = _mm512_cvtepu16_epi32(h);
                let g = _mm512_i32gather_ps::<4>(idx, table.as_ptr());
                let big = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, hi);
                let small = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, lo);
                let g = _mm512_mask_blend_ps(big, g, v);
                let g = _mm512_mask_blend_ps(small, g, _mm512_setzero_ps());
                let r = match up {
                    Some(u) => _mm512_mul_ps(g, _mm512_loadu_ps(u.as_ptr().add(i))),
                    None => g,
                };
                _mm512_storeu_ps(x.as_mut_ptr().add(i), r);
            }
        }
        n
    }

    /// ggml's `ggml_v_expf` for 16 lanes (AVX-512F).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn v_expf16(x: __m512) -> __m512 {
        let c = |bits: u32| _mm512_set1_ps(f32::from_bits(bits));
        let r = c(0x4b40_0000);
        let z = _mm512_fmadd_ps(x, c(0x3fb8_aa3b), r);
        let n = _mm512_sub_ps(z, r);
        let b = _mm512_fnmadd_ps(n, c(0x35bf_be8e), _mm512_fnmadd_ps(n, c(0x3f31_7200), x));
        let abs_n = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(n), _mm512_set1_epi32(0x7fff_ffff)));
        let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(abs_n, _mm512_set1_ps(192.0));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(_mm512_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)), u, _mm512_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb))),
            u,
            _mm512_fmadd_ps(c(0x3f7f_fff6), b, _mm512_set1_ps(1.0)),
        );
        let res = _mm512_scalef_ps(j, n);
        if d == 0 {
            return res;
        }
        let zero = _mm512_setzero_ps();
        let alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero), _mm512_set1_ps(f32::INFINITY), zero);
        _mm512_mask_blend_ps(d, res, alt)
    }

    /// `x[i] = v_expf(x[i] - sub)` on the whole chunks of 16; returns how many were done.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_sub_avx512(x: &mut [f32], sub: f32) -> usize {
        let n = x.len() - x.len() % 16;
        let s = _mm512_set1_ps(sub);
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= x.len().
            unsafe {
                let v = _mm512_sub_ps(_mm512_loadu_ps(x.as_ptr().add(i)), s);
                _mm512_storeu_ps(x.as_mut_ptr().add(i), v_expf16(v));
            }
        }
        n
    }

    /// SwiGLU with ggml's SiLU on the whole chunks of 16; returns how many were done.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn swiglu_avx512(gate: &mut [f32], up: &[f32]) -> usize {
        let n = gate.len() - gate.len() % 16;
        let one = _mm512_set1_ps(1.0);
        let zero = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= gate.len() == up.len().
            unsafe {
                let x = _mm512_loadu_ps(gate.as_ptr().add(i));
                let e = v_expf16(_mm512_sub_ps(zero, x));
                let s = _mm512_div_ps(x, _mm512_add_ps(one, e));
                let r = _mm512_mul_ps(s, _mm512_loadu_ps(up.as_ptr().add(i)));
                _mm512_storeu_ps(gate.as_mut_ptr().add(i), r);
            }
        }
        n
    }
}
