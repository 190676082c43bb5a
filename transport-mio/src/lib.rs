//! # tether-mio
//!
//! The blocking host of tether. One [`Reactor`] (a mio `Poll`) drives any number
//! of connections in one thread (X6), each its own pure
//! [`Machine`](tether_proto::Machine), and of any protocol side by side: mesh
//! sessions ([`Reactor::add`]), hosted sessions or a bare
//! [`Lifecycle`](tether_proto::lifecycle::Lifecycle) with a `Handshake` of your
//! own ([`Reactor::add_machine`] with a [`Router`]). For the one-connection
//! case a reactor runs on a thread of its own behind blocking calls: the generic
//! [`Connection`] and [`GenericClient`], and the mesh [`BlockingClient`] over them.
//!
//! The host only translates, exactly as tether-tokio does and through the same
//! tether-host code (X1): WebSocket messages become machine events, the
//! machine's socket work becomes tungstenite calls, each connection's writes of
//! a turn leave in one batch, and each turn sleeps until the earliest deadline.
//! Every retry, timeout and give-up is the machine's. Nothing blocks the loop:
//! names resolve on helper threads, and TCP connect, TLS and the WebSocket
//! upgrade advance one readiness event at a time.
//!
//! ## Many connections
//!
//! ```no_run
//! # fn demo(configs: Vec<tether_mio::ConnConfig>) -> Result<(), Box<dyn std::error::Error>> {
//! use tether_mio::Reactor;
//! use tether_proto::mesh::session::SessionEvent;
//!
//! let mut reactor = Reactor::new()?;
//! for config in configs {
//!     reactor.add(config)?;
//! }
//! loop {
//!     reactor.run_once(None)?;
//!     while let Some((conn, event)) = reactor.poll_event() {
//!         if let SessionEvent::Push(push) = event {
//!             println!("{conn}: {}", push.message_id);
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! ## One connection
//!
//! Everything a client names is re-exported here, so this crate is the one
//! import. [`BlockingClient::builder`] starts from the seeds' defaults:
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tether_mio::{BlockingClient, Priority};
//!
//! let client = BlockingClient::builder("wss://broker.example/ws")
//!     .identity_file("alice.json")? // written by `tether keygen`
//!     .connect()?;
//! let sent = client.send("bob", "hello", Priority::Next)?;
//! println!("delivered as {}", sent.message_id);
//! client.close();
//! # Ok(()) }
//! ```
//!
//! The builder, the re-exports and the rule for calls made while the
//! connection is away (`tether_proto::mesh::session`, "While the connection is
//! away") are tether-host's and tether-proto's, so this client behaves as
//! tether-tokio's does; [`retry_on_initial_connect`](ClientBuilder::retry_on_initial_connect)
//! hands it back at once while the first connect is tried, with
//! [`BlockingClient::status`] and [`BlockingClient::wait_status`] to watch it.

mod blocking;
mod config;
mod conn;
mod connection;
mod dns;
mod error;
mod hosted;
mod reactor;
mod stream;

pub use blocking::{BlockingClient, ClientBuilder};
pub use config::ConnConfig;
pub use connection::{Connection, GenericClient, Watched};
pub use error::{AddError, HandleError, ReactorError};
pub use hosted::HostedClient;
pub use reactor::{
    ConnId, Reactor, ReactorHandle, ReactorOptions, DEFAULT_EVENTS_PER_TURN, DEFAULT_HANDLE_CAPACITY,
};
pub use tether_host::reexports::*;
