//! The mesh protocol's connection settings, one type for both hosts.

use std::time::Instant;

use tether_proto::lifecycle::{Config, ConfigError};
use tether_proto::mesh::handshake::{Credentials, MeshHandshake};
use tether_proto::mesh::identity::Presence;
use tether_proto::mesh::session::{Session, SessionConfig};

use crate::transport::{random_seed, Transport};

/// Everything a mesh connection needs, on either host (tether-tokio calls it
/// `ClientConfig`, tether-mio `ConnConfig`).
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// Session and lifecycle settings; the URL lives in `session.lifecycle.url`.
    pub session: SessionConfig,
    /// Who connects.
    pub credentials: Credentials,
    /// Presence fields of the hello.
    pub presence: Presence,
    /// Extra request headers on every attempt.
    pub headers: Vec<(String, String)>,
    /// Seed of the session's jitter and ids; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// The socket side: TLS, message and buffer sizes.
    pub transport: Transport,
}

impl MeshConfig {
    /// The seeds' defaults for `url`.
    pub fn new(url: impl Into<String>, credentials: Credentials, presence: Presence) -> Self {
        MeshConfig {
            session: SessionConfig::new(Config::new(url)),
            credentials,
            presence,
            headers: Vec::new(),
            seed: None,
            transport: Transport::default(),
        }
    }

    /// The URL every attempt connects to.
    pub fn url(&self) -> &str {
        &self.session.lifecycle.url
    }

    /// The session these settings describe, its sends capped to what the
    /// transport can carry.
    pub fn session(&self, now: Instant) -> Result<Session, ConfigError> {
        let max = self.transport.max_message_size;
        let mut session_config = self.session.clone();
        session_config.max_send_len = session_config.max_send_len.min(max);
        let handshake = MeshHandshake::new(self.credentials.clone(), self.presence.clone())
            .with_headers(self.headers.clone())
            .with_max_frame_len(max);
        let seed = self.seed.unwrap_or_else(random_seed);
        Session::new(session_config, handshake, seed, now)
    }
}
