//! # tether-tokio
//!
//! The async host of tether. One task owns the WebSocket (tokio-tungstenite) and
//! a pure [`Machine`](tether_proto::Machine) — any of them: the mesh session
//! behind [`Client`], a bare [`Lifecycle`](tether_proto::lifecycle::Lifecycle)
//! with a `Handshake` of your own behind [`GenericClient`], or a session layer
//! of your own behind [`Connection`] with a [`Router`]. The task only
//! translates, through tether-host: WebSocket messages become machine events,
//! the machine's socket work becomes tungstenite calls, and it sleeps until the
//! machine's next deadline. Every decision — retry, give up, time out — is the
//! machine's, so this host behaves exactly like the blocking one and the
//! simulator (X1, X14).
//!
//! ## The mesh client
//!
//! Everything a client names is re-exported here, so this crate is the one
//! import. [`Client::builder`] starts from the seeds' defaults:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tether_tokio::{Client, Priority};
//!
//! let client = Client::builder("wss://broker.example/ws")
//!     .identity_file("alice.json")? // written by `tether keygen`
//!     .connect()
//!     .await?;
//! let sent = client.send("bob", "hello", Priority::Next).await?;
//! println!("delivered as {}", sent.message_id);
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! With [`retry_on_initial_connect`](ClientBuilder::retry_on_initial_connect)
//! the client comes back at once while the first connect is still being
//! tried; [`Client::status`] shows where it is and [`Client::connected`] waits
//! for the first open. What sends, requests and commands do while the
//! connection is away (sends wait under a deadline, 60 s by default; requests
//! and commands are refused at once) is one rule, the session's, the same on
//! both hosts: see `tether_proto::mesh::session` ("While the connection is
//! away"). The nested [`ClientConfig`] stays reachable through
//! [`with_config`](ClientBuilder::with_config) and [`Client::connect`].

mod client;
mod config;
mod connection;
mod driver;
mod handoff;
mod hosted;
mod stream;

pub use client::{Client, ClientBuilder, Connecting, Subscription};
pub use config::ClientConfig;
pub use connection::{Connection, GenericClient, DEFAULT_COMMAND_CAPACITY};
pub use hosted::HostedClient;
pub use tether_host::reexports::*;
