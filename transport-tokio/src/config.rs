//! What a client needs to connect.

use tether_proto::lifecycle::Config;
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::Presence;
use tether_proto::mesh::session::SessionConfig;

use tether_host::TlsOptions;

pub use tether_host::{DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE};
/// Pushes buffered per subscriber before a slow one starts missing them.
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 1024;
/// Commands buffered from handles to the driver task.
pub const DEFAULT_COMMAND_CAPACITY: usize = 256;
/// Frames buffered for the socket writer; a socket this far behind is dead.
pub const DEFAULT_WRITE_QUEUE: usize = 4096;

/// Everything `Client::connect` needs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
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
    /// Per-subscriber push buffer.
    pub subscriber_capacity: usize,
    /// tungstenite's read buffer (see [`DEFAULT_READ_BUFFER_SIZE`]).
    pub read_buffer_size: usize,
}

impl ClientConfig {
    /// The seeds' defaults for `url`.
    pub fn new(url: impl Into<String>, credentials: Credentials, presence: Presence) -> Self {
        ClientConfig {
            session: SessionConfig::new(Config::new(url)),
            credentials,
            presence,
            headers: Vec::new(),
            tls: TlsOptions::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            seed: None,
            subscriber_capacity: DEFAULT_SUBSCRIBER_CAPACITY,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
        }
    }
}
