//! The client of a protocol of your own: every event to every subscriber.

use std::sync::Arc;

use tether_proto::{Machine, Now};

use crate::drive::Drive;
use crate::error::{ConnectError, Shutdown};
use crate::fanout::{Fanout, Receiver};
use crate::router::Broadcast;
use crate::transport::Transport;

/// A connection whose every event goes to every subscriber: the whole client
/// of a protocol of your own (a bare `Lifecycle` with your `Handshake`, or a
/// session layer of your own), on either host.
pub struct GenericClient<C: Drive> {
    conn: C,
    events: Arc<Fanout<<C::Machine as Machine>::Event>>,
}

impl<C: Drive + Clone> Clone for GenericClient<C> {
    fn clone(&self) -> Self {
        GenericClient {
            conn: self.conn.clone(),
            events: Arc::clone(&self.events),
        }
    }
}

impl<C: Drive + std::fmt::Debug> std::fmt::Debug for GenericClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.conn.fmt(f)
    }
}

impl<C, E> GenericClient<C>
where
    C: Drive<Router = Broadcast<E>>,
    C::Machine: Machine<Event = E>,
    E: Clone + Send + 'static,
{
    /// Starts driving `machine` at once; subscribe with [`events`](Self::events)
    /// before waiting for [`connected`](Drive::connected) to see the first attempt.
    pub fn spawn(machine: C::Machine, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let (router, events) = Broadcast::with_fanout(transport.subscriber_capacity);
        let conn = C::spawn(machine, router, url, transport)?;
        Ok(GenericClient { conn, events })
    }

    /// Starts and waits for the first open (L8); on failure nothing is left
    /// running (D1).
    pub fn connect(
        machine: C::Machine,
        url: &str,
        transport: &Transport,
    ) -> C::Wait<'static, Result<Self, ConnectError>> {
        match Self::spawn(machine, url, transport) {
            Ok(client) => {
                let events = client.events;
                C::map(client.conn.opened(), move |r| {
                    r.map(|conn| GenericClient { conn, events })
                })
            }
            Err(e) => C::ready(Err(e)),
        }
    }
}

impl<C: Drive> GenericClient<C>
where
    <C::Machine as Machine>::Event: Clone,
{
    /// Every event of the machine (after `spawn` the first call's receiver
    /// from the start; after `connect` returns, and later ones, from now on);
    /// ends after the close.
    pub fn events(&self) -> Receiver<<C::Machine as Machine>::Event> {
        self.events.subscribe()
    }
}

impl<C: Drive> GenericClient<C> {
    /// Runs `f` with the machine (send a frame, read a counter …); the machine
    /// is drained right after.
    pub fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut C::Machine, Now) -> T + Send + 'static,
    ) -> C::Wait<'_, Result<T, Shutdown>> {
        self.conn.with(f)
    }

    /// The connection underneath (status, control, close).
    pub fn connection(&self) -> &C {
        &self.conn
    }
}

impl<C: Drive> std::ops::Deref for GenericClient<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}
