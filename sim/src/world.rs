//! The simulated world: real sessions, the real broker core, a simulated network
//! and clock, all stepped in one deterministic order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tether_broker::core::{ConnSelector, Fault as BrokerFault, MemberRecord, OutputKind, Refusal, Roster};
use tether_broker::{Broker, BrokerConfig, ConnId, Membership};
use tether_proto::lifecycle::{Config, Event, FirstConnect, Frame, Io, SocketId, Status};
use tether_proto::mesh::handshake::{Credentials, MeshHandshake};
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::session::{
    Command, Outgoing, Queueing, Request, Session, SessionAction, SessionConfig, SessionEvent,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_OUTBOUND_QUEUE, DEFAULT_PUSH_HISTORY,
};
use tether_proto::mesh::wire::HelloExtras;
use tether_proto::policy::Jitter;
use tether_proto::Now;

use super::check::{ClientCheck, Deliveries, Violation};
use super::net::{LinkId, Net, Packet};
use super::scenario::{pop_due, Fault, Op, Scenario, HOSTILE_MEMBERS};
use super::trace::Trace;

mod hostile;

const MESH: &str = "sim-mesh";
const UNIX0: u64 = 1_750_000_000_000;
/// Retry-after hints the scenarios use (they widen the allowed delays).
const HINTS_MS: [u64; 3] = [500, 2_000, 10_000];

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's seed.
    pub seed: u64,
    /// Steps taken.
    pub steps: u64,
    /// A hash of the whole trace: equal runs have equal hashes.
    pub trace_hash: u64,
    /// The first invariant broken, if any.
    pub violation: Option<Violation>,
    /// The last trace lines.
    pub tail: Vec<String>,
    /// Sends issued, and how many ended acked.
    pub sends: (usize, u64),
    /// Virtual time simulated.
    pub simulated: Duration,
}

enum Internal {
    Unstall,
    UndelayAcks,
}

struct Node {
    session: Session,
    check: ClientCheck,
    link: Option<LinkId>,
    latency: Duration,
    partition_until: Duration,
    refuse_connect_until: Duration,
    suspended_until: Duration,
    disrupted_at: Duration,
    next_msg: u64,
    acked: u64,
}

/// One simulation run.
pub struct World {
    base: Instant,
    now: Duration,
    broker: Broker,
    broker_config: BrokerConfig,
    epoch: u64,
    next_conn: u64,
    conn_links: BTreeMap<ConnId, LinkId>,
    net: Net,
    nodes: Vec<Node>,
    keys: Vec<String>,
    deliveries: Deliveries,
    ops: VecDeque<(Duration, Op)>,
    internal: BTreeMap<(Duration, u64), Internal>,
    internal_seq: u64,
    hellos_refused_until: Duration,
    bound: Duration,
    stale_bound: Duration,
    trace: Trace,
    /// Connections of hostile members the broker still knows.
    hostile_conns: BTreeSet<ConnId>,
    hostile_next: u64,
    /// Set while a hostile member acts: no honest connection may be replaced then.
    hostile_acting: bool,
}

fn identity(i: usize) -> MemberIdentity {
    MemberIdentity {
        mesh_id: MESH.into(),
        member_id: format!("member-{i}"),
        secret: SecretKey::from_seed([i as u8 + 1; 32]),
    }
}

fn lifecycle_config(jitter: Jitter) -> Config {
    let mut c = Config::new("ws://broker.sim/ws");
    c.jitter = jitter;
    c.first_connect = FirstConnect::Retry;
    c
}

