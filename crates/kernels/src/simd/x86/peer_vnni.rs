//! The AVX-512 VNNI 8-row kernels of [`crate::peer_order`] for batches (Q4_K from
//! `VNNI_MIN_TOKENS` tokens in the gemm / gemv orders, Q6_K in the tiled order).
//!
//! Laid out the way the peer's repacked `block_q4_Kx8` is: 8 weight rows are unpacked
//! once per call into scratch with their values interleaved in groups of 4
//! (`[sub-block][k][row][4]`), so one `vpdpbusd` against 4 activation bytes broadcast to
//! every lane adds 4 products to each of the 8 rows' lanes: lane = row, no horizontal
//! sums. Per (row, token) the integer sums are the same exact values as in
//! [`crate::peer_order::dot_q4_k`], and the f32 folds (`fma(f32(isum), d_w·d_x, acc)` per
//! pair or per super-block, the same for the mins, `acc - acc_min`) are the same
//! operations, lane by lane, so results are bit-identical to it (and likewise for Q6_K
//! against [`crate::peer_order::dot_q6_k_tiled`]).

// Pointer-based kernels take their whole geometry.
#![allow(clippy::too_many_arguments)]

use crate::peer_order::{f16_at, q4k_scale_min, q6k_unpack, Q4K_BYTES, Q6K_BYTES, Q8K_BYTES};
use std::arch::x86_64::*;

/// Rows per group (the lanes of one vector).
pub(crate) const ROWS: usize = 8;
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
    // SAFETY: every load reads one local array (`vals[j]` from `8k`, k < 8, of 64 u32; `sc[j]`,
    // `mn[j]`: 8 i32; `d`, `dmin`: 8 f32) for exactly its 32 bytes.
    unsafe {
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
}

/// Σ over one sub-block for the 8 rows: lane r = Σ_e w[r][e]·x[e] (x: 32 quants).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn sub_sums(v: *const __m256i, x: *const u8) -> __m256i {
    // SAFETY: the caller passes `v`, 8 vectors of one sub-block in the scratch, and `x`, the
    // sub-block's 32 quants of a Q8_K block (the broadcasts read `x + 4k`, k < 8, 4 bytes each).
    unsafe {
        let bc = |k: usize| _mm256_set1_epi32((x.add(4 * k) as *const i32).read_unaligned());
        let mut a = _mm256_setzero_si256();
        let mut b = _mm256_setzero_si256();
        for k in (0..8).step_by(2) {
            a = _mm256_dpbusd_epi32(a, *v.add(k), bc(k));
            b = _mm256_dpbusd_epi32(b, *v.add(k + 1), bc(k + 1));
        }
        _mm256_add_epi32(a, b)
    }
}

/// Rows `w[0..8]` × `N` tokens (`xs`: Q8_K rows `xrb` bytes apart) in the gemm
/// (`per_pair`) or gemv order; writes `out[t * ts + r]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const N: usize>(scr: &[__m256i], nb: usize, xs: *const u8, xrb: usize, per_pair: bool, out: *mut f32, ts: usize) {
    // SAFETY: `scr` holds `nb` blocks of `BLOCK_VECS` vectors (filled by `unpack`), and every
    // `blk.add(..)` is below `BLOCK_VECS`; `xs` has N Q8_K rows of `nb` blocks `xrb` apart (reads
    // inside block `b` only: scale at 0, quants at 4..260, sums at 260..292); `out` has the 8 lanes
    // at `t * ts` for t < N (the `rows8` contract).
    unsafe {
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
}

/// Rows `0..8` of `w` (whole super-blocks, `wrb` bytes apart) times `n_tokens` Q8_K
/// rows of `xq` (`xrb` bytes each), tokens `< gemm_tokens` in the gemm order, the rest
/// in the gemv order; `out[t * ts + r]`. `scr` is scratch of [`scratch_len`] vectors.
///
/// # Safety
/// AVX-512 F/BW/VL and VNNI must be available; `w` holds 8 rows of `nb = xrb / 292`
/// blocks, `xq` `n_tokens` rows, and `out` the `n_tokens * ts` outputs written.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn rows8(
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
    // SAFETY: the caller's contract above (AVX-512 VNNI present; `w` 8 rows of `nb` blocks, `xq`
    // `n_tokens` rows, `out` every `t * ts + r`); `scr` has `scratch_len(nb)` vectors, and each
    // tile covers tokens `t..t + n <= n_tokens`.
    unsafe {
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
}

