//! The mesh session: what the seeds' `BrokerClient` and `DaemonBrokerClient` do
//! on top of their lifecycle helper — sends and acks, requests by `_reqId`, an
//! outbound queue, a push history — as pure code.
//!
//! The session owns a [`Lifecycle`] driven by the [`MeshHandshake`] (composition,
//! as the seeds wrap their helper). Every send and request gets an [`OpId`] and
//! resolves exactly once with a [`SessionEvent::Resolved`] (X3), whatever the
//! broker or the network does: acked or rejected, timed out, lost with the
//! connection, or never sent. Every buffer has a cap and a counter (X4).
//!
//! The drain rule is the lifecycle's: after [`Session::handle`], [`Session::send`],
//! [`Session::request`] or [`Session::command`], drain [`Session::poll_action`]
//! until `None`, then sleep until [`Session::next_deadline`] and feed a tick.
//!
//! # While the connection is away
//!
//! The one rule for calls made while the connection is not open (connecting,
//! reconnecting, or before the first connect succeeded). Both hosts' clients
//! hand the session's answer through unchanged, so it holds on tokio and mio
//! alike:
//!
//! - **Sends** wait in the outbound queue (B3, at most
//!   [`outbound_queue`](SessionConfig::outbound_queue) of them) and are written
//!   in order once open. Each waits at most its own
//!   [`Queueing::Queue`] deadline, else the session's
//!   [`queue_deadline`](SessionConfig::queue_deadline), by default
//!   [`DEFAULT_QUEUE_DEADLINE`] (60 s; the constant says why), and then
//!   resolves as never sent (`FailureKind::NeverSent`, `queue_expired` counted).
//!   A caller awaiting a send therefore always gets an answer.
//!   [`Queueing::Never`] refuses at once instead; a send to a display name is
//!   refused at once too ([`SendRefusal::NotOpen`]), because the name is
//!   resolved over the open connection (B15).
//! - **Requests and commands** are refused at once with
//!   [`RequestError::NotOpen`], nothing sent or kept: a reply is an answer
//!   about the mesh at the moment it is asked, and a command replayed after an
//!   outage could undo what others set meanwhile (D9). The caller decides
//!   whether to wait for `Open` and ask again.
//! - After the session has closed for good, everything is refused with
//!   `Closed`.

mod config;
mod types;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;

pub use config::{
    Overflow, SessionConfig, SessionStats, SharedSessionConfig, DAEMON_SEND_ACK_TIMEOUT,
    DEFAULT_DEDUPE_WINDOW, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING_REQUESTS, DEFAULT_MAX_SEND_LEN,
    DEFAULT_OUTBOUND_QUEUE, DEFAULT_PUSH_HISTORY, DEFAULT_QUEUE_DEADLINE, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SEND_ACK_TIMEOUT,
};
pub use types::{
    Command, Deadline, FailureKind, OpFailure, OpId, OpResult, Outcome, Outgoing, Queueing, Request,
    RequestError, SendError, SendRefusal, SessionAction, SessionEvent,
};

use super::crypto::BoxCache;
use super::handshake::{Credentials, MeshHandshake};
use super::push::{decode_body, Push, PushBody};
use super::target::{resolve_name, Target};
use super::wire::{
    self, AckFrame, BrokerFrame, ClientFrame, ErrorFrame, PushFrame, Reply, RequestKind, SendFrameRef,
};
use crate::lifecycle::{
    Action, ConfigError, Event, Failure, Lifecycle, LifecycleError, Notification, Status, StopReason,
};
use crate::rng::Rng;
use crate::time::{deadline_after, Now};

#[derive(Debug)]
enum OpState {
    /// A send: queued until the connection is open (B3), then written and
    /// waiting for its ack (B1, B2).
    Send { send: PendingSend, written: bool },
    /// Written; waiting for its reply (B8).
    Request { req_id: String, kind: RequestKind },
    /// A send to a display name, waiting for the `list_peers` reply that
    /// resolves it (B15). Nothing of the message is on the wire yet.
    Resolve { req_id: String, outgoing: Box<Outgoing> },
}

#[derive(Debug)]
struct PendingSend {
    /// The send's `id` (= its `client_message_id`), what the ack echoes.
    id: String,
    /// The encoded frame, kept until the ack for a possible resend.
    text: String,
    /// The offline deadline, re-armed whenever the send goes back to the queue.
    queue_for: Option<std::time::Duration>,
    resend: bool,
}

/// The session's own settings, taken out of [`SessionConfig`] once and shared
/// by every session made from one [`SharedSessionConfig`].
#[derive(Clone, Debug)]
struct Limits {
    send_ack_timeout: std::time::Duration,
    request_timeout: std::time::Duration,
    outbound_queue: usize,
    queue_deadline: Option<std::time::Duration>,
    overflow: Overflow,
    max_in_flight: usize,
    max_pending_requests: usize,
    push_history: usize,
    dedupe_window: usize,
    max_send_len: usize,
    client_ack: bool,
    errors: crate::policy::ErrorPolicy,
}

impl From<&SessionConfig> for Limits {
    fn from(c: &SessionConfig) -> Self {
        Limits {
            send_ack_timeout: c.send_ack_timeout,
            request_timeout: c.request_timeout,
            outbound_queue: c.outbound_queue,
            queue_deadline: c.queue_deadline,
            overflow: c.overflow,
            max_in_flight: c.max_in_flight,
            max_pending_requests: c.max_pending_requests,
            push_history: c.push_history,
            dedupe_window: c.dedupe_window,
            max_send_len: c.max_send_len,
            client_ack: c.client_ack,
            errors: c.errors.clone(),
        }
    }
}

