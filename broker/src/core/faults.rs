//! Fault switches as data, so the simulator and the tokio server inject the same faults.

use std::time::{Duration, Instant};

use tether_proto::mesh::wire::ErrorFrame;

use super::output::ConnId;

/// Close code and reason of a graceful broker shutdown (PROTOCOL.md: reconnect with backoff).
pub const SHUTTING_DOWN: (u16, &str) = (1001, "shutting down");

/// Which connections a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnSelector {
    /// Every connection, open or still saying hello.
    All,
    /// One connection.
    Conn(ConnId),
    /// Every open connection speaking with this key or on behalf of this member key.
    Pubkey(String),
}

/// A hello rejection: the `error` frame's fields and the close that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The `error` frame's `code`.
    pub code: String,
    /// The `error` frame's `message`.
    pub message: String,
    /// Close code sent after the error frame.
    pub close_code: u16,
    /// Close reason sent after the error frame.
    pub close_reason: String,
    /// `retryAfterMs` of the error frame (X10), if any.
    pub retry_after_ms: Option<u64>,
}

impl Refusal {
    /// A refusal with the close code and reason PROTOCOL.md's table gives for `code`:
    /// 4002 `banned` for `revoked`, 1008 with the code as reason for everything else.
    pub fn for_code(code: &str, message: impl Into<String>) -> Self {
        let (close_code, close_reason) = match code {
            "revoked" => (4002, "banned".to_owned()),
            other => (1008, other.to_owned()),
        };
        Refusal {
            code: code.to_owned(),
            message: message.into(),
            close_code,
            close_reason,
            retry_after_ms: None,
        }
    }

    /// The `error` frame sent before the close.
    pub fn error_frame(&self) -> ErrorFrame {
        ErrorFrame {
            code: self.code.clone(),
            message: self.message.clone(),
            id: None,
            req_id: None,
            retry_after_ms: self.retry_after_ms,
        }
    }

    /// `capacity` with `retryAfterMs` in the error frame and in a JSON close reason.
    pub fn capacity(message: impl Into<String>, retry_after_ms: u64) -> Self {
        Refusal {
            code: "capacity".to_owned(),
            message: message.into(),
            close_code: 1008,
            close_reason: format!(r#"{{"code":"capacity","retryAfterMs":{retry_after_ms}}}"#),
            retry_after_ms: Some(retry_after_ms),
        }
    }
}

/// One fault switch or one-shot fault, applied with [`crate::core::Broker::handle_fault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Refuse every hello with this refusal until `until` (forever when `None`).
    RefuseHellos {
        /// The rejection sent.
        refusal: Refusal,
        /// When hellos are accepted again.
        until: Option<Instant>,
    },
    /// Stop refusing hellos.
    AllowHellos,
    /// While on, hellos get no answer at all (no ack, no error) until the hello timeout.
    StallHellos(bool),
    /// Hold each `ack` of a `send` back this long (zero: send at once); pushes are not delayed.
    DelayAcks(Duration),
    /// Go half-open on the selected connections: nothing more is sent to them, their
    /// frames and pongs are ignored, and they are dropped after `stale_after`.
    GoSilent(ConnSelector),
    /// Close every connection now with this code and reason (an unsendable code such
    /// as 1006 drops the sockets without a close frame).
    DropAll {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Send this text (not JSON) as a frame to the selected connections.
    SendGarbage {
        /// Who receives it.
        to: ConnSelector,
        /// The frame text.
        text: String,
    },
}

impl Fault {
    /// `DropAll` with 1001 `shutting down`, what a restarting broker sends.
    pub fn shutting_down() -> Self {
        Fault::DropAll {
            code: SHUTTING_DOWN.0,
            reason: SHUTTING_DOWN.1.to_owned(),
        }
    }
}

/// The switches currently set.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultState {
    pub refuse: Option<(Refusal, Option<Instant>)>,
    pub stall_hellos: bool,
    pub ack_delay: Duration,
}

impl FaultState {
    /// The refusal in force at `now`, if any.
    pub fn refusal(&self, now: Instant) -> Option<&Refusal> {
        match &self.refuse {
            Some((refusal, until)) if until.is_none_or(|t| now < t) => Some(refusal),
            _ => None,
        }
    }
}
