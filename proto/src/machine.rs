//! The one contract a host drives, whatever the protocol.
//!
//! A host (tether-tokio's driver task, tether-mio's reactor, the simulator)
//! knows sockets and clocks and nothing else. It drives any [`Machine`] the same
//! way:
//!
//! - **feed** it with [`Machine::handle`]: socket news (`Opened`, `Frame`,
//!   `Closed`, `ConnectFailed`), the application's `Connect`, `Close`,
//!   `Reconnect`, `RetryNow`, and `Tick` when the deadline comes; every input
//!   carries `now`;
//! - **drain** it with [`Machine::poll_output`] until `None` (the drain rule):
//!   [`Output::Io`] is socket work for the host, [`Output::Event`] is news for
//!   the application, handed on untouched;
//! - **sleep** until [`Machine::next_deadline`], then feed `Tick`.
//!
//! A host that must feed socket news it produced while draining (a write that
//! found the socket dead, an open that failed at once) queues it and feeds it
//! after the drain, never in the middle of one.
//!
//! [`Lifecycle`] implements it for a bare protocol (a [`Handshake`] of your own:
//! frames in, frames out), [`mesh::session::Session`](crate::mesh::session::Session)
//! and [`hosted::Session`](crate::hosted::Session) for theirs. A protocol's own
//! inputs (a mesh send, a hosted control request) are inherent methods of its
//! machine, called by the protocol's thin client layer through the host's one
//! generic call path, and followed by the same drain.

use std::fmt;
use std::time::Instant;

use crate::lifecycle::{
    Action, Event, Handshake, Io, Lifecycle, LifecycleError, Notification, Status, Timer,
};
use crate::time::Now;

/// What draining a machine yields: socket work or news for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<E> {
    /// Socket work the host performs.
    Io(Io),
    /// News for the application, handed on as it is.
    Event(E),
}

/// A pure connection machine a host can drive. See the [module docs](self).
pub trait Machine {
    /// News for the application.
    type Event: fmt::Debug;
    /// The decoded message type inside lifecycle notifications.
    type Message: fmt::Debug;
    /// The decode error inside lifecycle notifications.
    type DecodeError: fmt::Debug + fmt::Display;
    /// The label of a deadline, to say which timer a host sleeps for.
    type Timer: fmt::Debug + fmt::Display;

    /// Feeds one input. Caller misuse is an `Err` that changed nothing; what a
    /// peer or the transport does is news, never an `Err`.
    fn handle(&mut self, now: Now, input: Event) -> Result<(), LifecycleError>;

    /// The next output, in order; `None` when drained.
    #[must_use]
    fn poll_output(&mut self) -> Option<Output<Self::Event>>;

    /// When the host must feed the next `Tick`, and for which timer.
    #[must_use]
    fn next_deadline(&self) -> Option<(Instant, Self::Timer)>;

    /// The connection status.
    fn status(&self) -> Status;

    /// The lifecycle notification inside an event, if it is one: what a host
    /// logs (L14), and what tells it that the first connect succeeded or that
    /// the machine closed for good.
    fn notification(event: &Self::Event) -> Option<&Notification<Self::Message, Self::DecodeError>>;
}

impl<H: Handshake> Machine for Lifecycle<H> {
    type Event = Notification<H::Message, H::DecodeError>;
    type Message = H::Message;
    type DecodeError = H::DecodeError;
    type Timer = Timer;

    fn handle(&mut self, now: Now, input: Event) -> Result<(), LifecycleError> {
        Lifecycle::handle(self, now, input)
    }

    fn poll_output(&mut self) -> Option<Output<Self::Event>> {
        Some(match self.poll_action()? {
            Action::Io(io) => Output::Io(io),
            Action::Notify(note) => Output::Event(note),
        })
    }

    fn next_deadline(&self) -> Option<(Instant, Timer)> {
        Lifecycle::next_deadline(self)
    }

    fn status(&self) -> Status {
        Lifecycle::status(self)
    }

    fn notification(event: &Self::Event) -> Option<&Notification<H::Message, H::DecodeError>> {
        Some(event)
    }
}
