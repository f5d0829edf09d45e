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
//! the x86 twins (`simd/x86/peer.rs`: AVX2 + FMA, run on every x86 level the CPU has,
//! since integer sums are exact whatever instructions form them) produce the same bits, which
//! `tests::simd_twins_equal_the_scalar_reference` checks on random blocks. Rows are split
//! over the persistent [`pool`].
//!
//! With AVX-512 VNNI, batches (Q4_K from 4 tokens, Q6_K from 8) go through 8-row kernels
//! (`simd/x86/peer_vnni.rs`): each group of 8 rows is unpacked once per call into scratch with the values
//! of the 8 rows interleaved by 4, so one `vpdpbusd` against 4 activation bytes broadcast
//! adds to every row's own lane; the per-row scales multiply whole vectors, and the f32
//! folds run 8 rows per vector with exactly the scalar reference's operations per lane
//! (`matmul_picks_the_order_by_token_index_and_batch_size` compares them bit for bit).
//!
//! This file keeps what is portable: the fold orders, their scalar references, the choice
//! of order per token and the row split; every intrinsic lives under `simd/x86/`.

use crate::{isa, num_threads, pool, row_bytes, OutPtr, vec_dot_type, GgmlType, Isa, KernelError, WeightView};
// The x86 twins (AVX2) and 8-row kernels (AVX-512 VNNI) live beside the other x86 kernels.
#[cfg(target_arch = "x86_64")]
use crate::simd::x86::{peer as x86, peer_vnni as vnni};

/// Bytes of one Q8_K activation block: `d: f32`, `qs: [i8; 256]`, `bsums: [i16; 16]`.
pub const Q8K_BYTES: usize = 292;
pub(crate) const Q4K_BYTES: usize = 144;
pub(crate) const Q6K_BYTES: usize = 210;

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
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
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
pub(crate) fn q4k_scale_min(q: &[u8], j: usize) -> (i32, i32) {
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
pub(crate) fn q6k_unpack(bw: &[u8], q: &mut [i32; 256]) {
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
    level.has_avx2() && level.is_supported()
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
    let (wrb, xrb) = crate::matmul_operands(w, xq, n_tokens, y)?;
    if y.is_empty() {
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