//! The mesh protocol's connection settings, one type for both hosts.

use std::time::Instant;

use tether_proto::lifecycle::{Config, ConfigError};
use tether_proto::mesh::handshake::{Credentials, MeshHandshake};
use tether_proto::mesh::identity::Presence;
use tether_proto::mesh::session::{Session, SessionConfig, SharedSessionConfig};

use std::sync::{Arc, Mutex, PoisonError};

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
    /// The session settings as last frozen, shared by this value's clones.
    shared: SharedSlot,
}

/// The frozen session settings of a [`MeshConfig`] and of its clones, with the
/// settings they were frozen from.
///
/// Connections made from one configuration (cloned for each, with its own
/// identity and presence) then share one copy of the session and lifecycle
/// settings instead of holding 376 bytes each (memory per idle connection
/// counts). A clone whose `session` was changed gets its own copy: the slot
/// is reused only while the settings are equal to what it froze.
#[derive(Clone, Default)]
struct SharedSlot(Arc<Mutex<Option<(SessionConfig, SharedSessionConfig)>>>);

impl SharedSlot {
    fn get(&self, wanted: &SessionConfig) -> Result<SharedSessionConfig, ConfigError> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((frozen_from, shared)) = &*slot {
            if frozen_from == wanted {
                return Ok(shared.clone());
            }
        }
        let shared = SharedSessionConfig::new(wanted.clone())?;
        *slot = Some((wanted.clone(), shared.clone()));
        Ok(shared)
    }
}

impl std::fmt::Debug for SharedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSlot")
    }
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
            shared: SharedSlot::default(),
        }
    }

    /// The URL every attempt connects to.
    pub fn url(&self) -> &str {
        &self.session.lifecycle.url
    }

    /// The session these settings describe, its sends capped to what the
    /// transport can carry. Sessions made from this value and its clones
    /// share one copy of the session settings while those are unchanged.
    pub fn session(&self, now: Instant) -> Result<Session, ConfigError> {
        let max = self.transport.max_message_size;
        let mut session_config = self.session.clone();
        session_config.max_send_len = session_config.max_send_len.min(max);
        let shared = self.shared.get(&session_config)?;
        let handshake = MeshHandshake::new(self.credentials.clone(), self.presence.clone())
            .with_headers(self.headers.clone())
            .with_max_frame_len(max);
        let seed = self.seed.unwrap_or_else(random_seed);
        Session::with_shared(&shared, handshake, seed, now)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tether_proto::mesh::identity::{MemberIdentity, SecretKey};

    fn config() -> MeshConfig {
        let me = MemberIdentity {
            mesh_id: "m".into(),
            member_id: "a".into(),
            secret: SecretKey::from_seed([1; 32]),
        };
        MeshConfig::new(
            "ws://127.0.0.1:1/ws",
            Credentials::Member(me),
            Presence::default(),
        )
    }

    fn settings(session: &Session) -> *const Config {
        session.lifecycle().config()
    }

    #[test]
    fn clones_share_one_copy_of_the_session_settings_until_one_changes_them() {
        // proves X4: connections of one configuration hold no copy of their own
        let now = Instant::now();
        let template = config();
        let (a, b) = (template.clone(), template.clone());
        let (a, b) = (a.session(now).unwrap(), b.session(now).unwrap());
        assert!(std::ptr::eq(settings(&a), settings(&b)), "one frozen copy");
        let mut changed = template.clone();
        changed.session.lifecycle.ping_interval = Duration::from_secs(7);
        let c = changed.session(now).unwrap();
        assert!(
            !std::ptr::eq(settings(&a), settings(&c)),
            "a changed clone has its own"
        );
        assert_eq!(c.lifecycle().config().ping_interval, Duration::from_secs(7));
        assert_eq!(
            a.lifecycle().config().ping_interval,
            template.session.lifecycle.ping_interval
        );
    }
}