/// The session's own counters, as [`SessionStats`] reports them. Only these are
/// kept: the snapshot's other fields (the lifecycle's, the depths) are read
/// when it is taken, so a connection does not carry an always-empty copy of
/// them (memory per idle connection counts).
#[derive(Clone, Debug, Default)]
struct Counters {
    queue_refused: u64,
    queue_dropped: u64,
    queue_expired: u64,
    sends_acked: u64,
    sends_failed: u64,
    resends: u64,
    replies: u64,
    requests_failed: u64,
    pushes: u64,
    history_dropped: u64,
    push_duplicates: u64,
    pushes_undecryptable: u64,
    unmatched: u64,
}

#[derive(Debug)]
struct Op {
    deadline: Option<Instant>,
    state: OpState,
}

/// A session's bookkeeping of sends, requests and pushes: empty on a connection
/// that only sits open, so it lives in a box made on the first write to it
/// ([`LazyWork`]) instead of taking ~300 bytes in every session.
#[derive(Debug)]
struct Work {
    ops: Map<OpId, Op>,
    deadlines: BTreeSet<(Instant, OpId)>,
    queue: VecDeque<OpId>,
    /// Every send not yet resolved (queued, written, or waiting for its name to
    /// resolve) by its idempotency id: what an ack or error echoes, and what
    /// keeps two pending sends from sharing an id. The op itself is in `ops`.
    by_id: Map<String, OpId>,
    /// How many of them are written and waiting for their ack (B2's cap).
    in_flight: usize,
    requests: Map<String, OpId>,
    history: VecDeque<Arc<Push>>,
    seen_order: VecDeque<u64>,
    seen: HashSet<u64, Hashing>,
}

impl Work {
    /// Empty, its maps hashed with `Hashing::with_seed(hash_seed)`.
    const fn new(hash_seed: u64) -> Self {
        Work {
            ops: Map::with_hasher(Hashing::with_seed(hash_seed)),
            deadlines: BTreeSet::new(),
            queue: VecDeque::new(),
            by_id: Map::with_hasher(Hashing::with_seed(hash_seed)),
            in_flight: 0,
            requests: Map::with_hasher(Hashing::with_seed(hash_seed)),
            history: VecDeque::new(),
            seen_order: VecDeque::new(),
            seen: HashSet::with_hasher(Hashing::with_seed(hash_seed)),
        }
    }
}

/// What a session that never wrote to its [`Work`] reads: nothing pending. Its
/// hasher's seed does not matter, an empty table is never probed.
static NO_WORK: Work = Work::new(0);

/// The session's [`Work`], made on the first write to it (a send, a request, a
/// push) and kept from then on, so that sending again allocates no box.
///
/// Reading (`Deref`) never makes it: the paths every idle connection runs (a
/// tick, the next deadline, a connect's flush, a disconnect) read first and
/// write only when there is something to write.
#[derive(Debug)]
struct LazyWork {
    work: Option<Box<Work>>,
    /// The seed of its maps' hasher, drawn from the session's seed (see [`Hashing`]).
    hash_seed: u64,
}

impl LazyWork {
    /// The work if it was ever made: for the paths that take from it (a
    /// disconnect, a close), which must not make it to find it empty.
    fn made(&mut self) -> Option<&mut Work> {
        self.work.as_deref_mut()
    }
}

impl std::ops::Deref for LazyWork {
    type Target = Work;

    fn deref(&self) -> &Work {
        self.work.as_deref().unwrap_or(&NO_WORK)
    }
}

impl std::ops::DerefMut for LazyWork {
    fn deref_mut(&mut self) -> &mut Work {
        let hash_seed = self.hash_seed;
        self.work.get_or_insert_with(|| Box::new(Work::new(hash_seed)))
    }
}

/// The pure mesh session. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    lc: Lifecycle<MeshHandshake>,
    limits: Arc<Limits>,
    rng: Rng,
    next_op: u64,
    next_req: u64,
    /// Sends, requests and the push window, in a box made on first use.
    work: LazyWork,
    /// Keys the push fingerprints of `seen` (see `dedupe_key`).
    dedupe_keys: foldhash::quality::FixedState,
    actions: VecDeque<SessionAction>,
    stats: Counters,
    /// Shared keys of direct-message pairs (B14).
    boxes: BoxCache,
}

impl Session {
    /// A session in `Idle`; `seed` fixes its jitter, generated ids and the nonces
    /// of its direct messages (B14).
    ///
    /// proto draws no randomness of its own, so that a run replays exactly from
    /// its seed (the simulator, the fuzzers, the golden frames): the host supplies
    /// it, and both hosts seed every connection from the OS
    /// (`tether_host::random_seed`) unless their caller fixes it. A fixed seed is
    /// for tests: two sessions with the same keys and seed send the same nonces,
    /// and a crypto_box nonce used twice for one pair of keys exposes both
    /// messages.
    pub fn new(
        config: SessionConfig,
        handshake: MeshHandshake,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        Session::with_shared(&SharedSessionConfig::new(config)?, handshake, seed, now)
    }

    /// [`Session::new`] from a configuration checked once and shared: the
    /// session holds two pointers to it, not a copy (the lifecycle's 264 bytes
    /// and the session's 112), however many sessions are made from it.
    pub fn with_shared(
        config: &SharedSessionConfig,
        handshake: MeshHandshake,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        // Two streams from one seed: the lifecycle's jitter must not shift when the
        // application sends more or fewer messages.
        let mut seeder = Rng::new(seed);
        let limits = Arc::clone(&config.limits);
        let lc = Lifecycle::new(Arc::clone(&config.lifecycle), handshake, seeder.next_u64(), now)?;
        let rng = Rng::new(seeder.next_u64());
        // Drawn after the two streams above so adding it moved neither of them.
        let hash_seed = seeder.next_u64();
        Ok(Session {
            lc,
            rng,
            next_op: 0,
            next_req: 0,
            work: LazyWork {
                work: None,
                hash_seed,
            },
            dedupe_keys: foldhash::quality::FixedState::with_seed(seeder.next_u64()),
            actions: VecDeque::new(),
            stats: Counters::default(),
            boxes: BoxCache::default(),
            limits,
        })
    }

