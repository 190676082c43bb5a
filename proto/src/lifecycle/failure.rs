//! Why an attempt or a connection ended, and why the machine stopped for good.

use std::fmt;
use std::time::Duration;

/// Why the host could not open a socket, as a kind a policy can decide on.
///
/// The host classifies its transport's error (tether-host has the one function
/// both hosts use); the close policy gives every kind a verdict. By default
/// [`Configuration`](Self::Configuration) and [`TlsCertificate`](Self::TlsCertificate)
/// stop, and so does a proxy's 407: a malformed URL, proxy credentials it
/// refuses, or a certificate that does not verify will be the same
/// on the next attempt, so retrying only hides the mistake (and a certificate
/// that "fixes itself" is exactly what verification is there to notice). Every
/// other kind is a network condition that can pass, and reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectFailureKind {
    /// The URL, a header or the TLS set-up is unusable: nothing was sent.
    Configuration,
    /// The host name did not resolve.
    Dns,
    /// The peer refused the TCP connection (nothing listens there).
    Refused,
    /// The server's certificate did not verify (unknown issuer, wrong name, expired).
    TlsCertificate,
    /// Any other TLS failure (handshake, protocol, alert).
    Tls,
    /// The upgrade was answered with an HTTP status other than 101.
    HttpStatus(u16),
    /// The HTTP proxy refused the CONNECT tunnel with this status (407: its
    /// credentials are missing or wrong, which stops by default; 502/503: it
    /// could not reach the target, which reconnects).
    Proxy(u16),
    /// The WebSocket upgrade itself failed (bad accept key, not a WebSocket server).
    Upgrade,
    /// The transport timed out while connecting.
    Timeout,
    /// Any other network error (reset, unreachable, …).
    Network,
}

impl ConnectFailureKind {
    /// A stable lower-case name for logs, metrics and exit hints.
    pub fn name(self) -> &'static str {
        match self {
            ConnectFailureKind::Configuration => "configuration",
            ConnectFailureKind::Dns => "dns",
            ConnectFailureKind::Refused => "refused",
            ConnectFailureKind::TlsCertificate => "tls_certificate",
            ConnectFailureKind::Tls => "tls",
            ConnectFailureKind::HttpStatus(_) => "http_status",
            ConnectFailureKind::Proxy(_) => "proxy",
            ConnectFailureKind::Upgrade => "upgrade",
            ConnectFailureKind::Timeout => "timeout",
            ConnectFailureKind::Network => "network",
        }
    }
}

/// What the broker said when it refused a hello: the `error` frame it sent first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The broker's error code (`unauthorized`, `capacity`, …).
    pub code: String,
    /// The broker's human-readable message.
    pub message: String,
    /// The least delay the broker asked for before the next attempt (X10).
    pub retry_after: Option<Duration>,
}

/// A close frame (or the lack of one) reported by the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerClose {
    /// The close code; 1005 when the frame had none, 1006 when there was no frame.
    pub code: u16,
    /// The close reason text, possibly empty.
    pub reason: String,
}

/// Why one connection attempt (or an open connection) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The host could not open the socket (DNS, TCP, TLS, HTTP upgrade).
    ConnectFailed {
        /// What kind of failure, for the policy.
        kind: ConnectFailureKind,
        /// The host's description of the error.
        reason: String,
    },
    /// The socket did not open within the open timeout.
    OpenTimeout,
    /// The handshake could not build this attempt's hello or headers (L13).
    HelloBuild {
        /// The handshake's description of the error.
        reason: String,
    },
    /// No hello ack arrived before the deadline (L4).
    HelloAckTimeout,
    /// The broker refused the hello with an `error` frame (D6), usually then closing.
    Rejected {
        /// The broker's code and message.
        rejection: Rejection,
        /// The close that followed, if it came before the deadline.
        close: Option<PeerClose>,
    },
    /// The peer closed the socket, or the transport lost it (1006).
    Closed(PeerClose),
    /// A frame over a size limit ended the connection (close code 1009): the
    /// peer sent one larger than our `max_message_size`, or refused one of ours.
    /// A broker re-pushes an unconfirmed message on reconnect, so this repeats;
    /// the lifecycle then waits the longest backoff delay instead of spinning.
    TooLarge(PeerClose),
    /// Nothing arrived for longer than the stale threshold, or a probe after a
    /// suspend went unanswered (L9, X13).
    Stale {
        /// How long the connection had been silent.
        idle: Duration,
    },
    /// The application asked for a fresh connection (S5).
    Forced,
}

/// The coarse class of a [`Failure`], for counters (X12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// The socket never opened.
    Transport,
    /// A handshake deadline passed (open or hello ack).
    Timeout,
    /// The broker refused the hello.
    Rejected,
    /// The peer closed or the transport dropped an established socket.
    PeerClosed,
    /// The liveness watchdog gave up.
    Stale,
    /// The application forced a reconnect.
    Forced,
    /// The hello could not be built.
    HelloBuild,
    /// A frame over the size limit ended the connection (1009).
    TooLarge,
}

impl FailureClass {
    /// Every class, in counter order.
    pub const ALL: [FailureClass; 8] = [
        FailureClass::Transport,
        FailureClass::Timeout,
        FailureClass::Rejected,
        FailureClass::PeerClosed,
        FailureClass::Stale,
        FailureClass::Forced,
        FailureClass::HelloBuild,
        FailureClass::TooLarge,
    ];

    /// A stable lower-case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Transport => "transport",
            FailureClass::Timeout => "timeout",
            FailureClass::Rejected => "rejected",
            FailureClass::PeerClosed => "peer_closed",
            FailureClass::Stale => "stale",
            FailureClass::Forced => "forced",
            FailureClass::HelloBuild => "hello_build",
            FailureClass::TooLarge => "too_large",
        }
    }
}

