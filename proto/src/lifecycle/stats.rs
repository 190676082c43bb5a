//! The lifecycle's share of the metrics snapshot (X12).

use std::time::Duration;

use super::{FailureClass, Status};

/// Counters and timings of one lifecycle, read with
/// [`Lifecycle::stats`](crate::lifecycle::Lifecycle::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sockets requested.
    pub attempts: u64,
    /// Hello acks received (connections opened).
    pub connects: u64,
    /// Attempt or connection endings, by class (indexed like [`FailureClass::ALL`]).
    pub failures: [u64; 8],
    /// Time spent in each status (indexed like [`Status::ALL`]).
    pub time_in_status: [Duration; 5],
    /// Socket request → hello ack, of the last open.
    pub last_handshake: Option<Duration>,
    /// Sum of all handshake times, for a mean with `connects`.
    pub total_handshake: Duration,
    /// Ping → pong round trip of the last answered ping.
    pub last_ping_rtt: Option<Duration>,
    /// Largest ping round trip seen.
    pub max_ping_rtt: Option<Duration>,
    /// Text frames received from the current sockets.
    pub frames_in: u64,
    /// Text frames sent (hellos included).
    pub frames_out: u64,
    /// Frames dropped as undecodable or binary (L5).
    pub frames_dropped: u64,
    /// Events about sockets the machine had already given up on, ignored.
    pub stale_socket_events: u64,
    /// Suspends detected (X13).
    pub suspends: u64,
    /// Broker `retryAfterMs` hints longer than `max_retry_after`, cut to it (X10).
    pub retry_after_capped: u64,
}

impl Stats {
    /// Endings of the given class.
    pub fn failures_of(&self, class: FailureClass) -> u64 {
        self.failures[class as usize]
    }

    /// Time spent in the given status.
    pub fn time_in(&self, status: Status) -> Duration {
        self.time_in_status[status as usize]
    }
}

/// What a lifecycle keeps to answer [`Lifecycle::stats`](crate::lifecycle::Lifecycle::stats):
/// the same counters, with each duration held as whole nanoseconds in a `u64`.
/// Half the bytes of a `Duration` (every connection holds one of these for life,
/// 200 bytes instead of 272). A sum past about 584 years, which only instants a
/// host made up can reach, stays there instead of wrapping.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub attempts: u64,
    pub connects: u64,
    pub failures: [u64; 8],
    pub time_in_status: [Nanos; 5],
    pub last_handshake: MaybeNanos,
    pub total_handshake: Nanos,
    pub last_ping_rtt: MaybeNanos,
    pub max_ping_rtt: MaybeNanos,
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub stale_socket_events: u64,
    pub suspends: u64,
    pub retry_after_capped: u64,
}

impl Tally {
    /// The public snapshot.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            attempts: self.attempts,
            connects: self.connects,
            failures: self.failures,
            time_in_status: self.time_in_status.map(Nanos::get),
            last_handshake: self.last_handshake.get(),
            total_handshake: self.total_handshake.get(),
            last_ping_rtt: self.last_ping_rtt.get(),
            max_ping_rtt: self.max_ping_rtt.get(),
            frames_in: self.frames_in,
            frames_out: self.frames_out,
            frames_dropped: self.frames_dropped,
            stale_socket_events: self.stale_socket_events,
            suspends: self.suspends,
            retry_after_capped: self.retry_after_capped,
        }
    }
}

/// The most nanoseconds a [`Nanos`] holds (about 584 years); one below
/// `u64::MAX`, which is [`MaybeNanos`]'s "none".
const MAX_NANOS: u64 = u64::MAX - 1;

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).map_or(MAX_NANOS, |n| n.min(MAX_NANOS))
}

/// A sum of durations, in nanoseconds, saturating at [`MAX_NANOS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Nanos(u64);

impl Nanos {
    pub(crate) fn add(&mut self, d: Duration) {
        self.0 = self.0.saturating_add(nanos_of(d)).min(MAX_NANOS);
    }

    pub(crate) fn get(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

/// An optional duration in nanoseconds (`u64::MAX` is none): eight bytes
/// where an `Option<Duration>` takes sixteen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MaybeNanos(u64);

impl Default for MaybeNanos {
    fn default() -> Self {
        MaybeNanos(u64::MAX)
    }
}

impl MaybeNanos {
    pub(crate) fn set(&mut self, d: Duration) {
        self.0 = nanos_of(d);
    }

    pub(crate) fn get(self) -> Option<Duration> {
        (self.0 != u64::MAX).then(|| Duration::from_nanos(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_instead_of_wrapping_and_none_stays_apart_from_the_largest() {
        let mut sum = Nanos::default();
        sum.add(Duration::MAX);
        sum.add(Duration::MAX);
        assert_eq!(sum.get(), Duration::from_nanos(MAX_NANOS));
        let mut last = MaybeNanos::default();
        assert_eq!(last.get(), None);
        last.set(Duration::MAX);
        assert_eq!(last.get(), Some(Duration::from_nanos(MAX_NANOS)));
        last.set(Duration::from_millis(3));
        assert_eq!(last.get(), Some(Duration::from_millis(3)));
    }
}
