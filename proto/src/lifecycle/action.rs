//! What the machine asks of the host and tells the application.

use std::time::Duration;

use super::{Failure, SocketId, StopReason};

/// The connection status the application sees (the seeds' four, plus `Idle`
/// before the first connect so that `closed` always means "for good").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Created, never connected.
    Idle,
    /// An attempt is under way: socket opening or hello awaiting its ack.
    Connecting,
    /// The hello was acknowledged; frames flow.
    Open,
    /// Waiting out the delay before the next attempt.
    Reconnecting,
    /// Stopped for good; nothing will ever be opened again.
    Closed,
}

impl Status {
    /// Every status, in counter order.
    pub const ALL: [Status; 5] = [
        Status::Idle,
        Status::Connecting,
        Status::Open,
        Status::Reconnecting,
        Status::Closed,
    ];

    /// The seeds' lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connecting => "connecting",
            Status::Open => "open",
            Status::Reconnecting => "reconnecting",
            Status::Closed => "closed",
        }
    }
}

/// An instruction for the host or news for the application, drained with
/// [`Lifecycle::poll_action`](crate::lifecycle::Lifecycle::poll_action).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<M, E> {
    /// Socket work for the host.
    Io(Io),
    /// News for the application.
    Notify(Notification<M, E>),
}

/// Socket work the host performs; the only thing a host does on its own behalf
/// is map these onto its socket library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// Open a WebSocket to `url` with these request headers (L1, S1).
    OpenSocket {
        /// The id every event about this socket must carry.
        socket: SocketId,
        /// Where to connect.
        url: String,
        /// Request headers for this attempt, fresh each time.
        headers: Vec<(String, String)>,
    },
    /// Send a text frame (the hello, or an application frame while open).
    SendText {
        /// On which socket.
        socket: SocketId,
        /// The frame.
        text: String,
    },
    /// Send a WebSocket ping (L9).
    SendPing {
        /// On which socket.
        socket: SocketId,
    },
    /// Close the socket with a close frame, then forget it; the machine ignores
    /// whatever that socket reports afterwards.
    CloseSocket {
        /// Which socket.
        socket: SocketId,
        /// A sendable close code (never 1005, 1006 or 1015).
        code: u16,
        /// The close reason.
        reason: &'static str,
    },
    /// Drop the socket without a close handshake (a dead peer would never answer
    /// one), then forget it.
    TerminateSocket {
        /// Which socket.
        socket: SocketId,
    },
}

impl Io {
    /// The socket this work is about.
    pub fn socket(&self) -> SocketId {
        match self {
            Io::OpenSocket { socket, .. }
            | Io::SendText { socket, .. }
            | Io::SendPing { socket }
            | Io::CloseSocket { socket, .. }
            | Io::TerminateSocket { socket } => *socket,
        }
    }
}

/// News for the application; also the structured log of every step (L14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification<M, E> {
    /// The status changed (L12: only on a real change, in order).
    StatusChanged {
        /// The previous status.
        from: Status,
        /// The new status.
        to: Status,
    },
    /// The socket of attempt `attempt` opened ("open ok").
    SocketOpened {
        /// Attempt number since the machine was created, 1-based.
        attempt: u64,
    },
    /// The hello was sent and its deadline armed (L2).
    HelloSent {
        /// Attempt number.
        attempt: u64,
    },
    /// The hello was acknowledged: the connection is open (L3, L8, S6).
    Connected {
        /// Attempt number.
        attempt: u64,
        /// True for the first open of this machine (the one `connect` waits for).
        first: bool,
        /// Time from requesting the socket to the ack.
        handshake: Duration,
    },
    /// A decoded frame for the application (L5).
    Message(M),
    /// A frame that could not be decoded was dropped and counted (L5).
    FrameDropped(DropReason<E>),
    /// The attempt failed or the open connection was lost. Sent before the status
    /// changes, so pending work learns the code and reason first (L6, D6).
    Disconnected {
        /// Attempt number.
        attempt: u64,
        /// Why.
        failure: Failure,
        /// Whether the connection had been open.
        was_open: bool,
    },
    /// The next attempt will start after `delay` (L6, S6).
    ReconnectScheduled {
        /// The attempt that will start.
        attempt: u64,
        /// The jittered delay.
        delay: Duration,
    },
    /// A tick arrived long after the watchdog was due: the host slept; a probe
    /// ping was sent instead of judging the silence (X13).
    SuspendDetected {
        /// How late the watchdog tick was.
        late_by: Duration,
    },
    /// Closed for good (L11, S2, S6).
    Closed {
        /// Why.
        reason: StopReason,
    },
}

impl<M, E> Notification<M, E> {
    /// The seeds' log line for this step (`ws_open_ok`, `ws_hello_acked`,
    /// `hello_ack_timeout`, `ws_stale_terminate` … of ws-lifecycle.ts), so every
    /// host logs the same names (L14).
    pub fn log_name(&self) -> &'static str {
        match self {
            Notification::StatusChanged { .. } => "ws_status",
            Notification::SocketOpened { .. } => "ws_open_ok",
            Notification::HelloSent { .. } => "ws_hello_sent",
            Notification::Connected { .. } => "ws_hello_acked",
            Notification::Message(_) => "ws_message",
            Notification::FrameDropped(_) => "ws_frame_dropped",
            Notification::Disconnected {
                failure: Failure::HelloAckTimeout,
                ..
            } => "hello_ack_timeout",
            Notification::Disconnected {
                failure: Failure::Stale { .. },
                ..
            } => "ws_stale_terminate",
            Notification::Disconnected { .. } => "ws_closed",
            Notification::ReconnectScheduled { .. } => "ws_reconnect_scheduled",
            Notification::SuspendDetected { .. } => "ws_suspend_detected",
            Notification::Closed { .. } => "ws_stopped",
        }
    }

    /// Splits off a decoded message, so a layer that consumes messages can pass
    /// every other notification on with a different message type.
    pub fn into_message<N>(self) -> Result<M, Notification<N, E>> {
        Err(match self {
            Notification::Message(m) => return Ok(m),
            Notification::StatusChanged { from, to } => Notification::StatusChanged { from, to },
            Notification::SocketOpened { attempt } => Notification::SocketOpened { attempt },
            Notification::HelloSent { attempt } => Notification::HelloSent { attempt },
            Notification::Connected {
                attempt,
                first,
                handshake,
            } => Notification::Connected {
                attempt,
                first,
                handshake,
            },
            Notification::FrameDropped(r) => Notification::FrameDropped(r),
            Notification::Disconnected {
                attempt,
                failure,
                was_open,
            } => Notification::Disconnected {
                attempt,
                failure,
                was_open,
            },
            Notification::ReconnectScheduled { attempt, delay } => {
                Notification::ReconnectScheduled { attempt, delay }
            }
            Notification::SuspendDetected { late_by } => Notification::SuspendDetected { late_by },
            Notification::Closed { reason } => Notification::Closed { reason },
        })
    }
}

/// Why an inbound frame was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason<E> {
    /// A binary frame: the protocols here are text-only.
    Binary {
        /// Its length.
        len: usize,
    },
    /// The handshake could not decode the text.
    Undecodable(E),
}
