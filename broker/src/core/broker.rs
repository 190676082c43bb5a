//! The broker machine: the `handle_*` inputs, `poll_output`, `next_deadline`, and the
//! bookkeeping every part shares (output queue, timer index, closing connections).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use tether_proto::mesh::wire::{decode_client_frame, BrokerFrame, ErrorFrame};
use tether_proto::policy::is_sendable_close_code;
use tether_proto::{Now, Rng};

use super::admission::Admission;
use super::bounds::has_duplicate_type;
use super::config::BrokerConfig;
use super::conn::{Conn, Phase};
use super::dedupe::Dedupe;
use super::dispatch::{Breach, CLOSE_NOT_UTF8};
use super::faults::{ConnSelector, Fault, FaultState, Refusal};
use super::lease::Lease;
use super::mesh::Mesh;
use super::output::{ConnId, Output, OutputKind};
use super::stats::BrokerStats;

/// The pure broker: every connection's frames in, frames out, time as an input.
///
/// See the [module docs](crate::core) for the contract.
#[derive(Debug)]
pub struct Broker {
    pub(crate) config: BrokerConfig,
    rng: Rng,
    pub(crate) conns: HashMap<ConnId, Conn>,
    pub(crate) meshes: HashMap<String, Mesh>,
    /// Presences in their grace, by lease id (ids grow, so id order is age order).
    pub(crate) leases: HashMap<u64, Lease>,
    /// Every lease under its end, so the next one is found at once.
    pub(crate) lease_timers: BTreeSet<(Instant, u64)>,
    pub(crate) next_lease: u64,
    /// Bytes of the messages kept on leases and in offline queues, against `max_kept_bytes`.
    pub(crate) kept_bytes: usize,
    /// Connections still waiting for their hello to be accepted, against `max_pending_hellos`.
    pub(crate) pending_hellos: usize,
    /// Every connection under its next wake-up, so `next_deadline` is O(log n).
    timers: BTreeSet<(Instant, ConnId)>,
    /// Connections whose wake-up may have changed during the current input.
    dirty: Vec<ConnId>,
    /// Acks held back by the delay fault, by due time then arrival order.
    pub(crate) delayed_acks: BTreeMap<(Instant, u64), (ConnId, String)>,
    delayed_seq: u64,
    outputs: VecDeque<Output>,
    pub(crate) faults: FaultState,
    /// The hello rate limiter, when `hello_rate` is set.
    pub(crate) admission: Option<Admission>,
    pub(crate) stats: BrokerStats,
    pub(crate) dedupe: Dedupe,
    latest: Option<Instant>,
}

