//! What the host tells the machine.

/// Names one socket the machine asked the host to open.
///
/// Every socket event carries the id of the socket it is about, so an event from
/// a socket the machine has already given up on is recognised and ignored rather
/// than mistaken for news about the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// One WebSocket message as the host received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text message; every frame of the protocol is one.
    Text(String),
    /// A binary message; counted as a sign of life, then dropped.
    Binary(Vec<u8>),
    /// A ping from the peer (the host answers it; the machine notes the activity).
    Ping,
    /// A pong, answering the machine's ping or unsolicited.
    Pong,
}

/// An input to [`Lifecycle::handle`](crate::lifecycle::Lifecycle::handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start connecting (L1). A no-op while connecting or open (B13).
    Connect,
    /// The socket opened (the WebSocket upgrade completed).
    Opened {
        /// Which socket.
        socket: SocketId,
    },
    /// A message arrived.
    Frame {
        /// Which socket.
        socket: SocketId,
        /// The message.
        frame: Frame,
    },
    /// The socket closed; `code` 1005 when the close frame had none, 1006 when the
    /// transport was lost without one.
    Closed {
        /// Which socket.
        socket: SocketId,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The host could not open the socket.
    ConnectFailed {
        /// Which socket.
        socket: SocketId,
        /// What kind of failure (the host classifies its transport's error).
        kind: crate::lifecycle::ConnectFailureKind,
        /// The host's description of the error.
        reason: String,
    },
    /// Time passed; fires every expired timer. Early or repeated ticks do nothing.
    Tick,
    /// Close for good (L11). Idempotent.
    Close,
    /// Force a fresh connection after a short delay, counters reset (S5).
    Reconnect,
    /// "The network is back": reset backoff and budgets and connect at once (X11).
    RetryNow,
}
