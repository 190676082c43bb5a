//! The errors and results of both hosts' clients, so code written against one
//! host handles the other's failures the same way (X1).

use std::convert::Infallible;

use tether_proto::lifecycle::{ConfigError, Notification, StopReason};
use tether_proto::mesh::session::{OpFailure, RequestError, SendError, SendRefusal};
use tether_proto::mesh::wire::{BrokerFrame, DecodeError};

use crate::tls::TlsError;

/// Why `connect` failed. Nothing is left running afterwards (D1).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The TLS settings could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
    /// The first attempt failed or the broker refused us; the reason carries the
    /// broker's code and message when it sent them (L8, D6).
    #[error("{0}")]
    Failed(StopReason),
    /// The host could not start (no poller, no thread).
    #[error("cannot start the client: {0}")]
    Io(#[from] std::io::Error),
    /// The client stopped before it could answer.
    #[error("the client stopped")]
    Shutdown,
    /// A builder was asked to connect with no identity or credentials.
    #[error("no identity: give the builder an identity file, a member or credentials")]
    NoCredentials,
}

impl ConnectError {
    /// True when retrying with the same credentials cannot help (the broker said
    /// so, PROTOCOL.md's table).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::Config(_)
                | ConnectError::Tls(_)
                | ConnectError::NoCredentials
                | ConnectError::Failed(StopReason::Permanent { .. } | StopReason::RetriesExhausted { .. })
        )
    }
}

/// The words of every refusal because the client is closed for good, on both
/// hosts and for every protocol: whether the session refused the call itself or
/// the host's task or thread had already ended is a race the caller cannot
/// see, so it must not read differently.
pub const CLOSED: &str = "the client is closed";

/// The host's task or thread is gone: the connection closed for good. Both
/// hosts' generic connections answer with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the client is closed")]
pub struct Shutdown;

impl From<Shutdown> for ClientError {
    fn from(_: Shutdown) -> Self {
        ClientError::Shutdown
    }
}

fn send_refused(e: &SendError) -> String {
    match e.reason {
        SendRefusal::Closed => CLOSED.to_owned(),
        _ => format!("send refused: {e}"),
    }
}

fn not_accepted(e: &RequestError) -> String {
    match e {
        RequestError::Closed => CLOSED.to_owned(),
        _ => format!("refused: {e}"),
    }
}

/// Why a send, request or command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The send was refused at once (queue full, closed, too large …); the message
    /// is handed back inside.
    #[error("{}", send_refused(.0))]
    Refused(Box<SendError>),
    /// The request or command was refused at once (not open, closed, too many).
    #[error("{}", not_accepted(.0))]
    NotAccepted(#[from] RequestError),
    /// It was accepted and then failed; the failure says how (X8).
    #[error("{0}")]
    Failed(#[from] OpFailure),
    /// The broker answered with a reply of the wrong kind.
    #[error("unexpected reply from the broker")]
    UnexpectedReply,
    /// The client has shut down.
    #[error("the client is closed")]
    Shutdown,
}

impl ClientError {
    /// True when the call was refused because the client is closed for good,
    /// however that reached the caller (the session's refusal or the host's
    /// end); such errors all read [`CLOSED`].
    pub fn is_closed(&self) -> bool {
        match self {
            ClientError::Refused(e) => e.reason == SendRefusal::Closed,
            ClientError::NotAccepted(e) => *e == RequestError::Closed,
            ClientError::Shutdown => true,
            ClientError::Failed(_) | ClientError::UnexpectedReply => false,
        }
    }
}

impl From<SendError> for ClientError {
    fn from(e: SendError) -> Self {
        ClientError::Refused(Box::new(e))
    }
}

/// A send the broker accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The broker's id for the message.
    pub message_id: String,
    /// The ack's `queued` flag: `true` on every accepted send (it does not mean the
    /// recipient was offline).
    pub queued: bool,
}

/// Lifecycle news and frames the session did not consume.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// Status changes, connects, disconnects with their reason, reconnect delays,
    /// the final close (L14).
    Lifecycle(Notification<Infallible, DecodeError>),
    /// `hello_ack`, `state_change`, uncorrelated errors, unknown types.
    Inbound(Box<BrokerFrame>),
}

/// A send's result as the application sees it.
pub fn sent(result: tether_proto::mesh::session::OpResult) -> Result<Sent, ClientError> {
    use tether_proto::mesh::session::Outcome;
    match result {
        Ok(Outcome::Sent { message_id, queued }) => Ok(Sent { message_id, queued }),
        Ok(Outcome::Reply(_)) => Err(ClientError::UnexpectedReply),
        Err(failure) => Err(ClientError::Failed(failure)),
    }
}

/// A request's result as the application sees it: `pick` takes the reply of
/// the expected kind.
pub fn replied<T>(
    result: tether_proto::mesh::session::OpResult,
    pick: fn(tether_proto::mesh::wire::Reply) -> Option<T>,
) -> Result<T, ClientError> {
    use tether_proto::mesh::session::Outcome;
    match result {
        Ok(Outcome::Reply(reply)) => pick(reply).ok_or(ClientError::UnexpectedReply),
        Ok(Outcome::Sent { .. }) => Err(ClientError::UnexpectedReply),
        Err(failure) => Err(ClientError::Failed(failure)),
    }
}

/// What a notification says about the first connect (L8): `Ok` on the first
/// open, the stop reason if the machine closed first; `None` for the rest.
pub fn first_connect<M, E>(
    note: &tether_proto::lifecycle::Notification<M, E>,
) -> Option<Result<(), ConnectError>> {
    match note {
        Notification::Connected { first: true, .. } => Some(Ok(())),
        Notification::Closed { reason } => Some(Err(ConnectError::Failed(reason.clone()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use tether_proto::lifecycle::Status;
    use tether_proto::mesh::session::Outgoing;

    use super::*;
    use crate::hosted::HostedCallError;

    #[test]
    fn every_closed_refusal_reads_the_same() {
        // Issue 17: "the client has shut down" against "send refused: the
        // session is closed" for one and the same refusal.
        let send = ClientError::from(SendError {
            reason: SendRefusal::Closed,
            outgoing: Box::new(Outgoing::new("*", "x")),
        });
        let closed = [
            send,
            ClientError::NotAccepted(RequestError::Closed),
            ClientError::from(Shutdown),
        ];
        for e in &closed {
            assert_eq!(e.to_string(), CLOSED, "{e:?}");
            assert!(e.is_closed(), "{e:?}");
        }
        let hosted = [
            HostedCallError::Refused(tether_proto::hosted::HostedError::NotConnected {
                status: Status::Closed,
                payload: Box::new(serde_json::json!({})),
            }),
            HostedCallError::from(Shutdown),
        ];
        for e in &hosted {
            assert_eq!(e.to_string(), CLOSED, "{e:?}");
            assert!(e.is_closed(), "{e:?}");
        }
        // Other refusals keep their own words.
        let not_open = ClientError::NotAccepted(RequestError::NotOpen(Status::Reconnecting));
        assert!(!not_open.is_closed());
        assert_ne!(not_open.to_string(), CLOSED);
    }
}
