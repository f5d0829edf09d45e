//! The task selection of llama-perplexity, reproduced: `std::mt19937` seeded with 1, and
//! the two ways it draws an index from it.
//!
//! - HellaSwag draws with `std::uniform_int_distribution<size_t>(0, n−1)`; libstdc++ (GCC
//!   11 and later) maps a 32-bit generator onto `[0, n)` with Lemire's multiply-and-reject
//!   ([`Mt19937::uniform_below`]).
//! - Winogrande and multiple-choice draw `int(float(2⁻³²) · float(rng()) · float(n))`
//!   ([`Mt19937::float_pick`]); all of it in `f32`, as written in llama.cpp.

/// The 32-bit Mersenne Twister (MT19937).
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32.wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.index = 0;
    }

    /// The next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `uniform_int_distribution(0, n−1)` as libstdc++ computes it; `n ≥ 1`.
    pub fn uniform_below(&mut self, n: u32) -> u32 {
        let range = u64::from(n.max(1));
        let mut product = u64::from(self.next_u32()) * range;
        let mut low = product as u32;
        if u64::from(low) < range {
            let threshold = (range as u32).wrapping_neg() % (range as u32);
            while low < threshold {
                product = u64::from(self.next_u32()) * range;
                low = product as u32;
            }
        }
        (product >> 32) as u32
    }

    /// llama.cpp's `int(scale · rng() · n)` with `scale = 1/(1 + 2³²−1)` in `f32`, kept
    /// below `n`.
    pub fn float_pick(&mut self, n: usize) -> usize {
        let scale = 1.0f32 / (1.0f32 + u32::MAX as f32);
        let j = (scale * self.next_u32() as f32 * n as f32) as usize;
        j.min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_10000th_output_of_the_default_seed_is_the_standard_s() {
        // C++11 [rand.predef]: mt19937 seeded 5489, the 10000th invocation yields 4123659995.
        let mut r = Mt19937::new(5489);
        for _ in 0..9999 {
            r.next_u32();
        }
        assert_eq!(r.next_u32(), 4_123_659_995);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut r = Mt19937::new(1);
        for n in [1u32, 2, 3, 7, 1000] {
            for _ in 0..100 {
                assert!(r.uniform_below(n) < n);
                assert!(r.float_pick(n as usize) < n as usize);
            }
        }
    }
}
