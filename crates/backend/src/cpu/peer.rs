//! llama.cpp's x86 numerics, reproduced operation by operation.
//!
//! The reference fixtures come from llama.cpp built for x86 with AVX-512 (see
//! `tests/fixtures/README.md`), and the small test models amplify a single last-bit
//! difference (one flipped f16 or Q8 rounding) into logit differences of 0.1–1 a few layers
//! later. Matching the peer therefore means matching its order of operations, not just its
//! formulas. Each function names the ggml routine it mirrors; all of them were checked
//! against a peer dump of every intermediate tensor (bit-identical through all 30 layers of
//! SmolLM2-135M on a prompt; gemma3-270m and qwen2.5-0.5b, with their Q4_K/Q6_K matrices
//! and GeGLU, on 6- to 24-token prompts).
//!
//! The quantized dot products that used to live here (legacy formats in ggml's AVX2
//! order, Q4_K/Q6_K in the peer's repacked/tiled orders) are now SIMD kernels in
//! `jikji-kernels` (`matmul_quantized`, `matmul_peer_kquant`) with scalar twins there;
//! what remains are the elementwise routines and the Q8 activation quantizer.

use jikji_gguf::GgmlType;

/// `_mm512_reduce_add_ps` as GCC expands it (`jikji_kernels::lanes::reduce16`).
#[inline]
pub fn reduce16(l: &[f32; 16]) -> f32 {
    jikji_kernels::lanes::reduce16(l)
}

/// ggml's GELU table (`ggml_table_gelu_f16`): for every f16 bit pattern, `ggml_gelu_f32`
/// of its value rounded to f16, as `0.5·x·(1 + tanhf(√(2/π)·x·(1 + 0.044715·x²)))` with the
/// multiply-add GCC contracts (`1 + (0.044715·x)·x` fused) and the C library's `tanhf`.
fn gelu_table() -> &'static [f32] {
    static T: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = half::f16::from_bits(bits).to_f32();
                let inner = (0.044_715f32 * x).mul_add(x, 1.0);
                let g = 0.5 * x * (1.0 + (0.797_884_6f32 * x * inner).tanh());
                half::f16::from_f32(g).to_f32()
            })
            .collect()
    })
}

/// `ggml_vec_geglu_f32` (with `GGML_GELU_FP16`) on one row: `gelu(gate) * up`, GELU read
/// from the f16 table except `0` at `x <= -10` and `x` at `x >= 10`.
pub fn geglu_row(gate: &mut [f32], up: &[f32]) {
    let t = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            t[half::f16::from_f32(x).to_bits() as usize] * u
        };
    }
}

/// `ggml_vec_swiglu_f32` on one row: `silu(gate) * up`, where full chunks of 16 use
/// `ggml_v_silu` (`x / (1 + v_expf(-x))`) and the tail `x / (1 + expf(-x))`.
pub fn swiglu_row(gate: &mut [f32], up: &[f32]) {
    let full = gate.len() - gate.len() % 16;
    let mut e: Vec<f32> = gate[..full].iter().map(|&x| 0.0 - x).collect();
    jikji_kernels::lanes::v_expf_slice(&mut e);
    for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
        let x = *g;
        let e = if i < full { e[i] } else { (-x).exp() };
        *g = (x / (1.0 + e)) * u;
    }
}

/// ggml's `rope_yarn` cache (ext_factor 0) and `rotate_pairs`, with the multiply-adds
/// GCC contracts (`-ffp-contract=fast` with `-mfma`): `x0*c - x1*s` becomes
/// `fma(x0, c, -(x1*s))` and `x0*s + x1*c` becomes `fma(x0, s, x1*c)`.
/// `x`: `[n_tokens, n_heads, head_dim]`, token `t` at `positions[t]`; `neox` picks the pairs.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &mut [f32],
    head_dim: usize,
    positions: &[usize],
    n_rot: usize,
    neox: bool,
    base: f32,
    freq_scale: f32,
    freq_factors: Option<&[f32]>,
) {
    if n_rot == 0 || head_dim == 0 || positions.is_empty() {
        return;
    }
    let row = x.len() / positions.len();
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let half = n_rot / 2;
    let mut cache = vec![0.0f32; n_rot];
    for (tok, &pos) in x.chunks_exact_mut(row).zip(positions) {
        let mut theta = pos as f32;
        for (k, cs) in cache.chunks_exact_mut(2).enumerate() {
            let ff = freq_factors.and_then(|f| f.get(k).copied()).unwrap_or(1.0);
            let t = freq_scale * (theta / ff);
            cs[0] = t.cos();
            cs[1] = t.sin();
            theta *= theta_scale;
        }
        for head in tok.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
                let (c, s) = (cache[2 * i], cache[2 * i + 1]);
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0.mul_add(c, -(x1 * s));
                head[b] = x0.mul_add(s, x1 * c);
            }
        }
    }
}

const QK8: usize = 32;

/// `quantize_row_q8_0` / `quantize_row_q8_1` from `arch/x86/quants.c`: `d = amax / 127`
/// (stored f16), `id = 127 / amax`, round half to even, and for Q8_1 `s = f16(d * Σq)`.
/// (ggml's portable reference uses `1 / d` and `roundf`, which differ in the last bit.)
#[cfg(test)]
pub fn quantize_row_q8(x: &[f32], with_sum: bool, out: &mut Vec<u8>) {
    let at = out.len();
    out.resize(at + q8_row_bytes(x.len(), with_sum), 0);
    quantize_row_q8_into(x, with_sum, &mut out[at..]);
}

