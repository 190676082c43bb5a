//! One connection as the core sees it: its phase, liveness clocks and push leases.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_proto::mesh::wire::GroupRef;

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Opened; the hello must be accepted by `deadline`.
    AwaitingHello { deadline: Instant },
    /// A hello arrived while the stall fault was on; it is never answered.
    Stalled { deadline: Instant },
    /// The hello was accepted.
    Open(Box<Seat>),
}

/// The presence of an open connection, as `list_peers` shows it.
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    pub mesh_id: String,
    pub member_id: String,
    /// Key the connection speaks with (the session key for `session_hello`).
    pub pubkey: String,
    /// The member key behind it (equal to `pubkey` for a member `hello`).
    pub member_pubkey: String,
    /// The unsigned `sessionPubkey` of a member hello: another key it answers to.
    pub alias_pubkey: Option<String>,
    pub session_id: String,
    pub display_name: String,
    pub status: String,
    pub summary: Option<String>,
    pub groups: Vec<GroupRef>,
    pub connected_at: String,
    pub peer_type: Option<String>,
    pub channel: Option<String>,
    pub hostname: Option<String>,
    pub cwd: String,
    pub model: Option<String>,
    pub peer_role: String,
    pub visible: bool,
    pub profile: Option<Value>,
}

impl Seat {
    /// Whether a message addressed to `key` reaches this connection.
    pub fn answers_to(&self, key: &str) -> bool {
        self.pubkey == key || self.member_pubkey == key || self.alias_pubkey.as_deref() == Some(key)
    }

    /// Whether the connection is a session acting for a member (its pushes name the member).
    pub fn is_session(&self) -> bool {
        self.pubkey != self.member_pubkey
    }
}

/// A push waiting for its `client_ack`.
#[derive(Debug, Clone)]
pub(crate) struct Unacked {
    pub message_id: String,
    pub client_message_id: Option<String>,
    pub text: String,
    pub due: Instant,
    pub pushes: u32,
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub phase: Phase,
    pub last_activity: Instant,
    pub next_ping: Instant,
    /// Set when the connection was silenced (half-open fault).
    pub silent_since: Option<Instant>,
    /// In push order, so in lease order: the lease is a constant added to a non-decreasing now.
    pub unacked: VecDeque<Unacked>,
    /// The wake-up time under which the connection sits in the broker's timer index.
    pub indexed_wake: Option<Instant>,
}

impl Conn {
    pub fn new(now: Instant, hello_timeout: Duration) -> Self {
        Conn {
            phase: Phase::AwaitingHello {
                deadline: now + hello_timeout,
            },
            last_activity: now,
            next_ping: now,
            silent_since: None,
            unacked: VecDeque::new(),
            indexed_wake: None,
        }
    }

    pub fn seat(&self) -> Option<&Seat> {
        match &self.phase {
            Phase::Open(seat) => Some(seat),
            _ => None,
        }
    }

    pub fn seat_mut(&mut self) -> Option<&mut Seat> {
        match &mut self.phase {
            Phase::Open(seat) => Some(seat),
            _ => None,
        }
    }

    /// The earliest time something is due on this connection.
    pub fn wake(&self, stale_after: Duration) -> Option<Instant> {
        match &self.phase {
            Phase::AwaitingHello { deadline } | Phase::Stalled { deadline } => Some(*deadline),
            Phase::Open(_) => {
                if let Some(since) = self.silent_since {
                    return Some(since + stale_after);
                }
                let mut wake = (self.last_activity + stale_after).min(self.next_ping);
                if let Some(first) = self.unacked.front() {
                    wake = wake.min(first.due);
                }
                Some(wake)
            }
        }
    }
}