impl Broker {
    /// A broker with no connections; ids come from a generator seeded with `config.seed`.
    pub fn new(config: BrokerConfig) -> Self {
        let admission = config.hello_rate.map(Admission::new);
        Broker {
            rng: Rng::new(config.seed),
            config,
            conns: HashMap::new(),
            meshes: HashMap::new(),
            leases: HashMap::new(),
            lease_timers: BTreeSet::new(),
            next_lease: 0,
            kept_bytes: 0,
            pending_hellos: 0,
            timers: BTreeSet::new(),
            dirty: Vec::new(),
            delayed_acks: BTreeMap::new(),
            delayed_seq: 0,
            outputs: VecDeque::new(),
            faults: FaultState::default(),
            admission,
            stats: BrokerStats::default(),
            dedupe: Dedupe::default(),
            latest: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The host accepted a WebSocket connection with this (never reused) id.
    pub fn handle_open(&mut self, conn: ConnId, now: Now) {
        let now = self.clamp(now);
        if self.conns.contains_key(&conn) {
            return;
        }
        let crowded = self.conns.len() >= self.config.max_connections
            || self.pending_hellos >= self.config.max_pending_hellos;
        self.conns
            .insert(conn, Conn::new(now.instant, self.config.hello_timeout));
        self.pending_hellos += 1;
        self.stats.connections_opened += 1;
        self.touch(conn);
        if crowded {
            self.stats.connections_refused += 1;
            let refusal = Refusal::capacity(
                "broker at connection capacity",
                self.config.capacity_retry_after_ms,
            );
            self.reject(conn, refusal, now);
        }
        self.finish();
    }

    /// A text frame arrived on `conn`.
    pub fn handle_frame(&mut self, conn: ConnId, text: &str, now: Now) {
        let now = self.clamp(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            self.stats.frames_ignored += 1;
            return;
        };
        if c.silent_since.is_some() || matches!(c.phase, Phase::Stalled { .. }) {
            self.stats.frames_ignored += 1;
            return;
        }
        c.last_activity = now.instant;
        let open = matches!(c.phase, Phase::Open(_));
        self.stats.frames_in += 1;
        self.touch(conn);
        if text.len() <= self.config.max_frame_len && has_duplicate_type(text) {
            self.stats.duplicate_type_keys += 1;
            let message = "malformed: duplicate key `type`".to_owned();
            if open {
                self.send_error(conn, "malformed", message, None, None);
            } else {
                self.reject(conn, Refusal::for_code("malformed", message), now);
            }
            return self.finish();
        }
        let decoded = decode_client_frame(text, self.config.max_frame_len);
        if open {
            self.dispatch_open(conn, text, decoded, now);
        } else {
            self.dispatch_pre_open(conn, decoded, now);
        }
        self.finish();
    }

    /// The host refused a frame it could not hand over: over its size limit (`len`
    /// bytes, or `None` when the host does not know how many), or not UTF-8. The
    /// connection gets an `error` saying so and the matching close (1009, 1007).
    pub fn handle_breach(&mut self, conn: ConnId, breach: Breach, now: Now) {
        let now = self.clamp(now);
        if !self.conns.contains_key(&conn) {
            return;
        }
        match breach {
            Breach::TooLarge { len } => {
                let max = self.config.max_frame_len;
                self.too_big(conn, len, max, None, now);
            }
            Breach::InvalidUtf8 => {
                self.stats.frames_not_utf8 += 1;
                let message = "frame is not valid UTF-8".to_owned();
                self.send_error(conn, "malformed", message, None, None);
                self.close(conn, CLOSE_NOT_UTF8, "invalid UTF-8", now);
            }
        }
        self.finish();
    }

    /// A pong (or ping) arrived on `conn`: it is alive.
    pub fn handle_activity(&mut self, conn: ConnId, now: Now) {
        let now = self.clamp(now);
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.silent_since.is_none() {
                c.last_activity = now.instant;
                self.touch(conn);
            }
        }
        self.finish();
    }

    /// The host lost `conn` (peer closed, IO error); no close frame is asked for.
    pub fn handle_closed(&mut self, conn: ConnId, now: Now) {
        let now = self.clamp(now);
        if let Some(c) = self.detach(conn) {
            self.linger(c, now);
        }
        self.finish();
    }

    /// Fires everything due by `now`: hello timeouts, pings, stale drops, re-pushes,
    /// delayed acks. An early or repeated call does nothing.
    pub fn handle_tick(&mut self, now: Now) {
        let now = self.clamp(now);
        let due: Vec<ConnId> = self
            .timers
            .range(..=(now.instant, ConnId(u64::MAX)))
            .map(|&(_, conn)| conn)
            .collect();
        for conn in due {
            self.conn_due(conn, now);
        }
        self.expire_presences(now);
        while let Some(entry) = self.delayed_acks.first_entry() {
            if entry.key().0 > now.instant {
                break;
            }
            let (conn, text) = entry.remove();
            self.emit(conn, OutputKind::Send(text));
        }
        self.finish();
    }

    /// Sets a fault switch or injects a one-shot fault.
    pub fn handle_fault(&mut self, fault: Fault, now: Now) {
        let now = self.clamp(now);
        match fault {
            Fault::RefuseHellos { refusal, until } => self.faults.refuse = Some((refusal, until)),
            Fault::AllowHellos => self.faults.refuse = None,
            Fault::StallHellos(on) => self.faults.stall_hellos = on,
            Fault::DelayAcks(delay) => self.faults.ack_delay = delay,
            Fault::GoSilent(selector) => {
                for conn in self.select(&selector) {
                    // Silencing twice must not restart the clock that eventually drops it.
                    if self.conns.get(&conn).is_some_and(|c| c.silent_since.is_none()) {
                        self.emit(conn, OutputKind::Silence);
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.silent_since = Some(now.instant);
                        }
                        self.touch(conn);
                    }
                }
            }
            Fault::DropAll { code, reason } => {
                let all = self.select(&ConnSelector::All);
                for &conn in &all {
                    self.emit_close(conn, code, &reason);
                }
                // Each presence lingers with its unconfirmed pushes, for its own
                // next connection only.
                let detached: Vec<Conn> = all.into_iter().filter_map(|c| self.detach(c)).collect();
                for c in detached {
                    self.linger(c, now);
                }
            }
            Fault::SendGarbage { to, text } => {
                for conn in self.select(&to) {
                    self.stats.garbage_sent += 1;
                    self.emit(conn, OutputKind::Send(text.clone()));
                }
            }
        }
        self.finish();
    }

