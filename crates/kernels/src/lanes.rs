//! Lane-wise fused multiply-add accumulation: the building block of ggml's f32/f16 dot
//! orders (`tinyBLAS`: 16 lanes; `ggml_vec_dot_f16` on AVX-512: 4 registers × 16 lanes =
//! 64 lanes), whose horizontal reductions the caller then performs in its own order.
//!
//! [`fma_lanes`] does `lanes[(first + k) % W] = fma(a[k], b[k], lanes[(first + k) % W])`
//! for every `k` in order. Each lane sees the same sequence of correctly rounded FMAs
//! whether it runs one element at a time (the scalar reference, [`fma_lanes_scalar`]) or 8
//! at a time in AVX2 registers, so both give identical bits; `first` lets a sum start at an
//! index that is not a multiple of `W` (the lanes are the absolute index modulo `W`).
//! The SIMD version keeps the lanes in registers for the whole sum, so it runs at the FMA
//! latency of its chains; [`dot16_rows`] and [`dot16_rows_from`] run 4 rows at once (8
//! independent chains) for callers with many dots against one vector.

#[cfg_attr(not(target_arch = "x86_64"), allow(unused_imports))]
use crate::isa;

/// The scalar reference of [`fma_lanes`].
pub fn fma_lanes_scalar<const W: usize>(a: &[f32], b: &[f32], first: usize, lanes: &mut [f32; W]) {
    for (k, (&x, &y)) in a.iter().zip(b).enumerate() {
        let l = &mut lanes[(first + k) % W];
        *l = x.mul_add(y, *l);
    }
}

/// `lanes[(first + k) % W] = fma(a[k], b[k], ·)` for `k` in `0..min(a.len(), b.len())`, in
/// order. `W` must be a multiple of 8 for the SIMD path (16 and 64 are the ones used);
/// other widths take the scalar reference.
pub fn fma_lanes<const W: usize>(a: &[f32], b: &[f32], first: usize, lanes: &mut [f32; W]) {
    #[cfg(target_arch = "x86_64")]
    if W % 8 == 0 && W > 0 && isa().has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (an x86 level at or above Avx2 was detected).
        unsafe { x86::fma_lanes(a, b, first, lanes) };
        return;
    }
    let _ = isa;
    fma_lanes_scalar(a, b, first, lanes)
}

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

/// The scalar reference of [`dot16_rows`].
pub fn dot16_rows_scalar(rows: &[f32], stride: usize, b: &[f32], out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut lanes = [0.0f32; 16];
        fma_lanes_scalar(&rows[i * stride..i * stride + b.len()], b, 0, &mut lanes);
        *o = reduce16(&lanes);
    }
}

/// `out[i] = reduce16(lanes of rows[i·stride ..][..b.len()] · b)` (16 lanes from index 0,
/// llamafile `tinyBLAS`'s f32 order): many short dots against one vector, e.g. one query
/// against every visible key. Panics if a row runs past `rows`.
pub fn dot16_rows(rows: &[f32], stride: usize, b: &[f32], out: &mut [f32]) {
    let n = b.len();
    if let Some(last) = out.len().checked_sub(1) {
        assert!(last * stride + n <= rows.len(), "dot16_rows: rows too short");
    }
    #[cfg(target_arch = "x86_64")]
    if n % 16 == 0 && isa().has_avx2() {
        // SAFETY: AVX2/FMA present; every row `i * stride .. i * stride + n` is in bounds
        // (asserted above) and `n` is a multiple of 16.
        unsafe { x86::dot16_rows(rows, stride, b, out) };
        return;
    }
    dot16_rows_scalar(rows, stride, b, out)
}

/// The scalar reference of [`dot16_rows_from`].
pub fn dot16_rows_from_scalar(rows: &[f32], stride: usize, b: &[f32], first: usize, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut lanes = [0.0f32; 16];
        fma_lanes_scalar(&rows[i * stride..i * stride + b.len()], b, first, &mut lanes);
        *o = reduce16(&lanes);
    }
}

