//! What goes into a session and what comes out of it.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::lifecycle::{Notification, Status, Timer};
use crate::mesh::push::Push;
use crate::mesh::target::Target;
use crate::mesh::wire::{BrokerFrame, DecodeError, Priority, Reply};

/// Names one send or request; its result comes out exactly once as
/// [`SessionEvent::Resolved`] (X3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// What to do with a send made while the connection is not open (X9); the
/// rules are in the [session docs](super#while-the-connection-is-away).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queueing {
    /// Wait in the outbound queue (B3), at most `deadline`, or the session's
    /// [`queue_deadline`](super::SessionConfig::queue_deadline) when `None`.
    Queue {
        /// How long the send may wait for a connection before it fails as never
        /// sent; `None` takes the session's default.
        deadline: Option<Duration>,
    },
    /// Refuse at once unless open: for messages that are worthless late.
    Never,
}

impl Default for Queueing {
    fn default() -> Self {
        Queueing::Queue { deadline: None }
    }
}

/// A message to send (B1, B6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Who it goes to; a display name is resolved to a pubkey first (B15).
    pub target: Target,
    /// The plaintext body: sealed end to end for a pubkey target (B14), base64
    /// in the clear for groups, broadcasts and topics (PROTOCOL.md).
    pub body: String,
    /// Delivery priority.
    pub priority: Priority,
    /// Idempotency id; one is generated when `None`. An outbox resending a message
    /// passes the id of the first try, so the broker can deduplicate (B6).
    pub client_message_id: Option<String>,
    /// Hex fingerprint of the request, forwarded for broker-side dedupe.
    pub request_fingerprint: Option<String>,
    /// Message this one replies to.
    pub reply_to: Option<String>,
    /// What to do while not open (X9).
    pub queueing: Queueing,
    /// Resend automatically, with the same idempotency id, when the connection is
    /// lost before the ack, instead of resolving "outcome unknown".
    pub resend_if_unknown: bool,
}

impl Outgoing {
    /// A message with the defaults: priority `next`, queued while offline, a
    /// generated idempotency id.
    pub fn new(target: impl Into<Target>, body: impl Into<String>) -> Self {
        Outgoing {
            target: target.into(),
            body: body.into(),
            priority: Priority::Next,
            client_message_id: None,
            request_fingerprint: None,
            reply_to: None,
            queueing: Queueing::default(),
            resend_if_unknown: false,
        }
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }
}

/// A request with a correlated reply (B8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `list_peers`.
    ListPeers,
    /// `get_state`.
    GetState {
        /// The key.
        key: String,
    },
    /// `list_state`.
    ListState,
    /// `remember`.
    Remember {
        /// What to remember.
        content: String,
        /// Tags to file it under.
        tags: Option<Vec<String>>,
    },
    /// `recall`.
    Recall {
        /// What to search for.
        query: String,
    },
    /// `list_skills`.
    ListSkills {
        /// Optional filter.
        query: Option<String>,
    },
    /// `get_skill`.
    GetSkill {
        /// The skill's name.
        name: String,
    },
}

/// A fire-and-forget command (B9): no reply, refused unless open.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `set_state`; others receive `state_change`.
    SetState {
        /// The key.
        key: String,
        /// The value.
        value: Value,
    },
    /// `forget`.
    Forget {
        /// The memory to delete.
        memory_id: String,
    },
    /// `set_profile`.
    SetProfile {
        /// Avatar.
        avatar: Option<String>,
        /// Title.
        title: Option<String>,
        /// Bio.
        bio: Option<String>,
        /// Capabilities.
        capabilities: Option<Vec<String>>,
    },
    /// `set_summary`.
    SetSummary {
        /// One-line summary.
        summary: String,
    },
    /// `set_status` (`idle`, `working`, `dnd`).
    SetStatus {
        /// The status.
        status: String,
    },
    /// `set_visible`.
    SetVisible {
        /// Whether to be listed.
        visible: bool,
    },
}

/// A successful send or request.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The broker accepted the send (B1).
    Sent {
        /// The broker's id for the message.
        message_id: String,
        /// The ack's `queued` flag. The real broker sends `true` on every accepted
        /// send, whether the recipient is online or not (B16): it says the broker
        /// stored the message for delivery, not that the recipient was away.
        queued: bool,
    },
    /// The request's reply (B8, B10).
    Reply(Reply),
}

/// Which way a send or request failed (X8), so an outbox knows whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Never reached the socket: safe to retry.
    NeverSent,
    /// Written, but the connection went away before the answer: the broker may or
    /// may not have it (retry with the same idempotency id).
    OutcomeUnknown,
    /// Written, and no answer came in time.
    TimedOut,
    /// The broker answered with an error.
    Rejected,
}

/// Why a send or request failed.
///
/// Its text is the broker's code and message once (`rate_limit: max 60 msg/min`),
/// or the local reason (`ack_timeout`, `broker_disconnected_1006`, …).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct OpFailure {
    /// Which way it failed (X8).
    pub kind: FailureKind,
    /// A short machine-readable reason: the seeds' tag (`ack_timeout`,
    /// `broker_disconnected_1006`, `outbound_queue_full`, …) or, when the broker
    /// answered with an error, its code.
    pub reason: String,
    /// The broker's error code, when the broker answered with one (B16).
    pub code: Option<String>,
    /// The broker's human-readable message, possibly empty.
    pub message: String,
    /// Whether retrying cannot help, decided from the code (B5, B16).
    pub permanent: bool,
}

