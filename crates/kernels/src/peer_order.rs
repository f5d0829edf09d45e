//! Q4_K and Q6_K matrix products in the exact order llama.cpp's x86 (AVX-512) build uses.
//!
//! [`matmul_quantized`](crate::matmul_quantized) follows ggml's `vec_dot` order for every
//! K-quant, but the peer does not always run `vec_dot`: it repacks Q4_K matrices whose row
//! count is a multiple of 8 (`block_q4_Kx8`) and multiplies them with
//! `ggml_gemm_q4_K_8x8_q8_K` (the first `n - n % 4` tokens of a batch) and
//! `ggml_gemv_q4_K_8x8_q8_K` (the rest), and sends other K-quants (Q6_K here) to its tiled
//! matmul from 8 tokens on. Those routines fold the exact integer partial sums into f32 at
//! other points, so their last bits differ; [`matmul_peer_kquant`] reproduces them:
//!
//! - Q4_K gemm: `acc = fma(f32(isum), d_w·d_x, acc)` per pair of sub-blocks (64 values),
//!   and the same for the min term; gemv: once per 256-value super-block. Result
//!   `acc - acc_min`.
//! - Q6_K tiled (≥ 8 tokens): `acc = fma(f32(isum)·d_w, d_x, acc)` per super-block.
//! - Q6_K vec (< 8 tokens): `ggml_vec_dot_q6_K_q8_K`'s 8 integer lanes per super-block,
//!   each folded with `fma(d, lane, acc_lane)`, then `hsum_float_8`.
//!
//! The scalar functions ([`dot_q4_k`], [`dot_q6_k_tiled`], [`dot_q6_k`]) are the reference;
//! the x86 twins (AVX2 + FMA, run on every x86 level the CPU has, since integer sums are
//! exact whatever instructions form them) produce the same bits, which
//! `tests::simd_twins_equal_the_scalar_reference` checks on random blocks. Rows are split
//! over the persistent [`pool`].
//!
//! With AVX-512 VNNI, batches (Q4_K from 4 tokens, Q6_K from 8) go through 8-row kernels
//! (`vnni`): each group of 8 rows is unpacked once per call into scratch with the values
//! of the 8 rows interleaved by 4, so one `vpdpbusd` against 4 activation bytes broadcast
//! adds to every row's own lane; the per-row scales multiply whole vectors, and the f32
//! folds run 8 rows per vector with exactly the scalar reference's operations per lane
//! (`matmul_picks_the_order_by_token_index_and_batch_size` compares them bit for bit).

use crate::{isa, num_threads, pool, row_bytes, OutPtr, vec_dot_type, GgmlType, Isa, KernelError, WeightView};

/// Bytes of one Q8_K activation block: `d: f32`, `qs: [i8; 256]`, `bsums: [i16; 16]`.
pub const Q8K_BYTES: usize = 292;
const Q4K_BYTES: usize = 144;
const Q6K_BYTES: usize = 210;

/// Whether [`matmul_peer_kquant`] handles a `[rows, cols]` matrix of type `ty`: Q6_K, and
/// Q4_K when the peer repacks it (row count a multiple of 8); `cols` a multiple of 256.
pub fn peer_kquant_supported(ty: GgmlType, rows: usize, cols: usize) -> bool {
    let repacked = match ty {
        GgmlType::Q4_K => rows % 8 == 0,
        GgmlType::Q6_K => true,
        _ => false,
    };
    repacked && cols % 256 == 0
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
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
        (((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4)) as i32, ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32)
    }
}

/// Dot of one Q4_K weight row with one Q8_K activation row in the peer's repacked order:
/// gemm (`per_pair`: fold every 64 values) or gemv (fold every 256 values).
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

/// The 256 unsigned 6-bit weights of one Q6_K block, in element order (weight = value − 32).
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

/// Dot of one Q6_K weight row with one Q8_K activation row in the peer's tiled-matmul order.
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

/// Dot of one Q6_K weight row with one Q8_K activation row in `ggml_vec_dot_q6_K_q8_K`'s
/// AVX2 order: lane `l` of a super-block holds the scaled products of the values at
/// `i % 32` in `4l..4l+4` (unsigned weights) minus `32 ×` the scaled activation sums of
/// values `32l..32l+32`; lanes folded with `fma(d_w·d_x, lane, acc)`, then `hsum_float_8`.
pub fn dot_q6_k(w_row: &[u8], x_row: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut q = [0i32; 256];
    for (bw, bx) in w_row.chunks_exact(Q6K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
        let (dx, q8, bsums) = q8k_parts(bx);
        let d = dx * f16_at(bw, 208);
        let scale = |i: usize| bw[192 + i] as i8 as i32;
        q6k_unpack(bw, &mut q);
        let mut lanes = [0i32; 8];
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

/// Which peer routine a (matrix, batch) uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Order {
    Q4Gemm,
    Q4Gemv,
    Q6Tiled,
    Q6Vec,
}

fn dot_scalar(o: Order, w: &[u8], x: &[u8]) -> f32 {
    match o {
        Order::Q4Gemm => dot_q4_k(w, x, true),
        Order::Q4Gemv => dot_q4_k(w, x, false),
        Order::Q6Tiled => dot_q6_k_tiled(w, x),
        Order::Q6Vec => dot_q6_k(w, x),
    }
}

fn dot_isa(simd: bool, o: Order, w: &[u8], x: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true when the CPU has AVX2, FMA and F16C (`use_simd`);
        // `w` and `x` hold whole blocks of the same count (checked by the callers).
        return unsafe {
            match o {
                Order::Q4Gemm => x86::dot_q4_k(w, x, true),
                Order::Q4Gemv => x86::dot_q4_k(w, x, false),
                Order::Q6Tiled => x86::dot_q6_k_tiled(w, x),
                Order::Q6Vec => x86::dot_q6_k(w, x),
            }
        };
    }
    let _ = simd;
    dot_scalar(o, w, x)
}

