//! Big tiles for the legacy formats on AVX-512 (32 vector registers), expanded per level
//! by `x86_legacy_big!`: `matrix_signed` (Q4_0, Q5_0, Q8_0) and `matrix_unsigned` (Q4_1,
//! Q5_1). Each group of 8 weight rows is unpacked once per call into scratch and
//! multiplied with every token in 8 × 3 tiles; the `d_w·d_x` products of a block are formed
//! 8 rows per vector in a first pass and read back as broadcasts folded into the FMAs.
//!
//! Separate from `legacy.rs` because the scratch layout and the two-pass tile are their
//! own design; per (row, token, block) the float operations remain exactly those of the
//! 4 × 4 tiles' `step_signed` / `step_unsigned`, so outputs are bit-identical to the single
//! dot. Below `BIG_MIN_TOKENS` (or without AVX-512) they fall back to `matrix::<K, 4, 4>`.

/// Expands to this family's items inside one level module (see `x86_level!` in
/// `mod.rs`): `$feat` is the level's `target_feature` list, `$vnni` / `$avx512` its
/// compile-time switches.
macro_rules! x86_legacy_big {
    ($feat:literal, vnni = $vnni:literal, avx512 = $avx512:literal) => {
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
            // SAFETY: the `MatrixFn` contract (validated by `matmul`): `w` holds `rows` rows of
            // `nb` blocks of `K::WB` bytes, `wrb` apart, `x` `toks` rows of `nb` Q8_0 blocks, `xrb`
            // apart, `out` an element at every `r * rs + t * ts`. Every block read below is one of
            // those (`r + i < rows`, `t < toks`, `b < nb`); the scratch vectors are sized `nb *
            // BIG_R` / `toks * nb` / `nb * BIG_T * BIG_R`, which is what `tile_big` indexes; each
            // group's outputs start at row `r` with `r + BIG_R <= rows`; the rest goes to `matrix`.
            unsafe {
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
        }

        /// Asks for the `BIG_R` weight rows from `r` (when they exist) while the current
        /// group is multiplied: the next group's unpacking then finds them in cache
        /// instead of stalling on memory (a few tokens per call leave too little work
        /// per row to hide the latency otherwise).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn prefetch_group(w: *const u8, wrb: usize, r: usize, rows: usize) {
            // SAFETY: the addresses stay within rows `r..r + BIG_R` of the `rows` rows at `w`
            // (checked just above); a prefetch never faults in any case.
            unsafe {
                if r + BIG_R <= rows {
                    let start = w.add(r * wrb);
                    let mut off = 0;
                    while off < BIG_R * wrb {
                        _mm_prefetch::<_MM_HINT_T0>(start.add(off) as *const i8);
                        off += 64;
                    }
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
            // SAFETY: `w` was filled by `matrix_signed` for `nb` blocks (`q`, `aux`, `d`: `nb *
            // BIG_R` entries; `ys`, `dx`: `toks * nb` with `t0 + T <= toks`; `dp`: `nb * BIG_T *
            // BIG_R`, and `T <= BIG_T`), so every index below is inside its buffer; `out` has the
            // element `i * rs + t * ts` for i < BIG_R, t < T (the caller's group of rows and
            // tokens). The VNNI intrinsic runs only where `$vnni`.
            unsafe {
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
            // SAFETY: as in `matrix_signed`, with Q8_1 activation blocks (36 bytes) and the `d`,
            // `m`, `s` scratch of the same sizes, which `tile_big_u` indexes.
            unsafe {
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
            // SAFETY: as in `tile_big`: `w` was filled by `matrix_unsigned` (`q`, `d`, `m`: `nb *
            // BIG_R`; `ys`, `dx`, `sx`: `toks * nb` with `t0 + T <= toks`; `dp`, `sp`: `nb * BIG_T
            // * BIG_R`), and `out` holds the BIG_R × T outputs at `i * rs + t * ts`.
            unsafe {
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
        }
    };
}