    /// Feeds one lifecycle input (connect, socket news, tick, close, …).
    pub fn handle(&mut self, now: Now, event: Event) -> Result<(), LifecycleError> {
        let tick = matches!(event, Event::Tick);
        self.lc.handle(now, event)?;
        self.pump(now);
        if tick {
            self.expire(now);
        }
        Ok(())
    }

    /// Sends a message (B1, B3, B6, X9); its result comes later as `Resolved`.
    ///
    /// A refusal changes nothing: every check, the size check included, runs
    /// before anything is drawn, evicted or queued.
    ///
    /// A direct message (to a pubkey) is sealed end to end with this connection's
    /// key: the session key when it has one, else the member key (B14). A send to
    /// a display name first asks `list_peers` and goes to the one peer of that
    /// name; no match or several fail it as never sent (B15). Names are resolved
    /// over an open connection only, so such a send is refused while not open.
    pub fn send(&mut self, now: Now, outgoing: Outgoing) -> Result<OpId, SendError> {
        let status = self.lc.status();
        if status == Status::Closed {
            return Err(refuse(SendRefusal::Closed, outgoing));
        }
        if outgoing.target.is_empty() {
            return Err(refuse(SendRefusal::NoTarget, outgoing));
        }
        if let Some(id) = &outgoing.client_message_id {
            // Two pending sends under one idempotency id would be one message to
            // the broker and two to us: the acks could not tell them apart.
            if self.work.by_id.contains_key(id) {
                return Err(refuse(SendRefusal::DuplicateId, outgoing));
            }
        }
        if outgoing.queueing == Queueing::Never && status != Status::Open {
            return Err(refuse(SendRefusal::NotOpen, outgoing));
        }
        let queue_for = match outgoing.queueing {
            Queueing::Queue { deadline } => deadline,
            Queueing::Never => None,
        };
        if let Some(deadline) = queue_for.filter(|&d| d > crate::MAX_DURATION) {
            let max = crate::MAX_DURATION;
            return Err(refuse(SendRefusal::DeadlineTooLong { deadline, max }, outgoing));
        }
        if matches!(outgoing.target, Target::Name(_)) {
            return self.send_to_name(now, outgoing);
        }
        self.enqueue_send(now, outgoing, None)
    }

    /// Asks `list_peers` on behalf of a send to a name (B15).
    fn send_to_name(&mut self, now: Now, outgoing: Outgoing) -> Result<OpId, SendError> {
        if self.lc.status() != Status::Open {
            return Err(refuse(SendRefusal::NotOpen, outgoing));
        }
        if self.work.requests.len() >= self.limits.max_pending_requests {
            return Err(refuse(SendRefusal::TooManyPending, outgoing));
        }
        // The counter moves only once the request is written.
        let req_id = format!("r{}", self.next_req + 1);
        let frame = ClientFrame::ListPeers(wire::ListPeersFrame {
            req_id: Some(req_id.clone()),
        });
        if self.lc.send(frame.encode()).is_err() {
            return Err(refuse(SendRefusal::NotOpen, outgoing));
        }
        self.next_req += 1;
        let op_id = self.next_op_id();
        let deadline = now.instant + self.limits.request_timeout;
        if let Some(id) = &outgoing.client_message_id {
            self.work.by_id.insert(id.clone(), op_id);
        }
        self.work.ops.insert(
            op_id,
            Op {
                deadline: Some(deadline),
                state: OpState::Resolve {
                    req_id: req_id.clone(),
                    outgoing: Box::new(outgoing),
                },
            },
        );
        self.work.deadlines.insert((deadline, op_id));
        self.work.requests.insert(req_id, op_id);
        self.pump(now);
        Ok(op_id)
    }

