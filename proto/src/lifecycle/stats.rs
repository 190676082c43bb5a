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
