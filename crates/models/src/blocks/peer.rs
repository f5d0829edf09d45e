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
//! Which K-quant routine the peer runs depends on the matrix and the batch, so the callers
//! (`linear.rs`) pick the matching function: Q4_K with a row count that is a multiple of 8
//! is repacked (gemm for the first `n - n % 4` tokens, gemv for the rest: `dot_q4_k`); other
//! K-quants go to the tiled matmul from 8 tokens on (`dot_q6_k_tiled`) and to the plain
//! `vec_dot` below that (`dot_q6_k`). Activations are Q8_K from ggml's reference quantizer
//! on every path (the 4-row quantizer of the repacked gemm gives the same products).
//!
//! These are compute kernels and belong in `jikji-kernels` (with SIMD twins); they live
//! here, private to the models, until the kernels crate takes them over.

use jikji_gguf::GgmlType;

/// `_mm512_reduce_add_ps` as GCC expands it: upper and lower halves added (8, 4, 2, 1).
#[inline]
pub fn reduce16(l: &[f32; 16]) -> f32 {
    let mut t8 = [0.0f32; 8];
    for i in 0..8 {
        t8[i] = l[i + 8] + l[i];
    }
    let t4 = [t8[4] + t8[0], t8[5] + t8[1], t8[6] + t8[2], t8[7] + t8[3]];
    (t4[0] + t4[2]) + (t4[1] + t4[3])
}

/// `ggml_v_expf` (AVX-512) for one lane: a degree-5 polynomial with a `scalef`, accurate
/// to about 1 ulp but not always equal to `expf`.
pub fn v_expf(x: f32) -> f32 {
    let r = 12_582_912.0f32; // 0x1.8p23
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
    // scalef(j, n): j * 2^n rounded once (the f64 product is exact).
    (j as f64 * 2f64.powi(n as i32)) as f32
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
    for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
        let x = *g;
        let e = if i < full { v_expf(0.0 - x) } else { (-x).exp() };
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
pub fn quantize_row_q8(x: &[f32], with_sum: bool, out: &mut Vec<u8>) {
    for b in x.chunks_exact(QK8) {
        let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        let s_at = out.len();
        if with_sum {
            out.extend_from_slice(&[0, 0]);
        }
        let mut sum = 0i32;
        for &v in b {
            let q = (v * id).round_ties_even() as i32;
            sum += q;
            out.push(q as i8 as u8);
        }
        if with_sum {
            out[s_at..s_at + 2].copy_from_slice(&half::f16::from_f32(d * sum as f32).to_le_bytes());
        }
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

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Block layout of the legacy formats whose x86 dot order is reproduced: bytes per block
/// and whether the Q8_1 sum term (`m_w * s_x`) applies.
pub fn legacy_block(ty: GgmlType) -> Option<(usize, bool)> {
    match ty {
        GgmlType::Q4_1 => Some((20, true)),
        GgmlType::Q5_0 => Some((22, false)),
        GgmlType::Q5_1 => Some((24, true)),
        GgmlType::Q8_0 => Some((34, false)),
        _ => None,
    }
}

/// The 32 integer weights of one block, in element order.
fn unpack(ty: GgmlType, b: &[u8], q: &mut [i32; 32]) {
    let nib = |qs: &[u8], j: usize| if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 } as i32;
    match ty {
        GgmlType::Q4_1 => (0..32).for_each(|j| q[j] = nib(&b[4..20], j)),
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let at = if ty == GgmlType::Q5_0 { 2 } else { 4 };
            let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            let off = if ty == GgmlType::Q5_0 { 16 } else { 0 };
            (0..32).for_each(|j| q[j] = (nib(&b[at + 4..at + 20], j) | (((qh >> j) & 1) << 4) as i32) - off);
        }
        _ => (0..32).for_each(|j| q[j] = b[2 + j] as i8 as i32),
    }
}

/// Dot of one weight row of a legacy type with one Q8_0/Q8_1 activation row, in the order
/// of ggml's x86 kernels — `ggml_vec_dot_{q4_1_q8_1, q5_0_q8_0, q5_1_q8_1, q8_0_q8_0}`
/// (AVX2 paths, single tokens) and llamafile's `tinyBLAS_Q0_AVX` (batches), which agree:
/// per block 8 lanes of 4-product integer sums, `acc = fma(d_w * d_x, lane, acc)`; the 8
/// lanes summed as `hsum_float_8` does, then the separately accumulated `m_w * s_x` terms
/// (Q4_1/Q5_1) added.
pub fn dot_legacy(ty: GgmlType, w_row: &[u8], x_row: &[u8]) -> f32 {
    let Some((wb, with_sum)) = legacy_block(ty) else { return f32::NAN };
    let xb = if with_sum { 36 } else { 34 };
    let xq_at = if with_sum { 4 } else { 2 };
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    let mut q = [0i32; 32];
    for (bw, bx) in w_row.chunks_exact(wb).zip(x_row.chunks_exact(xb)) {
        if with_sum {
            summs += f16_at(bw, 2) * f16_at(bx, 2);
        }
        let d = f16_at(bw, 0) * f16_at(bx, 0);
        unpack(ty, bw, &mut q);
        for (lane, a) in acc.iter_mut().enumerate() {
            let sum: i32 = (lane * 4..lane * 4 + 4).map(|j| q[j] * (bx[xq_at + j] as i8 as i32)).sum();
            *a = fma_f64(d, sum, *a);
        }
    }
    let r4 = [acc[4] + acc[0], acc[5] + acc[1], acc[6] + acc[2], acc[7] + acc[3]];
    ((r4[0] + r4[2]) + (r4[1] + r4[3])) + summs
}

/// `fma(d, sum, acc)` through f64: `d * sum` is exact there (24-bit by ≤ 15-bit), so the
/// only difference from a true fused multiply-add is a double rounding in the rare case the
/// f64 sum lands exactly between two f32 values; `f32::mul_add` is a library call without
/// the `fma` target feature, far too slow for the innermost loop.
#[inline(always)]
fn fma_f64(d: f32, sum: i32, acc: f32) -> f32 {
    (d as f64 * sum as f64 + acc as f64) as f32
}

/// Bytes of one Q8_K activation block: `d: f32`, `qs: [i8; 256]`, `bsums: [i16; 16]`.
pub const Q8K_BYTES: usize = 292;
const Q4K_BYTES: usize = 144;
const Q6K_BYTES: usize = 210;

/// Bytes per 256-value block of the K-quant weights whose x86 order is reproduced here.
pub fn kquant_block(ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::Q4_K => Some(Q4K_BYTES),
        GgmlType::Q6_K => Some(Q6K_BYTES),
        _ => None,
    }
}