impl World {
    /// Builds the world of `scenario`; `trace` keeps readable trace lines.
    pub fn new(scenario: &Scenario, trace: bool) -> World {
        let base = Instant::now();
        let jitter = Jitter::from_permille_saturating(scenario.jitter_permille);
        let keys: Vec<String> = (0..scenario.clients)
            .map(|i| identity(i).secret.public_key().to_hex())
            .collect();
        let hostile = (0..HOSTILE_MEMBERS).map(|n| {
            let id = hostile::hostile_identity(n);
            MemberRecord {
                display_name: id.member_id.clone(),
                member_id: id.member_id,
                pubkey: id.secret.public_key().to_hex(),
                revoked: false,
                groups: Vec::new(),
            }
        });
        let roster = Roster::new(
            (0..scenario.clients)
                .map(|i| MemberRecord {
                    member_id: format!("member-{i}"),
                    pubkey: keys[i].clone(),
                    display_name: format!("peer-{i}"),
                    revoked: false,
                    groups: Vec::new(),
                })
                .chain(hostile)
                .collect(),
        );
        let broker_config = BrokerConfig {
            membership: Membership::Listed([(MESH.to_owned(), roster)].into_iter().collect()),
            seed: scenario.seed,
            // Small bounds, so the hostile members breach them with small frames.
            max_connections_per_member: 4,
            max_state_value_len: 2 * 1024,
            max_state_bytes_per_mesh: 16 * 1024,
            max_memory_len: 2 * 1024,
            max_memory_bytes_per_mesh: 16 * 1024,
            max_text_len: 1024,
            max_unacked_bytes_per_conn: 32 * 1024,
            max_kept_bytes: 128 * 1024,
            max_reply_len: 8 * 1024,
            ..BrokerConfig::default()
        };
        let lc = lifecycle_config(jitter);
        let contract = ClientCheck::contract_for(&lc, HINTS_MS.map(Duration::from_millis));
        let max_latency = scenario.latency.iter().copied().max().unwrap_or_default();
        let max_delay = contract.longest_delay();
        let bound = lc.open_timeout.unwrap_or_default()
            + lc.hello_ack_timeout
            + max_delay
            + max_latency * 4
            + Duration::from_secs(1);
        // A silent link is noticed within two watchdog periods past the stale threshold.
        let stale_bound = lc.ping_interval * 2 + lc.stale_after + max_latency * 2 + Duration::from_secs(1);
        let nodes = (0..scenario.clients)
            .map(|i| {
                let presence = Presence {
                    session_id: format!("sim-{i}"),
                    pid: i as u32,
                    cwd: "/sim".into(),
                    extras: HelloExtras {
                        display_name: Some(format!("peer-{i}")),
                        ..HelloExtras::default()
                    }
                    .into(),
                };
                let hs = MeshHandshake::new(Credentials::Member(identity(i)), presence);
                let seed = scenario.seed.wrapping_mul(31).wrapping_add(i as u64);
                let session = Session::new(SessionConfig::new(lifecycle_config(jitter)), hs, seed, base)
                    .unwrap_or_else(|e| unreachable!("the default config is valid: {e}"));
                Node {
                    session,
                    check: ClientCheck::new(i, contract.clone()),
                    link: None,
                    latency: scenario.latency[i],
                    partition_until: Duration::ZERO,
                    refuse_connect_until: Duration::ZERO,
                    suspended_until: Duration::ZERO,
                    disrupted_at: Duration::ZERO,
                    next_msg: 0,
                    acked: 0,
                }
            })
            .collect();
        World {
            base,
            now: Duration::ZERO,
            broker: Broker::new(broker_config.clone()),
            broker_config,
            epoch: 0,
            next_conn: 0,
            conn_links: BTreeMap::new(),
            net: Net::default(),
            nodes,
            keys,
            deliveries: Deliveries::default(),
            ops: scenario.ops.iter().cloned().collect(),
            internal: BTreeMap::new(),
            internal_seq: 0,
            hellos_refused_until: Duration::ZERO,
            bound,
            stale_bound,
            trace: Trace::new(trace),
            hostile_conns: BTreeSet::new(),
            hostile_next: 0,
            hostile_acting: false,
        }
    }

    fn at(&self) -> Now {
        Now::new(self.base + self.now, UNIX0 + self.now.as_millis() as u64)
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        self.trace.note(self.now, line);
    }

