//! The thin tokio host of the core: accept loop, one task per WebSocket, and one
//! actor task that owns the [`Broker`](crate::core::Broker) and alone reads clocks.
//!
//! ```text
//! accept loop ──spawns──▶ connection task ──Event──▶ actor (owns Broker) ──Command──▶ connection task
//! ```
//!
//! Connection tasks only move bytes: inbound frames and pongs become events, the
//! actor's outputs become WebSocket messages. Each connection's outbound queue is
//! bounded in frames and in bytes; a consumer too slow to drain it, or one whose
//! socket does not take a write within `write_timeout`, is disconnected at once (its
//! task ends and its queue is freed) and counted.

mod accept;
mod actor;
mod connection;
mod error;
mod handle;
mod tls;
mod trim;

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::BrokerConfig;

pub use error::{ServerError, TlsError};
pub use handle::{BrokerHandle, ServerStats};
pub use tls::{TlsFiles, TlsSetup};

/// Settings of the server around the core.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The core's settings.
    pub broker: BrokerConfig,
    /// Largest WebSocket message (and frame) accepted, in bytes.
    pub max_message_size: usize,
    /// Commands queued per connection before it is dropped as a slow consumer.
    pub outbound_capacity: usize,
    /// Bytes of frames queued per connection before it is dropped as a slow consumer.
    pub max_outbound_bytes: usize,
    /// A write to a socket that does not finish within this closes the connection
    /// and frees its queue at once (a peer that never reads).
    pub write_timeout: Duration,
    /// Time allowed for the TLS and WebSocket handshakes of a new connection.
    pub handshake_timeout: Duration,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_linger: Duration,
    /// tungstenite's read buffer per connection. Its default (128 KiB) is that much
    /// memory per connection and a zero-fill of up to that much before every read;
    /// the protocol's frames are small, and a larger one grows the buffer while it
    /// is read.
    pub read_buffer_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let broker = BrokerConfig::default();
        ServerConfig {
            // The core's frame cap: a bigger message is not buffered; the core is
            // told and answers with an error and close 1009.
            max_message_size: broker.max_frame_len,
            broker,
            outbound_capacity: 1024,
            max_outbound_bytes: 4 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            close_linger: Duration::from_secs(1),
            read_buffer_size: 4 * 1024,
        }
    }
}

/// Starts brokers.
#[derive(Debug)]
pub struct BrokerServer;

impl BrokerServer {
    /// Binds `listen` (port 0 picks a free port; SO_REUSEADDR is set so a restart can
    /// bind the same address at once) and starts serving `ws://` or, with `tls`, `wss://`.
    pub async fn start(
        config: ServerConfig,
        listen: SocketAddr,
        tls: Option<TlsSetup>,
    ) -> Result<BrokerHandle, ServerError> {
        config.broker.validate()?;
        let tls = tls.map(TlsSetup::load).transpose()?;
        handle::start(config, listen, tls).await
    }
}
