//! Where a machine's news goes: the one hook a protocol's client layer adds to
//! a host, the same on both.

use std::collections::HashMap;
use std::sync::Arc;

use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{OpId, OpResult, Session, SessionEvent};
use tether_proto::Machine;

use crate::error::ClientEvent;
use crate::fanout::Fanout;

/// Takes a machine's events on the host's thread or task, as they are drained.
///
/// A protocol's client layer implements it to resolve its waiters and fan out
/// its news; [`Broadcast`] hands every event to every subscriber, which is all a
/// protocol of your own needs.
pub trait Router<M: Machine>: Send + 'static {
    /// One event, in order.
    fn route(&mut self, event: M::Event);
    /// The driver is ending: nothing more will be routed.
    fn closed(&mut self);
}

/// Every event to every subscriber (bounded each, a slow one losing its oldest).
#[derive(Debug)]
pub struct Broadcast<E> {
    fanout: Arc<Fanout<E>>,
}

impl<E: Clone> Broadcast<E> {
    /// A router publishing to `fanout`.
    pub fn new(fanout: Arc<Fanout<E>>) -> Self {
        Broadcast { fanout }
    }

    /// A router and the queue it publishes to, holding up to `capacity` per
    /// subscriber; the first subscriber sees everything from the start.
    pub fn with_fanout(capacity: usize) -> (Self, Arc<Fanout<E>>) {
        let fanout = Arc::new(Fanout::with_first(capacity));
        (Broadcast::new(Arc::clone(&fanout)), fanout)
    }
}

impl<M> Router<M> for Broadcast<M::Event>
where
    M: Machine,
    M::Event: Clone + Send + 'static,
{
    fn route(&mut self, event: M::Event) {
        self.fanout.publish(event);
    }

    fn closed(&mut self) {
        self.fanout.close();
    }
}

/// What runs when a mesh send or request resolves, on the host's thread or task.
pub type Waiter = Box<dyn FnOnce(OpResult) + Send>;

/// Routes the mesh session's news: each result to its waiter (X3), pushes and
/// everything else to their subscribers. Both hosts' mesh clients use it.
pub struct MeshRouter {
    /// Keyed by the session's own sequential ids: nothing a peer chooses, so a
    /// fixed-seed hash is safe, and SipHash was measurable per call.
    waiters: HashMap<OpId, Waiter, foldhash::fast::FixedState>,
    pushes: Arc<Fanout<Arc<Push>>>,
    events: Arc<Fanout<ClientEvent>>,
}

impl std::fmt::Debug for MeshRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshRouter")
            .field("waiters", &self.waiters.len())
            .finish_non_exhaustive()
    }
}

impl MeshRouter {
    /// A router publishing to these fanouts.
    pub fn new(pushes: Arc<Fanout<Arc<Push>>>, events: Arc<Fanout<ClientEvent>>) -> Self {
        MeshRouter {
            waiters: HashMap::default(),
            pushes,
            events,
        }
    }

    /// Runs `done` with the result of `op` when it resolves. File it before the
    /// drain that follows the call which returned `op`.
    pub fn on_resolved(&mut self, op: OpId, done: Waiter) {
        self.waiters.insert(op, done);
    }
}

impl Router<Session> for MeshRouter {
    fn route(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Resolved { id, result } => {
                if let Some(done) = self.waiters.remove(&id) {
                    done(result);
                }
            }
            // No subscriber is fine: the push is also in the history buffer.
            SessionEvent::Push(push) => self.pushes.publish(push),
            SessionEvent::Inbound(frame) => self.events.publish(ClientEvent::Inbound(frame)),
            SessionEvent::Lifecycle(note) => self.events.publish(ClientEvent::Lifecycle(note)),
        }
    }

    fn closed(&mut self) {
        self.pushes.close();
        self.events.close();
    }
}
