//! # tether-host
//!
//! The socket side of tether, written once for both hosts so they behave the
//! same because they run the same code: where an attempt goes and its upgrade
//! request ([`Target`], `wss:` detected in any case), what a WebSocket message
//! or error means to the machine ([`inbound`], [`closed_by`]), the one bounded
//! [`WriteQueue`] and its one overflow rule, the close linger, the one
//! [`Transport`] configuration (TLS trust and client certificates, the
//! CONNECT [`Proxy`], message and buffer sizes), clocks
//! and seeds, the log lines, the client error and event types, and the clients themselves: one
//! [`MeshClient`], [`HostedClient`] and [`GenericClient`] over either host's
//! connection ([`Drive`]), so each call is written once. It decides
//! nothing a simulator would need to see: every retry and give-up is the
//! machine's (tether-proto).

mod builder;
mod client;
mod drive;
mod error;
mod fanout;
mod hosted;
pub mod identity;
mod log;
mod mesh;
pub mod oneshot;
mod proxy;
mod queue;
pub mod reexports;
pub mod replies;
mod router;
mod socket;
mod tls;
mod transport;

pub use builder::{ClientBuilder, StartMesh};
pub use client::{GenericClient, HostedClient, MeshClient, MeshDrive};
pub use drive::{fmt_connection, Blocking, Drive};
pub use error::{
    first_connect, replied, sent, ClientError, ClientEvent, ConnectError, Sent, Shutdown, CLOSED,
};
pub use fanout::{Fanout, Receiver, TryRecvError};
pub use hosted::{HostedCallError, HostedClientConfig};
pub use identity::{IdentityError, IdentityFile, SessionFile};
pub use log::{log_open, log_overflow, log_step};
pub use mesh::{MeshConfig, MeshParts};
pub use proxy::{bypasses, proxy_for, Proxy, ProxyEnv, ProxyError, ProxyUrl, Tunnel, Wants};
pub use queue::{queue_write, IoStats, QueueFull, WriteQueue};
pub use router::{Broadcast, MeshRouter, Router, Waiter};
pub use socket::{
    after_headers, close_message, closed_by, connect_failed, connect_failure_kind, inbound, is_secure,
    message_len, misconfigured, outbound, queue_overflowed, stream_ended, Target, WRITE_QUEUE_FULL,
};
pub use tls::{ClientCert, Roots, TlsError, TlsOptions};
pub use transport::{
    next_serial, now, random_seed, unix_ms, AttemptSettings, Transport, CLOSE_LINGER,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE, DEFAULT_SUBSCRIBER_CAPACITY, DEFAULT_WRITE_QUEUE,
    DEFAULT_WRITE_QUEUE_BYTES,
};
