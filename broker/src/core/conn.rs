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

/// How a connection proved who it is; decides its `peerRole` (PROTOCOL.md: by hello kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HelloKind {
    /// A member-keyed `hello`: daemons, dashboards, automation (`control-plane`).
    Member,
    /// A `session_hello` with a verified parent attestation (`session`).
    Session,
}

/// The presence of an open (or, during its grace, lingering) connection.
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    pub mesh_id: String,
    pub member_id: String,
    /// The member key behind the connection, proven by the hello's signature.
    pub member_pubkey: String,
    /// The session key a `session_hello` proved with its attestation and signature.
    pub session_pubkey: Option<String>,
    /// The unsigned `sessionPubkey` of a member `hello`: only claimed, so it is used
    /// only while no other member holds it (see `Broker::claim_holds`).
    pub claimed_pubkey: Option<String>,
    pub kind: HelloKind,
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
    pub visible: bool,
    pub profile: Option<Value>,
}

impl Seat {
    /// The key the connection speaks with when only proofs count: the session key of a
    /// `session_hello`, else the member key.
    pub fn proven_pubkey(&self) -> &str {
        self.session_pubkey.as_deref().unwrap_or(&self.member_pubkey)
    }

    /// `control-plane` for a member `hello`, `session` for a `session_hello`; what the
    /// hello says of itself (`role`, `peerType`, `channel`) never changes it.
    pub fn peer_role(&self) -> &'static str {
        match self.kind {
            HelloKind::Member => "control-plane",
            HelloKind::Session => "session",
        }
    }

    /// Whether this seat and `other` are the same logical session of the same member,
    /// so one may take the other over: the same proven session key, or for member
    /// hellos the same (non-empty) `sessionId`.
    pub fn same_session(&self, other: &Seat) -> bool {
        if self.mesh_id != other.mesh_id || self.member_pubkey != other.member_pubkey {
            return false;
        }
        match (&self.session_pubkey, &other.session_pubkey) {
            (Some(a), Some(b)) => a == b,
            (None, None) => !self.session_id.is_empty() && self.session_id == other.session_id,
            _ => false,
        }
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
    /// Bytes of the push texts in `unacked`.
    pub unacked_bytes: usize,
    /// The wake-up time under which the connection sits in the broker's timer index.
    pub indexed_wake: Option<Instant>,
}

impl Conn {
    pub fn new(now: Instant, hello_timeout: Duration) -> Self {
        Conn {
            phase: Phase::AwaitingHello {
                deadline: tether_proto::deadline_after(now, hello_timeout),
            },
            last_activity: now,
            next_ping: now,
            silent_since: None,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
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
                    return Some(tether_proto::deadline_after(since, stale_after));
                }
                let mut wake =
                    tether_proto::deadline_after(self.last_activity, stale_after).min(self.next_ping);
                if let Some(first) = self.unacked.front() {
                    wake = wake.min(first.due);
                }
                Some(wake)
            }
        }
    }
}
