//! Run-time choice of the instruction set the kernels use, made once per process.
//!
//! [`isa`] detects the best [`Isa`] the CPU supports on first use and caches it in a
//! `OnceLock`; every dot product, quantizer and matmul then dispatches on it with one
//! predictable branch. `JIKJI_ISA=scalar|avx2|avx512|avx512vnni|neon` (read once) forces a
//! lower level, for benchmarks and bisecting numerics; a level the CPU lacks is ignored.
//!
//! Levels (x86_64): `Avx2` = AVX2 + FMA + F16C; `Avx512` adds AVX-512 F/BW/DQ/VL (more
//! registers, masked ops; the kernels stay 256 bits wide so their accumulation order is
//! ggml's); `Avx512Vnni` adds VNNI (`vpdpbusd`: four u8×i8 products summed into i32 in one
//! instruction). AMX is never used (listed by cpuid on some machines, but it faults there).
//! aarch64: `Neon` (always present on aarch64 Linux).
//!
//! This is the crate's only CPU-feature detector: the matmul kernels, `lanes`, `peer_order`
//! and `ops` all dispatch on [`isa`] (the last two through [`Isa::has_avx2`] /
//! [`Isa::has_avx512`]), so one `JIKJI_ISA` setting lowers every fast path at once.

use std::sync::OnceLock;

/// An instruction-set level the kernels have code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    Avx512Vnni,
    Avx512,
    Avx2,
    Neon,
    Scalar,
}

impl Isa {
    /// Lower-case name, as accepted by `JIKJI_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Neon => "neon",
            Isa::Scalar => "scalar",
        }
    }

    /// Parses a name as printed by [`Isa::name`].
    pub fn from_name(s: &str) -> Option<Isa> {
        [Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar]
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run code of this level.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Isa::Avx512.is_supported() && is_x86_feature_detected!("avx512vnni"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether code of this level may use AVX2, FMA and F16C (every x86 level does).
    pub fn has_avx2(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::Avx512 | Isa::Avx512Vnni)
    }

    /// Whether code of this level may use AVX-512 F/BW/DQ/VL (on top of AVX2).
    pub fn has_avx512(self) -> bool {
        matches!(self, Isa::Avx512 | Isa::Avx512Vnni)
    }

    /// Every level this CPU supports, best first (always ends with `Scalar`).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar]
            .into_iter()
            .filter(|i| i.is_supported())
            .collect()
    }

    fn detect() -> Isa {
        let best = Isa::available().first().copied().unwrap_or(Isa::Scalar);
        match std::env::var("JIKJI_ISA").ok().as_deref().and_then(Isa::from_name) {
            Some(forced) if forced.is_supported() => forced,
            _ => best,
        }
    }
}

/// The level every kernel dispatches on, detected once.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(Isa::detect)
}
