//! The 32-element legacy formats (Q4_0, Q5_0, Q8_0 signed; Q4_1, Q5_1 with a min) as
//! `Kern`s, expanded per level by `x86_legacy!`, plus the single-token VNNI path
//! `gemv_signed`.
//!
//! Signed × signed blocks use ggml's sign trick without VNNI (|w| × sign(w)·y) and, with
//! VNNI, activations offset to unsigned (y + 128) against a lane start of −128·Σw formed
//! once per weight block; both give Σ w·y exactly. For one token, `gemv_signed` reads the
//! weights themselves as unsigned (`q + 2^SHIFT`, `RawSigned`) against a per-activation
//! correction, so nothing per row but the dot remains. The many-token big tiles of these
//! formats live in `legacy_big.rs`.

/// Expands to this family's items inside one level module (see `x86_level!` in
/// `mod.rs`): `$feat` is the level's `target_feature` list, `$vnni` / `$avx512` its
/// compile-time switches.
macro_rules! x86_legacy {
    ($feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
        /// A signed 32-element block (Q4_0, Q5_0, Q8_0): values `q`; with VNNI
        /// `aux = -128·Σq` per lane (activations are offset to unsigned), without it
        /// `aux = |q|` (ggml's sign trick); the scale broadcast.
        #[derive(Clone, Copy)]
        struct Sw {
            q: __m256i,
            aux: __m256i,
            d: __m256,
        }

        /// A Q8_0 activation block: quants (plus 128 as unsigned bytes with VNNI) and
        /// the scale broadcast.
        #[derive(Clone, Copy)]
        struct Sx {
            y: __m256i,
            d: __m256,
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn signed_w(q: __m256i, d: f32) -> Sw {
            let aux = if $vnni {
                // SAFETY: `$vnni`: this is the VNNI level.
                let c = unsafe { dpbusd(_mm256_setzero_si256(), _mm256_set1_epi8(-128), q) };
                _mm256_sub_epi32(_mm256_setzero_si256(), c)
            } else {
                _mm256_sign_epi8(q, q)
            };
            Sw { q, aux, d: _mm256_set1_ps(d) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn signed_x(x: *const u8) -> Sx {
            // SAFETY: the caller passes a whole Q8_0 block (34 bytes: f16 scale, 32 quants), so `x`
            // and `x + 2..x + 34` are readable.
            unsafe {
                let y = load(x.add(2));
                let y = if $vnni { _mm256_xor_si256(y, _mm256_set1_epi8(-128)) } else { y };
                Sx { y, d: _mm256_set1_ps(rd16(x)) }
            }
        }

        /// ggml's `mul_sum_i8_pairs_float` + fma: the lanes are Σ w·y exactly, either
        /// as Σ (y+128)·w − 128·Σw (VNNI) or as Σ |w|·(sign(w)·y).
        #[inline]
        #[target_feature(enable = $feat)]
        fn step_signed(w: &Sw, xp: &Sx, acc: &mut Acc) {
            let lanes = if $vnni {
                // SAFETY: `$vnni`: this is the VNNI level.
                unsafe { dpbusd(w.aux, xp.y, w.q) }
            } else {
                dot_us(w.aux, _mm256_sign_epi8(xp.y, w.q))
            };
            let d = _mm256_mul_ps(w.d, xp.d);
            acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes), acc.v);
        }

        /// An unsigned block with a min (Q4_1, Q5_1): values and `[d, m, 0, 0]`.
        #[derive(Clone, Copy)]
        struct Uw {
            q: __m256i,
            dm: __m128,
        }

        /// A Q8_1 activation block: quants and `[d, s, 0, 0]`.
        #[derive(Clone, Copy)]
        struct Ux {
            y: __m256i,
            ds: __m128,
        }

        /// Two f16 at `p` (d and m, or d and s) as the low lanes of an f32 vector.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn rd16x2(p: *const u8) -> __m128 {
            // SAFETY: the caller passes the block start of a Q4_1 / Q5_1 weight or Q8_1 activation
            // block, whose first 4 bytes are the two f16 values.
            unsafe {
                let bits = u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]);
                _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))
            }
        }

        /// One vector multiply gives both `d_w·d_x` and `m_w·s_x` (ggml's f32 products).
        #[inline]
        #[target_feature(enable = $feat)]
        fn step_unsigned(w: &Uw, xp: &Ux, acc: &mut Acc) {
            let p = _mm_mul_ps(w.dm, xp.ds);
            acc.s += _mm_cvtss_f32(_mm_movehdup_ps(p));
            let lanes = dot_us(w.q, xp.y);
            acc.v = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(lanes), acc.v);
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn unsigned_x(x: *const u8) -> Ux {
            // SAFETY: the caller passes a whole Q8_1 block (36 bytes: two f16, 32 quants).
            unsafe {
                Ux { y: load(x.add(4)), ds: rd16x2(x) }
            }
        }

        /// Implements `Kern` for a legacy format from its unpack expression.
        macro_rules! legacy_kern {
            ($k:ident, $wb:expr, signed, big from $big:expr, |$p:ident| $unpack:expr) => {
                struct $k;
                impl Kern for $k {
                    const WB: usize = $wb;
                    const BIG_MIN_TOKENS: usize = $big;
                    const XB: usize = 34;
                    type W = Sw;
                    type X = Sx;
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn unpack($p: *const u8) -> Sw {
                        // SAFETY: `$p` is a whole weight block of `WB` bytes (the `unpack`
                        // contract), and every read of the unpack expressions below (scales at
                        // 0..4, bits / nibbles / quants up to `WB`) stays inside it.
                        unsafe {
                            $unpack
                        }
                    }
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn prep(x: *const u8) -> Sx {
                        // SAFETY: `x` is a whole activation block of `XB` bytes (the `prep`
                        // contract).
                        unsafe {
                            signed_x(x)
                        }
                    }
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn step(w: &Sw, _x: *const u8, xp: &Sx, acc: &mut Acc) {
                        step_signed(w, xp, acc)
                    }
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn finish(acc: &Acc) -> f32 {
                        hsum8(acc.v)
                    }
                }
            };
            ($k:ident, $wb:expr, unsigned, big from $big:expr, |$p:ident| $unpack:expr) => {
                struct $k;
                impl Kern for $k {
                    const WB: usize = $wb;
                    const BIG_MIN_TOKENS: usize = $big;
                    const XB: usize = 36;
                    type W = Uw;
                    type X = Ux;
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn unpack($p: *const u8) -> Uw {
                        // SAFETY: `$p` is a whole weight block of `WB` bytes (the `unpack`
                        // contract), and every read of the unpack expressions below (scales at
                        // 0..4, bits / nibbles / quants up to `WB`) stays inside it.
                        unsafe {
                            $unpack
                        }
                    }
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn prep(x: *const u8) -> Ux {
                        // SAFETY: `x` is a whole activation block of `XB` bytes (the `prep`
                        // contract).
                        unsafe {
                            unsigned_x(x)
                        }
                    }
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn step(w: &Uw, _x: *const u8, xp: &Ux, acc: &mut Acc) {
                        step_unsigned(w, xp, acc)
                    }
                    #[inline]
                    #[target_feature(enable = $feat)]
                    unsafe fn finish(acc: &Acc) -> f32 {
                        hsum8(acc.v) + acc.s
                    }
                }
            };
        }

        // `big from`: tokens from which the big tiles (weights unpacked once into scratch)
        // beat the 4 × 4 tiles (unpacked in registers per 4 tokens), from
        // `matmul_speed` on [4864 × 896], 2 threads, GMAC/s 4×4 vs big: at 2 tokens Q4_0
        // 51 / 64, Q5_0 39 / 56, Q4_1 64 / 68, Q5_1 43 / 63, but Q8_0 (a plain load to
        // unpack) 71 / 50 and at 4 tokens 101 / 85; from 5 tokens the big tiles win or tie.
        legacy_kern!(Q4_0, 18, signed, big from 2, |p| {
            signed_w(_mm256_sub_epi8(nibbles32(p.add(2)), _mm256_set1_epi8(8)), rd16(p))
        });
        legacy_kern!(Q5_0, 22, signed, big from 2, |p| {
            // Bit clear → OR 0xF0, i.e. the nibble minus 16 as a signed byte.
            let hi = _mm256_andnot_si256(bits32(p.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
            signed_w(_mm256_or_si256(nibbles32(p.add(6)), hi), rd16(p))
        });
        legacy_kern!(Q8_0, 34, signed, big from 5, |p| signed_w(load(p.add(2)), rd16(p)));
        legacy_kern!(Q4_1, 20, unsigned, big from 2, |p| Uw { q: nibbles32(p.add(4)), dm: rd16x2(p) });
        legacy_kern!(Q5_1, 24, unsigned, big from 2, |p| {
            let hi = _mm256_and_si256(bits32(p.add(4)), _mm256_set1_epi8(0x10));
            Uw { q: _mm256_or_si256(nibbles32(p.add(8)), hi), dm: rd16x2(p) }
        });

        /// A signed legacy format read as unsigned values `u = q + 2^SHIFT` (the raw
        /// nibbles / 5-bit values / bytes with the sign bit flipped), for single-token
        /// products: Σ q·y = Σ u·y − 2^SHIFT·Σ y, where the correction depends on the
        /// activations only, so it is formed once per block for all rows.
        trait RawSigned: Kern<W = Sw, X = Sx> {
            const SHIFT: i32;
            /// The 32 unsigned values of the weight block at `p`.
            unsafe fn raw(p: *const u8) -> __m256i;
        }

        impl RawSigned for Q4_0 {
            const SHIFT: i32 = 3;
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn raw(p: *const u8) -> __m256i {
                // SAFETY: `p` is a whole weight block of `WB` bytes (the `raw` contract, as
                // `unpack`); the reads stay inside it.
                unsafe {
                    nibbles32(p.add(2))
                }
            }
        }

        impl RawSigned for Q5_0 {
            const SHIFT: i32 = 4;
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn raw(p: *const u8) -> __m256i {
                // SAFETY: `p` is a whole weight block of `WB` bytes (the `raw` contract, as
                // `unpack`); the reads stay inside it.
                unsafe {
                    let hi = _mm256_and_si256(bits32(p.add(2)), _mm256_set1_epi8(0x10));
                    _mm256_or_si256(nibbles32(p.add(6)), hi)
                }
            }
        }

        impl RawSigned for Q8_0 {
            const SHIFT: i32 = 7;
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn raw(p: *const u8) -> __m256i {
                // SAFETY: `p` is a whole weight block of `WB` bytes (the `raw` contract, as
                // `unpack`); the reads stay inside it.
                unsafe {
                    _mm256_xor_si256(load(p.add(2)), _mm256_set1_epi8(-128))
                }
            }
        }

        /// One token against `rows` weight rows of a signed legacy format (VNNI only):
        /// rows one at a time, each a single sequential stream (prefetched ahead), the
        /// activation side (quants, `-2^SHIFT·Σy` lane starts, scales) prepared once.
        /// The integer lanes equal those of `step_signed` and the float operations are
        /// the same (`d = d_w·d_x`, `acc = fma(d, f32(lanes), acc)`, `hsum8`), so every
        /// output is bit-identical to the single dot.
        #[target_feature(enable = $feat)]
        unsafe fn gemv_signed<K: RawSigned>(
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
            // `nb` blocks of `K::WB` bytes, `wrb` apart; the one token's `nb` Q8_0 blocks (34 bytes
            // each) are at `x`; `out` has an element at every `r * rs`. The VNNI calls run only
            // where `$vnni` (returned above otherwise); the prefetch address uses `wrapping_add`
            // and never faults.
            unsafe {
                if !$vnni || toks != 1 {
                    return matrix_signed::<K>(w, wrb, x, xrb, nb, rows, toks, out, rs, ts);
                }
                let zero = _mm256_setzero_si256();
                let ones = _mm256_set1_epi8(1);
                let mut corr = vec![zero; nb];
                let mut dx = vec![0.0f32; nb];
                for b in 0..nb {
                    let xb = x.add(b * 34);
                    let sum = _mm256_dpbusd_epi32(zero, ones, load(xb.add(2)));
                    corr[b] = _mm256_sub_epi32(zero, _mm256_sll_epi32(sum, _mm_cvtsi32_si128(K::SHIFT)));
                    dx[b] = rd16(xb);
                }
                for r in 0..rows {
                    let p = w.add(r * wrb);
                    let mut acc = _mm256_setzero_ps();
                    for b in 0..nb {
                        let pb = p.add(b * K::WB);
                        _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(PREFETCH) as *const i8);
                        let lanes = _mm256_dpbusd_epi32(corr[b], K::raw(pb), load(x.add(b * 34 + 2)));
                        let d = _mm256_set1_ps(rd16(pb) * dx[b]);
                        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes), acc);
                    }
                    *out.add(r * rs) = hsum8(acc);
                }
            }
        }
    };
}
