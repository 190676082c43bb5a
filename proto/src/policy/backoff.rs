//! Reconnect delays: the seeds' schedule plus seeded jitter.
//!
//! The seeds wait exactly 1, 2, 4, 8, 16, 30 s, so every client of a restarted
//! broker comes back in the same instant (D5). Every delay here is spread by a
//! seeded jitter instead; a jitter of zero reproduces the seeds exactly.

use std::borrow::Cow;
use std::time::Duration;

use crate::rng::Rng;

/// The seeds' reconnect schedule (`DEFAULT_BACKOFF_CAPS_MS` in ws-lifecycle.ts);
/// the last entry repeats.
pub const DEFAULT_BACKOFF_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(30),
];

/// Default jitter: every delay is drawn uniformly from ±20 % of its nominal value.
pub const DEFAULT_JITTER: Jitter = Jitter::from_permille_saturating(200);

/// A symmetric relative jitter, in thousandths (200 = ±20 %), at most 1000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jitter(u16);

impl Jitter {
    /// No jitter: the seeds' exact delays.
    pub const NONE: Jitter = Jitter(0);

    /// A jitter of `permille` thousandths, clamped to 1000 (±100 %).
    pub const fn from_permille_saturating(permille: u16) -> Self {
        Jitter(if permille > 1000 { 1000 } else { permille })
    }

    /// The jitter in thousandths.
    pub const fn permille(self) -> u16 {
        self.0
    }

    /// Draws a delay uniformly from `[nominal × (1 − j), nominal × (1 + j)]`.
    ///
    /// Integer arithmetic on milliseconds keeps the result identical on every
    /// platform for the same seed.
    pub fn apply(self, nominal: Duration, rng: &mut Rng) -> Duration {
        let j = u128::from(self.0);
        if j == 0 {
            return nominal;
        }
        let ms = nominal.as_millis();
        let lo = ms * (1000 - j) / 1000;
        let hi = ms * (1000 + j) / 1000;
        let span = (hi - lo).min(u128::from(u64::MAX - 1)) as u64;
        let ms = lo + u128::from(rng.below_inclusive(span));
        Duration::from_millis(ms.min(u128::from(u64::MAX)) as u64)
    }

    /// Draws a delay uniformly from `[floor, floor × (1 + j)]`: a broker's
    /// retry-after is a minimum, so it is only ever spread upwards.
    pub fn apply_above(self, floor: Duration, rng: &mut Rng) -> Duration {
        let (_, hi) = self.bounds(floor);
        let span = hi.saturating_sub(floor).as_millis().min(u128::from(u64::MAX - 1)) as u64;
        if span == 0 {
            return floor;
        }
        floor.saturating_add(Duration::from_millis(rng.below_inclusive(span)))
    }

    /// The bounds `apply` draws from, for checks and tests.
    pub fn bounds(self, nominal: Duration) -> (Duration, Duration) {
        let j = u128::from(self.0);
        let ms = nominal.as_millis();
        let lo = (ms * (1000 - j) / 1000).min(u128::from(u64::MAX)) as u64;
        let hi = (ms * (1000 + j) / 1000).min(u128::from(u64::MAX)) as u64;
        (Duration::from_millis(lo), Duration::from_millis(hi))
    }
}

impl Default for Jitter {
    fn default() -> Self {
        DEFAULT_JITTER
    }
}

/// An exponential-looking schedule of nominal delays; the last one repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The default schedule is borrowed, not copied into every connection's
    /// configuration (memory per idle connection counts).
    schedule: Cow<'static, [Duration]>,
}

impl Backoff {
    /// A schedule from explicit steps; `None` when it is empty.
    pub fn new(schedule: Vec<Duration>) -> Option<Self> {
        if schedule.is_empty() {
            None
        } else {
            Some(Backoff {
                schedule: Cow::Owned(schedule),
            })
        }
    }

    /// The nominal delay before reconnect number `step` (0-based).
    pub fn nominal(&self, step: u32) -> Duration {
        let last = self.schedule.len() - 1;
        self.schedule[(step as usize).min(last)]
    }

    /// The largest nominal delay of the schedule.
    pub fn max(&self) -> Duration {
        self.schedule.iter().copied().max().unwrap_or_default()
    }

    /// The steps of the schedule.
    pub fn steps(&self) -> &[Duration] {
        &self.schedule
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            schedule: Cow::Borrowed(&DEFAULT_BACKOFF_SCHEDULE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_repeats_its_last_step() {
        // proves L7
        let b = Backoff::default();
        let got: Vec<u64> = (0..8).map(|i| b.nominal(i).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn zero_jitter_is_the_seeds_exact_delay() {
        let mut rng = Rng::new(3);
        assert_eq!(
            Jitter::NONE.apply(Duration::from_secs(4), &mut rng),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_spreads() {
        // proves D5
        let mut rng = Rng::new(9);
        let nominal = Duration::from_secs(1);
        let (lo, hi) = DEFAULT_JITTER.bounds(nominal);
        assert_eq!(
            (lo, hi),
            (Duration::from_millis(800), Duration::from_millis(1200))
        );
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let d = DEFAULT_JITTER.apply(nominal, &mut rng);
            assert!(d >= lo && d <= hi, "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 200, "jitter barely spreads: {}", seen.len());
    }
}