/// `out[i] = reduce16(lanes)` where element `k` of `rows[i·stride ..][..b.len()] · b` is
/// added to lane `(first + k) % 16`: [`dot16_rows`] for sums that start at absolute index
/// `first` (e.g. attention weights × values over the visible positions `first..`), any
/// length. Several rows run at once (independent FMA chains); each lane sees the same
/// operations as [`fma_lanes`] one row at a time. Panics if a row runs past `rows`.
pub fn dot16_rows_from(rows: &[f32], stride: usize, b: &[f32], first: usize, out: &mut [f32]) {
    let n = b.len();
    if let Some(last) = out.len().checked_sub(1) {
        assert!(last * stride + n <= rows.len(), "dot16_rows_from: rows too short");
    }
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: AVX2/FMA present; every row `i * stride .. i * stride + n` is in bounds
        // (asserted above).
        unsafe { x86::dot16_rows_from(rows, stride, b, first, out) };
        return;
    }
    dot16_rows_from_scalar(rows, stride, b, first, out)
}

/// The scalar reference of [`dot16_tile`].
#[allow(clippy::too_many_arguments)]
pub fn dot16_tile_scalar(a: &[f32], sa: usize, na: usize, b: &[f32], sb: usize, nb: usize, n: usize, first: usize, out: &mut [f32], os: usize) {
    for i in 0..na {
        dot16_rows_from_scalar(b, sb, &a[i * sa..i * sa + n], first, &mut out[i * os..i * os + nb]);
    }
}

/// Every dot of `na` rows of `a` against `nb` rows of `b` in the lane order of
/// [`dot16_rows_from`]: `out[i·os + j] = reduce16(lanes)` where term `k` of
/// `a[i·sa ..][..n] · b[j·sb ..][..n]` goes to lane `(first + k) % 16`. Attention's two
/// products are this shape: queries × keys over the head dimension, and softmax weights ×
/// value columns over positions. With AVX-512 and an aligned sum (`first % 16 == 0`,
/// `n % 16 == 0`) it runs in register tiles of 4 `a` rows × 4 `b` rows, each loaded vector
/// serving four FMAs, and reduces four sums at once with the same tree as [`reduce16`];
/// otherwise one `a` row at a time through [`dot16_rows_from`]. Same bits either way.
/// Panics if a row runs past its slice.
#[allow(clippy::too_many_arguments)]
pub fn dot16_tile(a: &[f32], sa: usize, na: usize, b: &[f32], sb: usize, nb: usize, n: usize, first: usize, out: &mut [f32], os: usize) {
    if na == 0 || nb == 0 {
        return;
    }
    assert!((na - 1) * sa + n <= a.len(), "dot16_tile: a too short");
    assert!((nb - 1) * sb + n <= b.len(), "dot16_tile: b too short");
    assert!((na - 1) * os + nb <= out.len(), "dot16_tile: out too short");
    #[cfg(target_arch = "x86_64")]
    if first % 16 == 0 && n % 16 == 0 && isa().has_avx512() {
        // SAFETY: AVX-512F present; every row and output in bounds (asserted above), `n` a
        // multiple of 16.
        unsafe { x86::dot16_tile(a.as_ptr(), sa, na, b.as_ptr(), sb, nb, n, out.as_mut_ptr(), os) };
        return;
    }
    for i in 0..na {
        dot16_rows_from(b, sb, &a[i * sa..i * sa + n], first, &mut out[i * os..i * os + nb]);
    }
}

/// The scalar reference of [`fma_scalar_into`].
pub fn fma_scalar_into_scalar(x: &[f32], a: f32, y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi.mul_add(a, *yi);
    }
}

/// `y[i] = fma(x[i], a, y[i])` for `i < min(x.len(), y.len())`: one position's value row
/// added, weighted, into its lane's accumulator row (single-token attention).
pub fn fma_scalar_into(x: &[f32], a: f32, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: AVX2 and FMA are present.
        unsafe { x86::fma_scalar_into(x, a, y) };
        return;
    }
    fma_scalar_into_scalar(x, a, y)
}

