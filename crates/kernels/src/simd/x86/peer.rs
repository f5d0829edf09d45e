//! The AVX2 twins of [`crate::peer_order`]'s scalar references (`dot_q4_k` in the
//! repacked gemm / gemv orders, `dot_q6_k_tiled`, `dot_q6_k`), and their multi-token forms
//! (`dot_q4_k_n`, `dot_q6_k_n`: each weight block unpacked once for 4 tokens). Run on every
//! x86 level the CPU has: integer partial sums are exact whatever instructions form them.
//!
//! Kept apart from the level macros of this folder because these have one feature set
//! (AVX2 + FMA + F16C) and fold at the peer's points rather than `vec_dot`'s; the order
//! logic and dispatch stay in `peer_order.rs`.
//!
//! AVX2 twins: integer partial sums with `maddubs`/`madd` (exact: |products| stay far
//! below i16/i32 limits), folded into f32 at the scalar reference's points with the
//! same fused multiply-adds.
use crate::peer_order::{q4k_scale_min, Q4K_BYTES, Q6K_BYTES, Q8K_BYTES};
use std::arch::x86_64::*;

/// The f16 at `b[i..i + 2]` as f32 with F16C's exact `vcvtph2ps` (the same value as
/// the reference's conversion, without a call through `half`'s run-time dispatch).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_at(b: &[u8], i: usize) -> f32 {
    let bits = u16::from_le_bytes([b[i], b[i + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// The four horizontal sums of `v` at once (integer, so exact in any order).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum4_i32(v: [__m256i; 4]) -> [i32; 4] {
    // SAFETY: `out` is 4 i32 = the 16 bytes stored.
    unsafe {
        let a = _mm256_hadd_epi32(v[0], v[1]);
        let b = _mm256_hadd_epi32(v[2], v[3]);
        let c = _mm256_hadd_epi32(a, b);
        let d = _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        let mut out = [0i32; 4];
        _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, d);
        out
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load(p: &[u8]) -> __m256i {
    // SAFETY: the caller passes a slice of at least 32 bytes (a block's quants, sliced from a whole
    // block); `loadu` needs no alignment.
    unsafe {
        debug_assert!(p.len() >= 32);
        _mm256_loadu_si256(p.as_ptr() as *const __m256i)
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bsums(bx: &[u8]) -> [i32; 16] {
    // SAFETY: the caller passes a whole Q8_K block (292 bytes): the 16 i16 sums at 260..292 are the
    // 32 bytes loaded, and `out` holds 16 i32 = two stores of 8.
    unsafe {
        let v = _mm256_loadu_si256(bx.as_ptr().add(260) as *const __m256i);
        let mut out = [0i32; 16];
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(v)));
        _mm256_storeu_si256(out.as_mut_ptr().add(8) as *mut __m256i, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(v, 1)));
        out
    }
}

/// Pair `pair` (sub-blocks `2·pair`, `2·pair + 1`) of a Q4_K super-block against its
/// Q8_K activations: the scaled integer products in 8 i32 lanes, and the mins term
/// `m0·Σx₀ + m1·Σx₁` from the block sums `bs`. Exact integers, so callers may reduce
/// them per pair or per super-block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_pair(bw: &[u8], bx: &[u8], bs: &[i32; 16], pair: usize) -> (__m256i, i32) {
    // SAFETY: `bw` is a whole Q4_K block (144 bytes) and `bx` a whole Q8_K block (292), `pair < 4`:
    // the 32-byte loads start at `16 + 32·pair <= 112` and `4 + 64·pair + 32 <= 228`, inside them.
    unsafe {
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
}

/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_k(w_row: &[u8], x_row: &[u8], per_pair: bool) -> f32 {
    // SAFETY: the callers' contract (AVX2, FMA and F16C present: `use_simd`); every block comes
    // from `chunks_exact`, so `q4k_pair` / `bsums` get whole blocks.
    unsafe {
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
}

/// Bytes ahead of the current weight block that single-token dots prefetch.
const PREFETCH: usize = 1024;

/// [`crate::peer_order::dot_q4_k`] in the gemv order (one fold per super-block): the integer sum of a
/// super-block is formed in vector lanes over all four pairs and reduced once (exact
/// either way); the weights are prefetched ahead, since decoding streams them once.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_k_gemv(w_row: &[u8], x_row: &[u8]) -> f32 {
    // SAFETY: as in `dot_q4_k`: whole blocks from `chunks_exact`; the prefetch addresses use
    // `wrapping_add` and a prefetch never faults.
    unsafe {
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
}

/// [`crate::peer_order::dot_q4_k`] for `N` activation rows at once: each weight block is unpacked once
/// for all of them; every token keeps its own single-dot sequence of operations.
///
/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_k_n<const N: usize>(w_row: &[u8], xs: [&[u8]; N], per_pair: bool) -> [f32; N] {
    // SAFETY: the callers' contract (AVX2, FMA and F16C present); `bw` is a whole block from
    // `chunks_exact` (loads at `16 + 32·pair`, 32 bytes, pair < 4) and `bx` a whole Q8_K block
    // sliced with bounds checks (loads at `4 + 64·pair` and `36 + 64·pair`, 32 bytes).
    unsafe {
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
}

/// [`crate::peer_order::dot_q6_k_tiled`] (`tiled`) or [`crate::peer_order::dot_q6_k`] for `N` activation rows at once, each
/// weight block unpacked once for all of them.
///
/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q6_k_n<const N: usize>(w_row: &[u8], xs: [&[u8]; N], tiled: bool) -> [f32; N] {
    // SAFETY: the callers' contract (AVX2, FMA and F16C present); `bw` is a whole Q6_K block from
    // `chunks_exact`, `bx` a whole Q8_K block sliced with bounds checks (loads at `4 + 32c`, c <
    // 8); `sub` is 8 i32 = the 32 bytes loaded.
    unsafe {
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
}

/// The 8 chunks of 32 unsigned 6-bit weights of a Q6_K block (chunk `c` = values
/// `32c..32c+32`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_chunks(bw: &[u8]) -> [__m256i; 8] {
    // SAFETY: the caller passes a whole Q6_K block (210 bytes): the loads read 0..128 and 128..192.
    unsafe {
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
}

/// i16 scales of chunk `c`: the first 8 pair-sums use sub-block `2c`, the last 8 `2c+1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn chunk_scales(bw: &[u8], c: usize) -> __m256i {
    let a = bw[192 + 2 * c] as i8 as i16;
    let b = bw[193 + 2 * c] as i8 as i16;
    _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a))
}

/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q6_k_tiled(w_row: &[u8], x_row: &[u8]) -> f32 {
    // SAFETY: the callers' contract (AVX2, FMA and F16C present); whole blocks from `chunks_exact`,
    // so `q6_chunks`, `bsums` and the loads at `4 + 32c` (c < 8) stay inside.
    unsafe {
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
}

/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q6_k(w_row: &[u8], x_row: &[u8]) -> f32 {
    // SAFETY: as in `dot_q6_k_tiled`; `sub` is 8 i32 = the 32 bytes loaded, and the prefetch
    // addresses use `wrapping_add` (a prefetch never faults).
    unsafe {
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
