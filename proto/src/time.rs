//! The time input of every step.
//!
//! The machine never reads a clock: each step is told the monotonic instant (for
//! deadlines) and the wall clock in Unix milliseconds (for the hello's timestamp),
//! because after a laptop sleep the two disagree and the broker judges skew by
//! wall-clock time.

use std::time::Instant;

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
