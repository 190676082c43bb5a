//! Lifecycle configuration, with the seeds' numbers as defaults.

use std::time::Duration;

use crate::policy::{Backoff, Budget, ClosePolicy, Jitter, LimitDelay, Verdict};
use crate::time::MAX_DURATION;

/// How long the hello ack may take (`DEFAULT_HELLO_ACK_TIMEOUT_MS`, ws-lifecycle.ts).
pub const DEFAULT_HELLO_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Watchdog period after the ack (`PING_INTERVAL_MS`, ws-lifecycle.ts).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Silence after which the socket is terminated (`STALE_THRESHOLD_MS`, ws-lifecycle.ts).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(75);
/// Delay of a forced reconnect (`reconnect()`'s 500 ms, sessions-websocket.ts).
pub const DEFAULT_FORCE_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// How long a connection must stay open before the backoff restarts (X7).
pub const DEFAULT_STABILITY_WINDOW: Duration = Duration::from_secs(10);
/// How long the socket may take to open. The seeds have none and wait on the OS
/// (minutes, against a black-holed address); tether bounds it.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How late a watchdog tick must be to count as a suspend (X13).
pub const DEFAULT_SUSPEND_GAP: Duration = Duration::from_secs(10);
/// How long the probe ping after a suspend may go unanswered (X13).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest delay a broker may ask for with `retryAfterMs` (X10).
///
/// A hint is a peer's wish, and a peer can be wrong or hostile: without a cap a
/// `retryAfterMs` of `u64::MAX` parks the client for 584 million years without a
/// word. Five minutes is longer than any broker restart or capacity squeeze the
/// hint is meant for; a longer hint is cut to it and counted in
/// [`Stats::retry_after_capped`](crate::lifecycle::Stats::retry_after_capped).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// What a failed first attempt does (L8, D1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FirstConnect {
    /// Stop: the caller waiting on `connect` gets the failure and nothing keeps
    /// running (the seeds left a reconnect timer nobody could cancel, D1).
    #[default]
    FailFast,
    /// Keep trying with backoff, as later reconnects do.
    Retry,
}

/// Everything that shapes a lifecycle; `Config::new(url)` gives the seeds' defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The WebSocket URL.
    pub url: String,
    /// Hello ack deadline (L2, L4).
    pub hello_ack_timeout: Duration,
    /// Socket open deadline; `None` waits on the host's own timeouts.
    pub open_timeout: Option<Duration>,
    /// Nominal reconnect delays (L7).
    pub backoff: Backoff,
    /// Jitter on every reconnect delay (D5).
    pub jitter: Jitter,
    /// Watchdog period (L9).
    pub ping_interval: Duration,
    /// Silence that makes a connection stale (L9).
    pub stale_after: Duration,
    /// Open time after which the backoff restarts (X7; zero is the seeds' reset on ack).
    pub stability_window: Duration,
    /// Delay before the attempt of a forced reconnect (S5).
    pub force_reconnect_delay: Duration,
    /// What each close or rejection means (S2, S3, D3, D4).
    pub policy: ClosePolicy,
    /// Attempt and time budgets (S4, X11).
    pub budget: Budget,
    /// What a failed first attempt does (L8).
    pub first_connect: FirstConnect,
    /// Watchdog lateness that counts as a suspend (X13).
    pub suspend_gap: Duration,
    /// Deadline of the post-suspend probe (X13).
    pub probe_timeout: Duration,
    /// Longest delay a broker's `retryAfterMs` may impose (X10); longer hints are cut.
    pub max_retry_after: Duration,
}

impl Config {
    /// The seeds' defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            hello_ack_timeout: DEFAULT_HELLO_ACK_TIMEOUT,
            open_timeout: Some(DEFAULT_OPEN_TIMEOUT),
            backoff: Backoff::default(),
            jitter: Jitter::default(),
            ping_interval: DEFAULT_PING_INTERVAL,
            stale_after: DEFAULT_STALE_AFTER,
            stability_window: DEFAULT_STABILITY_WINDOW,
            force_reconnect_delay: DEFAULT_FORCE_RECONNECT_DELAY,
            policy: ClosePolicy::default(),
            budget: Budget::default(),
            first_connect: FirstConnect::default(),
            suspend_gap: DEFAULT_SUSPEND_GAP,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// Rejects settings that would make the machine spin, never decide, or set a
    /// deadline it could not represent: every period is positive where zero would
    /// spin, and every duration is at most [`MAX_DURATION`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.url.is_empty() {
            return Err(ConfigError::EmptyUrl);
        }
        let positive = [
            ("hello_ack_timeout", self.hello_ack_timeout),
            ("ping_interval", self.ping_interval),
            ("stale_after", self.stale_after),
            ("probe_timeout", self.probe_timeout),
            ("suspend_gap", self.suspend_gap),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.open_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Zero("open_timeout"));
        }
        let bounded = positive.into_iter().chain([
            ("open_timeout", self.open_timeout.unwrap_or_default()),
            ("stability_window", self.stability_window),
            ("force_reconnect_delay", self.force_reconnect_delay),
            ("max_retry_after", self.max_retry_after),
            ("budget.max_elapsed", self.budget.max_elapsed.unwrap_or_default()),
        ]);
        for (name, value) in bounded {
            check_bound(name, value)?;
        }
        for &step in self.backoff.steps() {
            check_bound("backoff", step)?;
        }
        for rule in self.policy.rules() {
            if let Verdict::Limited(limit) = rule.verdict {
                if let LimitDelay::Linear(step) = limit.delay {
                    check_bound("policy linear step", step)?;
                }
            }
        }
        Ok(())
    }
}

/// Refuses a duration over [`MAX_DURATION`], naming the setting.
pub(crate) fn check_bound(name: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::TooLong {
            name,
            max: MAX_DURATION,
        });
    }
    Ok(())
}

/// A configuration the machine refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A period or deadline of zero would make the machine spin.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A duration longer than any deadline the machine will arm.
    #[error("{name} must be at most {} s", max.as_secs())]
    TooLong {
        /// The setting.
        name: &'static str,
        /// The bound ([`MAX_DURATION`]).
        max: Duration,
    },
    /// There is nowhere to connect.
    #[error("the URL is empty")]
    EmptyUrl,
}
