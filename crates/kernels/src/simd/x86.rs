//! x86_64 kernels: AVX2+FMA+F16C, the same with AVX-512 enabled (32 vector registers), and
//! the same with AVX-512 VNNI. One macro body is compiled three times with different
//! `target_feature` sets, so the three levels can never drift apart.
//!
//! **Numerics = ggml's x86 build.** Each quantized dot reproduces the operation order of
//! ggml's AVX2 path (which its AVX-512 builds use too): per block, eight i32 lanes (lane `i`
//! sums the products of elements `4i..4i+4` of every 32-element chunk, times the chunk's
//! sub-scale for K-quants), converted to f32 and accumulated with `acc = fma(d, lanes,
//! acc)`; at the end `hsum_float_8` plus the separately accumulated min/sum terms. Integer
//! lane sums are exact however they are formed (maddubs+madd, or VNNI `vpdpbusd`/
//! `vpdpwssd`), so every level gives bit-identical results, and the same as llama.cpp.
//! Signed×signed products (Q4_0, Q5_0, Q8_0 against Q8_0): without VNNI ggml's `sign` trick
//! (|w| × sign(w)·y, which like ggml assumes activation quants in -127..=127, what every
//! quantizer writes); with VNNI the activation is offset to unsigned once per token
//! (y + 128) and the lane starts at -128·Σw (computed once per weight block), so one
//! `vpdpbusd` gives Σ w·y exactly.
//!
//! **Tiles.** `Kern` splits a format into `unpack` (a weight block into registers, once per
//! tile), `prep` (an activation block, once per tile and token: scale broadcast, offset) and
//! `step` (one pair). `tile::<K, R, T>` runs R weight rows × T tokens over all blocks, so
//! each weight block is unpacked once per T tokens and each activation block prepared once
//! per R rows. Every (row, token)
//! output still sees exactly the single-dot sequence of operations, so results do not depend
//! on the tiling or on the number of tokens in a batch.
//!
//! **Big tiles and decoding.** With AVX-512 (32 registers) and 8+ tokens, the legacy
//! formats run `matrix_signed` / `matrix_unsigned`: 8 rows unpacked once per call into
//! scratch, 8 × 3 tiles, the `d_w·d_x` products of a block formed 8 rows per vector in a
//! first pass and read back as `{1to8}` broadcasts folded into the FMAs. One token runs one
//! row at a time (a single sequential stream, prefetched ahead); with VNNI the signed
//! formats then use `gemv_signed`: weights as unsigned `q + 2^k` against the lane start
//! `-2^k·Σy`, formed once per activation block, so the per-row work is the dot alone. All
//! of these give each output exactly the single dot's integer lanes and float operations.
//!
//! The activation quantizers (Q8_0, Q8_1, Q8_K) reproduce the scalar reference quantizers
//! byte for byte (same f32 operations, `roundf` rebuilt from truncation, ties-to-even where
//! the reference uses `nearest_int`).

// AVX-512 intrinsics are stable since Rust 1.89, newer than the workspace's declared
// rust-version (1.80); the crate needs 1.89 to build on x86_64 anyway.
#![allow(clippy::incompatible_msrv)]