    /// Encodes (and for a direct target seals) a send and puts it in the queue,
    /// under `reuse` when it is a resolved name's op, else under a new id.
    fn enqueue_send(&mut self, now: Now, outgoing: Outgoing, reuse: Option<OpId>) -> Result<OpId, SendError> {
        let status = self.lc.status();
        let can_write = status == Status::Open
            && self.work.queue.is_empty()
            && self.work.in_flight < self.limits.max_in_flight;
        let must_evict = !can_write && self.work.queue.len() >= self.limits.outbound_queue;
        // A queue of capacity zero has no oldest to make room with; queueing
        // anyway would break its cap (found by fuzzing).
        if must_evict && (self.limits.overflow == Overflow::RefuseNew || self.work.queue.is_empty()) {
            self.stats.queue_refused += 1;
            return Err(refuse(SendRefusal::QueueFull, outgoing));
        }
        // Ids and nonces come from a copy of the generator, kept only once the
        // send is accepted. The generator's seed is the host's OS randomness (see
        // `new`); consecutive draws never repeat within a session.
        let mut rng = self.rng.clone();
        let id = match &outgoing.client_message_id {
            Some(id) => id.clone(),
            None => hex16(rng.next_u64()),
        };
        let mut nonce = [0u8; 24];
        for chunk in nonce.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        // 24 bytes are 32 base64 characters, without padding.
        let mut nonce_b64 = [0u8; 32];
        let nonce_len = b64.encode_slice(nonce, &mut nonce_b64).unwrap_or(0);
        let Some(target_spec) = outgoing.target.wire_spec() else {
            return Err(refuse(SendRefusal::NoTarget, outgoing));
        };
        let ciphertext = match &outgoing.target {
            Target::Pubkey(recipient) => {
                // B14: the key others know this connection by seals it, so the
                // push's senderPubkey is the key the recipient opens it with.
                let mine = match self.lc.handshake().credentials() {
                    Credentials::Member(member) => &member.secret,
                    Credentials::Session(session) => &session.session_key,
                };
                let sealed = self
                    .boxes
                    .get(recipient, mine)
                    .and_then(|direct| direct.seal(&nonce, outgoing.body.as_bytes()));
                match sealed {
                    Ok(sealed) => b64.encode(sealed),
                    Err(_) => return Err(refuse(SendRefusal::Unencryptable, outgoing)),
                }
            }
            _ => b64.encode(outgoing.body.as_bytes()),
        };
        let text = SendFrameRef {
            id: &id,
            target_spec: &target_spec,
            priority: outgoing.priority,
            nonce: std::str::from_utf8(&nonce_b64[..nonce_len]).unwrap_or_default(),
            ciphertext: &ciphertext,
            client_message_id: Some(&id),
            request_fingerprint: outgoing.request_fingerprint.as_deref(),
            mentions: None,
            reply_to_id: outgoing.reply_to.as_deref(),
            body_version: None,
        }
        .encode();
        if text.len() > self.limits.max_send_len {
            let max = self.limits.max_send_len;
            return Err(refuse(SendRefusal::TooLarge { len: text.len(), max }, outgoing));
        }
        let queue_for = match outgoing.queueing {
            Queueing::Queue { deadline } => deadline.or(self.limits.queue_deadline),
            Queueing::Never => None,
        };
        // Accepted: from here on the state moves.
        self.rng = rng;
        if must_evict {
            if let Some(oldest) = self.work.queue.pop_front() {
                self.stats.queue_dropped += 1;
                let failure = OpFailure::new(FailureKind::NeverSent, "outbound_queue_overflow");
                self.resolve(oldest, Err(failure));
            }
        }
        let op_id = reuse.unwrap_or_else(|| self.next_op_id());
        self.work.by_id.insert(id.clone(), op_id);
        let send = PendingSend {
            id,
            text,
            queue_for,
            resend: outgoing.resend_if_unknown,
        };
        self.work.ops.insert(
            op_id,
            Op {
                deadline: None,
                state: OpState::Send { send, written: false },
            },
        );
        self.work.queue.push_back(op_id);
        // A send written at once never waits in the queue: no queue deadline to
        // arm and clear again (flush arms one if the write is refused after all).
        if !can_write {
            self.arm_queue_deadline(now.instant, op_id);
        }
        self.flush(now);
        Ok(op_id)
    }

    /// Sends a request (B8); its reply comes later as `Resolved`. Refused unless open.
    pub fn request(&mut self, now: Now, request: Request) -> Result<OpId, RequestError> {
        self.check_open()?;
        if self.work.requests.len() >= self.limits.max_pending_requests {
            return Err(RequestError::TooManyPending);
        }
        // The counter moves only once the request is written.
        let req_id = format!("r{}", self.next_req + 1);
        let rid = Some(req_id.clone());
        let frame = match request {
            Request::ListPeers => ClientFrame::ListPeers(wire::ListPeersFrame { req_id: rid }),
            Request::GetState { key } => ClientFrame::GetState(wire::GetStateFrame { key, req_id: rid }),
            Request::ListState => ClientFrame::ListState(wire::ListStateFrame { req_id: rid }),
            Request::Remember { content, tags } => ClientFrame::Remember(wire::RememberFrame {
                content,
                tags,
                req_id: rid,
            }),
            Request::Recall { query } => ClientFrame::Recall(wire::RecallFrame { query, req_id: rid }),
            Request::ListSkills { query } => {
                ClientFrame::ListSkills(wire::ListSkillsFrame { query, req_id: rid })
            }
            Request::GetSkill { name } => ClientFrame::GetSkill(wire::GetSkillFrame { name, req_id: rid }),
        };
        let Some(kind) = frame.request_kind() else {
            return Err(RequestError::NotOpen(self.lc.status()));
        };
        if self.lc.send(frame.encode()).is_err() {
            return Err(RequestError::NotOpen(self.lc.status()));
        }
        self.next_req += 1;
        let op_id = self.next_op_id();
        let deadline = deadline_after(now.instant, self.limits.request_timeout);
        self.work.ops.insert(
            op_id,
            Op {
                deadline: Some(deadline),
                state: OpState::Request {
                    req_id: req_id.clone(),
                    kind,
                },
            },
        );
        self.work.deadlines.insert((deadline, op_id));
        self.work.requests.insert(req_id, op_id);
        self.pump(now);
        Ok(op_id)
    }

    /// Sends a fire-and-forget command (B9); refused unless open (D9: the seeds
    /// dropped these silently while disconnected).
    pub fn command(&mut self, now: Now, command: Command) -> Result<(), RequestError> {
        self.check_open()?;
        let frame = match command {
            Command::SetState { key, value } => ClientFrame::SetState(wire::SetStateFrame { key, value }),
            Command::Forget { memory_id } => ClientFrame::Forget(wire::ForgetFrame { memory_id }),
            Command::SetProfile {
                avatar,
                title,
                bio,
                capabilities,
            } => ClientFrame::SetProfile(wire::SetProfileFrame {
                avatar,
                title,
                bio,
                capabilities,
            }),
            Command::SetSummary { summary } => ClientFrame::SetSummary(wire::SetSummaryFrame { summary }),
            Command::SetStatus { status } => ClientFrame::SetStatus(wire::SetStatusFrame { status }),
            Command::SetVisible { visible } => ClientFrame::SetVisible(wire::SetVisibleFrame { visible }),
        };
        self.lc
            .send(frame.encode())
            .map_err(|e| RequestError::NotOpen(e.status))?;
        self.pump(now);
        Ok(())
    }

