//! The mesh client: tether-host's one [`MeshClient`](tether_host::MeshClient)
//! over this host's [`Connection`], each call a future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tether_host::{ConnectError, MeshRouter, Receiver};
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::Session;

use crate::connection::Connection;

/// A handle to one broker connection; clone it freely. The connection closes
/// when `close` is called or the last handle is dropped. Its calls (`send`,
/// `list_peers`, `set_state` …) are tether-host's
/// [`MeshClient`](tether_host::MeshClient)'s, each a future here.
pub type Client = tether_host::MeshClient<Connection<Session, MeshRouter>>;

/// Builds a [`Client`]: `Client::builder(url).identity_file(path)?.connect().await`.
pub type ClientBuilder = tether_host::ClientBuilder<Client>;

/// What [`ClientBuilder::connect`] returns: the connect, to be awaited.
pub type Connecting = Pin<Box<dyn Future<Output = Result<Client, ConnectError>> + Send>>;

/// A stream of pushes (`recv().await`, or a `Stream`). A subscriber that falls
/// more than the configured capacity behind misses the oldest ones; its
/// `missed()` counts them (X4).
pub type Subscription = Receiver<Arc<Push>>;
