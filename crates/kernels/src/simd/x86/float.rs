//! F32 and F16 weights (dots of whole rows, no blocks), expanded per level by
//! `x86_float!`, plus `f512`: the 512-bit variants the AVX-512 levels call.
//!
//! These reproduce `ggml_vec_dot_f32` / `ggml_vec_dot_f16`: four vector accumulators over
//! steps of four vectors, reduced pairwise, the tail in scalar (f64 for f16). The 512-bit
//! dots take pointers rather than vectors so the 256-bit level never passes a 512-bit
//! value across a call.

/// Expands to this family's items inside one level module (see `x86_level!` in
/// `mod.rs`): `$feat` is the level's `target_feature` list, `$vnni` / `$avx512` its
/// compile-time switches.
macro_rules! x86_float {
    ($feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
        /// ggml's `ggml_vec_dot_f32` on this level: four vector accumulators over steps
        /// of 4 vectors, reduced pairwise, then the tail added in scalar.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn dot_f32(w: *const f32, x: *const f32, n: usize) -> f32 {
            // SAFETY: the caller passes `n` readable f32 at `w` and at `x` (a row of the `MatrixFn`
            // contract); loads stop at `i + 32 <= n` and the tail at `n`. `f512` is compiled for a
            // subset of the AVX-512 levels' features, and is called only where `$avx512`.
            unsafe {
                if $avx512 {
                    return super::float::f512::dot_f32(w, x, n);
                }
                let mut i = 0;
                let mut s = [_mm256_setzero_ps(); 4];
                while i + 32 <= n {
                    for (j, s) in s.iter_mut().enumerate() {
                        let a = _mm256_loadu_ps(w.add(i + 8 * j));
                        let b = _mm256_loadu_ps(x.add(i + 8 * j));
                        *s = _mm256_fmadd_ps(a, b, *s);
                    }
                    i += 32;
                }
                let mut sumf = hsum8(_mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[1], s[3])));
                while i < n {
                    sumf += w.add(i).read_unaligned() * x.add(i).read_unaligned();
                    i += 1;
                }
                sumf
            }
        }

        /// ggml's `ggml_vec_dot_f16`: as `dot_f32` on converted halves, the tail in f64.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn dot_f16(w: *const u8, x: *const u8, n: usize) -> f32 {
            // SAFETY: the caller passes `n` readable f16 (2 bytes each) at `w` and at `x`; loads
            // stop at `i + 32 <= n` and the tail at `n`. `f512` is called only where `$avx512`,
            // whose features include its own.
            unsafe {
                if $avx512 {
                    return super::float::f512::dot_f16(w, x, n);
                }
                let mut i = 0;
                let mut s = [_mm256_setzero_ps(); 4];
                while i + 32 <= n {
                    for (j, s) in s.iter_mut().enumerate() {
                        let a = _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * (i + 8 * j)) as *const __m128i));
                        let b = _mm256_cvtph_ps(_mm_loadu_si128(x.add(2 * (i + 8 * j)) as *const __m128i));
                        *s = _mm256_fmadd_ps(a, b, *s);
                    }
                    i += 32;
                }
                let sumv = hsum8(_mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[1], s[3])));
                let mut sumf = sumv as f64;
                while i < n {
                    sumf += (rd16(w.add(2 * i)) * rd16(x.add(2 * i))) as f64;
                    i += 1;
                }
                sumf as f32
            }
        }

        /// F32 weights: `nb` = elements per row; rows × toks single dots.
        #[target_feature(enable = $feat)]
        unsafe fn matrix_f32(
            w: *const u8,
            wrb: usize,
            x: *const u8,
            xrb: usize,
            nb: usize,
            rows: usize,
            toks: usize,
            out: *mut f32,
            rs: usize,
            ts: usize,
        ) {
            // SAFETY: the `MatrixFn` contract (validated by `matmul`): `w` holds `rows` rows of
            // `nb` f32 `wrb` bytes apart, `x` `toks` rows of `nb` f32 `xrb` bytes apart, `out` an
            // element at every `r * rs + t * ts`.
            unsafe {
                for r in 0..rows {
                    for t in 0..toks {
                        let v = dot_f32(w.add(r * wrb) as *const f32, x.add(t * xrb) as *const f32, nb);
                        *out.add(r * rs + t * ts) = v;
                    }
                }
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn matrix_f16(
            w: *const u8,
            wrb: usize,
            x: *const u8,
            xrb: usize,
            nb: usize,
            rows: usize,
            toks: usize,
            out: *mut f32,
            rs: usize,
            ts: usize,
        ) {
            // SAFETY: the `MatrixFn` contract (validated by `matmul`): `w` holds `rows` rows of
            // `nb` f16 `wrb` bytes apart, `x` `toks` rows of `nb` f16 `xrb` bytes apart, `out` an
            // element at every `r * rs + t * ts`.
            unsafe {
                if $avx512 && toks >= 4 {
                    return super::float::f512::matrix_f16(w, wrb, x, xrb, nb, rows, toks, out, rs, ts);
                }
                for r in 0..rows {
                    for t in 0..toks {
                        *out.add(r * rs + t * ts) = dot_f16(w.add(r * wrb), x.add(t * xrb), nb);
                    }
                }
            }
        }
    };
}