    /// Runs the scenario, then heals every fault and lets the clients settle, then
    /// closes them: every invariant is checked after every step.
    pub fn run(mut self, scenario: &Scenario) -> Outcome {
        let result = self.run_inner(scenario);
        let sends = (
            self.deliveries.sent.len(),
            self.nodes.iter().map(|n| n.acked).sum(),
        );
        Outcome {
            seed: scenario.seed,
            steps: self.trace.steps,
            trace_hash: self.trace.hash,
            violation: result.err(),
            tail: self.trace.into_tail(),
            sends,
            simulated: self.now,
        }
    }

    fn run_inner(&mut self, scenario: &Scenario) -> Result<(), Violation> {
        for i in 0..self.nodes.len() {
            let at = self.at();
            let _ = self.nodes[i].session.handle(at, Event::Connect);
            self.pump_client(i)?;
        }
        self.run_until(scenario.duration)?;
        // Heal: the broker accepts again and every link is clear.
        self.note(|| "heal: every fault ends".into());
        let at = self.at();
        self.broker.handle_fault(BrokerFault::AllowHellos, at);
        self.broker.handle_fault(BrokerFault::StallHellos(false), at);
        self.broker
            .handle_fault(BrokerFault::DelayAcks(Duration::ZERO), at);
        self.hellos_refused_until = self.now;
        self.internal.clear();
        self.ops.clear();
        self.drop_hostiles()?;
        for node in &mut self.nodes {
            node.partition_until = node.partition_until.min(self.now);
            node.refuse_connect_until = node.refuse_connect_until.min(self.now);
        }
        self.pump_broker()?;
        let settle = self.now + self.bound * 2 + Duration::from_secs(120);
        self.run_until(settle)?;
        // Every client that was not stopped is open now, and then closes.
        for i in 0..self.nodes.len() {
            let check = &self.nodes[i].check;
            if !check.stopped() && check.status() != Status::Open {
                return Err(Violation(format!(
                    "client {i} is {:?} after settling",
                    check.status()
                )));
            }
            let at = self.at();
            let _ = self.nodes[i].session.handle(at, Event::Close);
            self.pump_client(i)?;
        }
        let end = self.now + Duration::from_secs(5);
        self.run_until(end)?;
        for node in &self.nodes {
            if !node.check.pending.is_empty() {
                return Err(Violation(format!(
                    "client {}: ops never resolved: {:?}",
                    node.check.index, node.check.pending
                )));
            }
        }
        Ok(())
    }

    fn next_time(&self) -> Option<Duration> {
        let mut next = self.net.next_time();
        let mut consider = |t: Duration| next = Some(next.map_or(t, |n: Duration| n.min(t)));
        if let Some((t, _)) = self.ops.front() {
            consider(*t);
        }
        if let Some(((t, _), _)) = self.internal.iter().next() {
            consider(*t);
        }
        if let Some(at) = self.broker.next_deadline() {
            consider(at.saturating_duration_since(self.base));
        }
        for node in &self.nodes {
            if let Some((at, _)) = node.session.next_deadline() {
                consider(at.saturating_duration_since(self.base).max(node.suspended_until));
            }
        }
        next
    }

