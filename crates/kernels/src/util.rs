//! Small numeric helpers shared by the block formats: f16 fields, ggml's rounding rules.

/// f16 bits → f32, exact, branch-free and vectorizable (no run-time CPU feature check per
/// call as in `half`). Normals rebias the exponent with an integer add; subnormals are
/// `mantissa * 2^-24` (an exact integer conversion and a multiply by a normal constant, so
/// no denormal operand ever reaches the FPU's slow path); infinities/NaNs keep their bits.
#[inline(always)]
pub(crate) fn f16_bits_to_f32(h: u16) -> f32 {
    let em = (h & 0x7fff) as u32;
    let sign = ((h & 0x8000) as u32) << 16;
    let normal = (em << 13) + (112 << 23);
    let subnormal = (em as f32 * (1.0 / 16_777_216.0)).to_bits();
    let inf_nan = (em << 13) | 0x7f80_0000;
    let mag = if em < 0x0400 {
        subnormal
    } else if em >= 0x7c00 {
        inf_nan
    } else {
        normal
    };
    f32::from_bits(mag | sign)
}

/// Reads the little-endian f16 at `b[at..at + 2]` as f32 (exact).
#[inline(always)]
pub(crate) fn rd_f16(b: &[u8], at: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Reads the little-endian f32 at `b[at..at + 4]`.
#[inline(always)]
pub(crate) fn rd_f32(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// f32 → f16 (round to nearest even, like ggml's `GGML_FP32_TO_FP16`), as LE bytes.
#[inline(always)]
pub(crate) fn f32_to_f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// C `roundf` (half away from zero) then the C cast to `int8_t` that ggml's Q8_0/Q8_1
/// reference quantizers perform. Inputs are within [-127, 127] by construction; anything
/// else saturates instead of being undefined.
#[inline(always)]
pub(crate) fn nearest_i8_roundf(v: f32) -> i8 {
    v.round() as i8
}

/// ggml's `nearest_int`: round to nearest, ties to even, via the 1.5·2^23 trick (exactly
/// what the K-quant quantizers use). Out-of-range inputs (|v| > 4194303, or NaN) fall back
/// to a saturating round instead of producing garbage.
#[inline(always)]
pub(crate) fn nearest_int(v: f32) -> i32 {
    if v.abs() <= 4_194_303.0 {
        let val = v + 12_582_912.0f32;
        (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
    } else {
        v.round() as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_bit_conversion_is_exact_for_all_65536_values() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = f16_bits_to_f32(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn nearest_int_rounds_ties_to_even_like_ggml() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-126.7), -127);
        assert_eq!(nearest_int(3.4999), 3);
    }

    #[test]
    fn roundf_rounds_ties_away_from_zero_like_c() {
        assert_eq!(nearest_i8_roundf(0.5), 1);
        assert_eq!(nearest_i8_roundf(-0.5), -1);
        assert_eq!(nearest_i8_roundf(2.5), 3);
        assert_eq!(nearest_i8_roundf(126.5), 127);
    }
}