/// `ggml_v_expf` (ggml's AVX-512 polynomial `exp`) of one value: a degree-5 polynomial
/// with a `scalef`, within about 1 ulp of `expf` but not always equal to it. The reference
/// of [`v_expf_slice`].
pub fn v_expf(x: f32) -> f32 {
    let (j, n) = v_expf_parts(x);
    v_expf_scale(j, n)
}

/// The polynomial part: `x = n·ln2 + b`, `j ≈ exp(b)`.
#[inline(always)]
fn v_expf_parts(x: f32) -> (f32, f32) {
    let r = 12_582_912.0f32; // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(f32::from_bits(0x35bf_be8e), (-n).mul_add(f32::from_bits(0x3f31_7200), x));
    let u = b * b;
    let p = f32::from_bits(0x3c07_2010).mul_add(b, f32::from_bits(0x3d2b_9f17));
    let q = f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb));
    let s = f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0);
    (p.mul_add(u, q).mul_add(u, s), n)
}

/// `scalef(j, n)`: `j·2^n` rounded once (the f64 product is exact), 0 or ∞ past |n| > 192.
#[inline(always)]
fn v_expf_scale(j: f32, n: f32) -> f32 {
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let two_n = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (j as f64 * two_n) as f32
}

/// [`v_expf`] of every element, in place; the polynomial runs 8 lanes at a time with AVX2
/// FMAs (the same correctly rounded operations, so the same bits).
pub fn v_expf_slice(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (an x86 level at or above Avx2 was detected).
        unsafe { x86::v_expf_slice(x) };
        return;
    }
    for v in x.iter_mut() {
        *v = v_expf(*v);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{v_expf, v_expf_scale};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 and FMA must be available; `b.len() % 16 == 0`; every row in bounds.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot16_rows(rows: &[f32], stride: usize, b: &[f32], out: &mut [f32]) {
        // SAFETY: the callers' contract: AVX2 and FMA present, `n = b.len()` a multiple of 16 (so
        // the loads at `k` and `k + 8`, k < n, stay in `b`), and every row `i * stride .. i *
        // stride + n` for i < `out.len()` inside `rows` (asserted by the caller).
        unsafe {
            let n = b.len();
            let pb = b.as_ptr();
            // Four rows at a time: eight independent FMA chains instead of two.
            let mut i = 0;
            while i + 4 <= out.len() {
                let a = rows.as_ptr().add(i * stride);
                let mut lo = [_mm256_setzero_ps(); 4];
                let mut hi = [_mm256_setzero_ps(); 4];
                let mut k = 0;
                while k < n {
                    let (bl, bh) = (_mm256_loadu_ps(pb.add(k)), _mm256_loadu_ps(pb.add(k + 8)));
                    for r in 0..4 {
                        let ar = a.add(r * stride + k);
                        lo[r] = _mm256_fmadd_ps(_mm256_loadu_ps(ar), bl, lo[r]);
                        hi[r] = _mm256_fmadd_ps(_mm256_loadu_ps(ar.add(8)), bh, hi[r]);
                    }
                    k += 16;
                }
                for r in 0..4 {
                    out[i + r] = reduce_lo_hi(lo[r], hi[r]);
                }
                i += 4;
            }
            for (i, o) in out.iter_mut().enumerate().skip(i) {
                let a = rows.as_ptr().add(i * stride);
                let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                let mut k = 0;
                while k < n {
                    lo = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(k)), _mm256_loadu_ps(b.as_ptr().add(k)), lo);
                    hi = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(k + 8)), _mm256_loadu_ps(b.as_ptr().add(k + 8)), hi);
                    k += 16;
                }
                *o = reduce_lo_hi(lo, hi);
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA must be available; every row `i * stride .. i * stride + b.len()` in
    /// bounds of `rows`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot16_rows_from(rows: &[f32], stride: usize, b: &[f32], first: usize, out: &mut [f32]) {
        // SAFETY: the callers' contract: AVX2 and FMA present and every row `(i + r) * stride .. +
        // n` inside `rows` (asserted by the caller); the vector loads run for `k + 16 <= body <=
        // n`, the one-by-one reads for `k < n`, and `lanes[r]` is 16 floats (two 8-float loads /
        // stores).
        unsafe {
            const G: usize = 4;
            let n = b.len();
            // Elements before the first absolute index that is a multiple of 16 and after the
            // last whole group of 16 go one by one, as in `fma_lanes`.
            let head = ((16 - first % 16) % 16).min(n);
            let body = head + (n - head) / 16 * 16;
            let (pr, pb) = (rows.as_ptr(), b.as_ptr());
            let mut i = 0;
            while i < out.len() {
                let g = (out.len() - i).min(G);
                let mut lanes = [[0.0f32; 16]; G];
                for (r, l) in lanes.iter_mut().enumerate().take(g) {
                    let a = pr.add((i + r) * stride);
                    for k in 0..head {
                        let lane = &mut l[(first + k) % 16];
                        *lane = (*a.add(k)).mul_add(*pb.add(k), *lane);
                    }
                }
                let mut lo = [_mm256_setzero_ps(); G];
                let mut hi = [_mm256_setzero_ps(); G];
                for r in 0..g {
                    lo[r] = _mm256_loadu_ps(lanes[r].as_ptr());
                    hi[r] = _mm256_loadu_ps(lanes[r].as_ptr().add(8));
                }
                let mut k = head;
                if g == G {
                    while k < body {
                        let (bl, bh) = (_mm256_loadu_ps(pb.add(k)), _mm256_loadu_ps(pb.add(k + 8)));
                        for r in 0..G {
                            let a = pr.add((i + r) * stride + k);
                            lo[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a), bl, lo[r]);
                            hi[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(8)), bh, hi[r]);
                        }
                        k += 16;
                    }
                } else {
                    while k < body {
                        let (bl, bh) = (_mm256_loadu_ps(pb.add(k)), _mm256_loadu_ps(pb.add(k + 8)));
                        for r in 0..g {
                            let a = pr.add((i + r) * stride + k);
                            lo[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a), bl, lo[r]);
                            hi[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(8)), bh, hi[r]);
                        }
                        k += 16;
                    }
                }
                for r in 0..g {
                    _mm256_storeu_ps(lanes[r].as_mut_ptr(), lo[r]);
                    _mm256_storeu_ps(lanes[r].as_mut_ptr().add(8), hi[r]);
                    let a = pr.add((i + r) * stride);
                    for k in body..n {
                        let lane = &mut lanes[r][(first + k) % 16];
                        *lane = (*a.add(k)).mul_add(*pb.add(k), *lane);
                    }
                    out[i + r] = super::reduce16(&lanes[r]);
                }
                i += g;
            }
        }
    }

    /// [`super::dot16_tile`] on AVX-512: 4 × 4 register tiles (16 accumulators of 16 lanes),
    /// edges by narrower tiles.
    ///
    /// # Safety
    /// AVX-512F must be available; `n % 16 == 0`; rows `(na-1)·sa + n` of `a`, `(nb-1)·sb +
    /// n` of `b` and `(na-1)·os + nb` outputs in bounds.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn dot16_tile(a: *const f32, sa: usize, na: usize, b: *const f32, sb: usize, nb: usize, n: usize, out: *mut f32, os: usize) {
        // SAFETY: the callers' contract (asserted in `dot16_tile`): AVX-512F present, `n % 16 ==
        // 0`, rows `i·sa .. i·sa + n` of `a` (i < na) and `j·sb .. j·sb + n` of `b` (j < nb)
        // readable, outputs `i·os + j` writable; every pointer below stays within those.
        unsafe {
            let mut i = 0;
            while i < na {
                let ri = (na - i).min(4);
                let (ai, oi) = (a.add(i * sa), out.add(i * os));
                let mut j = 0;
                while j + 4 <= nb {
                    let (bj, oj) = (b.add(j * sb), oi.add(j));
                    match ri {
                        4 => tile4::<4>(ai, sa, bj, sb, n, oj, os),
                        3 => tile4::<3>(ai, sa, bj, sb, n, oj, os),
                        2 => tile4::<2>(ai, sa, bj, sb, n, oj, os),
                        _ => tile4::<1>(ai, sa, bj, sb, n, oj, os),
                    }
                    j += 4;
                }
                while j < nb {
                    for r in 0..ri {
                        let (ar, br) = (ai.add(r * sa), b.add(j * sb));
                        let mut acc = _mm512_setzero_ps();
                        let mut k = 0;
                        while k < n {
                            acc = _mm512_fmadd_ps(_mm512_loadu_ps(ar.add(k)), _mm512_loadu_ps(br.add(k)), acc);
                            k += 16;
                        }
                        let lo = _mm512_castps512_ps256(acc);
                        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
                        *oi.add(r * os + j) = reduce_lo_hi(lo, hi);
                    }
                    j += 1;
                }
                i += ri;
            }
        }
    }

    /// `R` rows of `a` × 4 rows of `b`: the four sums of each `a` row are reduced together
    /// by [`reduce16_x4`] and stored as 4 consecutive outputs.
    #[inline]
    #[allow(clippy::needless_range_loop)] // register tile: indices name the registers
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn tile4<const R: usize>(a: *const f32, sa: usize, b: *const f32, sb: usize, n: usize, out: *mut f32, os: usize) {
        // SAFETY: `dot16_tile` passes R ≤ 4 rows of `a` at `a + r·sa` and 4 rows of `b` at `b +
        // c·sb`, each with `n` (a multiple of 16) readable floats, and 4 writable outputs at `out +
        // r·os`.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            let mut k = 0;
            while k < n {
                let mut av = [_mm512_setzero_ps(); R];
                for (r, v) in av.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(a.add(r * sa + k));
                }
                for c in 0..4 {
                    let bv = _mm512_loadu_ps(b.add(c * sb + k));
                    for r in 0..R {
                        acc[r][c] = _mm512_fmadd_ps(av[r], bv, acc[r][c]);
                    }
                }
                k += 16;
            }
            for (r, acc) in acc.iter().enumerate() {
                _mm_storeu_ps(out.add(r * os), reduce16_x4(acc[0], acc[1], acc[2], acc[3]));
            }
        }
    }

    /// [`super::reduce16`] of four 16-lane sums at once, results in lanes 0..4: the same
    /// additions (halves, then quarters, then `(t4[0]+t4[2]) + (t4[1]+t4[3])`), with the
    /// four sums side by side in the vectors' 128-bit blocks.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn reduce16_x4(x0: __m512, x1: __m512, x2: __m512, x3: __m512) -> __m128 {
        // t8 = hi8 + lo8: [x0.lo8 | x1.lo8] + [x0.hi8 | x1.hi8] = [t8(x0) | t8(x1)].
        let t01 = _mm512_add_ps(_mm512_shuffle_f32x4::<0b11_10_11_10>(x0, x1), _mm512_shuffle_f32x4::<0b01_00_01_00>(x0, x1));
        let t23 = _mm512_add_ps(_mm512_shuffle_f32x4::<0b11_10_11_10>(x2, x3), _mm512_shuffle_f32x4::<0b01_00_01_00>(x2, x3));
        // t4 = t8[4..8] + t8[0..4], one 128-bit block per sum.
        let t4 = _mm512_add_ps(_mm512_shuffle_f32x4::<0b11_01_11_01>(t01, t23), _mm512_shuffle_f32x4::<0b10_00_10_00>(t01, t23));
        // (t4[0] + t4[2]) + (t4[1] + t4[3]) in lane 0 of each block.
        let u = _mm512_add_ps(t4, _mm512_permute_ps::<0b01_00_11_10>(t4));
        let r = _mm512_add_ps(u, _mm512_permute_ps::<0b10_11_00_01>(u));
        // Lanes 0, 4, 8, 12 → 0..4.
        _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), r))
    }

    /// `y[i] = fma(x[i], a, y[i])` over the shorter of the two lengths. Safe to call where
    /// AVX2 and FMA are enabled: every access is bounded by the slices.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn fma_scalar_into(x: &[f32], a: f32, y: &mut [f32]) {
        let n = x.len().min(y.len());
        let av = _mm256_set1_ps(a);
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n <= x.len(), y.len(): 8 floats of each, unaligned access.
            unsafe {
                let v = _mm256_fmadd_ps(_mm256_loadu_ps(px.add(i)), av, _mm256_loadu_ps(py.add(i)));
                _mm256_storeu_ps(py.add(i), v);
            }
            i += 8;
        }
        for (yv, &xv) in y[i..n].iter_mut().zip(&x[i..n]) {
            *yv = xv.mul_add(a, *yv);
        }
    }

    /// reduce16 of lanes 0..8 (`lo`) and 8..16 (`hi`): t8 = hi + lo, t4 = t8[4..] + t8[..4],
    /// (t4[0]+t4[2]) + (t4[1]+t4[3]).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn reduce_lo_hi(lo: __m256, hi: __m256) -> f32 {
        let t8 = _mm256_add_ps(hi, lo);
        let t4 = _mm_add_ps(_mm256_extractf128_ps(t8, 1), _mm256_castps256_ps128(t8));
        let r = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
        _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
    }

    /// `v_expf` of every element, 8 lanes at a time, the tail one by one. Safe to call
    /// where AVX2 and FMA are enabled: every access is bounded by the slice.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn v_expf_slice(x: &mut [f32]) {
        let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
        let r = _mm256_set1_ps(12_582_912.0);
        let mut chunks = x.chunks_exact_mut(8);
        for ch in &mut chunks {
            // SAFETY: `ch` has exactly 8 floats.
            let v = unsafe { _mm256_loadu_ps(ch.as_ptr()) };
            let z = _mm256_fmadd_ps(v, c(0x3fb8_aa3b), r);
            let n = _mm256_sub_ps(z, r);
            let mn = _mm256_sub_ps(_mm256_setzero_ps(), n);
            let b = _mm256_fmadd_ps(mn, c(0x35bf_be8e), _mm256_fmadd_ps(mn, c(0x3f31_7200), v));
            let u = _mm256_mul_ps(b, b);
            let p = _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17));
            let q = _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb));
            let s = _mm256_fmadd_ps(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0));
            let j = _mm256_fmadd_ps(_mm256_fmadd_ps(p, u, q), u, s);
            let (mut jj, mut nn) = ([0.0f32; 8], [0.0f32; 8]);
            // SAFETY: `jj` and `nn` have room for 8 floats each.
            unsafe {
                _mm256_storeu_ps(jj.as_mut_ptr(), j);
                _mm256_storeu_ps(nn.as_mut_ptr(), n);
            }
            for k in 0..8 {
                ch[k] = v_expf_scale(jj[k], nn[k]);
            }
        }
        for v in chunks.into_remainder() {
            *v = v_expf(*v);
        }
    }

    /// # Safety
    /// AVX2 and FMA must be available; `W % 8 == 0`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_lanes<const W: usize>(a: &[f32], b: &[f32], first: usize, lanes: &mut [f32; W]) {
        if W <= 64 {
            // SAFETY: the same contract, passed on (this function's features, `W % 8 == 0`).
            return unsafe { fma_lanes_regs(a, b, first, lanes) };
        }
        let n = a.len().min(b.len());
        // Elements before the first index that is a multiple of W, one by one.
        let head = ((W - first % W) % W).min(n);
        for k in 0..head {
            let l = &mut lanes[(first + k) % W];
            *l = a[k].mul_add(b[k], *l);
        }
        let body = head + (n - head) / W * W;
        let lp = lanes.as_mut_ptr();
        let mut k = head;
        while k < body {
            // Element k + i lands in lane i (k + first is a multiple of W).
            let mut i = 0;
            while i < W {
                // SAFETY: k + i + 8 <= body <= n and i + 8 <= W (`W % 8 == 0`, the caller's
                // contract): in bounds for a, b, lanes.
                unsafe {
                    let va = _mm256_loadu_ps(a.as_ptr().add(k + i));
                    let vb = _mm256_loadu_ps(b.as_ptr().add(k + i));
                    let vl = _mm256_loadu_ps(lp.add(i));
                    _mm256_storeu_ps(lp.add(i), _mm256_fmadd_ps(va, vb, vl));
                }
                i += 8;
            }
            k += W;
        }
        for k in body..n {
            let l = &mut lanes[(first + k) % W];
            *l = a[k].mul_add(b[k], *l);
        }
    }

    /// [`fma_lanes`] for `W <= 64`: the lanes stay in (up to 8) registers for the whole
    /// body instead of a load and a store per step, so each lane's FMA chain runs at the
    /// FMA latency; the operations on every lane are unchanged.
    ///
    /// # Safety
    /// As [`fma_lanes`], and `W <= 64`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma_lanes_regs<const W: usize>(a: &[f32], b: &[f32], first: usize, lanes: &mut [f32; W]) {
        let n = a.len().min(b.len());
        let head = ((W - first % W) % W).min(n);
        for k in 0..head {
            let l = &mut lanes[(first + k) % W];
            *l = a[k].mul_add(b[k], *l);
        }
        let body = head + (n - head) / W * W;
        let nv = W / 8;
        let lp = lanes.as_mut_ptr();
        let mut acc = [_mm256_setzero_ps(); 8];
        for (v, acc) in acc.iter_mut().enumerate().take(nv) {
            // SAFETY: 8v + 8 <= 8·nv = W (`W % 8 == 0`): inside `lanes`.
            *acc = unsafe { _mm256_loadu_ps(lp.add(8 * v)) };
        }
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut k = head;
        while k < body {
            for (v, acc) in acc.iter_mut().enumerate().take(nv) {
                // SAFETY: k + 8v + 8 <= k + W <= body <= n: in bounds for a and b.
                let (va, vb) = unsafe { (_mm256_loadu_ps(pa.add(k + 8 * v)), _mm256_loadu_ps(pb.add(k + 8 * v))) };
                *acc = _mm256_fmadd_ps(va, vb, *acc);
            }
            k += W;
        }
        for (v, acc) in acc.iter().enumerate().take(nv) {
            // SAFETY: 8v + 8 <= W, as for the loads above.
            unsafe { _mm256_storeu_ps(lp.add(8 * v), *acc) };
        }
        for k in body..n {
            let l = &mut lanes[(first + k) % W];
            *l = a[k].mul_add(b[k], *l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 - 0.5) * 3.0
            })
            .collect()
    }

    #[test]
    fn simd_lanes_equal_the_scalar_reference_bit_for_bit() {
        for (n, first) in [(0usize, 0usize), (5, 3), (64, 0), (100, 7), (333, 61), (1000, 16), (517, 9), (31, 15)] {
            let (a, b) = (vals(n, 1 + n as u32), vals(n, 7 + first as u32));
            let mut l16 = [0.25f32; 16];
            let mut r16 = l16;
            fma_lanes(&a, &b, first, &mut l16);
            fma_lanes_scalar(&a, &b, first, &mut r16);
            assert_eq!(l16.map(f32::to_bits), r16.map(f32::to_bits), "W=16 n={n} first={first}");
            let mut l64 = [0.0f32; 64];
            let mut r64 = l64;
            fma_lanes(&a, &b, first, &mut l64);
            fma_lanes_scalar(&a, &b, first, &mut r64);
            assert_eq!(l64.map(f32::to_bits), r64.map(f32::to_bits), "W=64 n={n} first={first}");
        }
    }

    #[test]
    fn vector_exp_equals_the_scalar_polynomial_bit_for_bit() {
        let mut x: Vec<f32> = (-3000..300).map(|i| i as f32 * 0.0371).collect();
        x.extend([f32::NEG_INFINITY, 0.0, -0.0, 88.0, 89.0, -103.0, -150.0]);
        let want: Vec<u32> = x.iter().map(|&v| v_expf(v).to_bits()).collect();
        v_expf_slice(&mut x);
        assert_eq!(x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want);
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
        assert!((v_expf(1.0) - std::f32::consts::E).abs() < 1e-6);
    }

    #[test]
    fn row_dots_equal_the_scalar_reference_bit_for_bit() {
        for (n_rows, n, stride) in [(1usize, 16usize, 16usize), (7, 64, 80), (33, 128, 128), (5, 48, 50), (4, 16, 16), (9, 256, 300)] {
            let rows = vals(n_rows * stride, n as u32);
            let b = vals(n, 99 + n_rows as u32);
            let (mut got, mut want) = (vec![0.0f32; n_rows], vec![1.0f32; n_rows]);
            dot16_rows(&rows, stride, &b, &mut got);
            dot16_rows_scalar(&rows, stride, &b, &mut want);
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn row_dots_from_an_offset_equal_the_scalar_reference_bit_for_bit() {
        for (n_rows, n, stride, first) in [(1usize, 0usize, 4usize, 3usize), (3, 5, 9, 14), (4, 16, 16, 0), (7, 100, 120, 7), (9, 257, 300, 31), (13, 512, 512, 16)] {
            let rows = vals(n_rows * stride, (n + first) as u32);
            let b = vals(n, 5 + n_rows as u32);
            let (mut got, mut want) = (vec![0.0f32; n_rows], vec![1.0f32; n_rows]);
            dot16_rows_from(&rows, stride, &b, first, &mut got);
            dot16_rows_from_scalar(&rows, stride, &b, first, &mut want);
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{n_rows} rows of {n} from {first}");
            for (i, w) in want.iter().enumerate() {
                let mut lanes = [0.0f32; 16];
                fma_lanes(&rows[i * stride..i * stride + n], &b, first, &mut lanes);
                assert_eq!(reduce16(&lanes).to_bits(), w.to_bits());
            }
        }
    }

    #[test]
    fn tile_dots_equal_the_scalar_reference_bit_for_bit() {
        // (na, nb, n, first): aligned sums (the tiled path) with every edge shape, and
        // unaligned ones (row-by-row path).
        for (na, nb, n, first) in [(4usize, 4usize, 16usize, 0usize), (5, 7, 64, 0), (3, 9, 256, 32), (1, 1, 16, 16), (8, 13, 48, 0), (2, 3, 5, 3), (6, 5, 100, 7), (4, 17, 512, 0)] {
            let (sa, sb, os) = (n + 3, n + 5, nb + 2);
            let a = vals(na * sa, (na + n) as u32);
            let b = vals(nb * sb, (nb + first) as u32 + 11);
            let (mut got, mut want) = (vec![7.0f32; na * os], vec![7.0f32; na * os]);
            dot16_tile(&a, sa, na, &b, sb, nb, n, first, &mut got, os);
            dot16_tile_scalar(&a, sa, na, &b, sb, nb, n, first, &mut want, os);
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{na}×{nb} over {n} from {first}");
            // Each output is the dot of one a row with one b row, and padding stays untouched.
            let mut one = [0.0f32];
            dot16_rows_from_scalar(&b[(nb - 1) * sb..], sb, &a[(na - 1) * sa..(na - 1) * sa + n], first, &mut one);
            assert_eq!(got[(na - 1) * os + nb - 1].to_bits(), one[0].to_bits());
            assert_eq!(got[nb], 7.0);
        }
    }

    #[test]
    fn scaled_row_adds_equal_the_scalar_reference_bit_for_bit() {
        for n in [0usize, 1, 7, 8, 9, 64, 100, 257] {
            let x = vals(n, 3 + n as u32);
            let y0 = vals(n + 2, 5 + n as u32);
            let (mut got, mut want) = (y0.clone(), y0.clone());
            fma_scalar_into(&x, -0.37, &mut got);
            fma_scalar_into_scalar(&x, -0.37, &mut want);
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "n={n}");
            assert_eq!(got[n..], y0[n..], "past min(len) untouched");
        }
    }

    #[test]
    fn element_k_lands_in_lane_first_plus_k_mod_w() {
        let a = [1.0f32, 2.0, 3.0];
        let mut l = [0.0f32; 16];
        fma_lanes(&a, &[1.0, 1.0, 1.0], 15, &mut l);
        assert_eq!((l[15], l[0], l[1], l[2]), (1.0, 2.0, 3.0, 0.0));
    }
}
