//! # tether-host
//!
//! What tether-tokio and tether-mio share, so they cannot drift apart: the
//! `wss://` trust options (verification always on, X5), the error types of
//! connecting and of calls, and the events a client reports. Neither host adds
//! anything to these; both re-export them.

mod error;
mod tls;

pub use error::{ClientError, ClientEvent, ConnectError, Sent};
pub use tls::{Roots, TlsError, TlsOptions};

/// Largest WebSocket message accepted by default (matches the session's send limit).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// tungstenite's read buffer per connection, by default.
///
/// tungstenite's own default (128 KiB) costs that much memory per connection and,
/// worse, zero-fills up to that much before every read, even one that finds
/// nothing: on a busy loopback that fill was 40 % of all CPU time. Frames of this
/// protocol are small; 2 KiB holds a typical push or ack whole, and a larger
/// message grows the buffer only while it is read.
pub const DEFAULT_READ_BUFFER_SIZE: usize = 2 * 1024;