impl OpFailure {
    pub(crate) fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        OpFailure {
            kind,
            reason: reason.into(),
            code: None,
            message: String::new(),
            permanent: false,
        }
    }

    /// The broker refused: its code and message, permanence from `errors`.
    pub(crate) fn rejected(code: &str, message: &str, errors: &crate::policy::ErrorPolicy) -> Self {
        OpFailure {
            kind: FailureKind::Rejected,
            reason: code.to_owned(),
            code: Some(code.to_owned()),
            message: message.to_owned(),
            permanent: errors.is_permanent(code),
        }
    }

    /// Whether the broker may have the message although the send failed: the
    /// connection went away or no answer came after it was written (X8). A
    /// retry then risks a duplicate; check before sending again.
    pub fn may_have_been_delivered(&self) -> bool {
        matches!(self.kind, FailureKind::OutcomeUnknown | FailureKind::TimedOut)
    }

    fn describe(&self) -> String {
        match &self.code {
            // A message that repeats its code (`code: code: …`) says it once.
            Some(code) => {
                let message = self
                    .message
                    .strip_prefix(code.as_str())
                    .map(|rest| rest.trim_start_matches(':').trim_start())
                    .unwrap_or(&self.message);
                if message.is_empty() || message == code {
                    code.clone()
                } else {
                    format!("{code}: {message}")
                }
            }
            None => self.reason.clone(),
        }
    }
}

/// The result of a send or request.
pub type OpResult = Result<Outcome, OpFailure>;

/// Why a send was refused at the call (it got no [`OpId`] and nothing was queued).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendRefusal {
    /// The session is closed for good.
    #[error("the session is closed")]
    Closed,
    /// The outbound queue is full and the overflow policy refuses new sends (B3).
    #[error("outbound_queue_full")]
    QueueFull,
    /// Not open and the send may not be queued (X9), or its target is a name,
    /// which is resolved over an open connection only (B15).
    #[error("not open and the message may not be queued")]
    NotOpen,
    /// A send to a name needs a `list_peers` request, and too many requests are
    /// waiting for replies (B15).
    #[error("too many pending requests to resolve the name")]
    TooManyPending,
    /// The recipient's key has no safe X25519 counterpart, so the direct message
    /// cannot be sealed (B14).
    #[error("the recipient's key cannot be used for encryption")]
    Unencryptable,
    /// The encoded frame is larger than the configured limit.
    #[error("the message is {len} bytes, over the {max} byte limit")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The offline deadline is longer than any deadline the session arms.
    #[error("the queue deadline of {} s is over the {} s limit", deadline.as_secs(), max.as_secs())]
    DeadlineTooLong {
        /// The deadline asked for.
        deadline: Duration,
        /// The limit ([`MAX_DURATION`](crate::MAX_DURATION)).
        max: Duration,
    },
    /// The target is empty.
    #[error("the target is empty")]
    NoTarget,
    /// A send with this idempotency id is still pending: resend only after the
    /// first one resolved.
    #[error("a send with this client_message_id is still pending")]
    DuplicateId,
}

/// A refused send, with the message handed back so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SendError {
    /// Why.
    pub reason: SendRefusal,
    /// The message, unchanged.
    pub outgoing: Box<Outgoing>,
}

/// Why a request or command was refused at the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The session is closed for good.
    #[error("the session is closed")]
    Closed,
    /// Requests and commands need an open connection (B8, B9, D9).
    #[error("not connected (status {})", .0.name())]
    NotOpen(Status),
    /// Too many requests are waiting for replies.
    #[error("too many pending requests")]
    TooManyPending,
}

/// News for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// Lifecycle news: status changes, connected, disconnected with the broker's
    /// reason, reconnect scheduled, closed for good, dropped frames (L14).
    Lifecycle(Notification<Infallible, DecodeError>),
    /// A send or request finished; once per [`OpId`] (X3).
    Resolved {
        /// Which one.
        id: OpId,
        /// How it ended.
        result: OpResult,
    },
    /// A message for this client with its decoded body (B7, B14); also kept in
    /// the push history.
    Push(Arc<Push>),
    /// Any other frame: `hello_ack`, `state_change`, uncorrelated `error`s and
    /// types this crate does not know (handed up, never an error). Boxed: these
    /// are rare and the frame enum is large.
    Inbound(Box<BrokerFrame>),
}

/// An output of the session: socket work for the host, or news (the
/// [`Machine`](crate::machine::Machine) contract's output).
pub type SessionAction = crate::machine::Output<SessionEvent>;

/// Which deadline the session waits for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// One of the lifecycle's timers.
    Lifecycle(Timer),
    /// A send's ack deadline (B2), a request's reply deadline (B8) or a queued
    /// send's offline deadline (X9).
    Op(OpId),
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadline::Lifecycle(t) => f.write_str(t.name()),
            Deadline::Op(id) => write!(f, "op {}", id.0),
        }
    }
}
