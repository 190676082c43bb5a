//! The log lines of every step, under the seeds' names, the same as the async
//! host's (L14) with the connection added.

use std::convert::Infallible;

use tether_proto::lifecycle::{Failure, Notification};
use tether_proto::mesh::wire::DecodeError;
use tracing::{debug, info, warn};

use crate::reactor::ConnId;

/// Logs a step under the seeds' log-line names (L14).
pub(crate) fn log(conn: ConnId, note: &Notification<Infallible, DecodeError>) {
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
        Notification::Message(never) => match *never {},
    }
}
