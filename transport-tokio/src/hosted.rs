//! The hosted session client: tether-host's one [`HostedClient`](tether_host::HostedClient)
//! over this host's [`Connection`], its calls futures.

use tether_host::Broadcast;
use tether_proto::hosted::{HostedEvent, Session};

use crate::connection::Connection;

/// A handle to one hosted session socket (`sessions-websocket.ts`); clone it
/// freely. It closes when `close` is called or the last handle is dropped.
/// Its calls are tether-host's [`HostedClient`](tether_host::HostedClient)'s,
/// each a future here.
pub type HostedClient = tether_host::HostedClient<Connection<Session, Broadcast<HostedEvent>>>;
