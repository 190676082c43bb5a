//! Policy as data: reconnect delays, jitter, the close/rejection table and budgets.
//!
//! Nothing here holds state of a connection; the lifecycle asks these pieces what
//! to do and keeps the counters itself.

mod backoff;
mod close;
mod errors;

use std::time::Duration;

pub use errors::{split_ack_error, ErrorPolicy, ErrorRule, PERMANENT_ERROR_CODES};

pub use backoff::{Backoff, Jitter, DEFAULT_BACKOFF_SCHEDULE, DEFAULT_JITTER};
pub use close::{
    is_sendable_close_code, parse_reason, Classification, ClosePolicy, Limit, LimitDelay, Match, Rule,
    Verdict, ATTESTATION_RETRIES, SESSION_NOT_FOUND_RETRIES, SESSION_NOT_FOUND_STEP, TIMESTAMP_SKEW_RETRIES,
};

/// Limits on how long the machine keeps trying without an open connection
/// (S4, X11). Counters restart whenever a connection opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Most reconnects in a row without an open connection; `None` is unlimited.
    pub max_attempts: Option<u32>,
    /// Longest time without an open connection; `None` is unlimited.
    pub max_elapsed: Option<Duration>,
    /// Reconnect only after a connection that had been open (the hosted-session
    /// socket's rule, S4); an attempt that fails before its ack then stops.
    pub only_after_open: bool,
}
