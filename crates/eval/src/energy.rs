//! Price and energy per million tokens.
//!
//! Energy comes from `--watts` (a power the user measured or the hardware's rating) or,
//! where Linux exposes it readably, from RAPL's package counters
//! (`/sys/class/powercap/intel-rapl:N/energy_uj`, microjoules, wrapping at
//! `max_energy_range_uj`), read before and after the work. Price comes from
//! `--price-per-hour` (what the machine costs per hour, owned or rented):
//! `price / 3600 · seconds / tokens · 10⁶`.

use std::path::Path;

/// Sum of the RAPL package counters now, in microjoules, with their wrap ranges; `None`
/// when none is readable (no RAPL, or no permission).
pub fn rapl_read() -> Option<Vec<(u64, u64)>> {
    rapl_read_in(Path::new("/sys/class/powercap"))
}

fn rapl_read_in(root: &Path) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // Packages only (intel-rapl:0), not their sub-zones (intel-rapl:0:0).
        if !name.starts_with("intel-rapl:") || name.matches(':').count() != 1 {
            continue;
        }
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok()?.trim().parse::<u64>().ok();
        if let (Some(uj), Some(range)) = (read("energy_uj"), read("max_energy_range_uj")) {
            out.push((uj, range));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Joules between two RAPL readings, counting one wrap per counter.
pub fn rapl_joules(before: &[(u64, u64)], after: &[(u64, u64)]) -> Option<f64> {
    if before.len() != after.len() {
        return None;
    }
    let uj: u64 = before.iter().zip(after).map(|(&(b, range), &(a, _))| if a >= b { a - b } else { a + range - b }).sum();
    Some(uj as f64 / 1e6)
}

/// What one run cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Currency units per 1M tokens (`None` without a price).
    pub price_per_m: Option<f64>,
    /// Kilowatt-hours per 1M tokens (`None` without watts or RAPL).
    pub kwh_per_m: Option<f64>,
    /// Joules measured or estimated for the run.
    pub joules: Option<f64>,
}

/// The cost of `tokens` tokens processed in `seconds`, from a price per hour, a power in
/// watts, or joules measured (RAPL) — measured joules win over watts.
pub fn cost_per_million(tokens: usize, seconds: f64, price_per_hour: Option<f64>, watts: Option<f64>, measured_joules: Option<f64>) -> Cost {
    if tokens == 0 || seconds.is_nan() || seconds <= 0.0 {
        return Cost::default();
    }
    let per_m = 1e6 / tokens as f64;
    let joules = measured_joules.or(watts.map(|w| w * seconds));
    Cost {
        price_per_m: price_per_hour.map(|p| p / 3600.0 * seconds * per_m),
        kwh_per_m: joules.map(|j| j / 3.6e6 * per_m),
        joules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_and_energy_scale_to_a_million_tokens() {
        // 1000 tokens in 10 s at 3.6 per hour: 0.01 per 1000 tokens → 10 per 1M.
        let c = cost_per_million(1000, 10.0, Some(3.6), Some(100.0), None);
        assert!((c.price_per_m.unwrap() - 10.0).abs() < 1e-9);
        // 100 W × 10 s = 1000 J per 1000 tokens → 1e6 J = 0.2778 kWh per 1M.
        assert!((c.kwh_per_m.unwrap() - 1e6 / 3.6e6).abs() < 1e-9);
        let m = cost_per_million(1000, 10.0, None, Some(100.0), Some(500.0));
        assert_eq!(m.joules, Some(500.0));
        assert_eq!(cost_per_million(0, 1.0, Some(1.0), None, None), Cost::default());
    }

    #[test]
    fn rapl_counters_wrap_once_and_packages_are_read_from_sysfs() {
        assert_eq!(rapl_joules(&[(900, 1000)], &[(100, 1000)]), Some(200e-6));
        let dir = std::env::temp_dir().join(format!("jikji-rapl-{}", std::process::id()));
        let pkg = dir.join("intel-rapl:0");
        std::fs::create_dir_all(pkg.join("intel-rapl:0:0")).unwrap();
        std::fs::write(pkg.join("energy_uj"), "12345\n").unwrap();
        std::fs::write(pkg.join("max_energy_range_uj"), "99999\n").unwrap();
        assert_eq!(rapl_read_in(&dir), Some(vec![(12345, 99999)]));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rapl_read_in(Path::new("/nonexistent")), None);
    }
}
