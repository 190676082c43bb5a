//! Errors of the reactor and of the blocking client.

use tether_proto::lifecycle::{ConfigError, LifecycleError, StopReason};
use tether_proto::mesh::session::{OpFailure, RequestError, SendError};

use crate::reactor::ConnId;
use crate::tls::TlsError;

/// Why `BlockingClient::connect` failed. Nothing is left running afterwards (D1).
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
    /// The reactor could not be created (no poller, no thread).
    #[error("cannot start the reactor: {0}")]
    Io(#[from] std::io::Error),
    /// The reactor thread stopped before it could answer.
    #[error("the client thread stopped")]
    Shutdown,
}

impl ConnectError {
    /// True when retrying with the same credentials cannot help (the broker said
    /// so, PROTOCOL.md's table).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::Config(_)
                | ConnectError::Tls(_)
                | ConnectError::Failed(StopReason::Permanent { .. } | StopReason::RetriesExhausted { .. })
        )
    }
}

impl From<AddError> for ConnectError {
    fn from(e: AddError) -> Self {
        match e {
            AddError::Config(e) => ConnectError::Config(e),
            AddError::Tls(e) => ConnectError::Tls(e),
        }
    }
}

/// Why a send, request or command of the blocking client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The send was refused at once (queue full, closed, too large …); the message
    /// is handed back inside.
    #[error("send refused: {0}")]
    Refused(Box<SendError>),
    /// The request or command was refused at once (not open, closed, too many).
    #[error("refused: {0}")]
    NotAccepted(#[from] RequestError),
    /// It was accepted and then failed; the failure says how (X8).
    #[error("{0}")]
    Failed(#[from] OpFailure),
    /// The broker answered with a reply of the wrong kind.
    #[error("unexpected reply from the broker")]
    UnexpectedReply,
    /// The client has shut down.
    #[error("the client has shut down")]
    Shutdown,
}

impl From<SendError> for ClientError {
    fn from(e: SendError) -> Self {
        ClientError::Refused(Box::new(e))
    }
}

impl From<ReactorError> for ClientError {
    fn from(e: ReactorError) -> Self {
        match e {
            ReactorError::Refused(e) => ClientError::Refused(e),
            ReactorError::NotAccepted(e) => ClientError::NotAccepted(e),
            ReactorError::UnknownConnection(_) | ReactorError::Closed(_) => ClientError::Shutdown,
        }
    }
}

/// Why a connection could not be added to a reactor.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The session configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The TLS settings could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
}

/// Why the reactor refused a call about one connection; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    /// No such connection (never added, or removed).
    #[error("no connection {0}")]
    UnknownConnection(ConnId),
    /// The session refused the send; the message is handed back inside.
    #[error("send refused: {0}")]
    Refused(Box<SendError>),
    /// The session refused the request or command.
    #[error("refused: {0}")]
    NotAccepted(#[from] RequestError),
    /// The session is closed for good.
    #[error("{0}")]
    Closed(#[from] LifecycleError),
}

/// Why a [`ReactorHandle`](crate::ReactorHandle) could not reach its reactor.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The reactor has been dropped.
    #[error("the reactor is gone")]
    Gone,
    /// The reactor's waker failed; the command is queued but the reactor may
    /// only see it on its next turn.
    #[error("cannot wake the reactor: {0}")]
    Wake(#[source] std::io::Error),
}
