//! The log line of every step, under the seeds' names (L14), the same on both
//! hosts and for every protocol.

use std::fmt;

use tether_proto::lifecycle::{Failure, Notification};
use tracing::{debug, info, trace, warn};

/// Logs a lifecycle step; `conn` names the connection (a reactor's `c3.0`, or
/// empty for a client's only connection).
pub fn log_step<M, E: fmt::Debug>(conn: &dyn fmt::Display, note: &Notification<M, E>) {
    let name = note.log_name();
    match note {
        Notification::StatusChanged { from, to } => {
            debug!(target: "tether", %conn, event = name, from = from.name(), to = to.name())
        }
        Notification::SocketOpened { attempt } | Notification::HelloSent { attempt } => {
            info!(target: "tether", %conn, event = name, attempt)
        }
        Notification::Connected {
            attempt, handshake, ..
        } => {
            info!(target: "tether", %conn, event = name, attempt, handshake_ms = handshake.as_millis() as u64)
        }
        Notification::Disconnected {
            failure, was_open, ..
        } => match failure {
            Failure::Closed(c) => {
                warn!(target: "tether", %conn, event = name, code = c.code, reason = %c.reason, was_open)
            }
            other => {
                warn!(target: "tether", %conn, event = name, code = other.close_code(), reason = %other, was_open)
            }
        },
        Notification::ReconnectScheduled { attempt, delay } => {
            info!(target: "tether", %conn, event = name, attempt, wait_ms = delay.as_millis() as u64)
        }
        Notification::SuspendDetected { late_by } => {
            warn!(target: "tether", %conn, event = name, late_ms = late_by.as_millis() as u64)
        }
        Notification::FrameDropped(reason) => warn!(target: "tether", %conn, event = name, reason = ?reason),
        Notification::Closed { reason } => warn!(target: "tether", %conn, event = name, reason = %reason),
        Notification::Message(_) => trace!(target: "tether", %conn, event = name),
    }
}

/// Logs the host's request to open a socket (`ws_open_attempt`).
pub fn log_open(conn: &dyn fmt::Display, url: &str, socket: u64) {
    info!(target: "tether", %conn, event = "ws_open_attempt", %url, socket);
}

/// Logs a socket dropped because its write queue overflowed.
pub fn log_overflow(conn: &dyn fmt::Display, socket: u64) {
    warn!(target: "tether", %conn, socket, "write queue full, dropping the socket");
}
