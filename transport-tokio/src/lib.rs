//! # tether-tokio
//!
//! The async host of tether. One task owns the WebSocket (tokio-tungstenite) and
//! the pure [`tether_proto`] session; a cloneable [`Client`] talks to it. The task
//! only translates: tungstenite messages become session events, the session's
//! socket work becomes tungstenite calls, and it sleeps until the session's next
//! deadline. Every decision — retry, give up, time out — is the session's, so this
//! host behaves exactly like the blocking one and the simulator (X1).
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
mod driver;

pub use client::{Client, Subscription};
pub use config::{
    ClientConfig, DEFAULT_COMMAND_CAPACITY, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE,
    DEFAULT_SUBSCRIBER_CAPACITY, DEFAULT_WRITE_QUEUE,
};
pub use tether_host::{ClientError, ClientEvent, ConnectError, Roots, Sent, TlsError, TlsOptions};