    fn run_until(&mut self, end: Duration) -> Result<(), Violation> {
        while let Some(t) = self.next_time() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            while let Some(op) = pop_due(&mut self.ops, self.now) {
                self.apply(op)?;
            }
            while let Some((&key, _)) = self.internal.iter().next() {
                if key.0 > self.now {
                    break;
                }
                if let Some(internal) = self.internal.remove(&key) {
                    let at = self.at();
                    match internal {
                        Internal::Unstall => self.broker.handle_fault(BrokerFault::StallHellos(false), at),
                        Internal::UndelayAcks => self
                            .broker
                            .handle_fault(BrokerFault::DelayAcks(Duration::ZERO), at),
                    }
                    self.pump_broker()?;
                }
            }
            while let Some((link, packet)) = self.net.pop_due(self.now) {
                self.deliver(link, packet)?;
            }
            if self
                .broker
                .next_deadline()
                .is_some_and(|at| at <= self.base + self.now)
            {
                let at = self.at();
                self.broker.handle_tick(at);
                self.pump_broker()?;
            }
            for i in 0..self.nodes.len() {
                let node = &self.nodes[i];
                let due = node
                    .session
                    .next_deadline()
                    .is_some_and(|(at, _)| at <= self.base + self.now);
                if due && node.suspended_until <= self.now {
                    let at = self.at();
                    let _ = self.nodes[i].session.handle(at, Event::Tick);
                    self.pump_client(i)?;
                }
            }
            self.check_liveness()?;
        }
        self.now = self.now.max(end);
        Ok(())
    }

    fn check_liveness(&self) -> Result<(), Violation> {
        for node in &self.nodes {
            let c = &node.check;
            if c.status() == Status::Open {
                // L9: an open client on a link that silently died notices in time.
                let dead = node
                    .link
                    .and_then(|id| self.net.links.get(&id))
                    .and_then(|l| l.dead_since);
                if let Some(since) = dead {
                    let since = since.max(node.suspended_until);
                    if self.now > since + self.stale_bound {
                        return Err(Violation(format!(
                            "client {}: still open {:?} after its link went silent (bound {:?})",
                            c.index,
                            self.now - since,
                            self.stale_bound
                        )));
                    }
                }
                continue;
            }
            if c.stopped() {
                continue;
            }
            let healthy_since = [
                c.not_open_since,
                node.disrupted_at,
                self.hellos_refused_until,
                node.partition_until,
                node.refuse_connect_until,
                node.suspended_until,
            ]
            .into_iter()
            .max()
            .unwrap_or_default();
            if self.now > healthy_since + self.bound {
                return Err(Violation(format!(
                    "client {}: {:?} for {:?} with a healthy broker (bound {:?})",
                    c.index,
                    c.status(),
                    self.now - healthy_since,
                    self.bound
                )));
            }
        }
        Ok(())
    }

    fn link_delay(&self, client: usize) -> Duration {
        let node = &self.nodes[client];
        let at = self.now + node.latency;
        if node.partition_until > self.now {
            at.max(node.partition_until + node.latency)
        } else {
            at
        }
    }

    fn current_link(&self, client: usize, socket: SocketId) -> Option<LinkId> {
        self.nodes[client]
            .link
            .filter(|l| self.net.links.get(l).is_some_and(|link| link.socket == socket))
    }

    fn apply(&mut self, op: Op) -> Result<(), Violation> {
        let client = match &op {
            Op::Send { from, .. } | Op::Request { from, .. } | Op::Command { from } => Some(*from),
            Op::Close { client } | Op::RetryNow { client } | Op::Reconnect { client } => Some(*client),
            Op::Suspend { .. } | Op::Fault(_) | Op::Hostile { .. } => None,
        };
        if let Some(c) = client {
            // A sleeping host does nothing; its application acts when it wakes.
            let wake = self.nodes[c].suspended_until;
            if wake > self.now {
                let pos = self
                    .ops
                    .iter()
                    .position(|(t, _)| *t > wake)
                    .unwrap_or(self.ops.len());
                self.ops.insert(pos, (wake, op));
                return Ok(());
            }
        }
        self.note(|| format!("op {op:?}"));
        let at = self.at();
        match op {
            Op::Send {
                from,
                to,
                resend,
                queue_for,
            } => {
                let node = &mut self.nodes[from];
                node.next_msg += 1;
                let cmid = format!("c{from}-{}", node.next_msg);
                let body = format!("body {from}/{}", node.next_msg);
                let mut out = Outgoing::new(self.keys[to].clone(), body.clone());
                out.client_message_id = Some(cmid.clone());
                out.resend_if_unknown = resend;
                out.queueing = Queueing::Queue { deadline: queue_for };
                if let Ok(id) = node.session.send(at, out) {
                    node.check.issued(id)?;
                    self.deliveries.sent.insert(cmid, (from, body));
                }
                self.pump_client(from)?;
            }
            Op::Request { from, kind } => {
                let request = match kind {
                    0 => Request::ListPeers,
                    1 => Request::GetState { key: "k".into() },
                    2 => Request::ListState,
                    3 => Request::Remember {
                        content: "remember me".into(),
                        tags: None,
                    },
                    4 => Request::Recall { query: "me".into() },
                    5 => Request::ListSkills { query: None },
                    _ => Request::GetSkill { name: "s".into() },
                };
                let node = &mut self.nodes[from];
                if let Ok(id) = node.session.request(at, request) {
                    node.check.issued(id)?;
                }
                self.pump_client(from)?;
            }
            Op::Command { from } => {
                let _ = self.nodes[from].session.command(
                    at,
                    Command::SetState {
                        key: "k".into(),
                        value: serde_json::json!(from),
                    },
                );
                self.pump_client(from)?;
            }
            Op::Close { client } => {
                let _ = self.nodes[client].session.handle(at, Event::Close);
                self.pump_client(client)?;
            }
            Op::RetryNow { client } => {
                let _ = self.nodes[client].session.handle(at, Event::RetryNow);
                self.pump_client(client)?;
            }
            Op::Reconnect { client } => {
                self.nodes[client].disrupted_at = self.now;
                let _ = self.nodes[client].session.handle(at, Event::Reconnect);
                self.pump_client(client)?;
            }
            Op::Suspend { client, for_ } => self.nodes[client].suspended_until = self.now + for_,
            Op::Fault(fault) => self.fault(fault)?,
            Op::Hostile {
                attacker,
                attack,
                victim,
            } => self.hostile(attacker, attack, victim)?,
        }
        Ok(())
    }

    fn fault(&mut self, fault: Fault) -> Result<(), Violation> {
        let at = self.at();
        let until = |d: Duration| Some(self.base + self.now + d);
        match fault {
            Fault::BrokerRestart { abrupt } => {
                let (code, reason) = if abrupt {
                    (1006, "")
                } else {
                    (1001, "shutting down")
                };
                let live: Vec<LinkId> = self
                    .net
                    .links
                    .iter()
                    .filter(|(_, l)| l.accepted && !l.lost && l.epoch == self.epoch)
                    .map(|(id, _)| *id)
                    .collect();
                for id in live {
                    let client = self.net.links[&id].client;
                    let when = self.link_delay(client);
                    if let Some(l) = self.net.links.get_mut(&id) {
                        l.lost = true;
                    }
                    let close = Packet::ClientClosed {
                        code,
                        reason: reason.into(),
                    };
                    self.net.send_unordered(id, when, close);
                }
                for node in &mut self.nodes {
                    node.disrupted_at = self.now;
                }
                self.epoch += 1;
                let mut config = self.broker_config.clone();
                config.seed = config.seed.wrapping_add(self.epoch);
                self.broker = Broker::new(config);
                self.conn_links.clear();
                self.hostile_conns.clear();
                self.hellos_refused_until = self.now;
            }
            Fault::Refuse { code, for_ } => {
                let refusal = Refusal::for_code(code, "refused by the simulation");
                self.broker.handle_fault(
                    BrokerFault::RefuseHellos {
                        refusal,
                        until: until(for_),
                    },
                    at,
                );
                self.hellos_refused_until = self.hellos_refused_until.max(self.now + for_);
            }
            Fault::Capacity { retry_after_ms, for_ } => {
                let refusal = Refusal::capacity("the simulated mesh is full", retry_after_ms);
                self.broker.handle_fault(
                    BrokerFault::RefuseHellos {
                        refusal,
                        until: until(for_),
                    },
                    at,
                );
                self.hellos_refused_until = self.hellos_refused_until.max(self.now + for_);
            }
            Fault::StallHellos { for_ } => {
                self.broker.handle_fault(BrokerFault::StallHellos(true), at);
                self.internal_seq += 1;
                self.internal
                    .insert((self.now + for_, self.internal_seq), Internal::Unstall);
                self.hellos_refused_until = self.hellos_refused_until.max(self.now + for_);
            }
            Fault::DelayAcks { by, for_ } => {
                self.broker.handle_fault(BrokerFault::DelayAcks(by), at);
                self.internal_seq += 1;
                self.internal
                    .insert((self.now + for_, self.internal_seq), Internal::UndelayAcks);
            }
            Fault::Garbage { client } => {
                if let Some(conn) = self.accepted_conn(client) {
                    let fault = BrokerFault::SendGarbage {
                        to: ConnSelector::Conn(conn),
                        text: "\u{1}{garbage".into(),
                    };
                    self.broker.handle_fault(fault, at);
                }
            }
            Fault::HalfOpen { client } => {
                let now = self.now;
                if let Some(l) = self.nodes[client].link.and_then(|id| self.net.links.get_mut(&id)) {
                    l.half_open = true;
                    l.dead_since.get_or_insert(now);
                }
                self.nodes[client].disrupted_at = self.now;
            }
            Fault::LoseConnection { client } => {
                self.nodes[client].disrupted_at = self.now;
                if let Some(id) = self.nodes[client].link {
                    let (socket, conn, known) = match self.net.links.get_mut(&id) {
                        Some(l) if !l.lost => {
                            l.lost = true;
                            (l.socket, l.conn, l.accepted && l.epoch == self.epoch)
                        }
                        _ => return Ok(()),
                    };
                    self.nodes[client].link = None;
                    self.nodes[client].check.socket_gone(socket);
                    let _ = self.nodes[client].session.handle(
                        at,
                        Event::Closed {
                            socket,
                            code: 1006,
                            reason: "connection reset".into(),
                        },
                    );
                    self.pump_client(client)?;
                    if known {
                        self.broker.handle_closed(conn, at);
                        self.pump_broker()?;
                    }
                }
            }
            Fault::Partition { client, for_ } => {
                let node = &mut self.nodes[client];
                node.partition_until = node.partition_until.max(self.now + for_);
            }
            Fault::RefuseConnect { client, for_ } => {
                let node = &mut self.nodes[client];
                node.refuse_connect_until = node.refuse_connect_until.max(self.now + for_);
            }
        }
        self.pump_broker()
    }

    fn accepted_conn(&self, client: usize) -> Option<ConnId> {
        let l = self.net.links.get(&self.nodes[client].link?)?;
        (l.accepted && !l.lost && l.epoch == self.epoch).then_some(l.conn)
    }

    fn deliver(&mut self, id: LinkId, packet: Packet) -> Result<(), Violation> {
        let Some(link) = self.net.links.get(&id).cloned() else {
            return Ok(());
        };
        if link.lost
            && !matches!(
                packet,
                Packet::ClientClosed { .. } | Packet::ClientConnectFailed(_)
            )
        {
            return Ok(());
        }
        if link.half_open {
            return Ok(());
        }
        let client = link.client;
        if !packet.to_broker() && self.nodes[client].suspended_until > self.now {
            // A sleeping host reads its socket when it wakes.
            let wake = self.nodes[client].suspended_until;
            self.net.defer(id, wake, packet);
            return Ok(());
        }
        let at = self.at();
        let socket = link.socket;
        self.note(|| format!("deliver link {id} c{client} {packet:?}"));
        match packet {
            Packet::BrokerOpen => {
                if let Some(l) = self.net.links.get_mut(&id) {
                    l.accepted = true;
                    l.epoch = self.epoch;
                }
                self.conn_links.insert(link.conn, id);
                self.broker.handle_open(link.conn, at);
                self.pump_broker()?;
                let when = self.link_delay(client);
                self.net.send(id, when, Packet::ClientOpened);
            }
            Packet::ToBroker(text) => {
                if link.epoch == self.epoch {
                    self.broker.handle_frame(link.conn, &text, at);
                    self.pump_broker()?;
                }
            }
            Packet::BrokerActivity => {
                if link.epoch == self.epoch {
                    self.broker.handle_activity(link.conn, at);
                    self.pump_broker()?;
                }
            }
            Packet::ToBrokerPing => {
                if link.epoch == self.epoch {
                    self.broker.handle_activity(link.conn, at);
                    self.pump_broker()?;
                    let when = self.link_delay(client);
                    self.net.send(id, when, Packet::ToClientPong);
                }
            }
            Packet::BrokerClosed => {
                if link.epoch == self.epoch && link.accepted {
                    self.broker.handle_closed(link.conn, at);
                    self.pump_broker()?;
                }
            }
            Packet::ClientOpened => self.client_event(client, Event::Opened { socket })?,
            Packet::ClientConnectFailed(kind) => {
                self.nodes[client].check.socket_gone(socket);
                if self.nodes[client].link == Some(id) {
                    self.nodes[client].link = None;
                }
                let reason = "connection refused".into();
                self.client_event(client, Event::ConnectFailed { socket, kind, reason })?;
            }
            Packet::ToClientText(text) => self.client_event(
                client,
                Event::Frame {
                    socket,
                    frame: Frame::Text(text),
                },
            )?,
            Packet::ToClientPing => {
                self.client_event(
                    client,
                    Event::Frame {
                        socket,
                        frame: Frame::Ping,
                    },
                )?;
                // The client's WebSocket library answers pings itself.
                if self.current_link(client, socket).is_some() {
                    let when = self.link_delay(client);
                    self.net.send(id, when, Packet::BrokerActivity);
                }
            }
            Packet::ToClientPong => self.client_event(
                client,
                Event::Frame {
                    socket,
                    frame: Frame::Pong,
                },
            )?,
            Packet::ClientClosed { code, reason } => {
                self.nodes[client].check.socket_gone(socket);
                if self.nodes[client].link == Some(id) {
                    self.nodes[client].link = None;
                }
                self.client_event(client, Event::Closed { socket, code, reason })?;
            }
        }
        Ok(())
    }

    fn client_event(&mut self, client: usize, event: Event) -> Result<(), Violation> {
        let at = self.at();
        let _ = self.nodes[client].session.handle(at, event);
        self.pump_client(client)
    }

    fn pump_client(&mut self, i: usize) -> Result<(), Violation> {
        while let Some(action) = self.nodes[i].session.poll_action() {
            self.nodes[i].check.action(self.now, &action)?;
            self.note(|| format!("c{i} {action:?}"));
            match action {
                SessionAction::Io(io) => self.client_io(i, io),
                // A hostile member's flood is real mail, but not the workload's.
                SessionAction::Event(SessionEvent::Push(push))
                    if !self.keys.contains(&push.sender_pubkey) => {}
                SessionAction::Event(SessionEvent::Push(push)) => {
                    let body = push.body.text().unwrap_or_default().to_owned();
                    let cmid = push.client_message_id.as_deref();
                    self.deliveries
                        .delivered(i, cmid, &body, &push.sender_pubkey, &self.keys)?;
                }
                SessionAction::Event(SessionEvent::Resolved { result: Ok(_), .. }) => {
                    self.nodes[i].acked += 1
                }
                SessionAction::Event(_) => {}
            }
        }
        let node = &self.nodes[i];
        let stats = node.session.stats(self.base + self.now);
        let caps = (
            DEFAULT_OUTBOUND_QUEUE,
            DEFAULT_MAX_IN_FLIGHT,
            DEFAULT_PUSH_HISTORY,
        );
        let status = node.session.status();
        node.check
            .after_step(&stats, status, node.session.next_deadline().is_some(), caps)
    }

    fn client_io(&mut self, i: usize, io: Io) {
        match io {
            Io::OpenSocket { socket, .. } => {
                self.next_conn += 1;
                let id = self.net.link(i, socket, ConnId(self.next_conn), self.epoch);
                self.nodes[i].link = Some(id);
                let node = &self.nodes[i];
                if node.refuse_connect_until > self.now {
                    let when = self.now + node.latency;
                    let failed =
                        Packet::ClientConnectFailed(tether_proto::lifecycle::ConnectFailureKind::Refused);
                    self.net.send_unordered(id, when, failed);
                } else {
                    let when = self.link_delay(i);
                    self.net.send(id, when, Packet::BrokerOpen);
                }
            }
            Io::SendText { socket, text } => {
                if let Some(id) = self.current_link(i, socket) {
                    let when = self.link_delay(i);
                    self.net.send(id, when, Packet::ToBroker(text));
                }
            }
            Io::SendPing { socket } => {
                if let Some(id) = self.current_link(i, socket) {
                    let when = self.link_delay(i);
                    self.net.send(id, when, Packet::ToBrokerPing);
                }
            }
            Io::CloseSocket { socket, .. } | Io::TerminateSocket { socket } => {
                if let Some(id) = self.current_link(i, socket) {
                    let when = self.link_delay(i);
                    self.net.send(id, when, Packet::BrokerClosed);
                    self.nodes[i].link = None;
                }
            }
        }
    }

    fn pump_broker(&mut self) -> Result<(), Violation> {
        while let Some(out) = self.broker.poll_output() {
            if let OutputKind::Send(text) = &out.kind {
                let max = self.broker_config.max_reply_len;
                if text.len() > max {
                    return Err(Violation(format!(
                        "broker sent {} a frame of {} bytes > the reply bound {max}",
                        out.conn,
                        text.len()
                    )));
                }
            }
            if self.hostile_conns.contains(&out.conn) {
                let text = match &out.kind {
                    OutputKind::Send(text) => Some(text.as_str()),
                    _ => None,
                };
                let last = matches!(out.kind, OutputKind::Close { .. } | OutputKind::Abort);
                self.check_hostile_output(out.conn, text, last)?;
                continue;
            }
            if self.hostile_acting
                && matches!(&out.kind, OutputKind::Close { reason, .. } if reason == "session_replaced")
            {
                return Err(Violation(format!(
                    "a hostile member's hello replaced honest connection {}",
                    out.conn
                )));
            }
            let Some(&id) = self.conn_links.get(&out.conn) else {
                continue;
            };
            let client = self.net.links.get(&id).map_or(0, |l| l.client);
            let when = self.link_delay(client);
            self.note(|| format!("broker → link {id}: {:?}", out.kind));
            match out.kind {
                OutputKind::Send(text) => self.net.send(id, when, Packet::ToClientText(text)),
                OutputKind::Ping => self.net.send(id, when, Packet::ToClientPing),
                OutputKind::Close { code, reason } => {
                    self.net.send(id, when, Packet::ClientClosed { code, reason });
                    self.conn_links.remove(&out.conn);
                }
                OutputKind::Abort => {
                    let close = Packet::ClientClosed {
                        code: 1006,
                        reason: String::new(),
                    };
                    self.net.send(id, when, close);
                    self.conn_links.remove(&out.conn);
                }
                OutputKind::Silence => {
                    let now = self.now;
                    if let Some(l) = self.net.links.get_mut(&id) {
                        l.half_open = true;
                        l.dead_since.get_or_insert(now);
                    }
                }
                OutputKind::Notice(_) => {}
            }
        }
        self.broker
            .check_bounds()
            .map_err(|e| Violation(format!("broker bound broken: {e}")))
    }

    /// Readable description of the trace so far, for failure reports.
    pub fn describe(outcome: &Outcome) -> String {
        let mut s = String::new();
        for line in &outcome.tail {
            let _ = writeln!(s, "  {line}");
        }
        s
    }
}
