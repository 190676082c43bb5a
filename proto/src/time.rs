//! The time input of every step, and the one way the machines add to it.
//!
//! The machine never reads a clock: each step is told the monotonic instant (for
//! deadlines) and the wall clock in Unix milliseconds (for the hello's timestamp),
//! because after a laptop sleep the two disagree and the broker judges skew by
//! wall-clock time.

use std::time::{Duration, Instant};

/// The longest duration any configuration, call or peer hint may set (one year).
///
/// A longer timeout or delay is a mistake, not a choice, and bounding every one
/// keeps `now + duration` representable for any instant a host can read; the
/// machines still add with saturation, so even an instant chosen to sit at the
/// very end of time cannot make a step panic.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// The time at which an input happens, as the host read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time; deadlines and durations are measured on it.
    pub instant: Instant,
    /// Wall-clock milliseconds since the Unix epoch; only used to stamp hellos.
    pub unix_ms: u64,
}

impl Now {
    /// Pairs a monotonic instant with the wall clock read at the same moment.
    pub fn new(instant: Instant, unix_ms: u64) -> Self {
        Now { instant, unix_ms }
    }
}

/// `now + after`, saturating at the latest instant the platform can represent.
///
/// `Instant + Duration` panics on overflow and `Instant` has no maximum to clamp
/// to, so the largest representable addition is found by halving: at most 64
/// checked additions, and only on the path that would otherwise have panicked.
/// Every deadline tether's machines (and the reference broker's core) arm goes
/// through it.
pub fn deadline_after(now: Instant, after: Duration) -> Instant {
    if let Some(at) = now.checked_add(after) {
        return at;
    }
    let mut at = now;
    let mut step = after;
    while !step.is_zero() {
        match at.checked_add(step) {
            Some(later) => at = later,
            None => step /= 2,
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_after_saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let end = deadline_after(now, Duration::MAX);
        assert!(end > now + MAX_DURATION);
        // The end of time is a fixed point: nothing can be added to it.
        assert_eq!(deadline_after(end, Duration::MAX), end);
        assert_eq!(end.checked_add(Duration::from_nanos(1)), None);
    }
}