/// Q6_K per super-block: 16 sub-blocks × 4 vectors of interleaved unsigned values
/// (0..=63), the 16 sub-blocks' scales of the 8 rows (i32), the rows' `d` (f32).
const Q6_VALS: usize = 16 * 4;
const Q6_BLOCK_VECS: usize = Q6_VALS + 16 + 1;

/// Unpacks 8 Q6_K rows into `scr` (`nb * Q6_BLOCK_VECS` vectors).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unpack_q6(w: &[u8], wrb: usize, nb: usize, scr: &mut [__m256i]) {
    // SAFETY: the loads read local arrays for exactly their 32 bytes (`vals[g]`, `sc[s]`: 8 values
    // each; `d`: 8 f32).
    unsafe {
        let mut q = [0i32; 256];
        for b in 0..nb {
            let blk = &mut scr[b * Q6_BLOCK_VECS..(b + 1) * Q6_BLOCK_VECS];
            let mut vals = [[0u32; 8]; Q6_VALS]; // [sub-block * 4 + k][row]
            let mut sc = [[0i32; 8]; 16]; // [sub-block][row]
            let mut d = [0.0f32; 8];
            for r in 0..ROWS {
                let bw = &w[r * wrb + b * Q6K_BYTES..r * wrb + (b + 1) * Q6K_BYTES];
                q6k_unpack(bw, &mut q);
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
}

/// 8 Q6_K rows × `N` tokens in the peer's tiled order (`fma(f32(isum)·d_w, d_x, acc)`
/// per super-block); writes `out[t * ts + r]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_q6<const N: usize>(scr: &[__m256i], nb: usize, xs: *const u8, xrb: usize, out: *mut f32, ts: usize) {
    // SAFETY: `scr` holds `nb` blocks of `Q6_BLOCK_VECS` vectors (filled by `unpack_q6`), every
    // `blk.add(..)` below that; `xs` has N Q8_K rows of `nb` blocks `xrb` apart (reads inside block
    // `b`: scale, quants at `4 + 16·sb + 4k`, sums at 260..292); `out` has the 8 lanes at `t * ts`
    // for t < N (the `rows8_q6` contract).
    unsafe {
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
}

/// Rows `0..8` of a Q6_K `w` times `n_tokens` Q8_K rows in the peer's tiled order
/// (the order of batches of 8 tokens or more); `out[t * ts + r]`. `scr`: scratch of
/// [`scratch_len_q6`] vectors.
///
/// # Safety
/// As [`rows8`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn rows8_q6(
    w: &[u8],
    wrb: usize,
    xq: &[u8],
    xrb: usize,
    n_tokens: usize,
    scr: &mut [__m256i],
    out: *mut f32,
    ts: usize,
) {
    // SAFETY: the caller's contract above; `scr` has `scratch_len_q6(nb)` vectors, and each tile
    // covers tokens `t..t + n <= n_tokens`.
    unsafe {
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
}

/// Scratch vectors [`rows8_q6`] needs for `nb` super-blocks.
pub(crate) fn scratch_len_q6(nb: usize) -> usize {
    nb * Q6_BLOCK_VECS
}

/// Scratch vectors [`rows8`] needs for `nb` super-blocks.
pub(crate) fn scratch_len(nb: usize) -> usize {
    nb * BLOCK_VECS
}

/// A zeroed scratch of `len` vectors.
pub(crate) fn scratch(len: usize) -> Vec<__m256i> {
    // SAFETY: an all-zero bit pattern is a valid `__m256i` (plain integers).
    vec![unsafe { std::mem::zeroed() }; len]
}
