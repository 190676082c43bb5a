//! The hosted session protocol's client settings and call errors, one type for
//! both hosts' hosted clients.

use std::time::Instant;

use tether_proto::hosted::{HostedConfig, HostedError, Session, TokenProvider};
use tether_proto::lifecycle::{ConfigError, Status};

use crate::error::{Shutdown, CLOSED};

use crate::transport::{random_seed, Transport};

/// Everything a hosted session client needs besides its token provider.
#[derive(Clone, Debug)]
pub struct HostedClientConfig {
    /// The subscribe URL and the hosted policy.
    pub hosted: HostedConfig,
    /// Seed of the session's jitter and request ids; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// The socket side: TLS, message and buffer sizes.
    pub transport: Transport,
}

impl HostedClientConfig {
    /// Default transport settings for `hosted`.
    pub fn new(hosted: HostedConfig) -> Self {
        HostedClientConfig {
            hosted,
            seed: None,
            transport: Transport::default(),
        }
    }

    /// The URL every attempt connects to.
    pub fn url(&self) -> &str {
        &self.hosted.lifecycle.url
    }

    /// The session these settings describe, fetching tokens from `tokens`.
    pub fn session(&self, tokens: TokenProvider, now: Instant) -> Result<Session, ConfigError> {
        let seed = self.seed.unwrap_or_else(random_seed);
        Session::new(self.hosted.clone(), tokens, seed, now)
    }
}

/// Why a hosted control request or response failed.
#[derive(Debug, thiserror::Error)]
pub enum HostedCallError {
    /// Refused at once (not connected, not an object); the payload is inside.
    #[error("{}", refused(.0))]
    Refused(#[from] HostedError),
    /// The client has shut down.
    #[error("the client is closed")]
    Shutdown,
}

fn refused(e: &HostedError) -> String {
    match e {
        HostedError::NotConnected {
            status: Status::Closed,
            ..
        } => CLOSED.to_owned(),
        _ => format!("refused: {e}"),
    }
}

impl HostedCallError {
    /// True when the call was refused because the client is closed for good;
    /// such errors all read [`CLOSED`], as the mesh client's do.
    pub fn is_closed(&self) -> bool {
        match self {
            HostedCallError::Refused(HostedError::NotConnected { status, .. }) => *status == Status::Closed,
            HostedCallError::Refused(HostedError::NotAnObject(_)) => false,
            HostedCallError::Shutdown => true,
        }
    }
}

impl From<Shutdown> for HostedCallError {
    fn from(_: Shutdown) -> Self {
        HostedCallError::Shutdown
    }
}
