//! The invariants checked after every step of a simulation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tether_proto::lifecycle::{Io, Notification, SocketId, Status};
use tether_proto::mesh::session::{OpId, SessionAction, SessionEvent, SessionStats};
use tether_proto::mesh::wire::{decode_client_frame, ClientFrame};
use tether_proto::policy::Jitter;

/// A broken invariant: what, where, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// What one client's outputs must respect, tracked as they happen.
#[derive(Debug)]
pub struct ClientCheck {
    /// Index of the client.
    pub index: usize,
    /// Status as reported so far.
    pub status: Status,
    /// The socket it asked for and has not given up.
    pub live: Option<SocketId>,
    /// Whether the hello of the current socket was sent.
    hello_sent: bool,
    /// It reported closed for good.
    pub stopped: bool,
    /// Ops issued and not yet resolved.
    pub pending: BTreeSet<OpId>,
    /// Ops resolved.
    pub resolved: BTreeSet<OpId>,
    /// Since when it has not been open (virtual time).
    pub not_open_since: Duration,
    /// Nominal reconnect delays allowed and the jitter on them.
    nominals: Vec<Duration>,
    jitter: Jitter,
}

impl ClientCheck {
    /// A checker for client `index` with these allowed nominal delays.
    pub fn new(index: usize, nominals: Vec<Duration>, jitter: Jitter) -> Self {
        ClientCheck {
            index,
            status: Status::Idle,
            live: None,
            hello_sent: false,
            stopped: false,
            pending: BTreeSet::new(),
            resolved: BTreeSet::new(),
            not_open_since: Duration::ZERO,
            nominals,
            jitter,
        }
    }

    fn fail(&self, what: String) -> Result<(), Violation> {
        Err(Violation(format!("client {}: {what}", self.index)))
    }

    /// The host lost the socket (it reported a close or a failed connect).
    pub fn socket_gone(&mut self, socket: SocketId) {
        if self.live == Some(socket) {
            self.live = None;
        }
    }

    /// An op was issued.
    pub fn issued(&mut self, id: OpId) -> Result<(), Violation> {
        if self.resolved.contains(&id) || !self.pending.insert(id) {
            return self.fail(format!("op id {id:?} issued twice"));
        }
        Ok(())
    }

    /// Checks one action of the client's session.
    pub fn action(&mut self, now: Duration, action: &SessionAction) -> Result<(), Violation> {
        match action {
            SessionAction::Io(Io::OpenSocket { socket, .. }) => {
                if self.stopped {
                    return self.fail("opened a socket after it stopped".into());
                }
                if let Some(live) = self.live {
                    return self.fail(format!("opened {socket:?} while {live:?} was alive"));
                }
                self.live = Some(*socket);
                self.hello_sent = false;
            }
            SessionAction::Io(Io::CloseSocket { socket, code, .. }) => {
                if !tether_proto::policy::is_sendable_close_code(*code) {
                    return self.fail(format!("sent the local-only close code {code}"));
                }
                self.socket_gone(*socket);
            }
            SessionAction::Io(Io::TerminateSocket { socket }) => self.socket_gone(*socket),
            SessionAction::Io(Io::SendText { socket, text }) => {
                if self.live != Some(*socket) {
                    return self.fail(format!("wrote on {socket:?}, which is not its socket"));
                }
                if self.status != Status::Open {
                    let is_hello = matches!(decode_client_frame(text, usize::MAX), Ok(ClientFrame::Hello(_)));
                    if !is_hello || self.hello_sent {
                        return self.fail(format!("sent something other than one hello before open: {text}"));
                    }
                    self.hello_sent = true;
                }
            }
            SessionAction::Io(Io::SendPing { .. }) => {
                if self.status != Status::Open {
                    return self.fail("pinged while not open".into());
                }
            }
            SessionAction::Event(SessionEvent::Lifecycle(note)) => match note {
                Notification::StatusChanged { from, to } => {
                    if *from != self.status {
                        return self.fail(format!(
                            "status change from {from:?} reported while {:?}",
                            self.status
                        ));
                    }
                    let legal = matches!(
                        (from, to),
                        (
                            Status::Idle,
                            Status::Connecting | Status::Reconnecting | Status::Closed
                        ) | (
                            Status::Connecting,
                            Status::Open | Status::Reconnecting | Status::Closed
                        ) | (Status::Open, Status::Reconnecting | Status::Closed)
                            | (Status::Reconnecting, Status::Connecting | Status::Closed)
                    );
                    if !legal {
                        return self.fail(format!("illegal transition {from:?} → {to:?}"));
                    }
                    if *from == Status::Open {
                        self.not_open_since = now;
                    }
                    self.status = *to;
                }
                Notification::ReconnectScheduled { delay, .. } => {
                    let fits = self.nominals.iter().any(|n| {
                        let (lo, hi) = self.jitter.bounds(*n);
                        *delay >= lo && *delay <= hi
                    });
                    if !fits {
                        return self.fail(format!("reconnect delay {delay:?} outside every allowed bound"));
                    }
                }
                Notification::Closed { .. } => {
                    if self.stopped {
                        return self.fail("closed for good twice".into());
                    }
                    self.stopped = true;
                }
                _ => {}
            },
            SessionAction::Event(SessionEvent::Resolved { id, .. }) => {
                if !self.pending.remove(id) {
                    return self.fail(format!("op {id:?} resolved twice or never issued"));
                }
                self.resolved.insert(*id);
            }
            SessionAction::Event(_) => {}
        }
        Ok(())
    }

    /// Checks the caps and the closed state after a step.
    pub fn after_step(
        &self,
        stats: &SessionStats,
        next_deadline: bool,
        caps: (usize, usize, usize),
    ) -> Result<(), Violation> {
        let (queue, in_flight, history) = caps;
        if stats.queue_depth > queue || stats.in_flight > in_flight || stats.history_len > history {
            return self.fail(format!(
                "a buffer over its cap: queue {}, in flight {}, history {}",
                stats.queue_depth, stats.in_flight, stats.history_len
            ));
        }
        if self.stopped && (next_deadline || self.live.is_some()) {
            return self.fail("a timer or a socket survived the stop".into());
        }
        Ok(())
    }
}

/// End-to-end bookkeeping of messages: what was sent, what arrived where.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// client_message_id → (sender index, body).
    pub sent: BTreeMap<String, (usize, String)>,
    /// (recipient, client_message_id) → times delivered to the application.
    pub delivered: BTreeMap<(usize, String), u32>,
}

impl Deliveries {
    /// Records a push delivered to `recipient`'s application.
    pub fn delivered(
        &mut self,
        recipient: usize,
        cmid: Option<&str>,
        body: &str,
        sender_key: &str,
        keys: &[String],
    ) -> Result<(), Violation> {
        let Some(cmid) = cmid else {
            return Err(Violation(format!(
                "client {recipient}: a push without client_message_id"
            )));
        };
        match self.sent.get(cmid) {
            None => {
                return Err(Violation(format!(
                    "client {recipient}: delivered {cmid}, which nobody sent"
                )))
            }
            Some((sender, sent_body)) => {
                if sent_body != body || keys.get(*sender).map(String::as_str) != Some(sender_key) {
                    return Err(Violation(format!("client {recipient}: {cmid} arrived altered")));
                }
            }
        }
        let n = self.delivered.entry((recipient, cmid.to_owned())).or_insert(0);
        *n += 1;
        if *n > 1 {
            return Err(Violation(format!(
                "client {recipient}: {cmid} delivered {n} times"
            )));
        }
        Ok(())
    }
}
