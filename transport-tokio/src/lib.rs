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
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tether_proto::mesh::handshake::Credentials;
//! use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
//! use tether_proto::mesh::wire::Priority;
//! use tether_tokio::{Client, ClientConfig};
//!
//! let me = MemberIdentity {
//!     mesh_id: "mesh-1".into(),
//!     member_id: "member-1".into(),
//!     secret: SecretKey::from_hex(&std::env::var("TETHER_SECRET")?)?,
//! };
//! let config = ClientConfig::new("wss://broker.example/ws", Credentials::Member(me), Presence::default());
//! let client = Client::connect(config).await?;
//! let sent = client.send("alice", "hello", Priority::Next).await?;
//! println!("delivered as {}", sent.message_id);
//! client.close().await;
//! # Ok(()) }
//! ```

mod client;
mod config;
mod connection;
mod driver;
mod hosted;

pub use client::{Client, Subscription};
pub use config::ClientConfig;
pub use connection::{Connection, GenericClient, Shutdown, DEFAULT_COMMAND_CAPACITY};
pub use hosted::HostedClient;
pub use tether_host::{
    Broadcast, ClientError, ClientEvent, ConnectError, HostedCallError, HostedClientConfig, IdentityError,
    IdentityFile, MeshRouter, Receiver, Roots, Router, Sent, SessionFile, TlsError, TlsOptions, Transport,
    TryRecvError, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE, DEFAULT_SUBSCRIBER_CAPACITY,
    DEFAULT_WRITE_QUEUE,
};