/// Four tokens of one order through the multi-token SIMD kernels; only called when the
/// SIMD level is available (`use_simd`).
fn dot4(o: Order, w: &[u8], xs: [&[u8]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: callers check `use_simd` (AVX2, FMA and F16C present); the rows hold
        // whole blocks of the same count (validated by `matmul_peer_kquant_isa`).
        unsafe {
            match o {
                Order::Q4Gemm => x86::dot_q4_k_n(w, xs, true),
                Order::Q4Gemv => x86::dot_q4_k_n(w, xs, false),
                Order::Q6Tiled => x86::dot_q6_k_n(w, xs, true),
                Order::Q6Vec => x86::dot_q6_k_n(w, xs, false),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    xs.map(|x| dot_scalar(o, w, x))
}

/// The fold order of token `t` of an `n_tokens` batch. The peer's gemm covers whole groups
/// of 4 tokens and the rest take its gemv; its Q6_K runs the tiled order from 8 tokens and
/// the vec order below. `fixed` (batch-invariant) puts every token through the gemm and
/// tiled orders whatever the batch.
fn token_order(ty: GgmlType, fixed: bool, n_tokens: usize, t: usize) -> Order {
    match ty {
        GgmlType::Q4_K if fixed || t < n_tokens - n_tokens % 4 => Order::Q4Gemm,
        GgmlType::Q4_K => Order::Q4Gemv,
        _ if fixed || n_tokens >= 8 => Order::Q6Tiled,
        _ => Order::Q6Vec,
    }
}

/// One token's products with the rows `rows` of a matrix accepted by
/// [`peer_kquant_supported`], on the calling thread: the per-row dots of
/// [`matmul_peer_kquant`] (`batch_invariant == false`) or [`matmul_kquant_batch_invariant`]
/// (`true`) for a single token, with the same bits. See `matvec_quantized_rows`.
pub fn matvec_peer_kquant_rows(w: &WeightView, xq: &[u8], rows: std::ops::Range<usize>, y: &mut [f32], batch_invariant: bool) -> Result<(), KernelError> {
    if !peer_kquant_supported(w.ty, w.rows, w.cols) {
        return Err(KernelError::Size(format!("no peer-order kernel for {:?} [{}, {}]", w.ty, w.rows, w.cols)));
    }
    let wrb = w.validate()?;
    let xrb = row_bytes(vec_dot_type(w.ty), w.cols)?;
    if xq.len() != xrb {
        return Err(KernelError::Size(format!("quantized activations: expected {xrb} bytes (one token), got {}", xq.len())));
    }
    if rows.start > rows.end || rows.end > w.rows || y.len() != rows.len() {
        return Err(KernelError::Size(format!("rows {rows:?} of {} into {} outputs", w.rows, y.len())));
    }
    let order = token_order(w.ty, batch_invariant, 1, 0);
    let simd = use_simd(isa());
    for (r, o) in rows.zip(y.iter_mut()) {
        *o = dot_isa(simd, order, &w.data[r * wrb..(r + 1) * wrb], xq);
    }
    Ok(())
}

fn use_simd(level: Isa) -> bool {
    matches!(level, Isa::Avx2 | Isa::Avx512 | Isa::Avx512Vnni) && level.is_supported()
}

/// `y = x · wᵀ` in the peer's order for a matrix accepted by [`peer_kquant_supported`]:
/// `xq` holds `n_tokens` Q8_K rows, `y` is `[n_tokens, w.rows]`.
pub fn matmul_peer_kquant(w: &WeightView, xq: &[u8], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    matmul_peer_kquant_isa(isa(), w, xq, n_tokens, y)
}

/// As [`matmul_peer_kquant`] with the kernels of `level` (scalar unless an x86 SIMD level).
pub fn matmul_peer_kquant_isa(level: Isa, w: &WeightView, xq: &[u8], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    peer_kquant_impl(level, w, xq, n_tokens, y, false)
}

/// As [`matmul_peer_kquant`], but every token gets the same fold order whatever the batch
/// size or its index in the batch: Q4_K always the repacked gemm order, Q6_K always the
/// tiled order (the peer's orders for large batches, and the faster ones for many rows).
/// A row's result is then independent of which other rows share the call, which is what
/// a serving engine needs for batch-invariant greedy output.
pub fn matmul_kquant_batch_invariant(w: &WeightView, xq: &[u8], n_tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
    peer_kquant_impl(isa(), w, xq, n_tokens, y, true)
}

/// Tokens from which the 8-row VNNI kernels beat the per-row dots (same bits either way).
/// They unpack 8 weight rows into scratch once per call, which only pays over many tokens:
/// measured with `matmul_speed --invariant` on [896 × 4864], 2 threads, GMAC/s per-row vs
/// VNNI: Q4_K 49 / 46 at 8 tokens, 50 / 71 at 16; Q6_K 59 / 47 at 8, 60 / 73 at 16.
#[cfg(target_arch = "x86_64")]
const VNNI_MIN_TOKENS: usize = 16;

fn peer_kquant_impl(level: Isa, w: &WeightView, xq: &[u8], n_tokens: usize, y: &mut [f32], fixed: bool) -> Result<(), KernelError> {
    if !level.is_supported() {
        return Err(KernelError::UnsupportedIsa(level));
    }
    if !peer_kquant_supported(w.ty, w.rows, w.cols) {
        return Err(KernelError::Size(format!("no peer-order kernel for {:?} [{}, {}]", w.ty, w.rows, w.cols)));
    }
    let wrb = w.validate()?;
    let xrb = row_bytes(vec_dot_type(w.ty), w.cols)?;
    let xneed = xrb.checked_mul(n_tokens).ok_or_else(|| KernelError::Size("activation size overflows".into()))?;
    if xq.len() != xneed {
        return Err(KernelError::Size(format!("quantized activations: expected {xneed} bytes, got {}", xq.len())));
    }
    let yneed = w.rows.checked_mul(n_tokens).ok_or_else(|| KernelError::Size("output size overflows".into()))?;
    if y.len() != yneed {
        return Err(KernelError::Size(format!("output: expected {yneed} floats, got {}", y.len())));
    }
    if yneed == 0 {
        return Ok(());
    }
    let order = |t: usize| token_order(w.ty, fixed, n_tokens, t);
    let simd = use_simd(level);
    let rows = w.rows;
    let parts = num_threads().clamp(1, rows).min(rows.div_ceil(16));
    let n_tasks = if parts <= 1 { 1 } else { parts * 4 };
    let chunk = rows.div_ceil(n_tasks);
    let out = OutPtr(y.as_mut_ptr());
    #[cfg(target_arch = "x86_64")]
    {
        let q4 = w.ty == GgmlType::Q4_K && n_tokens >= VNNI_MIN_TOKENS;
        let q6 = w.ty == GgmlType::Q6_K && n_tokens >= VNNI_MIN_TOKENS;
        if (q4 || q6) && level == Isa::Avx512Vnni {
            // Tokens in the Q4_K gemm order (all of them when `fixed`; see `token_order`).
            let gemm_tokens = if fixed { n_tokens } else { n_tokens - n_tokens % 4 };
            // Groups of 8 rows through the VNNI kernels; the Q6_K rows past the last whole
            // group (Q4_K here always has rows % 8 == 0) take the per-row path below.
            let groups = rows / vnni::ROWS;
            let n_tasks = (num_threads() * 4).clamp(1, groups.max(1));
            let nb = w.cols / 256;
            let len = if q4 { vnni::scratch_len(nb) } else { vnni::scratch_len_q6(nb) };
            pool::parallel_for(n_tasks, &|i| {
                let g = pool::split_range(groups, n_tasks, i);
                let mut scr = vnni::scratch(len);
                for g in g {
                    let r0 = g * vnni::ROWS;
                    let rows8 = &w.data[r0 * wrb..(r0 + vnni::ROWS) * wrb];
                    // SAFETY: the level (AVX-512 + VNNI) is supported (checked above); the
                    // slice holds rows r0..r0+8 (validated sizes); this task alone writes
                    // y[t, r0..r0+8] for every t (disjoint row groups), within `y`.
                    unsafe {
                        if q4 {
                            vnni::rows8(rows8, wrb, xq, xrb, n_tokens, gemm_tokens, &mut scr, out.get().add(r0), rows)
                        } else {
                            vnni::rows8_q6(rows8, wrb, xq, xrb, n_tokens, &mut scr, out.get().add(r0), rows)
                        }
                    };
                }
            });
            let done = groups * vnni::ROWS;
            for r in done..rows {
                let w_row = &w.data[r * wrb..(r + 1) * wrb];
                for t in 0..n_tokens {
                    let v = dot_isa(simd, order(t), w_row, &xq[t * xrb..(t + 1) * xrb]);
                    y[t * rows + r] = v;
                }
            }
            return Ok(());
        }
    }
    let run = |i: usize| {
        let r0 = (i * chunk).min(rows);
        let r1 = (r0 + chunk).min(rows);
        for r in r0..r1 {
            let w_row = &w.data[r * wrb..(r + 1) * wrb];
            let mut t = 0;
            while t < n_tokens {
                // Groups of 4 tokens from a multiple of 4 share one order (the Q4_K gemm
                // covers whole groups), so one multi-token call serves a group.
                let n = (n_tokens - t).min(4);
                let mut v = [0.0f32; 4];
                if simd && n == 4 {
                    let x = |k: usize| &xq[(t + k) * xrb..(t + k + 1) * xrb];
                    v = dot4(order(t), w_row, [x(0), x(1), x(2), x(3)]);
                } else {
                    for (k, vk) in v.iter_mut().enumerate().take(n) {
                        *vk = dot_isa(simd, order(t + k), w_row, &xq[(t + k) * xrb..(t + k + 1) * xrb]);
                    }
                }
                for (k, &vk) in v.iter().enumerate().take(n) {
                    // SAFETY: `(t + k) * rows + r < n_tokens * rows = y.len()`, and tasks
                    // own disjoint row ranges, so no two write the same element while `y`
                    // is exclusively borrowed by this function.
                    unsafe { *out.get().add((t + k) * rows + r) = vk };
                }
                t += n;
            }
        }
    };
    if n_tasks == 1 {
        run(0);
    } else {
        pool::parallel_for(n_tasks, &run);
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 twins: integer partial sums with `maddubs`/`madd` (exact: |products| stay far
    //! below i16/i32 limits), folded into f32 at the scalar reference's points with the
    //! same fused multiply-adds.
    use super::{q4k_scale_min, Q4K_BYTES, Q6K_BYTES, Q8K_BYTES};
    use std::arch::x86_64::*;

    /// The f16 at `b[i..i + 2]` as f32 with F16C's exact `vcvtph2ps` (the same value as
    /// the reference's conversion, without a call through `half`'s run-time dispatch).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16_at(b: &[u8], i: usize) -> f32 {
        let bits = u16::from_le_bytes([b[i], b[i + 1]]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// The four horizontal sums of `v` at once (integer, so exact in any order).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum4_i32(v: [__m256i; 4]) -> [i32; 4] {
        let a = _mm256_hadd_epi32(v[0], v[1]);
        let b = _mm256_hadd_epi32(v[2], v[3]);
        let c = _mm256_hadd_epi32(a, b);
        let d = _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        let mut out = [0i32; 4];
        _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, d);
        out
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load(p: &[u8]) -> __m256i {
        debug_assert!(p.len() >= 32);
        _mm256_loadu_si256(p.as_ptr() as *const __m256i)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn bsums(bx: &[u8]) -> [i32; 16] {
        let v = _mm256_loadu_si256(bx.as_ptr().add(260) as *const __m256i);
        let mut out = [0i32; 16];
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(v)));
        _mm256_storeu_si256(out.as_mut_ptr().add(8) as *mut __m256i, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(v, 1)));
        out
    }

    /// Pair `pair` (sub-blocks `2·pair`, `2·pair + 1`) of a Q4_K super-block against its
    /// Q8_K activations: the scaled integer products in 8 i32 lanes, and the mins term
    /// `m0·Σx₀ + m1·Σx₁` from the block sums `bs`. Exact integers, so callers may reduce
    /// them per pair or per super-block.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4k_pair(bw: &[u8], bx: &[u8], bs: &[i32; 16], pair: usize) -> (__m256i, i32) {
        let m4 = _mm256_set1_epi8(0x0F);
        let scales = &bw[4..16];
        let q4 = load(&bw[16 + 32 * pair..]);
        let (sc0, m0) = q4k_scale_min(scales, 2 * pair);
        let (sc1, m1) = q4k_scale_min(scales, 2 * pair + 1);
        let lo = _mm256_and_si256(q4, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
        let x0 = load(&bx[4 + 64 * pair..]);
        let x1 = load(&bx[36 + 64 * pair..]);
        let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_set1_epi16(sc0 as i16));
        let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), _mm256_set1_epi16(sc1 as i16));
        let imin = m0 * (bs[4 * pair] + bs[4 * pair + 1]) + m1 * (bs[4 * pair + 2] + bs[4 * pair + 3]);
        (_mm256_add_epi32(p0, p1), imin)
    }

    /// # Safety
    /// AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q4_k(w_row: &[u8], x_row: &[u8], per_pair: bool) -> f32 {
        if !per_pair {
            return dot_q4_k_gemv(w_row, x_row);
        }
        let (mut acc, mut acc_min) = (0.0f32, 0.0f32);
        for (bw, bx) in w_row.chunks_exact(Q4K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
            let dx = f32::from_le_bytes([bx[0], bx[1], bx[2], bx[3]]);
            let (d, dmin) = (f16_at(bw, 0) * dx, f16_at(bw, 2) * dx);
            let bs = bsums(bx);
            for pair in 0..4 {
                let (lanes, imin) = q4k_pair(bw, bx, &bs, pair);
                acc = (hsum_i32(lanes) as f32).mul_add(d, acc);
                acc_min = (imin as f32).mul_add(dmin, acc_min);
            }
        }
        acc - acc_min
    }

    /// Bytes ahead of the current weight block that single-token dots prefetch.
    const PREFETCH: usize = 1024;

    /// [`dot_q4_k`] in the gemv order (one fold per super-block): the integer sum of a
    /// super-block is formed in vector lanes over all four pairs and reduced once (exact
    /// either way); the weights are prefetched ahead, since decoding streams them once.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q4_k_gemv(w_row: &[u8], x_row: &[u8]) -> f32 {
        let (mut acc, mut acc_min) = (0.0f32, 0.0f32);
        for (bw, bx) in w_row.chunks_exact(Q4K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
            _mm_prefetch::<_MM_HINT_T0>(bw.as_ptr().wrapping_add(PREFETCH) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(bw.as_ptr().wrapping_add(PREFETCH + 64) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(bw.as_ptr().wrapping_add(PREFETCH + 128) as *const i8);
            let dx = f32::from_le_bytes([bx[0], bx[1], bx[2], bx[3]]);
            let (d, dmin) = (f16_at(bw, 0) * dx, f16_at(bw, 2) * dx);
            let bs = bsums(bx);
            let mut lanes = _mm256_setzero_si256();
            let mut imin = 0i32;
            for pair in 0..4 {
                let (l, m) = q4k_pair(bw, bx, &bs, pair);
                lanes = _mm256_add_epi32(lanes, l);
                imin += m;
            }
            acc = (hsum_i32(lanes) as f32).mul_add(d, acc);
            acc_min = (imin as f32).mul_add(dmin, acc_min);
        }
        acc - acc_min
    }

    /// [`dot_q4_k`] for `N` activation rows at once: each weight block is unpacked once
    /// for all of them; every token keeps its own single-dot sequence of operations.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q4_k_n<const N: usize>(w_row: &[u8], xs: [&[u8]; N], per_pair: bool) -> [f32; N] {
        let mut acc = [0.0f32; N];
        let mut acc_min = [0.0f32; N];
        let m4 = _mm256_set1_epi8(0x0F);
        for (b, bw) in w_row.chunks_exact(Q4K_BYTES).enumerate() {
            let (dw, dminw) = (f16_at(bw, 0), f16_at(bw, 2));
            let scales = &bw[4..16];
            let mut sm = [(0i32, 0i32); 8];
            for (j, v) in sm.iter_mut().enumerate() {
                *v = q4k_scale_min(scales, j);
            }
            let mut lo = [_mm256_setzero_si256(); 4];
            let mut hi = [_mm256_setzero_si256(); 4];
            for pair in 0..4 {
                let q4 = load(&bw[16 + 32 * pair..]);
                lo[pair] = _mm256_and_si256(q4, m4);
                hi[pair] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            }
            for t in 0..N {
                let bx = &xs[t][b * Q8K_BYTES..(b + 1) * Q8K_BYTES];
                let dx = f32::from_le_bytes([bx[0], bx[1], bx[2], bx[3]]);
                let (d, dmin) = (dw * dx, dminw * dx);
                let bs = bsums(bx);
                let mut imins = [0i32; 4];
                let mut pv = [_mm256_setzero_si256(); 4];
                for pair in 0..4 {
                    let ((sc0, m0), (sc1, m1)) = (sm[2 * pair], sm[2 * pair + 1]);
                    let x0 = load(&bx[4 + 64 * pair..]);
                    let x1 = load(&bx[36 + 64 * pair..]);
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[pair], x0), _mm256_set1_epi16(sc0 as i16));
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[pair], x1), _mm256_set1_epi16(sc1 as i16));
                    pv[pair] = _mm256_add_epi32(p0, p1);
                    imins[pair] = m0 * (bs[4 * pair] + bs[4 * pair + 1]) + m1 * (bs[4 * pair + 2] + bs[4 * pair + 3]);
                }
                let isums = hsum4_i32(pv);
                if per_pair {
                    for p in 0..4 {
                        acc[t] = (isums[p] as f32).mul_add(d, acc[t]);
                        acc_min[t] = (imins[p] as f32).mul_add(dmin, acc_min[t]);
                    }
                } else {
                    let isum = isums[0] + isums[1] + isums[2] + isums[3];
                    let imin = imins[0] + imins[1] + imins[2] + imins[3];
                    acc[t] = (isum as f32).mul_add(d, acc[t]);
                    acc_min[t] = (imin as f32).mul_add(dmin, acc_min[t]);
                }
            }
        }
        let mut out = [0.0f32; N];
        for t in 0..N {
            out[t] = acc[t] - acc_min[t];
        }
        out
    }

    /// [`dot_q6_k_tiled`] (`tiled`) or [`dot_q6_k`] for `N` activation rows at once, each
    /// weight block unpacked once for all of them.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q6_k_n<const N: usize>(w_row: &[u8], xs: [&[u8]; N], tiled: bool) -> [f32; N] {
        let mut acc_t = [0.0f32; N];
        let mut acc_v = [_mm256_setzero_ps(); N];
        for (b, bw) in w_row.chunks_exact(Q6K_BYTES).enumerate() {
            let q = q6_chunks(bw);
            let dw = f16_at(bw, 208);
            let mut scs = [_mm256_setzero_si256(); 8];
            for (c, v) in scs.iter_mut().enumerate() {
                *v = chunk_scales(bw, c);
            }
            let sc = |i: usize| bw[192 + i] as i8 as i32;
            for t in 0..N {
                let bx = &xs[t][b * Q8K_BYTES..(b + 1) * Q8K_BYTES];
                let dx = f32::from_le_bytes([bx[0], bx[1], bx[2], bx[3]]);
                let bs = bsums(bx);
                let mut lanes = _mm256_setzero_si256();
                for (c, qc) in q.iter().enumerate() {
                    let p = _mm256_maddubs_epi16(*qc, load(&bx[4 + 32 * c..]));
                    lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p, scs[c]));
                }
                if tiled {
                    let mut off = 0i32;
                    for (s, v) in bs.iter().enumerate() {
                        off += sc(s) * v;
                    }
                    let isum = hsum_i32(lanes) - (off << 5);
                    acc_t[t] = (isum as f32 * dw).mul_add(dx, acc_t[t]);
                } else {
                    let mut sub = [0i32; 8];
                    for (l, s) in sub.iter_mut().enumerate() {
                        *s = (bs[2 * l] * sc(2 * l) + bs[2 * l + 1] * sc(2 * l + 1)) << 5;
                    }
                    let sub = _mm256_loadu_si256(sub.as_ptr() as *const __m256i);
                    let d = _mm256_set1_ps(dx * dw);
                    acc_v[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(lanes, sub)), acc_v[t]);
                }
            }
        }
        if tiled {
            return acc_t;
        }
        let mut out = [0.0f32; N];
        for t in 0..N {
            let acc = acc_v[t];
            let mut r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
            r = _mm_add_ps(r, _mm_movehl_ps(r, r));
            r = _mm_add_ss(r, _mm_movehdup_ps(r));
            out[t] = _mm_cvtss_f32(r);
        }
        out
    }

    /// The 8 chunks of 32 unsigned 6-bit weights of a Q6_K block (chunk `c` = values
    /// `32c..32c+32`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q6_chunks(bw: &[u8]) -> [__m256i; 8] {
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x03);
        let mut out = [_mm256_setzero_si256(); 8];
        for half in 0..2 {
            let ql0 = load(&bw[64 * half..]);
            let ql1 = load(&bw[64 * half + 32..]);
            let qh = load(&bw[128 + 32 * half..]);
            let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
            let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
            let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
            let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
            out[4 * half] = _mm256_or_si256(_mm256_and_si256(ql0, m4), h0);
            out[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), h1);
            out[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h2);
            out[4 * half + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h3);
        }
        out
    }

    /// i16 scales of chunk `c`: the first 8 pair-sums use sub-block `2c`, the last 8 `2c+1`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk_scales(bw: &[u8], c: usize) -> __m256i {
        let a = bw[192 + 2 * c] as i8 as i16;
        let b = bw[193 + 2 * c] as i8 as i16;
        _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a))
    }

    /// # Safety
    /// AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q6_k_tiled(w_row: &[u8], x_row: &[u8]) -> f32 {
        let mut acc = 0.0f32;
        for (bw, bx) in w_row.chunks_exact(Q6K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
            let dx = f32::from_le_bytes([bx[0], bx[1], bx[2], bx[3]]);
            let q = q6_chunks(bw);
            let bs = bsums(bx);
            let mut lanes = _mm256_setzero_si256();
            let mut off = 0i32;
            for (c, qc) in q.iter().enumerate() {
                let p = _mm256_maddubs_epi16(*qc, load(&bx[4 + 32 * c..]));
                lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p, chunk_scales(bw, c)));
            }
            for (s, b) in bs.iter().enumerate() {
                off += (bw[192 + s] as i8 as i32) * b;
            }
            let isum = hsum_i32(lanes) - (off << 5);
            acc = (isum as f32 * f16_at(bw, 208)).mul_add(dx, acc);
        }
        acc
    }

    /// # Safety
    /// AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q6_k(w_row: &[u8], x_row: &[u8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (bw, bx) in w_row.chunks_exact(Q6K_BYTES).zip(x_row.chunks_exact(Q8K_BYTES)) {
            for l in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(bw.as_ptr().wrapping_add(PREFETCH + 64 * l) as *const i8);
            }
            let dx = f32::from_le_bytes([bx[0], bx[1], bx[2], bx[3]]);
            let d = _mm256_set1_ps(dx * f16_at(bw, 208));
            let q = q6_chunks(bw);
            let bs = bsums(bx);
            let mut lanes = _mm256_setzero_si256();
            for (c, qc) in q.iter().enumerate() {
                let p = _mm256_maddubs_epi16(*qc, load(&bx[4 + 32 * c..]));
                lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p, chunk_scales(bw, c)));
            }
            let mut sub = [0i32; 8];
            for (l, s) in sub.iter_mut().enumerate() {
                let sc = |i: usize| bw[192 + i] as i8 as i32;
                *s = (bs[2 * l] * sc(2 * l) + bs[2 * l + 1] * sc(2 * l + 1)) << 5;
            }
            let sub = _mm256_loadu_si256(sub.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(lanes, sub)), acc);
        }
        let mut r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
        r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        r = _mm_add_ss(r, _mm_movehdup_ps(r));
        _mm_cvtss_f32(r)
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // pointer-based kernels take their whole geometry
mod vnni {
    //! Q4_K for many tokens with AVX-512 VNNI, laid out the way the peer's repacked
    //! `block_q4_Kx8` is: 8 weight rows are unpacked once per call into scratch with their
    //! values interleaved in groups of 4 (`[sub-block][k][row][4]`), so one `vpdpbusd`
    //! against 4 activation bytes broadcast to every lane adds 4 products to each of the 8
    //! rows' lanes: lane = row, no horizontal sums. Per (row, token) the integer sums are
    //! the same exact values as in [`super::dot_q4_k`], and the f32 folds (`fma(f32(isum),
    //! d_w·d_x, acc)` per pair or per super-block, the same for the mins, `acc - acc_min`)
    //! are the same operations, lane by lane, so results are bit-identical to it.
    use super::{f16_at, q4k_scale_min, Q4K_BYTES, Q6K_BYTES, Q8K_BYTES};
    use std::arch::x86_64::*;

