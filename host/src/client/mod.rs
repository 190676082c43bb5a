//! The client types of every protocol, written once over [`Drive`](crate::Drive):
//! each host names them with its own connection type (tether-tokio's `Client`
//! is `MeshClient<tether_tokio::Connection<…>>`, tether-mio's `BlockingClient`
//! is `MeshClient<tether_mio::Connection<…>>`), so a verb exists once, not
//! once per host.

mod generic;
mod hosted;
mod mesh;

pub use generic::GenericClient;
pub use hosted::HostedClient;
pub use mesh::{MeshClient, MeshDrive};