impl Failure {
    /// The class this failure is counted under.
    pub fn class(&self) -> FailureClass {
        match self {
            Failure::ConnectFailed { .. } => FailureClass::Transport,
            Failure::OpenTimeout | Failure::HelloAckTimeout => FailureClass::Timeout,
            Failure::HelloBuild { .. } => FailureClass::HelloBuild,
            Failure::Rejected { .. } => FailureClass::Rejected,
            Failure::Closed(_) => FailureClass::PeerClosed,
            Failure::TooLarge(_) => FailureClass::TooLarge,
            Failure::Stale { .. } => FailureClass::Stale,
            Failure::Forced => FailureClass::Forced,
        }
    }

    /// The close code pending work is told about (B4's `broker_disconnected_<code>`):
    /// the peer's code when there was one, else 1006 (no close frame).
    pub fn close_code(&self) -> u16 {
        match self {
            Failure::Closed(c) | Failure::TooLarge(c) => c.code,
            Failure::Rejected { close: Some(c), .. } => c.code,
            _ => 1006,
        }
    }

    /// A short machine-readable tag, the way the seeds name failures
    /// (`hello_ack_timeout`, `closed_before_hello_<code>` …).
    pub fn tag(&self) -> String {
        match self {
            Failure::ConnectFailed { kind, .. } => format!("connect_failed_{}", kind.name()),
            Failure::OpenTimeout => "open_timeout".into(),
            Failure::HelloBuild { .. } => "hello_build_failed".into(),
            Failure::HelloAckTimeout => "hello_ack_timeout".into(),
            Failure::Rejected { rejection, .. } => rejection.code.clone(),
            Failure::Closed(c) => format!("closed_{}", c.code),
            Failure::TooLarge(_) => "frame_too_large".into(),
            Failure::Stale { .. } => "stale".into(),
            Failure::Forced => "forced_reconnect".into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ConnectFailed { reason, .. } => write!(f, "could not connect: {reason}"),
            Failure::OpenTimeout => f.write_str("the socket did not open in time"),
            Failure::HelloBuild { reason } => write!(f, "could not build the hello: {reason}"),
            Failure::HelloAckTimeout => f.write_str("the broker did not acknowledge the hello in time"),
            Failure::Rejected { rejection, close } => {
                write!(f, "the broker refused the hello: {}", rejection.code)?;
                if !rejection.message.is_empty() {
                    write!(f, " ({})", rejection.message)?;
                }
                if let Some(c) = close {
                    write!(f, ", then closed with {}", c.code)?;
                    if !c.reason.is_empty() {
                        write!(f, " {}", c.reason)?;
                    }
                }
                Ok(())
            }
            Failure::Closed(c) if c.reason.is_empty() => write!(f, "closed with code {}", c.code),
            Failure::Closed(c) => write!(f, "closed with code {} ({})", c.code, c.reason),
            Failure::TooLarge(c) if c.reason.is_empty() => {
                f.write_str("a frame over the size limit ended the connection (1009)")
            }
            Failure::TooLarge(c) => write!(
                f,
                "a frame over the size limit ended the connection (1009: {})",
                c.reason
            ),
            Failure::Stale { idle } => write!(f, "no sign of life for {} ms", idle.as_millis()),
            Failure::Forced => f.write_str("reconnect requested"),
        }
    }
}

/// Why the machine reached `closed` and will never open another socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The application called close (L11).
    User,
    /// The close policy classified the failure as permanent (D3, D4, S2).
    Permanent {
        /// The failure that was judged permanent.
        failure: Failure,
    },
    /// A limited-retry rule ran out (4001 three times, `timestamp_skew` …) (S3).
    RetriesExhausted {
        /// The last failure.
        failure: Failure,
        /// How many retries the rule had allowed.
        retries: u32,
    },
    /// The total-attempts or total-time budget ran out (S4, X11).
    BudgetExhausted {
        /// The last failure.
        failure: Failure,
        /// Attempts made since the connection was last open.
        attempts: u32,
        /// Time since the connection was last open (or since connect).
        elapsed: Duration,
    },
    /// The policy reconnects only after an open connection and this attempt never
    /// opened (S4).
    NeverOpened {
        /// The failure of the attempt.
        failure: Failure,
    },
    /// The first connect failed and the configuration says to fail fast (L8, D1).
    FirstConnectFailed {
        /// Why the first attempt failed.
        failure: Failure,
    },
}

impl StopReason {
    /// The failure behind the stop, if it was not the application's own close.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            StopReason::User => None,
            StopReason::Permanent { failure }
            | StopReason::RetriesExhausted { failure, .. }
            | StopReason::BudgetExhausted { failure, .. }
            | StopReason::NeverOpened { failure }
            | StopReason::FirstConnectFailed { failure } => Some(failure),
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::User => f.write_str("closed by the application"),
            StopReason::Permanent { failure } => write!(f, "permanent failure: {failure}"),
            StopReason::RetriesExhausted { failure, retries } => {
                write!(f, "gave up after {retries} retries: {failure}")
            }
            StopReason::BudgetExhausted {
                failure,
                attempts,
                elapsed,
            } => write!(
                f,
                "retry budget exhausted after {attempts} attempts in {} ms: {failure}",
                elapsed.as_millis()
            ),
            StopReason::NeverOpened { failure } => {
                write!(f, "not reconnecting: the attempt never opened: {failure}")
            }
            StopReason::FirstConnectFailed { failure } => write!(f, "connect failed: {failure}"),
        }
    }
}
