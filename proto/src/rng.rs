//! A small seeded PRNG (SplitMix64) for jitter and ids.
//!
//! The machine must be reproducible from its seed, so it carries its own generator
//! instead of reaching for a global one; SplitMix64 is tiny, fast and passes
//! BigCrush, which is plenty for spreading reconnects.

/// Seeded SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..=max` (Lemire's multiply-shift; the bias is
    /// below 2^-32 for the small ranges used here).
    pub fn below_inclusive(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        ((u128::from(self.next_u64()) * u128::from(max + 1)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn below_inclusive_stays_in_range_and_reaches_both_ends() {
        let mut r = Rng::new(1);
        let (mut lo, mut hi) = (false, false);
        for _ in 0..10_000 {
            let v = r.below_inclusive(4);
            assert!(v <= 4);
            lo |= v == 0;
            hi |= v == 4;
        }
        assert!(lo && hi);
    }
}