/// The 512-bit f32/f16 dots of the AVX-512 levels (pointers in, so the 256-bit level never
/// passes a 512-bit vector across a call).
///
/// F16 batches in `vec_dot_f16`'s order (`matrix_f16`, 4 tokens or more: the serving
/// path, which needs one order for every row count; single-sequence prompts take the
/// peer's tinyBLAS order instead, `tiled_f16` below and `crate::tiled_f16`) keep
/// `dot_f16`'s operations per output exactly but not its memory traffic: the activations
/// are widened to f32 once per call (exact: every f16 is an f32, so the products are the
/// same), and each weight row is widened once for 4 tokens, whose 4 × 4 accumulators stay
/// in registers. The results equal `dot_f16` bit for bit
/// (`matmul_tiles_equal_the_single_dot_on_odd_shapes`); what changes is that the
/// conversions no longer bound the loop.
pub(super) mod f512 {
    use crate::util::f16_bits_to_f32;
    use std::arch::x86_64::*;

    /// `_mm512_reduce_add_ps` as compilers expand it (halves added: 8, 4, 2, 1).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    fn reduce(v: __m512) -> f32 {
        let h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
        let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_movehdup_ps(q));
        _mm_cvtss_f32(q)
    }

    /// ggml's `ggml_vec_dot_f32` (AVX-512): 4 accumulators of 16 lanes over steps of 64,
    /// `(s0 + s2) + (s1 + s3)`, reduce, then the tail in f32.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    pub(in crate::simd::x86) unsafe fn dot_f32(w: *const f32, x: *const f32, n: usize) -> f32 {
        // SAFETY: the caller passes `n` readable f32 at `w` and at `x`; loads stop at `i + 64 <= n`
        // and the tail at `n`.
        unsafe {
            let mut i = 0;
            let mut s = [_mm512_setzero_ps(); 4];
            while i + 64 <= n {
                for (j, s) in s.iter_mut().enumerate() {
                    let a = _mm512_loadu_ps(w.add(i + 16 * j));
                    let b = _mm512_loadu_ps(x.add(i + 16 * j));
                    *s = _mm512_fmadd_ps(a, b, *s);
                }
                i += 64;
            }
            let mut sumf = reduce(_mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[1], s[3])));
            while i < n {
                sumf += w.add(i).read_unaligned() * x.add(i).read_unaligned();
                i += 1;
            }
            sumf
        }
    }

    /// Rows of weights in a block kept in L2 while 4-token groups pass over them.
    const ROW_BLOCK: usize = 64;

    /// `matrix_f16` for 4 tokens or more (see the module docs).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    pub(in crate::simd::x86) unsafe fn matrix_f16(
        w: *const u8,
        wrb: usize,
        x: *const u8,
        xrb: usize,
        nb: usize,
        rows: usize,
        toks: usize,
        out: *mut f32,
        rs: usize,
        ts: usize,
    ) {
        // SAFETY: the `MatrixFn` contract: `w` holds `rows` rows of `nb` f16 `wrb` bytes apart,
        // `x` `toks` rows of `nb` f16 `xrb` bytes apart, `out` an element at every
        // `r * rs + t * ts`; `xf` holds `toks * nb` f32.
        unsafe {
            // Activations widened once (the crate's F16 dequantizer; a `toks × nb` pass
            // against the product's `rows × toks × nb`): `xf[t * nb ..][..nb]` is token t.
            let mut xf = vec![0f32; toks * nb];
            for (t, dst) in xf.chunks_exact_mut(nb).enumerate() {
                crate::fp::dequant_f16(std::slice::from_raw_parts(x.add(t * xrb), 2 * nb), dst);
            }
            let groups = toks / 4;
            for r0 in (0..rows).step_by(ROW_BLOCK) {
                let r1 = (r0 + ROW_BLOCK).min(rows);
                for g in 0..groups {
                    let xs = [0, 1, 2, 3].map(|k| xf.as_ptr().add((4 * g + k) * nb));
                    for r in r0..r1 {
                        let d = dot_f16_x4(w.add(r * wrb), xs, nb);
                        for (k, v) in d.into_iter().enumerate() {
                            *out.add(r * rs + (4 * g + k) * ts) = v;
                        }
                    }
                }
                for t in 4 * groups..toks {
                    for r in r0..r1 {
                        *out.add(r * rs + t * ts) = dot_f16(w.add(r * wrb), x.add(t * xrb), nb);
                    }
                }
            }
        }
    }

    /// Four `dot_f16` of one f16 weight row against four f32 rows (widened f16), each with
    /// `dot_f16`'s own operations in its order; the weight vectors are widened once.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    unsafe fn dot_f16_x4(w: *const u8, x: [*const f32; 4], n: usize) -> [f32; 4] {
        // SAFETY: `n` readable f16 at `w` and `n` readable f32 at each `x[k]`; loads stop at
        // `i + 64 <= n` and the tails at `n`.
        unsafe {
            let mut i = 0;
            let mut s = [[_mm512_setzero_ps(); 4]; 4];
            while i + 64 <= n {
                for j in 0..4 {
                    let a = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(2 * (i + 16 * j)) as *const __m256i));
                    for k in 0..4 {
                        let b = _mm512_loadu_ps(x[k].add(i + 16 * j));
                        s[k][j] = _mm512_fmadd_ps(a, b, s[k][j]);
                    }
                }
                i += 64;
            }
            let mut out = [0f32; 4];
            for k in 0..4 {
                let sk = s[k];
                let mut sumf = reduce(_mm512_add_ps(_mm512_add_ps(sk[0], sk[2]), _mm512_add_ps(sk[1], sk[3]))) as f64;
                for t in i..n {
                    let a = f16_bits_to_f32(u16::from_le_bytes([*w.add(2 * t), *w.add(2 * t + 1)]));
                    sumf += (a * *x[k].add(t)) as f64;
                }
                out[k] = sumf as f32;
            }
            out
        }
    }

    /// llamafile tinyBLAS's F16 order (see `crate::tiled_f16`) on rows `0..rows` of `w`
    /// against `toks` activation rows widened to f32 (`xf`, `nb` apart): tiles of 4 rows ×
    /// 6 tokens, one 16-lane accumulator per output, `reduce` at the end.
    ///
    /// Blocks of [`ROW_BLOCK`] rows stay in L2 while the token groups pass over them; the
    /// tokens past the last group of 6 go through one pass of 4 × `toks % 6` tiles (not one
    /// 4 × 1 pass per token: each weight vector is widened once per pass). The first pass
    /// over a block streams its weights from memory, so its tiles prefetch the next tile's
    /// rows. None of this changes an output's operation order.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    pub(in crate::simd::x86) unsafe fn tiled_f16(
        w: *const u8,
        wrb: usize,
        xf: *const f32,
        nb: usize,
        rows: usize,
        toks: usize,
        out: *mut f32,
        rs: usize,
        ts: usize,
    ) {
        // SAFETY: `w` holds `rows` rows of `nb` f16 `wrb` bytes apart, `xf` `toks` rows of `nb`
        // f32, `nb % 16 == 0`, `out` an element at every `r * rs + t * ts` (the caller's
        // contract); every tile stays inside those bounds.
        unsafe {
            let (mr, nr) = (rows - rows % 4, toks - toks % 6);
            let m = Mat { w, wrb, xf, nb, out, rs, ts };
            for b0 in (0..rows).step_by(ROW_BLOCK) {
                let b1 = (b0 + ROW_BLOCK).min(rows);
                let m1 = b1.min(mr).max(b0);
                let rows = (b0, m1, b1);
                for t0 in (0..nr).step_by(6) {
                    pass::<6>(&m, rows, t0, t0 == 0);
                }
                let first = nr == 0;
                match toks - nr {
                    1 => pass::<1>(&m, rows, nr, first),
                    2 => pass::<2>(&m, rows, nr, first),
                    3 => pass::<3>(&m, rows, nr, first),
                    4 => pass::<4>(&m, rows, nr, first),
                    5 => pass::<5>(&m, rows, nr, first),
                    _ => {}
                }
            }
        }
    }

    /// The operands of [`tiled_f16`].
    #[derive(Clone, Copy)]
    struct Mat {
        w: *const u8,
        wrb: usize,
        xf: *const f32,
        nb: usize,
        out: *mut f32,
        rs: usize,
        ts: usize,
    }

    /// Tokens `t0 .. t0 + RN` against the rows `(b0, m1, b1)` of one block: 4-row tiles
    /// over `b0..m1`, single rows over `m1..b1`; `prefetch` on the first pass over a block.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    unsafe fn pass<const RN: usize>(m: &Mat, (b0, m1, b1): (usize, usize, usize), t0: usize, prefetch: bool) {
        // SAFETY: forwarded from `tiled_f16` (rows and tokens inside its bounds).
        unsafe {
            for r0 in (b0..m1).step_by(4) {
                match prefetch {
                    true => tile::<4, RN, true>(m, r0, t0),
                    false => tile::<4, RN, false>(m, r0, t0),
                }
            }
            for r0 in m1..b1 {
                tile::<1, RN, false>(m, r0, t0);
            }
        }
    }

    /// One `RM` × `RN` tile of [`tiled_f16`]; `PF`: prefetch rows `r0 + RM .. r0 + 2 RM`
    /// (the next tile's; addresses past the matrix are only hints, never read).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    unsafe fn tile<const RM: usize, const RN: usize, const PF: bool>(m: &Mat, r0: usize, t0: usize) {
        let Mat { w, wrb, xf, nb, out, rs, ts } = *m;
        // SAFETY: rows r0..r0+RM and tokens t0..t0+RN are inside the bounds of `tiled_f16`'s
        // contract; loads stop at `nb` (a multiple of 16); prefetches read nothing.
        unsafe {
            let mut c = [[_mm512_setzero_ps(); RM]; RN];
            let mut l = 0;
            while l < nb {
                if PF && l % 32 == 0 {
                    for i in 0..RM {
                        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((r0 + RM + i) * wrb + 2 * l) as *const i8);
                    }
                }
                let mut a = [_mm512_setzero_ps(); RM];
                for (i, a) in a.iter_mut().enumerate() {
                    *a = _mm512_cvtph_ps(_mm256_loadu_si256(w.add((r0 + i) * wrb + 2 * l) as *const __m256i));
                }
                for (j, c) in c.iter_mut().enumerate() {
                    let b = _mm512_loadu_ps(xf.add((t0 + j) * nb + l));
                    for (c, a) in c.iter_mut().zip(&a) {
                        *c = _mm512_fmadd_ps(*a, b, *c);
                    }
                }
                l += 16;
            }
            for (j, c) in c.iter().enumerate() {
                for (i, c) in c.iter().enumerate() {
                    *out.add((r0 + i) * rs + (t0 + j) * ts) = reduce(*c);
                }
            }
        }
    }

    /// ggml's `ggml_vec_dot_f16` (AVX-512): as `dot_f32` on converted halves, tail in f64.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    pub(in crate::simd::x86) unsafe fn dot_f16(w: *const u8, x: *const u8, n: usize) -> f32 {
        // SAFETY: the caller passes `n` readable f16 (2 bytes each) at `w` and at `x`; loads stop
        // at `i + 64 <= n` and the tail at `n`.
        unsafe {
            let mut i = 0;
            let mut s = [_mm512_setzero_ps(); 4];
            while i + 64 <= n {
                for (j, s) in s.iter_mut().enumerate() {
                    let a = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(2 * (i + 16 * j)) as *const __m256i));
                    let b = _mm512_cvtph_ps(_mm256_loadu_si256(x.add(2 * (i + 16 * j)) as *const __m256i));
                    *s = _mm512_fmadd_ps(a, b, *s);
                }
                i += 64;
            }
            let mut sumf = reduce(_mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[1], s[3]))) as f64;
            while i < n {
                let a = f16_bits_to_f32(u16::from_le_bytes([*w.add(2 * i), *w.add(2 * i + 1)]));
                let b = f16_bits_to_f32(u16::from_le_bytes([*x.add(2 * i), *x.add(2 * i + 1)]));
                sumf += (a * b) as f64;
                i += 1;
            }
            sumf as f32
        }
    }
}