    /// The next action, in order; `None` when drained.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<SessionAction> {
        let action = self.actions.pop_front();
        if action.is_none() {
            crate::queue::trim_drained(&mut self.actions, crate::queue::KEEP_SESSION);
        }
        action
    }

    /// When to feed the next tick, and for what.
    #[must_use]
    pub fn next_deadline(&self) -> Option<(Instant, Deadline)> {
        let lc = self
            .lc
            .next_deadline()
            .map(|(at, t)| (at, Deadline::Lifecycle(t)));
        let op = self
            .work
            .deadlines
            .first()
            .map(|&(at, id)| (at, Deadline::Op(id)));
        match (lc, op) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The connection status.
    pub fn status(&self) -> Status {
        self.lc.status()
    }

    /// The lifecycle underneath (read-only: every input goes through the session).
    pub fn lifecycle(&self) -> &Lifecycle<MeshHandshake> {
        &self.lc
    }

    /// The handshake, to update presence fields for the next attempt.
    pub fn handshake_mut(&mut self) -> &mut MeshHandshake {
        self.lc.handshake_mut()
    }

    /// Takes every push in the history buffer, oldest first (B7).
    pub fn drain_history(&mut self) -> Vec<Arc<Push>> {
        self.work
            .made()
            .map_or_else(Vec::new, |work| work.history.drain(..).collect())
    }

    /// Why the session closed, once it has.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.lc.stop_reason()
    }

    /// A metrics snapshot (X12).
    pub fn stats(&self, now: Instant) -> SessionStats {
        let c = &self.stats;
        SessionStats {
            lifecycle: self.lc.stats(now),
            queue_depth: self.work.queue.len(),
            in_flight: self.work.in_flight,
            pending_requests: self.work.requests.len(),
            history_len: self.work.history.len(),
            queue_refused: c.queue_refused,
            queue_dropped: c.queue_dropped,
            queue_expired: c.queue_expired,
            sends_acked: c.sends_acked,
            sends_failed: c.sends_failed,
            resends: c.resends,
            replies: c.replies,
            requests_failed: c.requests_failed,
            pushes: c.pushes,
            history_dropped: c.history_dropped,
            push_duplicates: c.push_duplicates,
            pushes_undecryptable: c.pushes_undecryptable,
            unmatched: c.unmatched,
        }
    }

    /// The written send whose id is `id`: what an ack or error may answer.
    fn written_send(&self, id: &str) -> Option<OpId> {
        let &op = self.work.by_id.get(id)?;
        match self.work.ops.get(&op) {
            Some(Op {
                state: OpState::Send { written: true, .. },
                ..
            }) => Some(op),
            _ => None,
        }
    }

    fn next_op_id(&mut self) -> OpId {
        self.next_op += 1;
        OpId(self.next_op)
    }

    fn check_open(&self) -> Result<(), RequestError> {
        match self.lc.status() {
            Status::Open => Ok(()),
            Status::Closed => Err(RequestError::Closed),
            other => Err(RequestError::NotOpen(other)),
        }
    }

    fn emit(&mut self, event: SessionEvent) {
        self.actions.push_back(SessionAction::Event(event));
    }

    /// Moves the lifecycle's actions out, acting on its news as it comes: state
    /// changes happen here, in `handle`, never later while polling.
    fn pump(&mut self, now: Now) {
        while let Some(action) = self.lc.poll_action() {
            match action {
                Action::Io(io) => self.actions.push_back(SessionAction::Io(io)),
                Action::Notify(note) => match note.into_message() {
                    Ok(frame) => self.on_frame(now, frame),
                    Err(note) => self.on_note(now, note),
                },
            }
        }
    }

    fn on_note(&mut self, now: Now, note: Notification<std::convert::Infallible, wire::DecodeError>) {
        match &note {
            Notification::Disconnected { failure, .. } => {
                // L6, B4: pending work hears the close code before the status moves.
                let reason = format!("broker_disconnected_{}", failure.close_code());
                self.lose_in_flight(now.instant, &reason);
                self.emit(SessionEvent::Lifecycle(note));
            }
            Notification::Connected { .. } => {
                self.emit(SessionEvent::Lifecycle(note));
                self.flush(now);
            }
            Notification::Closed { reason } => {
                let text = match reason {
                    StopReason::User => "client_closed".to_owned(),
                    other => match other.failure() {
                        Some(Failure::Rejected { rejection, .. }) => {
                            format!("session_closed: {}", rejection.code)
                        }
                        Some(f) => format!("session_closed: {}", f.tag()),
                        None => "session_closed".to_owned(),
                    },
                };
                self.lose_in_flight(now.instant, &text);
                let queued = self.work.made().map(|work| std::mem::take(&mut work.queue));
                for op in queued.unwrap_or_default() {
                    self.resolve(op, Err(OpFailure::new(FailureKind::NeverSent, text.clone())));
                }
                self.emit(SessionEvent::Lifecycle(note));
            }
            _ => self.emit(SessionEvent::Lifecycle(note)),
        }
    }

    /// Fails (or requeues) everything written but unanswered: the connection that
    /// carried it is gone.
    fn lose_in_flight(&mut self, now: Instant, reason: &str) {
        let mut ids: Vec<OpId> = self
            .work
            .ops
            .iter()
            .filter(|(_, op)| matches!(op.state, OpState::Send { written: true, .. }))
            .map(|(&id, _)| id)
            .collect();
        if let Some(work) = self.work.made() {
            ids.extend(work.requests.drain().map(|(_, op)| op));
        }
        // Oldest first, so requeued sends keep their order and results come in order.
        ids.sort_unstable();
        let closing = self.lc.status() == Status::Closed;
        let mut room = self.limits.outbound_queue.saturating_sub(self.work.queue.len());
        let mut requeue = Vec::new();
        for id in ids {
            if matches!(
                self.work.ops.get(&id),
                Some(Op {
                    state: OpState::Resolve { .. },
                    ..
                })
            ) {
                self.fail_resolution(id, "name_resolution_failed", reason, false);
                continue;
            }
            let resend = matches!(self.work.ops.get(&id), Some(Op { state: OpState::Send { send, .. }, .. }) if send.resend);
            if resend && !closing && room > 0 {
                room -= 1;
                requeue.push(id);
            } else {
                if resend && !closing {
                    // The queue's cap holds for resends too: no room, no resend.
                    self.stats.queue_dropped += 1;
                }
                self.resolve(id, Err(OpFailure::new(FailureKind::OutcomeUnknown, reason)));
            }
        }
        for &id in requeue.iter().rev() {
            self.clear_deadline(id);
            let work = &mut *self.work;
            if let Some(Op {
                state: OpState::Send { written, .. },
                ..
            }) = work.ops.get_mut(&id)
            {
                if *written {
                    work.in_flight -= 1;
                }
                *written = false;
            }
            work.queue.push_front(id);
            self.stats.resends += 1;
            self.arm_queue_deadline(now, id);
        }
    }

    fn on_frame(&mut self, now: Now, frame: BrokerFrame) {
        match frame {
            BrokerFrame::Ack(ack) => self.on_ack(now, ack),
            BrokerFrame::Error(error) => self.on_error(now, error),
            BrokerFrame::Push(push) | BrokerFrame::Inbound(push) => self.on_push(now, push),
            frame if frame.reply_kind().is_some() => self.on_reply(now, frame),
            other => self.emit(SessionEvent::Inbound(Box::new(other))),
        }
    }

    fn on_ack(&mut self, now: Now, ack: AckFrame) {
        let Some(op) = self.written_send(&ack.id) else {
            self.stats.unmatched += 1;
            return;
        };
        let result = match ack.failure() {
            // B16: an error ack is a failed send, classed by its code.
            Some(error) => {
                let (code, message) = crate::policy::split_ack_error(error);
                Err(OpFailure::rejected(code, message, &self.limits.errors))
            }
            None => Ok(Outcome::Sent {
                message_id: if ack.message_id.is_empty() {
                    ack.id
                } else {
                    ack.message_id
                },
                queued: ack.queued,
            }),
        };
        self.resolve(op, result);
        self.flush(now);
    }

    fn on_error(&mut self, now: Now, error: ErrorFrame) {
        let op = match (&error.id, &error.req_id) {
            (Some(id), _) if self.written_send(id).is_some() => self.written_send(id),
            (_, Some(req)) if self.work.requests.contains_key(req) => self.work.requests.remove(req),
            _ => None,
        };
        let Some(op) = op else {
            self.emit(SessionEvent::Inbound(Box::new(BrokerFrame::Error(error))));
            return;
        };
        if matches!(
            self.work.ops.get(&op),
            Some(Op {
                state: OpState::Resolve { .. },
                ..
            })
        ) {
            let failure = OpFailure::rejected(&error.code, &error.message, &self.limits.errors);
            self.fail_resolution(op, "name_resolution_failed", &failure.to_string(), false);
            self.flush(now);
            return;
        }
        let failure = OpFailure::rejected(&error.code, &error.message, &self.limits.errors);
        self.resolve(op, Err(failure));
        self.flush(now);
    }

    fn on_reply(&mut self, now: Now, frame: BrokerFrame) {
        let Some(kind) = frame.reply_kind() else {
            return;
        };
        let op = match frame.req_id() {
            Some(req) => self.work.requests.remove(req),
            // Older brokers echo no `_reqId`: the oldest pending request of the
            // matching kind is the one answered (PROTOCOL.md).
            None => {
                let oldest = self
                    .work
                    .requests
                    .iter()
                    .filter(|(_, op)| match self.work.ops.get(op) {
                        Some(Op {
                            state: OpState::Request { kind: k, .. },
                            ..
                        }) => *k == kind,
                        Some(Op {
                            state: OpState::Resolve { .. },
                            ..
                        }) => kind == RequestKind::ListPeers,
                        _ => false,
                    })
                    .min_by_key(|(_, op)| **op)
                    .map(|(req, _)| req.clone());
                oldest.and_then(|req| self.work.requests.remove(&req))
            }
        };
        let Some(op) = op else {
            self.stats.unmatched += 1;
            return;
        };
        if matches!(
            self.work.ops.get(&op),
            Some(Op {
                state: OpState::Resolve { .. },
                ..
            })
        ) {
            self.on_resolution(now, op, frame);
            return;
        }
        let expected = match self.work.ops.get(&op) {
            Some(Op {
                state: OpState::Request { kind, .. },
                ..
            }) => *kind,
            _ => kind,
        };
        let result = if expected != kind {
            Err(OpFailure::new(
                FailureKind::Rejected,
                format!(
                    "unexpected_reply: {} to a {} request",
                    frame.kind(),
                    expected.as_str()
                ),
            ))
        } else {
            match frame.into_reply() {
                Ok(reply) => Ok(Outcome::Reply(reply)),
                Err(other) => Err(OpFailure::new(
                    FailureKind::Rejected,
                    format!("unexpected_reply: {}", other.kind()),
                )),
            }
        };
        self.resolve(op, result);
    }

    /// The `list_peers` reply a send to a name waited for (B15): sends to the
    /// one match, or fails as never sent.
    fn on_resolution(&mut self, now: Now, op: OpId, frame: BrokerFrame) {
        self.clear_deadline(op);
        let outgoing = match self.work.ops.get_mut(&op) {
            Some(Op {
                state: OpState::Resolve { outgoing, .. },
                ..
            }) => std::mem::replace(&mut **outgoing, Outgoing::new("", "")),
            _ => return,
        };
        // The id passes to the send this becomes, or is free again if it fails.
        if let Some(id) = &outgoing.client_message_id {
            self.work.by_id.remove(id);
        }
        let Ok(Reply::Peers(peers)) = frame.into_reply() else {
            self.fail_resolution(
                op,
                "name_resolution_failed",
                "unexpected reply to list_peers",
                false,
            );
            return;
        };
        match resolve_name(&outgoing.target.to_string(), &peers) {
            Ok(key) => {
                let mut outgoing = outgoing;
                outgoing.target = Target::from(key);
                self.work.ops.remove(&op);
                if let Err(refused) = self.enqueue_send(now, outgoing, Some(op)) {
                    let reason = refused.reason.to_string();
                    self.reinsert_resolution(op, *refused.outgoing);
                    self.fail_resolution(op, "send_refused", &reason, false);
                }
            }
            Err(e) => self.fail_resolution(op, e.code(), &e.to_string(), true),
        }
        self.flush(now);
    }

    fn reinsert_resolution(&mut self, op: OpId, outgoing: Outgoing) {
        self.work.ops.insert(
            op,
            Op {
                deadline: None,
                state: OpState::Resolve {
                    req_id: String::new(),
                    outgoing: Box::new(outgoing),
                },
            },
        );
    }

    /// A send to a name that never got to its send: never sent (B15). `code`
    /// is tether's own (`name_not_found`, `name_ambiguous`, …), the message says
    /// what happened in words.
    fn fail_resolution(&mut self, op: OpId, code: &str, message: &str, permanent: bool) {
        let failure = OpFailure {
            kind: FailureKind::NeverSent,
            reason: code.to_owned(),
            code: Some(code.to_owned()),
            message: message.to_owned(),
            permanent,
        };
        self.resolve(op, Err(failure));
    }

    fn on_push(&mut self, now: Now, push: Arc<PushFrame>) {
        self.stats.pushes += 1;
        if self.limits.client_ack {
            // Confirm duplicates too: the broker re-pushed because our last
            // confirmation was lost.
            let ack = wire::encode_client_ack(
                push.client_message_id.as_deref(),
                Some(push.message_id.as_str()).filter(|id| !id.is_empty()),
            );
            let _ = self.lc.send(ack);
            self.pump(now);
        }
        if let Some(key) = dedupe_key(&self.dedupe_keys, &push) {
            if self.work.seen.contains(&key) {
                self.stats.push_duplicates += 1;
                return;
            }
            if self.limits.dedupe_window > 0 {
                if self.work.seen_order.len() >= self.limits.dedupe_window {
                    if let Some(old) = self.work.seen_order.pop_front() {
                        self.work.seen.remove(&old);
                    }
                }
                self.work.seen.insert(key);
                self.work.seen_order.push_back(key);
            }
        }
        // B14: the session key first, then the member key.
        let body = match self.lc.handshake().credentials() {
            Credentials::Member(member) => decode_body(&push, &[&member.secret], &mut self.boxes),
            Credentials::Session(session) => decode_body(
                &push,
                &[&session.session_key, &session.parent.secret],
                &mut self.boxes,
            ),
        };
        if body == PushBody::Undecryptable {
            self.stats.pushes_undecryptable += 1;
        }
        let push = Arc::new(Push { frame: push, body });
        if self.limits.push_history > 0 {
            if self.work.history.len() >= self.limits.push_history {
                self.work.history.pop_front();
                self.stats.history_dropped += 1;
            }
            self.work.history.push_back(Arc::clone(&push));
        }
        self.emit(SessionEvent::Push(push));
    }

    /// Writes queued sends while the connection is open and in-flight room remains.
    fn flush(&mut self, now: Now) {
        // Reads first: a connect with nothing queued must not make the work box.
        while self.lc.status() == Status::Open
            && self.work.in_flight < self.limits.max_in_flight
            && !self.work.queue.is_empty()
        {
            let work = &mut *self.work;
            let Some(op_id) = work.queue.pop_front() else {
                break;
            };
            let Some(op) = work.ops.get_mut(&op_id) else {
                continue;
            };
            let OpState::Send { send, written } = &mut op.state else {
                continue;
            };
            // Keep the frame only if it may have to be written again.
            let text = if send.resend {
                send.text.clone()
            } else {
                std::mem::take(&mut send.text)
            };
            if let Err(refused) = self.lc.send(text) {
                // Cannot happen while open; put it back untouched rather than lose it,
                // with the queue deadline a send written at once did not arm.
                send.text = refused.text;
                let armed = op.deadline.is_some();
                work.queue.push_front(op_id);
                if !armed {
                    self.arm_queue_deadline(now.instant, op_id);
                }
                break;
            }
            *written = true;
            work.in_flight += 1;
            let deadline = deadline_after(now.instant, self.limits.send_ack_timeout);
            if let Some(queued) = op.deadline.replace(deadline) {
                work.deadlines.remove(&(queued, op_id));
            }
            work.deadlines.insert((deadline, op_id));
        }
        self.pump(now);
    }

    fn arm_queue_deadline(&mut self, now: Instant, op_id: OpId) {
        let Some(op) = self.work.ops.get_mut(&op_id) else {
            return;
        };
        let OpState::Send { send, written: false } = &op.state else {
            return;
        };
        if let Some(d) = send.queue_for {
            let deadline = deadline_after(now, d);
            op.deadline = Some(deadline);
            self.work.deadlines.insert((deadline, op_id));
        }
    }

    fn clear_deadline(&mut self, op_id: OpId) {
        if let Some(op) = self.work.ops.get_mut(&op_id) {
            if let Some(at) = op.deadline.take() {
                self.work.deadlines.remove(&(at, op_id));
            }
        }
    }

    /// Fires every op deadline that has passed.
    fn expire(&mut self, now: Now) {
        while let Some(&(at, op_id)) = self.work.deadlines.first() {
            if at > now.instant {
                break;
            }
            self.work.deadlines.remove(&(at, op_id));
            let failure = match self.work.ops.get(&op_id).map(|op| &op.state) {
                Some(OpState::Send { written: false, .. }) => {
                    self.work.queue.retain(|&q| q != op_id);
                    self.stats.queue_expired += 1;
                    OpFailure::new(FailureKind::NeverSent, "queue_deadline")
                }
                Some(OpState::Send { written: true, .. }) => {
                    OpFailure::new(FailureKind::TimedOut, "ack_timeout")
                }
                Some(OpState::Request { req_id, .. }) => {
                    let req = req_id.clone();
                    self.work.requests.remove(&req);
                    OpFailure::new(FailureKind::TimedOut, "request_timeout")
                }
                Some(OpState::Resolve { req_id, .. }) => {
                    let req = req_id.clone();
                    self.work.requests.remove(&req);
                    OpFailure::new(FailureKind::NeverSent, "name_resolution: request_timeout")
                }
                None => continue,
            };
            if let Some(op) = self.work.ops.get_mut(&op_id) {
                op.deadline = None;
            }
            self.resolve(op_id, Err(failure));
        }
        self.flush(now);
    }

    /// Emits the one and only result of `op_id` (X3).
    fn resolve(&mut self, op_id: OpId, result: OpResult) {
        self.clear_deadline(op_id);
        let Some(op) = self.work.ops.remove(&op_id) else {
            return;
        };
        match op.state {
            OpState::Send { send, written } => {
                self.work.by_id.remove(&send.id);
                if written {
                    self.work.in_flight -= 1;
                }
                if result.is_ok() {
                    self.stats.sends_acked += 1;
                } else {
                    self.stats.sends_failed += 1;
                }
            }
            OpState::Resolve { outgoing, .. } => {
                if let Some(id) = &outgoing.client_message_id {
                    self.work.by_id.remove(id);
                }
                self.stats.sends_failed += 1;
            }
            OpState::Request { .. } => {
                if result.is_ok() {
                    self.stats.replies += 1;
                } else {
                    self.stats.requests_failed += 1;
                }
            }
        }
        self.emit(SessionEvent::Resolved { id: op_id, result });
    }
}