/// The parts of one Q8_K block: scale, 256 quants, 16 sums of 16 quants.
fn q8k_parts(b: &[u8]) -> (f32, &[u8], [i32; 16]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut bsums = [0i32; 16];
    for (j, s) in bsums.iter_mut().enumerate() {
        *s = i16::from_le_bytes([b[260 + 2 * j], b[261 + 2 * j]]) as i32;
    }
    (d, &b[4..260], bsums)
}

/// Scale and min (6 bits each) of sub-block `j` of a Q4_K block (`get_scale_min_k4`).
fn q4k_scale_min(q: &[u8], j: usize) -> (i32, i32) {
    if j < 4 {
        ((q[j] & 63) as i32, (q[j + 4] & 63) as i32)
    } else {
        (
            ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4)) as i32,
            ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32,
        )
    }
}

/// Dot of one Q4_K weight row with one Q8_K activation row, as llama.cpp's x86 build
/// computes it. Q4_K matrices whose row count is a multiple of 8 are repacked there
/// (`block_q4_Kx8`) and multiplied by `ggml_gemv_q4_K_8x8_q8_K` or
/// `ggml_gemm_q4_K_8x8_q8_K`. Both sum integers exactly (sub-block scale × Σ q4·q8, and
/// min × sum of the activation quants) and differ only in how often they fold those into
/// the two float accumulators with a fused multiply-add: once per 256-value super-block in
/// the gemv, once per pair of sub-blocks (64 values) in the gemm (`per_pair`). The result is
/// `acc - acc_min`, `acc` scaled by `d_w * d_x`, `acc_min` by `dmin_w * d_x`.
pub fn dot_q4_k(w_row: &[u8], x_row: &[u8], per_pair: bool) -> f32 {
    let (mut acc, mut acc_min) = (0.0f32, 0.0f32);
    for (bw, bx) in w_row.chunks_exact(Q4K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
        let (dx, q8, bsums) = q8k_parts(bx);
        let (d, dmin) = (f16_at(bw, 0) * dx, f16_at(bw, 2) * dx);
        let (scales, qs) = (&bw[4..16], &bw[16..144]);
        let (mut isum, mut imin) = (0i32, 0i32);
        for pair in 0..4 {
            let q4 = &qs[32 * pair..32 * pair + 32];
            for half in 0..2 {
                let j = 2 * pair + half;
                let (sc, m) = q4k_scale_min(scales, j);
                let x = &q8[32 * j..32 * j + 32];
                let shift = 4 * half as u32;
                let dot: i32 = q4.iter().zip(x).map(|(&w, &x)| ((w >> shift) & 0x0F) as i32 * (x as i8) as i32).sum();
                isum += sc * dot;
                imin += m * (bsums[2 * j] + bsums[2 * j + 1]);
            }
            if per_pair {
                acc = (isum as f32).mul_add(d, acc);
                acc_min = (imin as f32).mul_add(dmin, acc_min);
                (isum, imin) = (0, 0);
            }
        }
        if !per_pair {
            acc = (isum as f32).mul_add(d, acc);
            acc_min = (imin as f32).mul_add(dmin, acc_min);
        }
    }
    acc - acc_min
}

