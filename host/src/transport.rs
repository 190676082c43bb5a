//! The one transport configuration of both hosts, and what every connection
//! needs from the environment: clocks and a seed.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tether_proto::Now;
use tungstenite::protocol::WebSocketConfig;

use crate::proxy::{Proxy, ProxyError, ProxyUrl};
use crate::queue::WriteQueue;
use crate::socket::Target;
use crate::tls::{TlsError, TlsOptions};

/// Largest WebSocket message accepted by default (matches the session's send limit).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// tungstenite's read buffer per connection, by default.
///
/// tungstenite's own default (128 KiB) costs that much memory per connection and,
/// worse, zero-fills up to that much before every read, even one that finds
/// nothing: on a busy loopback that fill was 40 % of all CPU time. Frames of this
/// protocol are small; 2 KiB holds a typical push or ack whole, and a larger
/// message grows the buffer only while it is read.
pub const DEFAULT_READ_BUFFER_SIZE: usize = 2 * 1024;

/// Frames waiting behind a socket that does not take them; a socket this far
/// behind is dead and is reported closed (1006, "write queue full"). The
/// session's own queues bound what it writes in one go far below this.
pub const DEFAULT_WRITE_QUEUE: usize = 1024;

/// Bytes waiting behind such a socket: four of the largest messages.
pub const DEFAULT_WRITE_QUEUE_BYTES: usize = 4 * DEFAULT_MAX_MESSAGE_SIZE;

/// Items buffered per subscriber (pushes, events) before a slow one misses the
/// oldest; the buffer grows only as far as a subscriber falls behind.
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 1024;

/// How long a socket we close waits for the peer's close frame (and for its
/// own last frames to leave) before it is dropped anyway (RFC 6455 §7.1.1: the
/// closer waits for the answer, within reason).
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The socket side of a connection, the same on both hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// `wss://` trust settings and the client certificate.
    pub tls: TlsOptions,
    /// HTTP CONNECT proxy for ws and wss (S8); by default from the environment.
    pub proxy: Proxy,
    /// Largest inbound or outbound WebSocket message.
    pub max_message_size: usize,
    /// tungstenite's read buffer (see [`DEFAULT_READ_BUFFER_SIZE`]).
    pub read_buffer_size: usize,
    /// Frames queued behind a blocked socket before it is declared dead.
    pub write_queue: usize,
    /// Bytes queued behind a blocked socket before it is declared dead.
    pub write_queue_bytes: usize,
    /// Per-subscriber buffer of a client's pushes and events.
    pub subscriber_capacity: usize,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            tls: TlsOptions::default(),
            proxy: Proxy::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            write_queue: DEFAULT_WRITE_QUEUE,
            write_queue_bytes: DEFAULT_WRITE_QUEUE_BYTES,
            subscriber_capacity: DEFAULT_SUBSCRIBER_CAPACITY,
        }
    }
}

impl Transport {
    /// tungstenite's settings for these limits.
    pub fn ws_config(&self) -> WebSocketConfig {
        ws_config(self.read_buffer_size, self.max_message_size)
    }

    /// What a connection keeps of these settings for its later attempts.
    pub fn attempt_settings(&self) -> AttemptSettings {
        AttemptSettings {
            read_buffer_size: self.read_buffer_size,
            max_message_size: self.max_message_size,
            write_queue: (self.write_queue, self.write_queue_bytes),
            proxy: (self.proxy != Proxy::Environment).then(|| Box::new(self.proxy.clone())),
        }
    }

    /// The rustls configuration `url` needs: `Some` for `wss:` (any case).
    pub fn tls_for(&self, url: &str) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
        if crate::socket::is_secure(url) {
            self.tls.client_config().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// What one connection keeps of its [`Transport`] for every later attempt:
/// tungstenite's limits, the write queue's bounds and the proxy setting.
///
/// Both hosts keep this instead of a `WebSocketConfig` (64 bytes), the two
/// bounds and a [`Proxy`] (96 bytes, though nearly every connection has the
/// default): 40 bytes a connection (memory per idle connection counts).
#[derive(Clone, Debug)]
pub struct AttemptSettings {
    read_buffer_size: usize,
    max_message_size: usize,
    write_queue: (usize, usize),
    /// `None` for the default, [`Proxy::Environment`].
    proxy: Option<Box<Proxy>>,
}

impl AttemptSettings {
    /// tungstenite's settings for each socket (as [`Transport::ws_config`]).
    pub fn ws_config(&self) -> WebSocketConfig {
        ws_config(self.read_buffer_size, self.max_message_size)
    }

    /// An empty write queue with the transport's bounds, for a new socket.
    pub fn write_queue(&self) -> WriteQueue {
        WriteQueue::new(self.write_queue.0, self.write_queue.1)
    }

    /// The proxy an attempt to `target` goes through ([`Proxy::for_target`]).
    pub fn proxy_for(&self, target: &Target) -> Result<Option<ProxyUrl>, ProxyError> {
        match &self.proxy {
            Some(proxy) => proxy.for_target(target),
            None => Proxy::Environment.for_target(target),
        }
    }
}

fn ws_config(read_buffer_size: usize, max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer_size)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// The wall clock in Unix milliseconds (0 before 1970, saturating far after).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Both clocks, read together: the time input of every step.
pub fn now() -> Now {
    Now::new(Instant::now(), unix_ms())
}

/// The next number of a process-wide count, from 1: each host numbers its
/// connections (tokio) or reactors (mio) with it, so two clients' ids never
/// print the same.
pub fn next_serial() -> u64 {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A seed for a connection's session, from the OS's random bytes.
///
/// proto takes its randomness as an input (a run replays exactly from its seed),
/// so this is where the entropy of jitter (D5), generated ids and the nonces of
/// direct messages (B14) comes from when the caller leaves the seed unset. Should
/// the OS refuse, the per-process hash keys (also OS-seeded) over the clock
/// still decorrelate clients.
pub fn random_seed() -> u64 {
    if let Ok(seed) = getrandom::u64() {
        return seed;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
