//! The activation quantizers (Q8_0, Q8_1, Q8_K), expanded per level by `x86_quant!`.
//!
//! They write the scalar reference quantizers' bytes exactly: the same f32 operations
//! (`d = amax / 127`, `id = 1 / d` for Q8_0/Q8_1; `iscale = -127 / max` for Q8_K), C's
//! `roundf` rebuilt from truncation (half away from zero) where the reference uses it, and
//! round-to-nearest-even where it uses `nearest_int`.

/// Expands to this family's items inside one level module (see `x86_level!` in
/// `mod.rs`): `$feat` is the level's `target_feature` list, `$vnni` / `$avx512` its
/// compile-time switches.
macro_rules! x86_quant {
    ($feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
        /// 8 floats per vector; max |v| of a block of `n8` vectors.
        #[inline]
        #[target_feature(enable = $feat)]
        fn absmax(v: &[__m256]) -> f32 {
            let sign = _mm256_set1_ps(-0.0);
            let mut m = _mm256_setzero_ps();
            for &x in v {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, x));
            }
            let mut r = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
            r = _mm_max_ps(r, _mm_movehl_ps(r, r));
            r = _mm_max_ss(r, _mm_movehdup_ps(r));
            _mm_cvtss_f32(r)
        }

        /// C `roundf` (half away from zero) of each lane, as i32.
        #[inline]
        #[target_feature(enable = $feat)]
        fn roundf_epi32(v: __m256) -> __m256i {
            let t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            let frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0), _mm256_sub_ps(v, t)); // exact
            let away = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5), _CMP_GE_OQ);
            let one = _mm256_or_ps(_mm256_set1_ps(1.0), _mm256_and_ps(v, _mm256_set1_ps(-0.0)));
            _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(away, one)))
        }

        /// Four vectors of 8 i32 → 32 saturated i8 in element order.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn pack32(i: [__m256i; 4], dst: *mut u8) {
            // SAFETY: the caller passes 32 writable bytes at `dst` (the quants of one output
            // block).
            unsafe {
                let a = _mm256_packs_epi32(i[0], i[1]);
                let b = _mm256_packs_epi32(i[2], i[3]);
                let c = _mm256_packs_epi16(a, b);
                let c = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(dst as *mut __m256i, c);
            }
        }

        /// Σ of the 32 i32 lanes of four vectors.
        #[inline]
        #[target_feature(enable = $feat)]
        fn sum_i32(i: [__m256i; 4]) -> i32 {
            let s = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
            let h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            let h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
            let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b10_11_00_01));
            _mm_cvtsi128_si32(h)
        }

        /// Q8_0 / Q8_1 (`with_sum`): the reference quantizer's `d = amax / 127`,
        /// `id = 1 / d`, `roundf(x * id)`.
        #[target_feature(enable = $feat)]
        unsafe fn quant_q8(src: &[f32], dst: &mut [u8], with_sum: bool) {
            // SAFETY: every load reads 8 floats inside one 32-float chunk of `src`, and `pack32`
            // writes the 32 bytes `qo..qo + 32` of one `bytes`-long chunk of `dst` (`qo + 32 ==
            // bytes`).
            unsafe {
                let bytes = if with_sum { 36 } else { 34 };
                let qo = if with_sum { 4 } else { 2 };
                for (x, b) in src.chunks_exact(32).zip(dst.chunks_exact_mut(bytes)) {
                    let p = x.as_ptr();
                    let v = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
                    let amax = absmax(&v);
                    let d = amax / 127.0;
                    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                    let idv = _mm256_set1_ps(id);
                    let q = [
                        roundf_epi32(_mm256_mul_ps(v[0], idv)),
                        roundf_epi32(_mm256_mul_ps(v[1], idv)),
                        roundf_epi32(_mm256_mul_ps(v[2], idv)),
                        roundf_epi32(_mm256_mul_ps(v[3], idv)),
                    ];
                    b[0..2].copy_from_slice(&f32_to_f16_bytes(d));
                    pack32(q, b.as_mut_ptr().add(qo));
                    if with_sum {
                        // Values are within ±127 (saturating pack = plain cast), so the sum
                        // of the i32 lanes is the sum of the stored bytes.
                        b[2..4].copy_from_slice(&f32_to_f16_bytes(sum_i32(q) as f32 * d));
                    }
                }
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn quant_q8_0(src: &[f32], dst: &mut [u8]) {
            // SAFETY: the `QuantFn` contract: this level is only dispatched on a CPU that has its
            // features; `quant_q8` bounds every access by the chunks themselves.
            unsafe {
                quant_q8(src, dst, false)
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn quant_q8_1(src: &[f32], dst: &mut [u8]) {
            // SAFETY: as in `quant_q8_0`.
            unsafe {
                quant_q8(src, dst, true)
            }
        }

        /// Q8_K: the reference `iscale = -127 / max` (max = the first element of
        /// largest magnitude, with its sign), `min(127, nearest_int(iscale * x))` with
        /// ties to even, `d = 1 / iscale`, `bsums` per 16.
        #[target_feature(enable = $feat)]
        unsafe fn quant_q8_k(src: &[f32], dst: &mut [u8]) {
            // SAFETY: every load reads 8 floats of one 256-float chunk `x` (k < 32), and `pack32`
            // writes bytes `4 + 32c..4 + 32c + 32` (c < 8, so up to 260) of one 292-byte chunk `b`.
            unsafe {
                for (x, b) in src.chunks_exact(256).zip(dst.chunks_exact_mut(292)) {
                    let p = x.as_ptr();
                    let mut v = [_mm256_setzero_ps(); 32];
                    for (k, v) in v.iter_mut().enumerate() {
                        *v = _mm256_loadu_ps(p.add(8 * k));
                    }
                    let amax = absmax(&v);
                    if amax == 0.0 {
                        b.fill(0);
                        continue;
                    }
                    let sign = _mm256_set1_ps(-0.0);
                    let target = _mm256_set1_ps(amax);
                    let mut max = amax;
                    for (k, v) in v.iter().enumerate() {
                        let eq = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, *v), target, _CMP_EQ_OQ));
                        if eq != 0 {
                            max = x[8 * k + eq.trailing_zeros() as usize];
                            break;
                        }
                    }
                    let iscale = -127.0f32 / max;
                    let isv = _mm256_set1_ps(iscale);
                    let top = _mm256_set1_epi32(127);
                    let qp = b.as_mut_ptr().add(4);
                    for c in 0..8 {
                        let mut q = [_mm256_setzero_si256(); 4];
                        for (k, q) in q.iter_mut().enumerate() {
                            let r = _mm256_round_ps(_mm256_mul_ps(v[4 * c + k], isv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                            *q = _mm256_min_epi32(_mm256_cvtps_epi32(r), top);
                        }
                        pack32(q, qp.add(32 * c));
                        // bsums: two groups of 16 per chunk of 32.
                        let lo = _mm256_add_epi32(q[0], q[1]);
                        let hi = _mm256_add_epi32(q[2], q[3]);
                        for (g, s) in [lo, hi].into_iter().enumerate() {
                            let h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                            let h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
                            let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b10_11_00_01));
                            let sum = _mm_cvtsi128_si32(h) as i16;
                            let at = 260 + 2 * (2 * c + g);
                            b[at..at + 2].copy_from_slice(&sum.to_le_bytes());
                        }
                    }
                    b[0..4].copy_from_slice(&(1.0f32 / iscale).to_le_bytes());
                }
            }
        }

        /// The activation quantizer for `ty` (Q8_0, Q8_1, Q8_K).
        pub(crate) fn quant_fn(ty: GgmlType) -> Option<QuantFn> {
            let f: QuantFn = match ty {
                GgmlType::Q8_0 => quant_q8_0,
                GgmlType::Q8_1 => quant_q8_1,
                GgmlType::Q8_K => quant_q8_k,
                _ => return None,
            };
            Some(f)
        }
    };
}