/// The 256 unsigned 6-bit weights of one Q6_K block (`ql` low nibbles | `qh` pairs << 4),
/// in element order; the weight is the value minus 32.
fn q6k_unpack(bw: &[u8], q: &mut [i32; 256]) {
    let (ql, qh) = (&bw[0..128], &bw[128..192]);
    for half in 0..2 {
        let (ql, qh, q) = (&ql[64 * half..64 * half + 64], &qh[32 * half..32 * half + 32], &mut q[128 * half..128 * half + 128]);
        for b in 0..32 {
            let h = qh[b] as i32;
            q[b] = (ql[b] & 0x0F) as i32 | ((h & 3) << 4);
            q[32 + b] = (ql[32 + b] & 0x0F) as i32 | (((h >> 2) & 3) << 4);
            q[64 + b] = (ql[b] >> 4) as i32 | (((h >> 4) & 3) << 4);
            q[96 + b] = (ql[32 + b] >> 4) as i32 | (((h >> 6) & 3) << 4);
        }
    }
}

/// Dot of one Q6_K weight row with one Q8_K activation row, for batches of at least 8
/// tokens: llama.cpp then routes non-repacked K-quant weights to its tiled matmul
/// (`ggml_compute_forward_mul_mat_tiled`, AVX-512 VNNI microkernel), which sums each
/// 256-value super-block exactly in integers (`Σ scale·(q6 - 32)·q8`) and folds it into the
/// output as `acc = fma(f32(isum) * d_w, d_x, acc)`, super-blocks in order.
pub fn dot_q6_k_tiled(w_row: &[u8], x_row: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    let mut q = [0i32; 256];
    for (bw, bx) in w_row.chunks_exact(Q6K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
        let (dx, q8, _) = q8k_parts(bx);
        q6k_unpack(bw, &mut q);
        let mut isum = 0i32;
        for (s, (qs, xs)) in q.chunks_exact(16).zip(q8.chunks_exact(16)).enumerate() {
            let raw: i32 = qs.iter().zip(xs).map(|(&w, &x)| (w - 32) * (x as i8) as i32).sum();
            isum += (bw[192 + s] as i8 as i32) * raw;
        }
        acc = (isum as f32 * f16_at(bw, 208)).mul_add(dx, acc);
    }
    acc
}

