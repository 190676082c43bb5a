//! The one-connection mesh client without async: tether-host's one
//! [`MeshClient`](tether_host::MeshClient) over the generic blocking
//! [`Connection`], the mesh session on a reactor thread of its own, each call
//! blocking until that thread answers.

use tether_host::MeshRouter;
use tether_proto::mesh::session::Session;

use crate::connection::Connection;

/// A blocking handle to one broker connection; clone it freely, use it from any
/// thread. The connection closes when `close` is called or the last clone is
/// dropped, and then its thread is gone. Its calls (`send`, `list_peers`,
/// `recv_push` …) are tether-host's [`MeshClient`](tether_host::MeshClient)'s,
/// each blocking here.
pub type BlockingClient = tether_host::MeshClient<Connection<Session, MeshRouter>>;

/// Builds a [`BlockingClient`]: `BlockingClient::builder(url).identity_file(path)?.connect()`.
pub type ClientBuilder = tether_host::ClientBuilder<BlockingClient>;
