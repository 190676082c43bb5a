//! What the core asks its host to do, one connection at a time.

/// Identifies one connection; the host picks ids and must never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// One instruction for the host, drained from [`crate::core::Broker::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The connection it concerns.
    pub conn: ConnId,
    /// What to do.
    pub kind: OutputKind,
}

/// The instructions; after `Close` or `Abort` the core has forgotten the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// Send this text frame.
    Send(String),
    /// Send a WebSocket ping; the peer's pong comes back as `handle_activity`.
    Ping,
    /// Send a close frame with this code and reason, then drop the socket.
    Close {
        /// Close code (always one that may be sent, RFC 6455 §7.4).
        code: u16,
        /// Close reason text (at most 123 bytes on the wire; hosts truncate).
        reason: String,
    },
    /// Drop the socket without a close frame (the peer sees 1006).
    Abort,
    /// Go half-open: stop reading and writing this socket (so pings go unanswered) but keep it.
    Silence,
    /// Something worth logging; no socket work.
    Notice(Notice),
}

/// Events a host may log; they change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A hello was accepted and the connection is open.
    HelloAccepted {
        /// Mesh joined.
        mesh_id: String,
        /// Key the connection speaks with.
        pubkey: String,
    },
    /// A hello was refused with this `error` code.
    HelloRejected {
        /// The PROTOCOL.md rejection code.
        code: String,
    },
}