macro_rules! x86_level {
    ($modname:ident, $feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
        pub(crate) mod $modname {
            // Kernel entry points share one pointer-based signature (`MatrixFn`).
            #![allow(clippy::too_many_arguments)]
            use super::super::{MatrixFn, QuantFn};
            use crate::util::f32_to_f16_bytes;
            use jikji_gguf::GgmlType;
            use std::arch::x86_64::*;

            // ------------------------------------------------------------ helpers

            /// f16 at `p` (little endian) as f32, with F16C's `vcvtph2ps` (exact, branch-free).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn rd16(p: *const u8) -> f32 {
                let bits = u16::from_le_bytes([*p, *p.add(1)]);
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
            }

            #[inline(always)]
            unsafe fn rd32(p: *const u8) -> f32 {
                f32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)])
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn load(p: *const u8) -> __m256i {
                _mm256_loadu_si256(p as *const __m256i)
            }

            /// ggml's `hsum_float_8`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn hsum8(x: __m256) -> f32 {
                let mut r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
                r = _mm_add_ps(r, _mm_movehl_ps(r, r));
                r = _mm_add_ss(r, _mm_movehdup_ps(r));
                _mm_cvtss_f32(r)
            }

            /// Eight i32 lanes, lane i = sum of a[4i..4i+4] * b[4i..4i+4] (a unsigned, b signed).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dot_us(a: __m256i, b: __m256i) -> __m256i {
                if $vnni {
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
                } else {
                    // |a| ≤ 31 here (or 127 with the sign trick), so pairs never saturate i16.
                    _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
                }
            }

            /// `acc + madd(scales, p16)` (i16 pairs times i16 scales, summed into i32 lanes).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn madd_acc(acc: __m256i, scales: __m256i, p16: __m256i) -> __m256i {
                if $vnni {
                    _mm256_dpwssd_epi32(acc, scales, p16)
                } else {
                    _mm256_add_epi32(acc, _mm256_madd_epi16(scales, p16))
                }
            }

            /// 16 packed bytes → 32 nibbles: low nibbles first, then high nibbles.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn nibbles32(p: *const u8) -> __m256i {
                let t = _mm_loadu_si128(p as *const __m128i);
                let b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
                _mm256_and_si256(b, _mm256_set1_epi8(0x0F))
            }

            /// 32 bits at `p` → 32 bytes, 0xFF where the bit is set.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn bits32(p: *const u8) -> __m256i {
                let x32 = u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]);
                let shuf = _mm256_set_epi64x(
                    0x0303030303030303,
                    0x0202020202020202,
                    0x0101010101010101,
                    0x0000000000000000,
                );
                let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x32 as i32), shuf);
                let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
                _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
            }

            /// The accumulators of one (row, token) dot.
            #[derive(Clone, Copy)]
            struct Acc {
                v: __m256,
                m: __m128,
                s: f32,
            }

            /// One weight format against its activation format, split for tiling.
            trait Kern {
                /// Bytes of a weight block and of an activation block.
                const WB: usize;
                const XB: usize;
                /// Tokens from which a legacy format takes the big tiles (AVX-512).
                const BIG_MIN_TOKENS: usize = usize::MAX;
                /// An unpacked weight block and a prepared activation block.
                type W: Copy;
                type X: Copy;
                /// Unpacks the weight block at `p` (`WB` readable bytes).
                unsafe fn unpack(p: *const u8) -> Self::W;
                /// Prepares the activation block at `x` (`XB` readable bytes), once per
                /// token for all the rows of a tile.
                unsafe fn prep(x: *const u8) -> Self::X;
                /// Accumulates one (weight block, activation block) pair.
                unsafe fn step(w: &Self::W, x: *const u8, xp: &Self::X, acc: &mut Acc);
                unsafe fn finish(acc: &Acc) -> f32;
            }

            // ------------------------------------------------------------ legacy formats

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
            unsafe fn signed_w(q: __m256i, d: f32) -> Sw {
                let aux = if $vnni {
                    let c = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), q);
                    _mm256_sub_epi32(_mm256_setzero_si256(), c)
                } else {
                    _mm256_sign_epi8(q, q)
                };
                Sw { q, aux, d: _mm256_set1_ps(d) }
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn signed_x(x: *const u8) -> Sx {
                let y = load(x.add(2));
                let y = if $vnni { _mm256_xor_si256(y, _mm256_set1_epi8(-128)) } else { y };
                Sx { y, d: _mm256_set1_ps(rd16(x)) }
            }

            /// ggml's `mul_sum_i8_pairs_float` + fma: the lanes are Σ w·y exactly, either
            /// as Σ (y+128)·w − 128·Σw (VNNI) or as Σ |w|·(sign(w)·y).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn step_signed(w: &Sw, xp: &Sx, acc: &mut Acc) {
                let lanes = if $vnni {
                    _mm256_dpbusd_epi32(w.aux, xp.y, w.q)
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
                let bits = u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]);
                _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))
            }

            /// One vector multiply gives both `d_w·d_x` and `m_w·s_x` (ggml's f32 products).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn step_unsigned(w: &Uw, xp: &Ux, acc: &mut Acc) {
                let p = _mm_mul_ps(w.dm, xp.ds);
                acc.s += _mm_cvtss_f32(_mm_movehdup_ps(p));
                let lanes = dot_us(w.q, xp.y);
                acc.v = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(lanes), acc.v);
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn unsigned_x(x: *const u8) -> Ux {
                Ux { y: load(x.add(4)), ds: rd16x2(x) }
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
                            $unpack
                        }
                        #[inline]
                        #[target_feature(enable = $feat)]
                        unsafe fn prep(x: *const u8) -> Sx {
                            signed_x(x)
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
                            $unpack
                        }
                        #[inline]
                        #[target_feature(enable = $feat)]
                        unsafe fn prep(x: *const u8) -> Ux {
                            unsigned_x(x)
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
                    nibbles32(p.add(2))
                }
            }

            impl RawSigned for Q5_0 {
                const SHIFT: i32 = 4;
                #[inline]
                #[target_feature(enable = $feat)]
                unsafe fn raw(p: *const u8) -> __m256i {
                    let hi = _mm256_and_si256(bits32(p.add(2)), _mm256_set1_epi8(0x10));
                    _mm256_or_si256(nibbles32(p.add(6)), hi)
                }
            }

            impl RawSigned for Q8_0 {
                const SHIFT: i32 = 7;
                #[inline]
                #[target_feature(enable = $feat)]
                unsafe fn raw(p: *const u8) -> __m256i {
                    _mm256_xor_si256(load(p.add(2)), _mm256_set1_epi8(-128))
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

            // ------------------------------------------------------------ K-quants

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

            /// The i32 lanes of a K4 super-block against Q8_K quants at `x`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn k4_lanes(w: &K4w, x: *const u8) -> __m256i {
                let mut sumi = _mm256_setzero_si256();
                for c in 0..8 {
                    let p16 = _mm256_maddubs_epi16(w.q[c], load(x.add(4 + 32 * c)));
                    sumi = madd_acc(sumi, _mm256_set1_epi16(w.sc[c]), p16);
                }
                sumi
            }

            /// The mins product of a K4 super-block: 4 i32 lanes as ggml's `prod`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn k4_prod(w: &K4w, x: *const u8) -> __m128i {
                let bs = load(x.add(260));
                let q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                _mm_madd_epi16(w.mins, q8s)
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
                #[inline]
                #[target_feature(enable = $feat)]
                unsafe fn step(w: &K4w, x: *const u8, _xp: &(), acc: &mut Acc) {
                    let yd = rd32(x);
                    let d = yd * w.d;
                    let dmin = -yd * w.dmin;
                    let prod = k4_prod(w, x);
                    acc.m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc.m);
                    let sumi = k4_lanes(w, x);
                    acc.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc.v);
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
                #[inline]
                #[target_feature(enable = $feat)]
                unsafe fn step(w: &K4w, x: *const u8, _xp: &(), acc: &mut Acc) {
                    let yd = rd32(x);
                    let d = yd * w.d;
                    let dmin = -yd * w.dmin;
                    let prod = k4_prod(w, x);
                    let h = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
                    acc.s += dmin * _mm_cvtsi128_si32(h) as f32;
                    let sumi = k4_lanes(w, x);
                    acc.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc.v);
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
                #[inline]
                #[target_feature(enable = $feat)]
                unsafe fn step(w: &Q6w, x: *const u8, _xp: &(), acc: &mut Acc) {
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
                #[inline]
                #[target_feature(enable = $feat)]
                unsafe fn finish(acc: &Acc) -> f32 {
                    hsum8(acc.v)
                }
            }

            // ------------------------------------------------------------ tiles

            /// Bytes ahead of the current weight block that single-token tiles prefetch (about
            /// 1.5 Q8_0 rows of 640; without it a decoding head matmul ran at a third of the
            /// memory bandwidth).
            const PREFETCH: usize = 1024;

            /// R rows × T tokens over `nb` blocks; output (r, t) goes to `out[r*rs + t*ts]`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile<K: Kern, const R: usize, const T: usize>(
                w: *const u8,
                wrb: usize,
                x: *const u8,
                xrb: usize,
                nb: usize,
                out: *mut f32,
                rs: usize,
                ts: usize,
            ) {
                let zero = Acc { v: _mm256_setzero_ps(), m: _mm_setzero_ps(), s: 0.0 };
                let mut acc = [[zero; T]; R];
                for b in 0..nb {
                    // SAFETY (of `zeroed`): every `X` is plain vectors/floats (or unit).
                    let mut xp: [K::X; T] = [std::mem::zeroed(); T];
                    for (t, p) in xp.iter_mut().enumerate() {
                        *p = K::prep(x.add(t * xrb + b * K::XB));
                    }
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        if T == 1 {
                            // Decoding streams the weights once: ask for them ahead.
                            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(r * wrb + b * K::WB + PREFETCH) as *const i8);
                        }
                        let wu = K::unpack(w.add(r * wrb + b * K::WB));
                        for (t, a) in acc_r.iter_mut().enumerate() {
                            K::step(&wu, x.add(t * xrb + b * K::XB), &xp[t], a);
                        }
                    }
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    for (t, a) in acc_r.iter().enumerate() {
                        *out.add(r * rs + t * ts) = K::finish(a);
                    }
                }
            }

            /// `rows` × `toks` outputs in tiles of R × T (edges with 1-wide tiles).
            #[target_feature(enable = $feat)]
            unsafe fn matrix<K: Kern, const R: usize, const T: usize>(
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
                if toks == 1 {
                    // Decoding: one row at a time keeps the weights a single sequential
                    // stream (prefetched in `tile`), which streams faster than R at once.
                    for r in 0..rows {
                        tile::<K, 1, 1>(w.add(r * wrb), wrb, x, xrb, nb, out.add(r * rs), rs, ts);
                    }
                    return;
                }
                let mut r = 0;
                while r + R <= rows {
                    let mut t = 0;
                    while t + T <= toks {
                        tile::<K, R, T>(w.add(r * wrb), wrb, x.add(t * xrb), xrb, nb, out.add(r * rs + t * ts), rs, ts);
                        t += T;
                    }
                    while t < toks {
                        tile::<K, R, 1>(w.add(r * wrb), wrb, x.add(t * xrb), xrb, nb, out.add(r * rs + t * ts), rs, ts);
                        t += 1;
                    }
                    r += R;
                }
                while r < rows {
                    let mut t = 0;
                    while t + T <= toks {
                        tile::<K, 1, T>(w.add(r * wrb), wrb, x.add(t * xrb), xrb, nb, out.add(r * rs + t * ts), rs, ts);
                        t += T;
                    }
                    while t < toks {
                        tile::<K, 1, 1>(w.add(r * wrb), wrb, x.add(t * xrb), xrb, nb, out.add(r * rs + t * ts), rs, ts);
                        t += 1;
                    }
                    r += 1;
                }
            }

            // ------------------------------------------------------------ big signed tiles

            /// Weight rows per big tile (one 8-lane vector of their block scales).
            const BIG_R: usize = 8;
            /// Tokens per big tile: 8 × 3 accumulators + 3 activation vectors + the
            /// current row's two weight vectors fit the 32 AVX-512 registers.
            const BIG_T: usize = 3;

            /// Signed legacy formats (Q4_0, Q5_0, Q8_0) for many tokens: each group of
            /// `BIG_R` rows is unpacked once per call into scratch (values, the VNNI offset
            /// or |q| lanes, f32 scales) and then multiplied with every token in tiles of
            /// `BIG_R × BIG_T`. Per (row, token, block) the float operations are those of
            /// `step_signed` (`d = d_w·d_x`, `acc = fma(d, f32(lanes), acc)`), the `d`
            /// products just being formed 8 rows at a time, so each output is bit-identical
            /// to the single dot.
            #[target_feature(enable = $feat)]
            unsafe fn matrix_signed<K: Kern<W = Sw, X = Sx>>(
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
                // 24 accumulators need AVX-512's 32 registers; AVX2 keeps the 4 × 4 tiles.
                if !$avx512 || toks < K::BIG_MIN_TOKENS || rows < BIG_R {
                    return matrix::<K, 4, 4>(w, wrb, x, xrb, nb, rows, toks, out, rs, ts);
                }
                let zero = _mm256_setzero_si256();
                // [nb][BIG_R] each: unpacked values, integer lane start, f32 scale.
                let mut qs = vec![zero; nb * BIG_R];
                let mut aux = vec![zero; nb * BIG_R];
                let mut dw = vec![0.0f32; nb * BIG_R];
                let mut dp = vec![0.0f32; nb * BIG_T * BIG_R];
                // Every token's prepared blocks, once per call rather than once per row
                // group: [toks][nb] offset quants and f32 scales.
                let mut ys = vec![zero; toks * nb];
                let mut dx = vec![0.0f32; toks * nb];
                for t in 0..toks {
                    for b in 0..nb {
                        let xp = signed_x(x.add(t * xrb + b * 34));
                        ys[t * nb + b] = xp.y;
                        dx[t * nb + b] = _mm256_cvtss_f32(xp.d);
                    }
                }
                let mut r = 0;
                while r + BIG_R <= rows {
                    prefetch_group(w, wrb, r + BIG_R, rows);
                    // Row by row: the group's rows are one contiguous run of bytes.
                    for i in 0..BIG_R {
                        for b in 0..nb {
                            let u = K::unpack(w.add((r + i) * wrb + b * K::WB));
                            qs[b * BIG_R + i] = u.q;
                            aux[b * BIG_R + i] = u.aux;
                            dw[b * BIG_R + i] = _mm256_cvtss_f32(u.d);
                        }
                    }
                    let scr = Scratch {
                        q: qs.as_ptr(),
                        aux: aux.as_ptr(),
                        d: dw.as_ptr(),
                        ys: ys.as_ptr(),
                        dx: dx.as_ptr(),
                        dp: dp.as_mut_ptr(),
                    };
                    let o = out.add(r * rs);
                    let mut t = 0;
                    while t + BIG_T <= toks {
                        tile_big::<BIG_T>(&scr, t, nb, o.add(t * ts), rs, ts);
                        t += BIG_T;
                    }
                    match toks - t {
                        2 => tile_big::<2>(&scr, t, nb, o.add(t * ts), rs, ts),
                        1 => tile_big::<1>(&scr, t, nb, o.add(t * ts), rs, ts),
                        _ => {}
                    }
                    r += BIG_R;
                }
                if r < rows {
                    matrix::<K, 4, 4>(w.add(r * wrb), wrb, x, xrb, nb, rows - r, toks, out.add(r * rs), rs, ts);
                }
            }

            /// Asks for the `BIG_R` weight rows from `r` (when they exist) while the current
            /// group is multiplied: the next group's unpacking then finds them in cache
            /// instead of stalling on memory (a few tokens per call leave too little work
            /// per row to hide the latency otherwise).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn prefetch_group(w: *const u8, wrb: usize, r: usize, rows: usize) {
                if r + BIG_R <= rows {
                    let start = w.add(r * wrb);
                    let mut off = 0;
                    while off < BIG_R * wrb {
                        _mm_prefetch::<_MM_HINT_T0>(start.add(off) as *const i8);
                        off += 64;
                    }
                }
            }

            /// `BIG_R` unpacked weight rows (`[nb][BIG_R]` arrays), every token's prepared
            /// activation blocks (`ys`, `dx`: `[toks][nb]`) and room for one tile's scale
            /// products (`dp`: `nb * BIG_T * BIG_R`).
            struct Scratch {
                q: *const __m256i,
                aux: *const __m256i,
                d: *const f32,
                ys: *const __m256i,
                dx: *const f32,
                dp: *mut f32,
            }

            /// `BIG_R` rows × T tokens (from token `t0`) of Q8_0 activations over `nb`
            /// blocks. A first pass forms the `d` products of the 8 rows for every block of
            /// the T tokens (`dp`); the second pass then reads them as broadcast loads folded
            /// into the FMAs, so no shuffle sits in the inner loop.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile_big<const T: usize>(
                w: &Scratch,
                t0: usize,
                nb: usize,
                out: *mut f32,
                rs: usize,
                ts: usize,
            ) {
                // ys: token t's block b at (t0 + t) * nb + b; dp: [nb][T][BIG_R] d products.
                let (ys, dp) = (w.ys.add(t0 * nb), w.dp);
                let dx = w.dx.add(t0 * nb);
                for b in 0..nb {
                    let dwv = _mm256_loadu_ps(w.d.add(b * BIG_R));
                    for t in 0..T {
                        let d = _mm256_broadcast_ss(&*dx.add(t * nb + b));
                        _mm256_storeu_ps(dp.add((b * T + t) * BIG_R), _mm256_mul_ps(dwv, d));
                    }
                }
                let mut acc = [[_mm256_setzero_ps(); T]; BIG_R];
                for b in 0..nb {
                    let mut y = [_mm256_setzero_si256(); T];
                    for (t, y) in y.iter_mut().enumerate() {
                        *y = *ys.add(t * nb + b);
                    }
                    let dpb = dp.add(b * T * BIG_R);
                    for i in 0..BIG_R {
                        let q = *w.q.add(b * BIG_R + i);
                        let a = *w.aux.add(b * BIG_R + i);
                        for t in 0..T {
                            let lanes = if $vnni {
                                _mm256_dpbusd_epi32(a, y[t], q)
                            } else {
                                dot_us(a, _mm256_sign_epi8(y[t], q))
                            };
                            let d = _mm256_broadcast_ss(&*dpb.add(t * BIG_R + i));
                            acc[i][t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes), acc[i][t]);
                        }
                    }
                }
                for (i, acc_i) in acc.iter().enumerate() {
                    for (t, a) in acc_i.iter().enumerate() {
                        *out.add(i * rs + t * ts) = hsum8(*a);
                    }
                }
            }

            /// Unsigned legacy formats with a min (Q4_1, Q5_1) for many tokens, as
            /// [`matrix_signed`]: rows unpacked once into scratch, then 8 × 3 tiles. Per
            /// (row, token, block) the operations are those of `step_unsigned`: `[d, m]·[d_x,
            /// s_x]` as two f32 products, `acc = fma(d_w·d_x, f32(lanes), acc)`, `s += m_w·s_x`,
            /// and at the end `hsum8(acc) + s`; the products and the `s` sums are just formed
            /// for 8 rows at a time, so each output is bit-identical to the single dot.
            #[target_feature(enable = $feat)]
            unsafe fn matrix_unsigned<K: Kern<W = Uw, X = Ux>>(
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
                if !$avx512 || toks < K::BIG_MIN_TOKENS || rows < BIG_R {
                    return matrix::<K, 4, 4>(w, wrb, x, xrb, nb, rows, toks, out, rs, ts);
                }
                let zero = _mm256_setzero_si256();
                let mut qs = vec![zero; nb * BIG_R];
                let mut dw = vec![0.0f32; nb * BIG_R];
                let mut mw = vec![0.0f32; nb * BIG_R];
                let mut dp = vec![0.0f32; nb * BIG_T * BIG_R];
                let mut sp = vec![0.0f32; nb * BIG_T * BIG_R];
                // Every token's blocks, once per call: [toks][nb] quants, `d` and `s`.
                let mut ys = vec![zero; toks * nb];
                let mut dx = vec![0.0f32; toks * nb];
                let mut sx = vec![0.0f32; toks * nb];
                for t in 0..toks {
                    for b in 0..nb {
                        let xp = unsigned_x(x.add(t * xrb + b * 36));
                        ys[t * nb + b] = xp.y;
                        dx[t * nb + b] = _mm_cvtss_f32(xp.ds);
                        sx[t * nb + b] = _mm_cvtss_f32(_mm_movehdup_ps(xp.ds));
                    }
                }
                let mut r = 0;
                while r + BIG_R <= rows {
                    prefetch_group(w, wrb, r + BIG_R, rows);
                    for i in 0..BIG_R {
                        for b in 0..nb {
                            let u = K::unpack(w.add((r + i) * wrb + b * K::WB));
                            qs[b * BIG_R + i] = u.q;
                            dw[b * BIG_R + i] = _mm_cvtss_f32(u.dm);
                            mw[b * BIG_R + i] = _mm_cvtss_f32(_mm_movehdup_ps(u.dm));
                        }
                    }
                    let scr = ScratchU {
                        q: qs.as_ptr(),
                        d: dw.as_ptr(),
                        m: mw.as_ptr(),
                        ys: ys.as_ptr(),
                        dx: dx.as_ptr(),
                        sx: sx.as_ptr(),
                        dp: dp.as_mut_ptr(),
                        sp: sp.as_mut_ptr(),
                    };
                    let o = out.add(r * rs);
                    let mut t = 0;
                    while t + BIG_T <= toks {
                        tile_big_u::<BIG_T>(&scr, t, nb, o.add(t * ts), rs, ts);
                        t += BIG_T;
                    }
                    match toks - t {
                        2 => tile_big_u::<2>(&scr, t, nb, o.add(t * ts), rs, ts),
                        1 => tile_big_u::<1>(&scr, t, nb, o.add(t * ts), rs, ts),
                        _ => {}
                    }
                    r += BIG_R;
                }
                if r < rows {
                    matrix::<K, 4, 4>(w.add(r * wrb), wrb, x, xrb, nb, rows - r, toks, out.add(r * rs), rs, ts);
                }
            }

            /// [`Scratch`] for the unsigned formats: values, `d` and `m` of 8 rows per block;
            /// every token's quants, `d` and `s` (`[toks][nb]`); one tile's `d`/`s` products
            /// (`[nb][T][BIG_R]`).
            struct ScratchU {
                q: *const __m256i,
                d: *const f32,
                m: *const f32,
                ys: *const __m256i,
                dx: *const f32,
                sx: *const f32,
                dp: *mut f32,
                sp: *mut f32,
            }

            /// `BIG_R` rows × T tokens (from token `t0`) of Q8_1 activations over `nb`
            /// blocks (see `tile_big`).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile_big_u<const T: usize>(
                w: &ScratchU,
                t0: usize,
                nb: usize,
                out: *mut f32,
                rs: usize,
                ts: usize,
            ) {
                let (ys, dp, sp) = (w.ys.add(t0 * nb), w.dp, w.sp);
                let (dxs, sxs) = (w.dx.add(t0 * nb), w.sx.add(t0 * nb));
                for b in 0..nb {
                    let dwv = _mm256_loadu_ps(w.d.add(b * BIG_R));
                    let mwv = _mm256_loadu_ps(w.m.add(b * BIG_R));
                    for t in 0..T {
                        let dx = _mm256_broadcast_ss(&*dxs.add(t * nb + b));
                        let sx = _mm256_broadcast_ss(&*sxs.add(t * nb + b));
                        _mm256_storeu_ps(dp.add((b * T + t) * BIG_R), _mm256_mul_ps(dwv, dx));
                        _mm256_storeu_ps(sp.add((b * T + t) * BIG_R), _mm256_mul_ps(mwv, sx));
                    }
                }
                let mut acc = [[_mm256_setzero_ps(); T]; BIG_R];
                // s sums of the 8 rows, one vector per token (lane = row).
                let mut sacc = [_mm256_setzero_ps(); T];
                for b in 0..nb {
                    let mut y = [_mm256_setzero_si256(); T];
                    for (t, y) in y.iter_mut().enumerate() {
                        *y = *ys.add(t * nb + b);
                    }
                    let dpb = dp.add(b * T * BIG_R);
                    for (t, s) in sacc.iter_mut().enumerate() {
                        *s = _mm256_add_ps(*s, _mm256_loadu_ps(sp.add((b * T + t) * BIG_R)));
                    }
                    for i in 0..BIG_R {
                        let q = *w.q.add(b * BIG_R + i);
                        for t in 0..T {
                            let lanes = dot_us(q, y[t]);
                            let d = _mm256_broadcast_ss(&*dpb.add(t * BIG_R + i));
                            acc[i][t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes), acc[i][t]);
                        }
                    }
                }
                for (t, s) in sacc.iter().enumerate() {
                    let mut sv = [0.0f32; BIG_R];
                    _mm256_storeu_ps(sv.as_mut_ptr(), *s);
                    for (i, acc_i) in acc.iter().enumerate() {
                        *out.add(i * rs + t * ts) = hsum8(acc_i[t]) + sv[i];
                    }
                }
            }

            // ------------------------------------------------------------ f32 / f16

            /// ggml's `ggml_vec_dot_f32` on this level: four vector accumulators over steps
            /// of 4 vectors, reduced pairwise, then the tail added in scalar.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dot_f32(w: *const f32, x: *const f32, n: usize) -> f32 {
                if $avx512 {
                    return super::f512::dot_f32(w, x, n);
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

            /// ggml's `ggml_vec_dot_f16`: as `dot_f32` on converted halves, the tail in f64.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dot_f16(w: *const u8, x: *const u8, n: usize) -> f32 {
                if $avx512 {
                    return super::f512::dot_f16(w, x, n);
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
                for r in 0..rows {
                    for t in 0..toks {
                        let v = dot_f32(w.add(r * wrb) as *const f32, x.add(t * xrb) as *const f32, nb);
                        *out.add(r * rs + t * ts) = v;
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
                for r in 0..rows {
                    for t in 0..toks {
                        *out.add(r * rs + t * ts) = dot_f16(w.add(r * wrb), x.add(t * xrb), nb);
                    }
                }
            }

            /// The matrix kernel for weights of type `ty` (against `vec_dot_type(ty)`).
            pub(crate) fn matrix_fn(ty: GgmlType) -> Option<MatrixFn> {
                let f: MatrixFn = match ty {
                    GgmlType::Q4_0 => gemv_signed::<Q4_0>,
                    GgmlType::Q4_1 => matrix_unsigned::<Q4_1>,
                    GgmlType::Q5_0 => gemv_signed::<Q5_0>,
                    GgmlType::Q5_1 => matrix_unsigned::<Q5_1>,
                    GgmlType::Q8_0 => gemv_signed::<Q8_0>,
                    GgmlType::Q4_K => matrix::<Q4K, 2, 4>,
                    GgmlType::Q5_K => matrix::<Q5K, 2, 4>,
                    GgmlType::Q6_K => matrix::<Q6K, 2, 4>,
                    GgmlType::F32 => matrix_f32,
                    GgmlType::F16 => matrix_f16,
                    _ => return None,
                };
                Some(f)
            }

            // ------------------------------------------------------------ quantizers

            /// 8 floats per vector; max |v| of a block of `n8` vectors.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn absmax(v: &[__m256]) -> f32 {
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
            unsafe fn roundf_epi32(v: __m256) -> __m256i {
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
                let a = _mm256_packs_epi32(i[0], i[1]);
                let b = _mm256_packs_epi32(i[2], i[3]);
                let c = _mm256_packs_epi16(a, b);
                let c = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(dst as *mut __m256i, c);
            }

            /// Σ of the 32 i32 lanes of four vectors.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn sum_i32(i: [__m256i; 4]) -> i32 {
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

            #[target_feature(enable = $feat)]
            unsafe fn quant_q8_0(src: &[f32], dst: &mut [u8]) {
                quant_q8(src, dst, false)
            }

            #[target_feature(enable = $feat)]
            unsafe fn quant_q8_1(src: &[f32], dst: &mut [u8]) {
                quant_q8(src, dst, true)
            }

            /// Q8_K: the reference `iscale = -127 / max` (max = the first element of
            /// largest magnitude, with its sign), `min(127, nearest_int(iscale * x))` with
            /// ties to even, `d = 1 / iscale`, `bsums` per 16.
            #[target_feature(enable = $feat)]
            unsafe fn quant_q8_k(src: &[f32], dst: &mut [u8]) {
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
        }
    };
}

x86_level!(avx2, "avx2,fma,f16c", vnni = false, avx512 = false);
x86_level!(avx512, "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl", vnni = false, avx512 = true);
x86_level!(avx512vnni, "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni", vnni = true, avx512 = true);

/// The 512-bit f32/f16 dots of the AVX-512 levels (pointers in, so the 256-bit level never
/// passes a 512-bit vector across a call).
mod f512 {
    use crate::util::f16_bits_to_f32;
    use std::arch::x86_64::*;

    /// `_mm512_reduce_add_ps` as compilers expand it (halves added: 8, 4, 2, 1).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    unsafe fn reduce(v: __m512) -> f32 {
        let h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
        let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_movehdup_ps(q));
        _mm_cvtss_f32(q)
    }

    /// ggml's `ggml_vec_dot_f32` (AVX-512): 4 accumulators of 16 lanes over steps of 64,
    /// `(s0 + s2) + (s1 + s3)`, reduce, then the tail in f32.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    pub(super) unsafe fn dot_f32(w: *const f32, x: *const f32, n: usize) -> f32 {
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

    /// ggml's `ggml_vec_dot_f16` (AVX-512): as `dot_f32` on converted halves, tail in f64.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    pub(super) unsafe fn dot_f16(w: *const u8, x: *const u8, n: usize) -> f32 {
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
