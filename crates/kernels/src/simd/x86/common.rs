//! What every x86 kernel family shares, expanded once per level by `x86_common!`: the
//! byte readers (`rd16` through F16C, `rd32`, `load`), ggml's `hsum_float_8`, the two
//! integer-lane primitives whose instruction depends on VNNI (`dot_us`, `madd_acc`; the
//! lane sums are exact either way, so every level gives the same bits), the nibble/bit
//! unpackers the legacy formats use, and the tiling machinery: the `Kern` split of a
//! format into `unpack` / `prep` / `step` / `finish`, and `tile` / `matrix`, which run
//! R rows × T tokens so each weight block is unpacked once per T tokens while every output
//! still sees exactly the single dot's sequence of operations.
//!
//! Kept generic over `Kern` (rather than one tile loop per format) so the tiling order is
//! written once and the formats cannot drift apart in how they accumulate.

/// Expands to this family's items inside one level module (see `x86_level!` in
/// `mod.rs`): `$feat` is the level's `target_feature` list, `$vnni` / `$avx512` its
/// compile-time switches.
macro_rules! x86_common {
    ($feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
        /// f16 at `p` (little endian) as f32, with F16C's `vcvtph2ps` (exact, branch-free).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn rd16(p: *const u8) -> f32 {
            // SAFETY: the caller passes a pointer to the 2 bytes of an f16 inside a block it has
            // validated (every caller's `p` is a block start or a scale offset within the block).
            unsafe {
                let bits = u16::from_le_bytes([*p, *p.add(1)]);
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
            }
        }

        #[inline(always)]
        unsafe fn rd32(p: *const u8) -> f32 {
            // SAFETY: the caller passes a pointer to 4 readable bytes (a Q8_K block's f32 scale).
            unsafe {
                f32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)])
            }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn load(p: *const u8) -> __m256i {
            // SAFETY: the caller passes a pointer with 32 readable bytes (the quants of one block);
            // `loadu` has no alignment requirement.
            unsafe {
                _mm256_loadu_si256(p as *const __m256i)
            }
        }

        /// ggml's `hsum_float_8`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn hsum8(x: __m256) -> f32 {
            let mut r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
            r = _mm_add_ps(r, _mm_movehl_ps(r, r));
            r = _mm_add_ss(r, _mm_movehdup_ps(r));
            _mm_cvtss_f32(r)
        }

        /// `vpdpbusd`: `acc` plus, per i32 lane, the four products of unsigned bytes of
        /// `a` with signed bytes of `b`.
        ///
        /// # Safety
        /// Only the VNNI level may call it (under `if $vnni`): the other levels compile a
        /// copy too, which would execute an instruction their CPUs may lack.
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(unused_unsafe)] // the intrinsic is a safe call in the VNNI level itself
        unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: the caller runs this only where `$vnni` holds, i.e. in the level compiled
            // with `avx512vnni` and dispatched only when the CPU has it.
            unsafe { _mm256_dpbusd_epi32(acc, a, b) }
        }

        /// `vpdpwssd`: `acc` plus, per i32 lane, the two products of i16 pairs.
        ///
        /// # Safety
        /// As [`dpbusd`]: only under `if $vnni`.
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(unused_unsafe)] // the intrinsic is a safe call in the VNNI level itself
        unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: as in `dpbusd`: reached only in the VNNI level.
            unsafe { _mm256_dpwssd_epi32(acc, a, b) }
        }

        /// Eight i32 lanes, lane i = sum of a[4i..4i+4] * b[4i..4i+4] (a unsigned, b signed).
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_us(a: __m256i, b: __m256i) -> __m256i {
            if $vnni {
                // SAFETY: `$vnni`: this is the VNNI level.
                unsafe { dpbusd(_mm256_setzero_si256(), a, b) }
            } else {
                // |a| ≤ 31 here (or 127 with the sign trick), so pairs never saturate i16.
                _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
            }
        }

        /// `acc + madd(scales, p16)` (i16 pairs times i16 scales, summed into i32 lanes).
        #[inline]
        #[target_feature(enable = $feat)]
        fn madd_acc(acc: __m256i, scales: __m256i, p16: __m256i) -> __m256i {
            if $vnni {
                // SAFETY: `$vnni`: this is the VNNI level.
                unsafe { dpwssd(acc, scales, p16) }
            } else {
                _mm256_add_epi32(acc, _mm256_madd_epi16(scales, p16))
            }
        }

        /// 16 packed bytes → 32 nibbles: low nibbles first, then high nibbles.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn nibbles32(p: *const u8) -> __m256i {
            // SAFETY: the caller passes a pointer to a block's 16 packed nibble bytes; `loadu` needs
            // no alignment.
            unsafe {
                let t = _mm_loadu_si128(p as *const __m128i);
                let b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
                _mm256_and_si256(b, _mm256_set1_epi8(0x0F))
            }
        }

        /// 32 bits at `p` → 32 bytes, 0xFF where the bit is set.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn bits32(p: *const u8) -> __m256i {
            // SAFETY: the caller passes a pointer to a block's 4 high-bit bytes.
            unsafe {
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
            // SAFETY: the `MatrixFn` contract (validated by `matmul`): `w` holds R rows of `nb`
            // blocks of `K::WB` bytes, `wrb` apart, `x` T rows of `nb` blocks of `K::XB` bytes, `xrb`
            // apart, and `out` an element at every `r * rs + t * ts` (r < R, t < T). So every block
            // pointer handed to `prep` / `unpack` / `step` has its whole block readable and every output
            // write is in bounds; the prefetch address is formed with `wrapping_add` and a prefetch
            // never faults. An all-zero `K::X` is valid (plain vectors and floats, or unit).
            unsafe {
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
            // SAFETY: the `MatrixFn` contract for `rows` × `toks`: each sub-tile passed to `tile`
            // starts at a row r < rows and token t < toks and spans rows r..r+R ≤ rows and tokens
            // t..t+T ≤ toks, so it meets `tile`'s contract with the same strides.
            unsafe {
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
        }
    };
}