    /// When [`Broker::handle_tick`] must next be called, if anything is scheduled.
    pub fn next_deadline(&self) -> Option<Instant> {
        let conn = self.timers.first().map(|&(at, _)| at);
        let ack = self.delayed_acks.first_key_value().map(|(&(at, _), _)| at);
        let lease = self.lease_timers.first().map(|&(at, _)| at);
        [conn, ack, lease].into_iter().flatten().min()
    }

    /// The next instruction for the host; drain until `None` after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Whether `conn` is known and has an accepted hello.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.seat().is_some())
    }

    /// The counters, with the gauges filled in for this moment.
    pub fn stats(&self) -> BrokerStats {
        let mut stats = self.stats.clone();
        stats.live_connections = self.conns.len() as u64;
        stats.open_connections = self.conns.values().filter(|c| c.seat().is_some()).count() as u64;
        stats.meshes = self.meshes.len() as u64;
        stats.offline_queued = self.meshes.values().map(|m| m.offline_len() as u64).sum();
        stats.unacked_pushes = self.conns.values().map(|c| c.unacked.len() as u64).sum();
        stats.lingering_presences = self.leases.len() as u64;
        stats.kept_bytes = self.kept_bytes as u64;
        stats.unacked_bytes = self.conns.values().map(|c| c.unacked_bytes as u64).sum();
        stats.pending_hellos = self.pending_hellos as u64;
        stats.lease_queued = self.leases.values().map(|l| l.queue.len() as u64).sum();
        stats.delayed_acks = self.delayed_acks.len() as u64;
        stats.dedupe_entries = self.dedupe.len() as u64;
        stats
    }

    // ----- shared helpers -----

    /// Time never goes backwards inside the machine.
    fn clamp(&mut self, now: Now) -> Now {
        let instant = self.latest.map_or(now.instant, |latest| latest.max(now.instant));
        self.latest = Some(instant);
        Now::new(instant, now.unix_ms)
    }

    /// Queues an output; a silenced connection gets nothing but its `Abort`.
    pub(crate) fn emit(&mut self, conn: ConnId, kind: OutputKind) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.silent_since.is_some() && !matches!(kind, OutputKind::Abort) {
            self.stats.silenced_outputs += 1;
            return;
        }
        self.outputs.push_back(Output { conn, kind });
    }

    /// Queues a host-level notice (not tied to socket work).
    pub(crate) fn notice(&mut self, conn: ConnId, notice: super::output::Notice) {
        self.outputs.push_back(Output {
            conn,
            kind: OutputKind::Notice(notice),
        });
    }

    pub(crate) fn send_frame(&mut self, conn: ConnId, frame: impl Into<BrokerFrame>) {
        self.emit(conn, OutputKind::Send(frame.into().encode()));
    }

    /// An `error` frame; `req_id` echoes the `_reqId` of the frame it answers.
    pub(crate) fn send_error(
        &mut self,
        conn: ConnId,
        code: &str,
        message: String,
        id: Option<String>,
        req_id: Option<String>,
    ) {
        self.send_frame(
            conn,
            ErrorFrame {
                code: code.to_owned(),
                message,
                id,
                req_id,
                retry_after_ms: None,
            },
        );
    }

    /// A close frame, or a bare drop when the code may not be sent or the peer is silenced.
    fn emit_close(&mut self, conn: ConnId, code: u16, reason: &str) {
        let silent = self.conns.get(&conn).is_some_and(|c| c.silent_since.is_some());
        if silent || !is_sendable_close_code(code) {
            self.emit(conn, OutputKind::Abort);
        } else {
            let reason = reason.to_owned();
            self.emit(conn, OutputKind::Close { code, reason });
        }
    }

    /// Closes `conn` with a close frame and forgets it.
    pub(crate) fn close(&mut self, conn: ConnId, code: u16, reason: &str, now: Now) {
        self.emit_close(conn, code, reason);
        if let Some(c) = self.detach(conn) {
            self.linger(c, now);
        }
    }

    /// Drops `conn` without a close frame and forgets it.
    pub(crate) fn abort(&mut self, conn: ConnId, now: Now) {
        self.emit(conn, OutputKind::Abort);
        if let Some(c) = self.detach(conn) {
            self.linger(c, now);
        }
    }

    /// Closes `old` with `session_replaced`: its session continues on `successor`,
    /// which receives its unconfirmed pushes (moved, never copied).
    pub(crate) fn replace(&mut self, old: ConnId, successor: ConnId, now: Now) {
        self.emit_close(old, 1000, "session_replaced");
        if let Some(c) = self.detach(old) {
            for u in c.unacked {
                let message = super::mesh::Queued {
                    message_id: u.message_id,
                    client_message_id: u.client_message_id,
                    text: u.text,
                };
                self.push_to(successor, message, now);
            }
        }
    }

    /// Removes `conn` from every index; its unconfirmed pushes are the caller's.
    fn detach(&mut self, conn: ConnId) -> Option<Conn> {
        let c = self.conns.remove(&conn)?;
        if c.seat().is_none() {
            self.pending_hellos = self.pending_hellos.saturating_sub(1);
        }
        if let Some(at) = c.indexed_wake {
            self.timers.remove(&(at, conn));
        }
        if let Some(seat) = c.seat() {
            if let Some(mesh) = self.meshes.get_mut(&seat.mesh_id) {
                mesh.open.remove(&conn);
            }
        }
        self.stats.connections_closed += 1;
        Some(c)
    }

    /// In an open broker, a mesh nobody is in (open or lingering) is forgotten with
    /// everything it held, so throwaway meshes cannot lock new ones out. Listed meshes
    /// are bounded by the members file and keep their data.
    pub(crate) fn free_if_empty(&mut self, mesh_id: &str) {
        if !matches!(self.config.membership, super::Membership::Open) {
            return;
        }
        let empty = self
            .meshes
            .get(mesh_id)
            .is_some_and(|m| m.open.is_empty() && m.lingering.is_empty());
        if !empty {
            return;
        }
        if let Some(mesh) = self.meshes.remove(mesh_id) {
            let kept: usize = mesh.offline.values().flatten().map(|q| q.text.len()).sum();
            self.kept_bytes = self.kept_bytes.saturating_sub(kept);
            self.stats.meshes_freed += 1;
        }
    }

    /// The connections a selector names, in id order.
    fn select(&self, selector: &ConnSelector) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = match selector {
            ConnSelector::All => self.conns.keys().copied().collect(),
            ConnSelector::Conn(conn) => self
                .conns
                .contains_key(conn)
                .then_some(*conn)
                .into_iter()
                .collect(),
            ConnSelector::Pubkey(key) => {
                let key = key.to_ascii_lowercase();
                self.conns
                    .iter()
                    .filter(|(_, c)| c.seat().is_some_and(|s| self.answers_to(s, &key)))
                    .map(|(&id, _)| id)
                    .collect()
            }
        };
        ids.sort_unstable();
        ids
    }

    /// A fresh id such as `msg-1f2e…`; unique per seed, so restarts should reseed.
    pub(crate) fn new_id(&mut self, prefix: &str) -> String {
        format!("{prefix}-{:016x}", self.rng.next_u64())
    }

    /// Holds an ack back when the delay fault is on, otherwise sends it.
    pub(crate) fn send_ack(&mut self, conn: ConnId, text: String, now: Now) {
        let delay = self.faults.ack_delay;
        if delay.is_zero() || self.delayed_acks.len() >= self.config.max_delayed_acks {
            self.emit(conn, OutputKind::Send(text));
            return;
        }
        self.delayed_acks.insert(
            (tether_proto::deadline_after(now.instant, delay), self.delayed_seq),
            (conn, text),
        );
        self.delayed_seq += 1;
        self.stats.acks_delayed += 1;
    }

    /// Marks a connection whose wake-up may have moved.
    pub(crate) fn touch(&mut self, conn: ConnId) {
        self.dirty.push(conn);
    }

    /// Re-files every touched connection in the timer index; ends every input.
    fn finish(&mut self) {
        let stale_after = self.config.stale_after;
        for conn in std::mem::take(&mut self.dirty) {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            let wake = c.wake(stale_after);
            if wake != c.indexed_wake {
                if let Some(old) = c.indexed_wake {
                    self.timers.remove(&(old, conn));
                }
                if let Some(new) = wake {
                    self.timers.insert((new, conn));
                }
                c.indexed_wake = wake;
            }
        }
    }
}
