//! The 256-element K-quants against Q8_K activations (Q4_K, Q5_K, Q6_K) as `Kern`s,
//! expanded per level by `x86_kquants!`.
//!
//! Each reproduces ggml's AVX2 `vec_dot` order: per super-block, eight i32 lanes of
//! sub-scaled integer products (`maddubs`, then `madd` or VNNI `vpdpwssd` with the
//! sub-block scales; exact either way), one `fma(d, f32(lanes), acc)`, and the min terms
//! accumulated where ggml accumulates them (a vector for Q4_K, a scalar for Q5_K). No
//! activation preparation is needed (`X = ()`): the Q8_K block is read directly.

/// Expands to this family's items inside one level module (see `x86_level!` in
/// `mod.rs`): `$feat` is the level's `target_feature` list, `$vnni` / `$avx512` its
/// compile-time switches.
macro_rules! x86_kquants {
    ($feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
        /// Q4_K/Q5_K super-block: 8 chunks of 32 unsigned values, their 6-bit scales and
        /// mins (as i16), `d` and `dmin`.
        #[derive(Clone, Copy)]
        struct K4w {
            q: [__m256i; 8],
            sc: [i16; 8],
            mins: __m128i,
            d: f32,
            dmin: f32,
        }

        /// ggml's `get_scale_min_k4` for all eight sub-blocks.
        #[inline(always)]
        unsafe fn k4_scales(s: *const u8) -> ([i16; 8], [i16; 8]) {
            // SAFETY: the caller passes the 12 scale bytes of a Q4_K / Q5_K block (bytes 4..16).
            unsafe {
                let q = std::slice::from_raw_parts(s, 12);
                let mut sc = [0i16; 8];
                let mut m = [0i16; 8];
                for j in 0..4 {
                    sc[j] = (q[j] & 63) as i16;
                    m[j] = (q[j + 4] & 63) as i16;
                }
                for j in 4..8 {
                    sc[j] = ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4)) as i16;
                    m[j] = ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i16;
                }
                (sc, m)
            }
        }

        /// The i32 lanes of a K4 super-block against Q8_K quants at `x`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn k4_lanes(w: &K4w, x: *const u8) -> __m256i {
            // SAFETY: `x` is a whole Q8_K block (292 bytes, the `step` contract): the quants read
            // here are bytes 4..260.
            unsafe {
                let mut sumi = _mm256_setzero_si256();
                for c in 0..8 {
                    let p16 = _mm256_maddubs_epi16(w.q[c], load(x.add(4 + 32 * c)));
                    sumi = madd_acc(sumi, _mm256_set1_epi16(w.sc[c]), p16);
                }
                sumi
            }
        }

        /// The mins product of a K4 super-block: 4 i32 lanes as ggml's `prod`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn k4_prod(w: &K4w, x: *const u8) -> __m128i {
            // SAFETY: `x` is a whole Q8_K block (292 bytes): the 16 i16 block sums are bytes
            // 260..292; `load` reads exactly those 32.
            unsafe {
                let bs = load(x.add(260));
                let q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                _mm_madd_epi16(w.mins, q8s)
            }
        }

        struct Q4K;
        impl Kern for Q4K {
            const WB: usize = 144;
            const XB: usize = 292;
            type W = K4w;
            type X = ();
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn prep(_x: *const u8) {}
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn unpack(p: *const u8) -> K4w {
                // SAFETY: `p` is a whole Q4_K block of `WB` = 144 bytes (the `unpack` contract):
                // f16 `d`, `dmin` at 0..4, scales at 4..16, 4 × 32 nibble bytes at 16..144; `m` is
                // 8 i16 = the 16 bytes loaded.
                unsafe {
                    let (sc, m) = k4_scales(p.add(4));
                    let mut q = [_mm256_setzero_si256(); 8];
                    let m4 = _mm256_set1_epi8(0x0F);
                    for j in 0..4 {
                        let bits = load(p.add(16 + 32 * j));
                        q[2 * j] = _mm256_and_si256(bits, m4);
                        q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                    }
                    let mins = _mm_loadu_si128(m.as_ptr() as *const __m128i);
                    K4w { q, sc, mins, d: rd16(p), dmin: rd16(p.add(2)) }
                }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn step(w: &K4w, x: *const u8, _xp: &(), acc: &mut Acc) {
                // SAFETY: `x` is a whole Q8_K block of `XB` = 292 bytes (the `step` contract),
                // which is what `rd32`, `k4_prod` and `k4_lanes` read.
                unsafe {
                    let yd = rd32(x);
                    let d = yd * w.d;
                    let dmin = -yd * w.dmin;
                    let prod = k4_prod(w, x);
                    acc.m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc.m);
                    let sumi = k4_lanes(w, x);
                    acc.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc.v);
                }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn finish(acc: &Acc) -> f32 {
                let m = _mm_add_ps(acc.m, _mm_movehl_ps(acc.m, acc.m));
                let m = _mm_add_ss(m, _mm_movehdup_ps(m));
                hsum8(acc.v) + _mm_cvtss_f32(m)
            }
        }

        struct Q5K;
        impl Kern for Q5K {
            const WB: usize = 176;
            const XB: usize = 292;
            type W = K4w;
            type X = ();
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn prep(_x: *const u8) {}
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn unpack(p: *const u8) -> K4w {
                // SAFETY: `p` is a whole Q5_K block of `WB` = 176 bytes (the `unpack` contract):
                // f16 `d`, `dmin` at 0..4, scales at 4..16, high bits at 16..48, 4 × 32 nibble
                // bytes at 48..176; `m` is 8 i16 = the 16 bytes loaded.
                unsafe {
                    let (sc, m) = k4_scales(p.add(4));
                    let hbits = load(p.add(16));
                    let mut q = [_mm256_setzero_si256(); 8];
                    let m4 = _mm256_set1_epi8(0x0F);
                    let one = _mm256_set1_epi8(1);
                    for j in 0..4 {
                        let bits = load(p.add(48 + 32 * j));
                        let h0 = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128((2 * j) as i32)), one);
                        let h1 = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128((2 * j + 1) as i32)), one);
                        // (bit << 4) never crosses a byte: the bit is alone in its byte.
                        q[2 * j] = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_slli_epi16(h0, 4));
                        q[2 * j + 1] = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                            _mm256_slli_epi16(h1, 4),
                        );
                    }
                    let mins = _mm_loadu_si128(m.as_ptr() as *const __m128i);
                    K4w { q, sc, mins, d: rd16(p), dmin: rd16(p.add(2)) }
                }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn step(w: &K4w, x: *const u8, _xp: &(), acc: &mut Acc) {
                // SAFETY: `x` is a whole Q8_K block of `XB` = 292 bytes (the `step` contract),
                // which is what `rd32`, `k4_prod` and `k4_lanes` read.
                unsafe {
                    let yd = rd32(x);
                    let d = yd * w.d;
                    let dmin = -yd * w.dmin;
                    let prod = k4_prod(w, x);
                    let h = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
                    acc.s += dmin * _mm_cvtsi128_si32(h) as f32;
                    let sumi = k4_lanes(w, x);
                    acc.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc.v);
                }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn finish(acc: &Acc) -> f32 {
                hsum8(acc.v) + acc.s
            }
        }

        /// Q6_K super-block: 8 chunks of 32 unsigned values (0..=63, bias 32 not yet
        /// removed), the per-16 scales of each chunk as 16 i16, and `d`.
        #[derive(Clone, Copy)]
        struct Q6w {
            q: [__m256i; 8],
            sc: [__m256i; 8],
            d: f32,
        }

        struct Q6K;
        impl Kern for Q6K {
            const WB: usize = 210;
            const XB: usize = 292;
            type W = Q6w;
            type X = ();
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn prep(_x: *const u8) {}
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn unpack(p: *const u8) -> Q6w {
                // SAFETY: `p` is a whole Q6_K block of `WB` = 210 bytes (the `unpack` contract):
                // low nibbles at 0..128, high bits at 128..192, 16 i8 scales at 192..208, f16 `d`
                // at 208..210.
                unsafe {
                    let m4 = _mm256_set1_epi8(0x0F);
                    let m2 = _mm256_set1_epi8(3);
                    let mut q = [_mm256_setzero_si256(); 8];
                    let mut sc = [_mm256_setzero_si256(); 8];
                    for j in 0..2 {
                        let b1 = load(p.add(64 * j));
                        let b2 = load(p.add(64 * j + 32));
                        let h = load(p.add(128 + 32 * j));
                        let h0 = _mm256_slli_epi16(_mm256_and_si256(h, m2), 4);
                        let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4);
                        let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4);
                        let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4);
                        q[4 * j] = _mm256_or_si256(_mm256_and_si256(b1, m4), h0);
                        q[4 * j + 1] = _mm256_or_si256(_mm256_and_si256(b2, m4), h1);
                        q[4 * j + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), h2);
                        q[4 * j + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), h3);
                    }
                    for (c, s) in sc.iter_mut().enumerate() {
                        let a = *p.add(192 + 2 * c) as i8 as i16;
                        let b = *p.add(193 + 2 * c) as i8 as i16;
                        *s = _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a));
                    }
                    Q6w { q, sc, d: rd16(p.add(208)) }
                }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn step(w: &Q6w, x: *const u8, _xp: &(), acc: &mut Acc) {
                // SAFETY: `x` is a whole Q8_K block of `XB` = 292 bytes (the `step` contract): its
                // f32 scale at 0..4 and 8 × 32 quants at 4..260.
                unsafe {
                    let d = rd32(x) * w.d;
                    let m32 = _mm256_set1_epi8(32);
                    let mut sumi = _mm256_setzero_si256();
                    for c in 0..8 {
                        let y = load(x.add(4 + 32 * c));
                        let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(w.q[c], y), _mm256_maddubs_epi16(m32, y));
                        sumi = madd_acc(sumi, w.sc[c], p16);
                    }
                    acc.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc.v);
                }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn finish(acc: &Acc) -> f32 {
                hsum8(acc.v)
            }
        }
    };
}