    /// Rows per group (the lanes of one vector).
    pub(super) const ROWS: usize = 8;
    /// Tokens per tile.
    const TOKS: usize = 4;

    /// One group of 8 rows unpacked, per super-block: 8 sub-blocks × 8 vectors of
    /// interleaved values, then per sub-block the 8 rows' scales and mins (i32), then the
    /// rows' `d` and `dmin` (f32).
    const VALS: usize = 8 * 8; // vectors of values per super-block
    const BLOCK_VECS: usize = VALS + 8 + 8 + 2;

    /// Unpacks rows `w[0..8]` (`nb` super-blocks each, `wrb` bytes apart) into `scr`
    /// (`nb * BLOCK_VECS` vectors).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn unpack(w: &[u8], wrb: usize, nb: usize, scr: &mut [__m256i]) {
        for b in 0..nb {
            let blk = &mut scr[b * BLOCK_VECS..(b + 1) * BLOCK_VECS];
            let mut vals = [[0u32; 64]; 8]; // [sub-block][k * 8 + row]
            let mut sc = [[0i32; 8]; 8]; // [sub-block][row]
            let mut mn = [[0i32; 8]; 8];
            let mut d = [0.0f32; 8];
            let mut dmin = [0.0f32; 8];
            for r in 0..ROWS {
                let bw = &w[r * wrb + b * Q4K_BYTES..r * wrb + (b + 1) * Q4K_BYTES];
                d[r] = f16_at(bw, 0);
                dmin[r] = f16_at(bw, 2);
                for j in 0..8 {
                    let (s, m) = q4k_scale_min(&bw[4..16], j);
                    sc[j][r] = s;
                    mn[j][r] = m;
                }
                for pair in 0..4 {
                    let q = &bw[16 + 32 * pair..48 + 32 * pair];
                    for k in 0..8 {
                        let mut lo = [0u8; 4];
                        let mut hi = [0u8; 4];
                        for e in 0..4 {
                            lo[e] = q[4 * k + e] & 0x0F;
                            hi[e] = q[4 * k + e] >> 4;
                        }
                        vals[2 * pair][k * 8 + r] = u32::from_le_bytes(lo);
                        vals[2 * pair + 1][k * 8 + r] = u32::from_le_bytes(hi);
                    }
                }
            }
            for j in 0..8 {
                for k in 0..8 {
                    blk[j * 8 + k] = _mm256_loadu_si256(vals[j].as_ptr().add(8 * k) as *const __m256i);
                }
                blk[VALS + j] = _mm256_loadu_si256(sc[j].as_ptr() as *const __m256i);
                blk[VALS + 8 + j] = _mm256_loadu_si256(mn[j].as_ptr() as *const __m256i);
            }
            blk[VALS + 16] = _mm256_castps_si256(_mm256_loadu_ps(d.as_ptr()));
            blk[VALS + 17] = _mm256_castps_si256(_mm256_loadu_ps(dmin.as_ptr()));
        }
    }

    /// Σ over one sub-block for the 8 rows: lane r = Σ_e w[r][e]·x[e] (x: 32 quants).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn sub_sums(v: *const __m256i, x: *const u8) -> __m256i {
        let bc = |k: usize| _mm256_set1_epi32((x.add(4 * k) as *const i32).read_unaligned());
        let mut a = _mm256_setzero_si256();
        let mut b = _mm256_setzero_si256();
        for k in (0..8).step_by(2) {
            a = _mm256_dpbusd_epi32(a, *v.add(k), bc(k));
            b = _mm256_dpbusd_epi32(b, *v.add(k + 1), bc(k + 1));
        }
        _mm256_add_epi32(a, b)
    }

    /// Rows `w[0..8]` × `N` tokens (`xs`: Q8_K rows `xrb` bytes apart) in the gemm
    /// (`per_pair`) or gemv order; writes `out[t * ts + r]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn tile<const N: usize>(scr: &[__m256i], nb: usize, xs: *const u8, xrb: usize, per_pair: bool, out: *mut f32, ts: usize) {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut accm = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            let blk = scr.as_ptr().add(b * BLOCK_VECS);
            let dw = _mm256_castsi256_ps(*blk.add(VALS + 16));
            let dminw = _mm256_castsi256_ps(*blk.add(VALS + 17));
            for t in 0..N {
                let bx = xs.add(t * xrb + b * Q8K_BYTES);
                let dx = _mm256_set1_ps((bx as *const f32).read_unaligned());
                let d = _mm256_mul_ps(dw, dx);
                let dmin = _mm256_mul_ps(dminw, dx);
                let bs = |i: usize| (bx.add(260 + 2 * i) as *const i16).read_unaligned() as i32;
                let mut isum_b = _mm256_setzero_si256();
                let mut imin_b = _mm256_setzero_si256();
                // Locals, so the chains stay in registers across the four pairs.
                let (mut a, mut am) = (acc[t], accm[t]);
                for pair in 0..4 {
                    let (j0, j1) = (2 * pair, 2 * pair + 1);
                    let s0 = sub_sums(blk.add(j0 * 8), bx.add(4 + 32 * j0));
                    let s1 = sub_sums(blk.add(j1 * 8), bx.add(4 + 32 * j1));
                    let isum = _mm256_add_epi32(_mm256_mullo_epi32(s0, *blk.add(VALS + j0)), _mm256_mullo_epi32(s1, *blk.add(VALS + j1)));
                    let b0 = _mm256_set1_epi32(bs(2 * j0) + bs(2 * j0 + 1));
                    let b1 = _mm256_set1_epi32(bs(2 * j1) + bs(2 * j1 + 1));
                    let imin = _mm256_add_epi32(_mm256_mullo_epi32(b0, *blk.add(VALS + 8 + j0)), _mm256_mullo_epi32(b1, *blk.add(VALS + 8 + j1)));
                    if per_pair {
                        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, a);
                        am = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin), dmin, am);
                    } else {
                        isum_b = _mm256_add_epi32(isum_b, isum);
                        imin_b = _mm256_add_epi32(imin_b, imin);
                    }
                }
                if !per_pair {
                    a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum_b), d, a);
                    am = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin_b), dmin, am);
                }
                acc[t] = a;
                accm[t] = am;
            }
        }
        for t in 0..N {
            _mm256_storeu_ps(out.add(t * ts), _mm256_sub_ps(acc[t], accm[t]));
        }
    }

    /// Rows `0..8` of `w` (whole super-blocks, `wrb` bytes apart) times `n_tokens` Q8_K
    /// rows of `xq` (`xrb` bytes each), tokens `< gemm_tokens` in the gemm order, the rest
    /// in the gemv order; `out[t * ts + r]`. `scr` is scratch of [`scratch_len`] vectors.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL and VNNI must be available; `w` holds 8 rows of `nb = xrb / 292`
    /// blocks, `xq` `n_tokens` rows, and `out` the `n_tokens * ts` outputs written.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn rows8(
        w: &[u8],
        wrb: usize,
        xq: &[u8],
        xrb: usize,
        n_tokens: usize,
        gemm_tokens: usize,
        scr: &mut [__m256i],
        out: *mut f32,
        ts: usize,
    ) {
        let nb = xrb / Q8K_BYTES;
        unpack(w, wrb, nb, scr);
        let x = xq.as_ptr();
        let mut t = 0;
        while t < n_tokens {
            let per_pair = t < gemm_tokens;
            let left = if per_pair { gemm_tokens - t } else { n_tokens - t };
            let (xs, o) = (x.add(t * xrb), out.add(t * ts));
            let n = if left >= TOKS {
                tile::<TOKS>(scr, nb, xs, xrb, per_pair, o, ts);
                TOKS
            } else {
                tile::<1>(scr, nb, xs, xrb, per_pair, o, ts);
                1
            };
            t += n;
        }
    }

    /// Q6_K per super-block: 16 sub-blocks × 4 vectors of interleaved unsigned values
    /// (0..=63), the 16 sub-blocks' scales of the 8 rows (i32), the rows' `d` (f32).
    const Q6_VALS: usize = 16 * 4;
    const Q6_BLOCK_VECS: usize = Q6_VALS + 16 + 1;

    /// Unpacks 8 Q6_K rows into `scr` (`nb * Q6_BLOCK_VECS` vectors).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn unpack_q6(w: &[u8], wrb: usize, nb: usize, scr: &mut [__m256i]) {
        let mut q = [0i32; 256];
        for b in 0..nb {
            let blk = &mut scr[b * Q6_BLOCK_VECS..(b + 1) * Q6_BLOCK_VECS];
            let mut vals = [[0u32; 8]; Q6_VALS]; // [sub-block * 4 + k][row]
            let mut sc = [[0i32; 8]; 16]; // [sub-block][row]
            let mut d = [0.0f32; 8];
            for r in 0..ROWS {
                let bw = &w[r * wrb + b * Q6K_BYTES..r * wrb + (b + 1) * Q6K_BYTES];
                super::q6k_unpack(bw, &mut q);
                for (g, v) in vals.iter_mut().enumerate() {
                    let e = &q[4 * g..4 * g + 4];
                    v[r] = u32::from_le_bytes([e[0] as u8, e[1] as u8, e[2] as u8, e[3] as u8]);
                }
                for (s, sc) in sc.iter_mut().enumerate() {
                    sc[r] = bw[192 + s] as i8 as i32;
                }
                d[r] = f16_at(bw, 208);
            }
            for (g, v) in vals.iter().enumerate() {
                blk[g] = _mm256_loadu_si256(v.as_ptr() as *const __m256i);
            }
            for (s, v) in sc.iter().enumerate() {
                blk[Q6_VALS + s] = _mm256_loadu_si256(v.as_ptr() as *const __m256i);
            }
            blk[Q6_VALS + 16] = _mm256_castps_si256(_mm256_loadu_ps(d.as_ptr()));
        }
    }

    /// 8 Q6_K rows × `N` tokens in the peer's tiled order (`fma(f32(isum)·d_w, d_x, acc)`
    /// per super-block); writes `out[t * ts + r]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn tile_q6<const N: usize>(scr: &[__m256i], nb: usize, xs: *const u8, xrb: usize, out: *mut f32, ts: usize) {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            let blk = scr.as_ptr().add(b * Q6_BLOCK_VECS);
            let dw = _mm256_castsi256_ps(*blk.add(Q6_VALS + 16));
            for (t, acc) in acc.iter_mut().enumerate() {
                let bx = xs.add(t * xrb + b * Q8K_BYTES);
                let x = bx.add(4);
                let bc = |e: usize| _mm256_set1_epi32((x.add(e) as *const i32).read_unaligned());
                let mut isum = _mm256_setzero_si256();
                for sb in 0..16 {
                    let v = blk.add(4 * sb);
                    let a = _mm256_dpbusd_epi32(_mm256_setzero_si256(), *v, bc(16 * sb));
                    let a = _mm256_dpbusd_epi32(a, *v.add(1), bc(16 * sb + 4));
                    let c = _mm256_dpbusd_epi32(_mm256_setzero_si256(), *v.add(2), bc(16 * sb + 8));
                    let c = _mm256_dpbusd_epi32(c, *v.add(3), bc(16 * sb + 12));
                    let bsum = (bx.add(260 + 2 * sb) as *const i16).read_unaligned() as i32;
                    // Σ (q - 32)·x over the sub-block, then its scale.
                    let raw = _mm256_sub_epi32(_mm256_add_epi32(a, c), _mm256_set1_epi32(bsum << 5));
                    isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(raw, *blk.add(Q6_VALS + sb)));
                }
                let dx = _mm256_set1_ps((bx as *const f32).read_unaligned());
                *acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(isum), dw), dx, *acc);
            }
        }
        for (t, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(t * ts), *acc);
        }
    }

    /// Rows `0..8` of a Q6_K `w` times `n_tokens` Q8_K rows in the peer's tiled order
    /// (the order of batches of 8 tokens or more); `out[t * ts + r]`. `scr`: scratch of
    /// [`scratch_len_q6`] vectors.
    ///
    /// # Safety
    /// As [`rows8`].
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn rows8_q6(
        w: &[u8],
        wrb: usize,
        xq: &[u8],
        xrb: usize,
        n_tokens: usize,
        scr: &mut [__m256i],
        out: *mut f32,
        ts: usize,
    ) {
        let nb = xrb / Q8K_BYTES;
        unpack_q6(w, wrb, nb, scr);
        let x = xq.as_ptr();
        let mut t = 0;
        while t + TOKS <= n_tokens {
            tile_q6::<TOKS>(scr, nb, x.add(t * xrb), xrb, out.add(t * ts), ts);
            t += TOKS;
        }
        while t < n_tokens {
            tile_q6::<1>(scr, nb, x.add(t * xrb), xrb, out.add(t * ts), ts);
            t += 1;
        }
    }

    /// Scratch vectors [`rows8_q6`] needs for `nb` super-blocks.
    pub(super) fn scratch_len_q6(nb: usize) -> usize {
        nb * Q6_BLOCK_VECS
    }

    /// Scratch vectors [`rows8`] needs for `nb` super-blocks.
    pub(super) fn scratch_len(nb: usize) -> usize {
        nb * BLOCK_VECS
    }

    /// A zeroed scratch of `len` vectors.
    pub(super) fn scratch(len: usize) -> Vec<__m256i> {
        // SAFETY: an all-zero bit pattern is a valid `__m256i` (plain integers).
        vec![unsafe { std::mem::zeroed() }; len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift).
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// Random Q8_K rows: quants in -127..=127, consistent bsums, a positive scale.
    fn q8k_rows(n_blocks: usize, seed: u64) -> Vec<u8> {
        let raw = bytes(n_blocks * 256, seed);
        let mut out = Vec::new();
        for (b, q) in raw.chunks_exact(256).enumerate() {
            out.extend_from_slice(&(0.013f32 * (b as f32 + 1.0)).to_le_bytes());
            let q: Vec<i8> = q.iter().map(|&v| (v as i16 - 128).clamp(-127, 127) as i8).collect();
            out.extend(q.iter().map(|&v| v as u8));
            for c in q.chunks_exact(16) {
                out.extend_from_slice(&c.iter().map(|&v| v as i16).sum::<i16>().to_le_bytes());
            }
        }
        out
    }

    /// Random K-quant blocks with finite f16 scales.
    fn weights(ty: GgmlType, n_blocks: usize, seed: u64) -> Vec<u8> {
        let (bb, scale_at): (usize, &[usize]) = match ty {
            GgmlType::Q4_K => (Q4K_BYTES, &[0, 2]),
            _ => (Q6K_BYTES, &[208]),
        };
        let mut w = bytes(n_blocks * bb, seed);
        for (i, b) in w.chunks_exact_mut(bb).enumerate() {
            for &at in scale_at {
                let v = half::f16::from_f32(0.001 * (1.0 + (i * 7 + at) as f32 % 13.0));
                b[at..at + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        w
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
        crate::dequantize_row(ty, w, &mut wf).unwrap();
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
        if use_simd(isa()) {
            for o in [Order::Q4Gemm, Order::Q4Gemv] {
                assert_eq!(dot_isa(true, o, &w4, &x).to_bits(), dot_scalar(o, &w4, &x).to_bits());
            }
            for o in [Order::Q6Tiled, Order::Q6Vec] {
                assert_eq!(dot_isa(true, o, &w6, &x).to_bits(), dot_scalar(o, &w6, &x).to_bits());
            }
        }
    }

    #[test]
    fn simd_twins_equal_the_scalar_reference() {
        if !use_simd(isa()) {
            return; // Only the scalar reference exists on this CPU.
        }
        for seed in 1..40u64 {
            let nb = 1 + (seed as usize % 5);
            let x = q8k_rows(nb, seed * 31);
            let w4 = weights(GgmlType::Q4_K, nb, seed);
            let w6 = weights(GgmlType::Q6_K, nb, seed + 1000);
            for o in [Order::Q4Gemm, Order::Q4Gemv] {
                assert_eq!(dot_isa(true, o, &w4, &x).to_bits(), dot_scalar(o, &w4, &x).to_bits(), "{o:?} seed {seed}");
            }
            for o in [Order::Q6Tiled, Order::Q6Vec] {
                assert_eq!(dot_isa(true, o, &w6, &x).to_bits(), dot_scalar(o, &w6, &x).to_bits(), "{o:?} seed {seed}");
            }
        }
    }

    #[test]
    fn matmul_picks_the_order_by_token_index_and_batch_size() {
        let (rows, cols) = (24usize, 768usize);
        let nb = cols / 256;
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            let data = weights(ty, rows * nb, 7);
            let w = WeightView { ty, data: &data, rows, cols };
            let wrb = data.len() / rows;
            for n_tokens in [1usize, 4, 5, 9, 13] {
                let xq = q8k_rows(n_tokens * nb, 3);
                let mut y = vec![0.0f32; rows * n_tokens];
                matmul_peer_kquant(&w, &xq, n_tokens, &mut y).unwrap();
                for t in 0..n_tokens {
                    for r in 0..rows {
                        let o = match ty {
                            GgmlType::Q4_K if t < n_tokens - n_tokens % 4 => Order::Q4Gemm,
                            GgmlType::Q4_K => Order::Q4Gemv,
                            _ if n_tokens >= 8 => Order::Q6Tiled,
                            _ => Order::Q6Vec,
                        };
                        let want = dot_scalar(o, &data[r * wrb..(r + 1) * wrb], &xq[t * nb * Q8K_BYTES..(t + 1) * nb * Q8K_BYTES]);
                        assert_eq!(y[t * rows + r].to_bits(), want.to_bits(), "{ty:?} n={n_tokens} t={t} r={r}");
                    }
                }
            }
        }
    }

    #[test]
    fn batch_invariant_order_gives_every_token_the_same_bits_at_any_batch_size() {
        let (rows, cols) = (24usize, 768usize);
        let nb = cols / 256;
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            let data = weights(ty, rows * nb, 9);
            let w = WeightView { ty, data: &data, rows, cols };
            let wrb = data.len() / rows;
            for n_tokens in [1usize, 3, 4, 7, 8, 23] {
                let xq = q8k_rows(n_tokens * nb, 4);
                let mut y = vec![f32::NAN; rows * n_tokens];
                matmul_kquant_batch_invariant(&w, &xq, n_tokens, &mut y).unwrap();
                let o = if ty == GgmlType::Q4_K { Order::Q4Gemm } else { Order::Q6Tiled };
                for t in 0..n_tokens {
                    for r in 0..rows {
                        let want = dot_scalar(o, &data[r * wrb..(r + 1) * wrb], &xq[t * nb * Q8K_BYTES..(t + 1) * nb * Q8K_BYTES]);
                        assert_eq!(y[t * rows + r].to_bits(), want.to_bits(), "{ty:?} n={n_tokens} t={t} r={r}");
                    }
                }
            }
        }
    }

    #[test]
    fn q6_k_rows_past_the_last_group_of_eight_keep_the_tiled_order() {
        let (rows, cols, n_tokens) = (21usize, 512usize, 11usize);
        let nb = cols / 256;
        let data = weights(GgmlType::Q6_K, rows * nb, 11);
        let w = WeightView { ty: GgmlType::Q6_K, data: &data, rows, cols };
        let wrb = data.len() / rows;
        let xq = q8k_rows(n_tokens * nb, 5);
        let mut y = vec![f32::NAN; rows * n_tokens];
        matmul_peer_kquant(&w, &xq, n_tokens, &mut y).unwrap();
        for t in 0..n_tokens {
            for r in 0..rows {
                let want = dot_q6_k_tiled(&data[r * wrb..(r + 1) * wrb], &xq[t * nb * Q8K_BYTES..(t + 1) * nb * Q8K_BYTES]);
                assert_eq!(y[t * rows + r].to_bits(), want.to_bits(), "t={t} r={r}");
            }
        }
    }

    #[test]
    fn unsupported_shapes_are_an_error() {
        assert!(!peer_kquant_supported(GgmlType::Q4_K, 644, 2048));
        assert!(peer_kquant_supported(GgmlType::Q6_K, 644, 2048));
        assert!(!peer_kquant_supported(GgmlType::Q5_K, 640, 2048));
        let data = vec![0u8; 4 * Q4K_BYTES];
        let w = WeightView { ty: GgmlType::Q4_K, data: &data, rows: 4, cols: 256 };
        let mut y = vec![0.0f32; 4];
        assert!(matmul_peer_kquant(&w, &vec![0u8; Q8K_BYTES], 1, &mut y).is_err());
    }
}
