//! The mesh protocol's connection settings, one type for both hosts.

use std::time::Instant;

use tether_proto::lifecycle::{Config, ConfigError};
use tether_proto::mesh::handshake::{Credentials, MeshHandshake};
use tether_proto::mesh::identity::Presence;
use tether_proto::mesh::session::{Session, SessionConfig};

use std::sync::Arc;

use tether_proto::mesh::push::Push;

use crate::error::ClientEvent;
use crate::fanout::Fanout;
use crate::router::MeshRouter;
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
    /// Seed of the session's jitter, ids and direct-message nonces; `None` draws
    /// one from the OS ([`random_seed`]). Fix it only in tests and simulations:
    /// two sessions with the same keys and seed send the same nonces, and a
    /// crypto_box nonce used twice for one pair of keys exposes both messages.
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

    /// Everything both hosts' mesh clients start from: the session, its router
    /// and the subscriber queues the router feeds (subscribed to before the
    /// first attempt, so it is seen).
    pub fn start(&self, now: Instant) -> Result<MeshParts, ConfigError> {
        let session = self.session(now)?;
        let capacity = self.transport.subscriber_capacity;
        let pushes = Arc::new(Fanout::with_first(capacity));
        let events = Arc::new(Fanout::with_first(capacity));
        let router = MeshRouter::new(Arc::clone(&pushes), Arc::clone(&events));
        Ok(MeshParts {
            session,
            router,
            pushes,
            events,
        })
    }
}

/// A mesh client's pieces before the host drives them ([`MeshConfig::start`]).
#[derive(Debug)]
pub struct MeshParts {
    /// The session to drive.
    pub session: Session,
    /// Its router, for the host's task or thread.
    pub router: MeshRouter,
    /// The pushes the router publishes, for the client's handles.
    pub pushes: Arc<Fanout<Arc<Push>>>,
    /// Lifecycle news and unconsumed frames, for the client's handles.
    pub events: Arc<Fanout<ClientEvent>>,
}
