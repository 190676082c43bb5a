//! The lifecycle's contract as a checker: what every machine's outputs must
//! respect, whatever the protocol and whatever its peer does.
//!
//! The lifecycle's own property tests, the simulator's mesh clients and its
//! hosted sessions all feed their outputs through one [`ContractCheck`], so
//! the rules are written once. A host author can run it over a recorded trace
//! too. It is pure bookkeeping: it decides nothing for the machine.

use std::time::Duration;

use super::{Io, Notification, SocketId, Status};
use crate::policy::{is_sendable_close_code, Jitter};

/// A broken rule of the contract, said in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContractViolation(pub String);

/// Recognises the one frame a protocol may write before its connection is open.
pub type HelloTest = fn(&str) -> bool;

/// Follows one machine's outputs and refuses any that break the contract:
/// status changes legal and in order, one socket at a time, nothing written
/// before open but the hello, pings only while open, sendable close codes,
/// reconnect delays within their bounds, nothing after the stop.
#[derive(Clone, Debug)]
pub struct ContractCheck {
    status: Status,
    live: Option<SocketId>,
    texts_before_open: u32,
    hello: Option<HelloTest>,
    stopped: bool,
    delays: Vec<(Duration, Duration)>,
}

fn fail<T>(what: String) -> Result<T, ContractViolation> {
    Err(ContractViolation(what))
}

/// Whether the lifecycle may go from `from` to `to` (its transition table).
pub fn legal_transition(from: Status, to: Status) -> bool {
    matches!(
        (from, to),
        (
            Status::Idle,
            Status::Connecting | Status::Reconnecting | Status::Closed
        ) | (
            Status::Connecting,
            Status::Open | Status::Reconnecting | Status::Closed
        ) | (Status::Open, Status::Reconnecting | Status::Closed)
            | (Status::Reconnecting, Status::Connecting | Status::Closed)
    )
}

impl ContractCheck {
    /// A checker for a machine in `Idle`. `hello` recognises the one frame its
    /// protocol writes before open; `None` for a protocol without a hello,
    /// which may write nothing before open.
    pub fn new(hello: Option<HelloTest>) -> Self {
        ContractCheck {
            status: Status::Idle,
            live: None,
            texts_before_open: 0,
            hello,
            stopped: false,
            delays: Vec::new(),
        }
    }

    /// Allows reconnect delays within the jitter bounds of `nominal`.
    pub fn allow_delay(mut self, nominal: Duration, jitter: Jitter) -> Self {
        self.delays.push(jitter.bounds(nominal));
        self
    }

    /// Allows reconnect delays from `floor` up to its upper jitter bound: a
    /// peer's retry-after, which is only ever spread upwards.
    pub fn allow_floor(mut self, floor: Duration, jitter: Jitter) -> Self {
        let (_, hi) = jitter.bounds(floor);
        self.delays.push((floor, hi));
        self
    }

    /// The status reported so far.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the machine reported closed for good.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The socket the machine asked for and has not given up.
    pub fn live(&self) -> Option<SocketId> {
        self.live
    }

    /// The host lost `socket` (it reported a close or a failed connect).
    pub fn socket_gone(&mut self, socket: SocketId) {
        if self.live == Some(socket) {
            self.live = None;
        }
    }

    /// Checks one piece of socket work the machine asked for.
    pub fn io(&mut self, io: &Io) -> Result<(), ContractViolation> {
        if self.stopped {
            return fail(format!("asked for socket work after it stopped: {io:?}"));
        }
        match io {
            Io::OpenSocket { socket, .. } => {
                if let Some(live) = self.live {
                    return fail(format!("opened {socket:?} while {live:?} was alive"));
                }
                self.live = Some(*socket);
                self.texts_before_open = 0;
            }
            Io::CloseSocket { socket, code, .. } => {
                if !is_sendable_close_code(*code) {
                    return fail(format!("sent the local-only close code {code}"));
                }
                self.give_up(*socket)?;
            }
            Io::TerminateSocket { socket } => self.give_up(*socket)?,
            Io::SendText { socket, text } => {
                if self.live != Some(*socket) {
                    return fail(format!("wrote on {socket:?}, which is not its socket"));
                }
                if self.status != Status::Open {
                    let hello = self.hello.is_some_and(|is_hello| is_hello(text));
                    if !hello || self.texts_before_open > 0 {
                        return fail(format!(
                            "wrote before open something other than one hello: {text}"
                        ));
                    }
                    self.texts_before_open += 1;
                }
            }
            Io::SendPing { socket } => {
                if self.status != Status::Open || self.live != Some(*socket) {
                    return fail(format!("pinged {socket:?} while {:?}", self.status));
                }
            }
        }
        Ok(())
    }

    fn give_up(&mut self, socket: SocketId) -> Result<(), ContractViolation> {
        if self.live != Some(socket) {
            return fail(format!("closed {socket:?}, which is not its socket"));
        }
        self.live = None;
        Ok(())
    }

    /// Checks one notification for the application.
    pub fn notification<M, E>(&mut self, note: &Notification<M, E>) -> Result<(), ContractViolation> {
        match note {
            Notification::StatusChanged { from, to } => {
                if *from != self.status {
                    return fail(format!(
                        "status change from {from:?} reported while {:?}",
                        self.status
                    ));
                }
                if !legal_transition(*from, *to) {
                    return fail(format!("illegal transition {from:?} → {to:?}"));
                }
                self.status = *to;
            }
            Notification::ReconnectScheduled { delay, .. }
                if !self.delays.iter().any(|(lo, hi)| delay >= lo && delay <= hi) =>
            {
                return fail(format!("reconnect delay {delay:?} outside every allowed bound"));
            }
            Notification::Closed { .. } if self.stopped => {
                return fail("closed for good twice".into());
            }
            Notification::Closed { .. } => self.stopped = true,
            _ => {}
        }
        Ok(())
    }

    /// Checks the machine's state after a drain: the status it reports is the
    /// one it announced, and a stopped machine holds no timer and no socket.
    pub fn after_drain(
        &self,
        status: Status,
        has_deadline: bool,
        socket: Option<SocketId>,
    ) -> Result<(), ContractViolation> {
        if status != self.status {
            return fail(format!("status is {status:?}, announced {:?}", self.status));
        }
        if self.stopped && (has_deadline || socket.is_some() || self.live.is_some()) {
            return fail("a timer or a socket survived the stop".into());
        }
        Ok(())
    }
}
