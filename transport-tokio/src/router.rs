//! Where a machine's news goes: the one hook a protocol's client layer adds to
//! the generic driver.

use std::sync::Arc;

use tether_host::Fanout;
use tether_proto::Machine;

/// Takes a machine's events on the driver task, as they are drained.
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