fn refuse(reason: SendRefusal, outgoing: Outgoing) -> SendError {
    SendError {
        reason,
        outgoing: Box::new(outgoing),
    }
}

/// `{:016x}` without the formatting machinery, which cost more than the rest of
/// choosing an id.
fn hex16(x: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for i in (0..16).rev() {
        out.push(char::from(DIGITS[((x >> (i * 4)) & 0xf) as usize]));
    }
    out
}

/// The session's maps' hasher: foldhash, seeded from the session's seed.
///
/// Deterministic for a given seed (simulation replays stay exact) without
/// reading the OS's randomness, and a peer who does not know the seed cannot
/// aim collisions at the maps its frames fill.
type Hashing = foldhash::fast::FixedState;
type Map<K, V> = HashMap<K, V, Hashing>;

/// What identifies a push for de-duplication, hashed so the window costs 16 bytes
/// an entry and no allocation.
///
/// The sender's idempotency id identifies a message across re-pushes and across a
/// broker restart that forgot its own dedupe (new messageId, same
/// client_message_id); the broker's id is the fallback. The fingerprint is keyed
/// by the session's seed: with a fixed key a peer could search offline for an
/// id whose fingerprint matches a message it expects someone else to send, and
/// have that message dropped as a duplicate. An accidental collision within the
/// window (2^-64 per pair) is far below any other failure rate here.
fn dedupe_key(keys: &foldhash::quality::FixedState, push: &PushFrame) -> Option<u64> {
    match (&push.client_message_id, push.message_id.is_empty()) {
        (Some(cmid), _) => Some(keys.hash_one((0u8, &push.sender_pubkey, cmid))),
        (None, false) => Some(keys.hash_one((1u8, &push.message_id))),
        (None, true) => None,
    }
}

impl crate::machine::Machine for Session {
    type Event = SessionEvent;
    type Message = std::convert::Infallible;
    type DecodeError = wire::DecodeError;
    type Timer = Deadline;

    fn handle(&mut self, now: Now, input: Event) -> Result<(), LifecycleError> {
        Session::handle(self, now, input)
    }

    fn poll_output(&mut self) -> Option<SessionAction> {
        self.poll_action()
    }

    fn next_deadline(&self) -> Option<(Instant, Deadline)> {
        Session::next_deadline(self)
    }

    fn status(&self) -> Status {
        Session::status(self)
    }

    fn notification(
        event: &SessionEvent,
    ) -> Option<&Notification<std::convert::Infallible, wire::DecodeError>> {
        match event {
            SessionEvent::Lifecycle(note) => Some(note),
            _ => None,
        }
    }
}