/// Bytes of one row of `cols` values as Q8_1 (`with_sum`) or Q8_0 blocks.
pub fn q8_row_bytes(cols: usize, with_sum: bool) -> usize {
    cols / QK8 * if with_sum { 36 } else { 34 }
}

/// [`quantize_row_q8`] into `out` (exactly [`q8_row_bytes`] long).
pub fn quantize_row_q8_into(x: &[f32], with_sum: bool, out: &mut [u8]) {
    let bb = if with_sum { 36 } else { 34 };
    for (b, o) in x.chunks_exact(QK8).zip(out.chunks_exact_mut(bb)) {
        let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        o[0..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        let qs = &mut o[bb - QK8..];
        let mut sum = 0i32;
        for (&v, q) in b.iter().zip(qs.iter_mut()) {
            let qi = round_half_even(v * id);
            sum += qi;
            *q = qi as i8 as u8;
        }
        if with_sum {
            o[2..4].copy_from_slice(&half::f16::from_f32(d * sum as f32).to_le_bytes());
        }
    }
}

/// `x.round_ties_even() as i32` without the library call: for |x| < 2^22, adding and
/// removing 1.5·2^23 rounds to an integer in the default (nearest-even) mode, exactly (the
/// sign of a zero result may differ, which the integer conversion erases).
#[inline(always)]
fn round_half_even(x: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    if x.abs() < 4_194_304.0 {
        ((x + MAGIC) - MAGIC) as i32
    } else {
        x.round_ties_even() as i32
    }
}

/// Activation types `quantize_row_q8` produces.
pub fn q8_with_sum(vec_dot_type: GgmlType) -> Option<bool> {
    match vec_dot_type {
        GgmlType::Q8_0 => Some(false),
        GgmlType::Q8_1 => Some(true),
        _ => None,
    }
}

#[cfg(test)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_exp_is_within_two_ulp_of_exp() {
        use jikji_kernels::lanes::v_expf;
        for i in -2000..=100 {
            let x = i as f32 * 0.05;
            let (a, b) = (v_expf(x), x.exp());
            assert!((a - b).abs() <= 2.5e-7 * b.max(f32::MIN_POSITIVE), "x={x}: {a} vs {b}");
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn magic_rounding_equals_round_ties_even() {
        for i in -40_000..40_000 {
            let x = i as f32 * 0.0625 + 0.001 * (i % 7) as f32;
            assert_eq!(round_half_even(x), x.round_ties_even() as i32, "{x}");
        }
        for x in [0.5f32, 1.5, 2.5, -0.5, -2.5, 126.5, -127.5, 1e9, f32::INFINITY] {
            assert_eq!(round_half_even(x), x.round_ties_even() as i32, "{x}");
        }
    }

    #[test]
    fn q8_rounding_uses_127_over_amax_and_ties_to_even() {
        // 2.5 → 2 (ties to even; roundf would give 3), -3.5 → -4.
        let mut x = vec![0.0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        let mut out = Vec::new();
        quantize_row_q8(&x, true, &mut out);
        assert_eq!(out.len(), 36);
        assert_eq!(f16_at(&out, 0), 1.0);
        assert_eq!((out[4] as i8, out[5] as i8, out[6] as i8), (127, 2, -4));
        assert_eq!(f16_at(&out, 2), 125.0);
    }

    #[test]
    fn q4_1_dot_equals_the_dequantized_sum_on_exact_values() {
        // One block: d_w = 1, m_w = 0.5, nibbles j % 16; activations d_x = 1, q = j - 16.
        let mut w = vec![0u8; 20];
        w[0..2].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        w[2..4].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        for j in 0..16 {
            w[4 + j] = (j as u8) | ((15 - j as u8) << 4);
        }
        let xs: Vec<f32> = (0..32).map(|j| j as f32 - 16.0).collect();
        let mut x = Vec::new();
        quantize_row_q8(&xs.iter().map(|v| v * 127.0 / 16.0).collect::<Vec<_>>(), true, &mut x);
        let wv: Vec<f32> = (0..32).map(|j| if j < 16 { j as f32 } else { (31 - j) as f32 } + 0.5).collect();
        let d_x = f16_at(&x, 0);
        let want: f32 = (0..32).map(|j| wv[j] * (x[4 + j] as i8 as f32) * d_x).sum();
        assert!((jikji_kernels::vec_dot(GgmlType::Q4_1, 32, &w, &x) - want).abs() < 1e-3 * want.abs());
    }

    #[test]
    fn fused_rope_keeps_norms_and_is_identity_at_position_zero() {
        let mut x = vec![0.6f32, 0.8, 0.0, 0.0];
        rope(&mut x, 4, &[0], 4, false, 10000.0, 1.0, None);
        assert_eq!(x, vec![0.6, 0.8, 0.0, 0.0]);
        rope(&mut x, 4, &[3], 4, true, 10000.0, 1.0, None);
        let n: f32 = x.iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-6);
    }

    #[test]
    fn geglu_uses_the_f16_table_inside_and_exact_values_outside_ten() {
        let mut g = vec![-12.0f32, 12.0, 0.0, 1.0, -1.9987345];
        geglu_row(&mut g, &[2.0, 2.0, 2.0, 1.0, 1.0]);
        assert_eq!(&g[..3], &[0.0, 24.0, 0.0]);
        assert!((g[3] - 0.841_192).abs() < 1e-3);
        // ggml's table entry for f16 0xbfff (a value where `1 + tanh` cancels).
        assert_eq!(g[4], -0.045_501_71);
    }
}
