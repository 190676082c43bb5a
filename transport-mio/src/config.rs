//! What one connection needs.

use std::hash::{BuildHasher, Hasher};

use tether_proto::lifecycle::Config;
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::Presence;
use tether_proto::mesh::session::SessionConfig;
use tungstenite::protocol::WebSocketConfig;

use tether_host::TlsOptions;

pub use tether_host::{DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE};
/// Frames waiting behind a socket that does not take them; a socket this far
/// behind is dead and is reported closed (1006, "write queue full").
pub const DEFAULT_WRITE_QUEUE: usize = 1024;
/// Pushes and events buffered per receiver of a [`BlockingClient`](crate::BlockingClient).
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 1024;

/// Everything one connection needs; the mio counterpart of tether-tokio's `ClientConfig`.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Session and lifecycle settings; the URL lives in `session.lifecycle.url`.
    pub session: SessionConfig,
    /// Who connects.
    pub credentials: Credentials,
    /// Presence fields of the hello.
    pub presence: Presence,
    /// Extra request headers on every attempt.
    pub headers: Vec<(String, String)>,
    /// `wss://` trust settings.
    pub tls: TlsOptions,
    /// Largest inbound or outbound WebSocket message.
    pub max_message_size: usize,
    /// Seed of the session's jitter and ids; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// tungstenite's read buffer (see [`DEFAULT_READ_BUFFER_SIZE`]).
    pub read_buffer_size: usize,
    /// Frames queued behind a blocked socket before it is declared dead.
    pub write_queue: usize,
    /// Per-receiver buffer of a `BlockingClient`'s pushes and events; unused by a
    /// bare [`Reactor`](crate::Reactor).
    pub subscriber_capacity: usize,
}

impl ConnConfig {
    /// The seeds' defaults for `url`.
    pub fn new(url: impl Into<String>, credentials: Credentials, presence: Presence) -> Self {
        ConnConfig {
            session: SessionConfig::new(Config::new(url)),
            credentials,
            presence,
            headers: Vec::new(),
            tls: TlsOptions::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            seed: None,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            write_queue: DEFAULT_WRITE_QUEUE,
            subscriber_capacity: DEFAULT_SUBSCRIBER_CAPACITY,
        }
    }

    pub(crate) fn ws_config(&self) -> WebSocketConfig {
        // write_buffer_size 0: every frame goes to the socket at once; buffering
        // would only keep a second copy of what the session already batches.
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(0)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

/// A seed from the OS's per-process hash keys: enough to decorrelate clients'
/// jitter without another dependency.
pub(crate) fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