/// Dot of one Q6_K weight row with one Q8_K activation row in the order of
/// `ggml_vec_dot_q6_K_q8_K` (AVX2 path), which llama.cpp uses for batches of fewer than 8
/// tokens (Q6_K is not repacked on x86). Per super-block, 8 integer lanes: lane `l` holds the scaled
/// products of the values at `i % 32` in `4l..4l+4` (unsigned 6-bit weights), minus
/// `32 ×` the scaled activation sums of values `32l..32l+32` (the `-32` offset applied
/// through `bsums`); each lane is folded into its float accumulator with
/// `fma(d_w * d_x, lane, acc)`, and the 8 accumulators summed as `hsum_float_8`.
pub fn dot_q6_k(w_row: &[u8], x_row: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut q = [0i32; 256];
    for (bw, bx) in w_row.chunks_exact(Q6K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
        let (dx, q8, bsums) = q8k_parts(bx);
        let d = dx * f16_at(bw, 208);
        let scale = |i: usize| bw[192 + i] as i8 as i32;
        q6k_unpack(bw, &mut q);
        let mut lanes = [0i32; 8];
        // Chunk c holds values 32c..32c+32; its lane l the 4 values from 32c + 4l.
        for (c, (qc, xc)) in q.chunks_exact(32).zip(q8.chunks_exact(32)).enumerate() {
            for (l, lane) in lanes.iter_mut().enumerate() {
                let p: i32 = (4 * l..4 * l + 4).map(|b| qc[b] * (xc[b] as i8) as i32).sum();
                *lane += scale(2 * c + l / 4) * p;
            }
        }
        for (l, (a, lane)) in acc.iter_mut().zip(lanes).enumerate() {
            let sub = bsums[2 * l] * scale(2 * l) + bsums[2 * l + 1] * scale(2 * l + 1);
            *a = d.mul_add((lane - (sub << 5)) as f32, *a);
        }
    }
    let r4 = [acc[4] + acc[0], acc[5] + acc[1], acc[6] + acc[2], acc[7] + acc[3]];
    (r4[0] + r4[2]) + (r4[1] + r4[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_exp_is_within_two_ulp_of_exp() {
        for i in -2000..=100 {
            let x = i as f32 * 0.05;
            let (a, b) = (v_expf(x), x.exp());
            assert!((a - b).abs() <= 2.5e-7 * b.max(f32::MIN_POSITIVE), "x={x}: {a} vs {b}");
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
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
        assert!((dot_legacy(GgmlType::Q4_1, &w, &x) - want).abs() < 1e-3 * want.abs());
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

    /// A Q8_K block with `d = 1` and the given quants (bsums filled in).
    fn q8k_block(q: &[i8]) -> Vec<u8> {
        let mut b = 1.0f32.to_le_bytes().to_vec();
        b.extend(q.iter().map(|&v| v as u8));
        for c in q.chunks_exact(16) {
            b.extend_from_slice(&(c.iter().map(|&v| v as i16).sum::<i16>()).to_le_bytes());
        }
        b
    }

    /// Σ dequantized weight × activation quant, in f64 (exact for these small integers).
    fn reference_dot(ty: GgmlType, w: &[u8], q: &[i8]) -> f64 {
        let mut wf = vec![0.0f32; q.len()];
        jikji_kernels::dequantize_row(ty, w, &mut wf).unwrap();
        wf.iter().zip(q).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    #[test]
    fn k_quant_dots_equal_the_dequantized_sum_on_exact_values() {
        let q: Vec<i8> = (0..512i32).map(|i| (i * 37 % 255 - 127) as i8).collect();
        let x: Vec<u8> = q.chunks_exact(256).flat_map(q8k_block).collect();
        // Q4_K: d = 1, dmin = 0.5, 6-bit scales/mins from a pattern, nibbles i % 16.
        let mut w4 = Vec::new();
        for blk in 0..2u8 {
            w4.extend_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
            w4.extend_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
            w4.extend((0..12u8).map(|j| j.wrapping_mul(29).wrapping_add(blk * 7)));
            w4.extend((0..128u8).map(|j| j.wrapping_mul(11) ^ blk));
        }
        let want = reference_dot(GgmlType::Q4_K, &w4, &q);
        assert_eq!(dot_q4_k(&w4, &x, false) as f64, want);
        assert_eq!(dot_q4_k(&w4, &x, true) as f64, want);
        // Q6_K: d = 1, signed scales, 6-bit weights from a pattern.
        let mut w6 = Vec::new();
        for blk in 0..2u8 {
            w6.extend((0..128u8).map(|j| j.wrapping_mul(13) ^ blk));
            w6.extend((0..64u8).map(|j| j.wrapping_mul(7) ^ (blk << 3)));
            w6.extend((0..16i8).map(|j| (j * 5 - 40 + blk as i8) as u8));
            w6.extend_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        }
        let want = reference_dot(GgmlType::Q6_K, &w6, &q);
        assert_eq!(dot_q6_k(&w6, &x) as f64, want);
        assert_eq!(dot_q6_k_tiled(&w6, &x) as f64, want);
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
