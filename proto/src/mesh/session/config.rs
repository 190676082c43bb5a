//! Session configuration, with the seeds' numbers as defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle::{Config, ConfigError};

/// Ack deadline of a send (`setTimeout(…, 10_000)` in broker-ws-client.ts).
pub const DEFAULT_SEND_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The daemon client's longer ack deadline (`SEND_ACK_TIMEOUT_MS`, daemon-broker-client.ts).
pub const DAEMON_SEND_ACK_TIMEOUT: Duration = Duration::from_secs(15);
/// Reply deadline of a request (`timeoutMs = 5_000`, daemon-broker-client.ts).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Outbound queue capacity (`MAX_QUEUED`, broker-ws-client.ts).
pub const DEFAULT_OUTBOUND_QUEUE: usize = 100;
/// Push history capacity (the 500 cap of broker-ws-client.ts).
pub const DEFAULT_PUSH_HISTORY: usize = 500;
/// Sends awaiting their ack at once; more wait in the queue (the seeds have no
/// bound, which is how a stalled broker turns into unbounded memory).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// Requests awaiting their reply at once.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 256;
/// Recent push ids remembered to drop re-pushed duplicates.
pub const DEFAULT_DEDUPE_WINDOW: usize = 1024;
/// Largest encoded `send` accepted from the application: the real broker's
/// default `MAX_MESSAGE_BYTES`. Its WebSocket server (`maxPayload`) closes the
/// connection with 1009 on any larger frame before its own size check can
/// answer with an error ack, and a client that resent such a send after the
/// reconnect would lose its connection again; refused here, the caller gets a
/// typed `TooLarge` at once. Raise it for a broker configured with more.
pub const DEFAULT_MAX_SEND_LEN: usize = 65_536;
/// How long a send may wait in the outbound queue for a connection, unless the
/// send names its own deadline (see the session's "While away" rules).
///
/// 60 s: long enough that a broker restart or a short outage loses no message
/// (the seeds' first five reconnect delays add up to 31 s, 37 s at +20 %
/// jitter, and the attempt that succeeds needs at most the 10 s open and 5 s
/// hello-ack deadlines on top), short enough that a caller awaiting a send
/// learns within a minute, not never, that the broker is away. The seeds queue
/// without any deadline, so a send made during a long outage waited for ever.
pub const DEFAULT_QUEUE_DEADLINE: Duration = Duration::from_secs(60);

/// What a full outbound queue does with one more send (X9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the new send at once (the seeds' `outbound queue full`).
    #[default]
    RefuseNew,
    /// Fail the oldest queued send as never sent and queue the new one.
    DropOldest,
}

/// Everything that shapes a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The lifecycle underneath.
    pub lifecycle: Config,
    /// Ack deadline of each send (B2).
    pub send_ack_timeout: Duration,
    /// Reply deadline of each request (B8).
    pub request_timeout: Duration,
    /// Outbound queue capacity (B3).
    pub outbound_queue: usize,
    /// How long a queued send waits for a connection when it names no deadline
    /// of its own; `None` waits until the session closes (the seeds' way).
    pub queue_deadline: Option<Duration>,
    /// What a full queue does (X9).
    pub overflow: Overflow,
    /// Sends awaiting acks at once (X4).
    pub max_in_flight: usize,
    /// Requests awaiting replies at once (X4).
    pub max_pending_requests: usize,
    /// Push history capacity (B7).
    pub push_history: usize,
    /// Push ids remembered for de-duplication (X4).
    pub dedupe_window: usize,
    /// Largest encoded send (X4).
    pub max_send_len: usize,
    /// Confirm every push with `client_ack`, so the broker stops re-pushing it.
    pub client_ack: bool,
    /// Which broker error codes make a failed send or request permanent (B5, B16).
    pub errors: crate::policy::ErrorPolicy,
}

impl SessionConfig {
    /// The seeds' defaults around a lifecycle configuration.
    pub fn new(lifecycle: Config) -> Self {
        SessionConfig {
            lifecycle,
            send_ack_timeout: DEFAULT_SEND_ACK_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            queue_deadline: Some(DEFAULT_QUEUE_DEADLINE),
            overflow: Overflow::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            push_history: DEFAULT_PUSH_HISTORY,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            max_send_len: DEFAULT_MAX_SEND_LEN,
            client_ack: true,
            errors: crate::policy::ErrorPolicy::default(),
        }
    }

    /// Rejects what [`Config::validate`] rejects, plus a zero or over-long ack,
    /// reply or queue deadline (zero would fail every op at once; longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION) is a deadline the session would not arm).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.lifecycle.validate()?;
        for (name, value) in [
            ("send_ack_timeout", self.send_ack_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
            crate::lifecycle::check_bound(name, value)?;
        }
        if let Some(deadline) = self.queue_deadline {
            if deadline.is_zero() {
                return Err(ConfigError::Zero("queue_deadline"));
            }
            crate::lifecycle::check_bound("queue_deadline", deadline)?;
        }
        Ok(())
    }
}

/// A [`SessionConfig`] checked once and frozen, for any number of sessions
/// to share ([`Session::with_shared`](super::Session::with_shared)); cloning
/// it clones two pointers.
///
/// A connection's settings never change while it lives, so there is no need
/// for each to carry its own copy: quinn's connections share an
/// `Arc<TransportConfig>` the same way. What is genuinely per connection
/// (identity, presence, seed) is not in here.
#[derive(Clone, Debug)]
pub struct SharedSessionConfig {
    pub(super) lifecycle: Arc<Config>,
    pub(super) limits: Arc<super::Limits>,
}

impl SharedSessionConfig {
    /// Checks `config` ([`SessionConfig::validate`]) and freezes it.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let limits = Arc::new(super::Limits::from(&config));
        Ok(SharedSessionConfig {
            lifecycle: Arc::new(config.lifecycle),
            limits,
        })
    }

    /// The lifecycle settings in force.
    pub fn lifecycle(&self) -> &Config {
        &self.lifecycle
    }
}

/// Counters of one session (X4, X12); the lifecycle's own are in `lifecycle`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// The lifecycle's counters and timings.
    pub lifecycle: crate::lifecycle::Stats,
    /// Sends waiting in the outbound queue now.
    pub queue_depth: usize,
    /// Sends awaiting their ack now.
    pub in_flight: usize,
    /// Requests awaiting their reply now.
    pub pending_requests: usize,
    /// Pushes in the history buffer now.
    pub history_len: usize,
    /// Sends refused because the queue was full.
    pub queue_refused: u64,
    /// Queued sends dropped to make room (overflow `DropOldest`).
    pub queue_dropped: u64,
    /// Queued sends whose offline deadline passed.
    pub queue_expired: u64,
    /// Sends acknowledged by the broker.
    pub sends_acked: u64,
    /// Sends that failed, any way.
    pub sends_failed: u64,
    /// In-flight sends put back in the queue after a disconnect.
    pub resends: u64,
    /// Requests answered.
    pub replies: u64,
    /// Requests that failed, any way.
    pub requests_failed: u64,
    /// Pushes received (duplicates included).
    pub pushes: u64,
    /// Pushes dropped from the full history buffer (oldest first).
    pub history_dropped: u64,
    /// Re-pushed duplicates not delivered again.
    pub push_duplicates: u64,
    /// Pushes whose body opened with none of our keys or was not text (B14).
    pub pushes_undecryptable: u64,
    /// Acks and replies that matched nothing pending.
    pub unmatched: u64,
}
