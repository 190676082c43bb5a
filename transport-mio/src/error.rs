//! Errors of the reactor; the client errors are tether-host's, shared with the
//! async host.

use tether_host::{ClientError, ConnectError, TlsError};
use tether_proto::lifecycle::{ConfigError, LifecycleError};
use tether_proto::mesh::session::{RequestError, SendError};

use crate::reactor::ConnId;

impl From<AddError> for ConnectError {
    fn from(e: AddError) -> Self {
        match e {
            AddError::Config(e) => ConnectError::Config(e),
            AddError::Tls(e) => ConnectError::Tls(e),
        }
    }
}

impl From<ReactorError> for ClientError {
    fn from(e: ReactorError) -> Self {
        match e {
            ReactorError::Refused(e) => ClientError::Refused(e),
            ReactorError::NotAccepted(e) => ClientError::NotAccepted(e),
            ReactorError::UnknownConnection(_) | ReactorError::OtherProtocol(_) | ReactorError::Closed(_) => {
                ClientError::Shutdown
            }
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
    /// The connection runs another protocol (or router) than the call named.
    #[error("connection {0} runs another protocol")]
    OtherProtocol(ConnId),
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
