//! The invariants checked after every step of a simulation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tether_proto::lifecycle::{Config, ContractCheck, SocketId, Status};
use tether_proto::mesh::session::{OpId, SessionAction, SessionEvent, SessionStats};
use tether_proto::mesh::wire::{decode_client_frame, ClientFrame};

/// A broken invariant: what, where, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// What one client's outputs must respect, tracked as they happen: the
/// lifecycle's contract (one checker for proto's property tests and every
/// simulated machine) plus the mesh session's own ops and buffers.
#[derive(Debug)]
pub struct ClientCheck {
    /// Index of the client.
    pub index: usize,
    contract: ContractCheck,
    /// Ops issued and not yet resolved.
    pub pending: BTreeSet<OpId>,
    /// Ops resolved.
    pub resolved: BTreeSet<OpId>,
    /// Since when it has not been open (virtual time).
    pub not_open_since: Duration,
}

fn is_hello(text: &str) -> bool {
    matches!(decode_client_frame(text, usize::MAX), Ok(ClientFrame::Hello(_)))
}

impl ClientCheck {
    /// The contract of a client made with `config` whose broker may ask for
    /// the retry-after delays `hints`: one per world, cloned for each client.
    pub fn contract_for(config: &Config, hints: impl IntoIterator<Item = Duration>) -> ContractCheck {
        let mut contract = ContractCheck::for_config(config, Some(is_hello));
        for hint in hints {
            contract.add_retry_after(hint);
        }
        contract
    }

    /// A checker for client `index` under `contract` ([`ClientCheck::contract_for`]).
    pub fn new(index: usize, contract: ContractCheck) -> Self {
        ClientCheck {
            index,
            contract,
            pending: BTreeSet::new(),
            resolved: BTreeSet::new(),
            not_open_since: Duration::ZERO,
        }
    }

    /// Status as reported so far.
    pub fn status(&self) -> Status {
        self.contract.status()
    }

    /// Whether it reported closed for good.
    pub fn stopped(&self) -> bool {
        self.contract.stopped()
    }

    fn fail(&self, what: String) -> Result<(), Violation> {
        Err(Violation(format!("client {}: {what}", self.index)))
    }

    /// The host lost the socket (it reported a close or a failed connect).
    pub fn socket_gone(&mut self, socket: SocketId) {
        self.contract.socket_gone(socket);
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
        let was = self.contract.status();
        let checked = match action {
            SessionAction::Io(io) => self.contract.io(io),
            SessionAction::Event(SessionEvent::Lifecycle(note)) => self.contract.notification(note),
            SessionAction::Event(SessionEvent::Resolved { id, .. }) => {
                if !self.pending.remove(id) {
                    return self.fail(format!("op {id:?} resolved twice or never issued"));
                }
                self.resolved.insert(*id);
                Ok(())
            }
            SessionAction::Event(_) => Ok(()),
        };
        if let Err(broken) = checked {
            return self.fail(broken.0);
        }
        if was == Status::Open && self.contract.status() != Status::Open {
            self.not_open_since = now;
        }
        Ok(())
    }

    /// Checks the caps and the closed state after a step.
    pub fn after_step(
        &self,
        stats: &SessionStats,
        status: Status,
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
        match self.contract.after_drain(status, next_deadline, None) {
            Ok(()) => Ok(()),
            Err(broken) => self.fail(broken.0),
        }
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
