//! The hosted world: the real `hosted::Session`, driven through the
//! [`Machine`] contract as the hosts drive it, the pure server model, a
//! simulated link and clock, all stepped in one deterministic order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tether_broker::ConnId;
use tether_proto::hosted::{HostedConfig, Session, TokenProvider};
use tether_proto::lifecycle::{ConnectFailureKind, ContractCheck, Event, Frame, Io, SocketId, Status};
use tether_proto::policy::Jitter;
use tether_proto::{Machine, Now, Output};

use super::check::{FrameExpect, HostedCheck, Timings};
use super::scenario::{AppOp, HostedScenario, Plan};
use super::server::{Server, BASE, ORGANIZATION, SESSION_ID};
use crate::check::Violation;
use crate::net::{LinkId, Net, Packet};
use crate::scenario::pop_due;
use crate::trace::Trace;
use crate::world::Outcome;

const UNIX0: u64 = 1_750_000_000_000;

/// What the provider handed out: the count, the newest token, and which
/// fetches fail.
#[derive(Debug, Default)]
struct Tokens {
    fetched: u64,
    newest: Option<String>,
    failures: BTreeSet<u64>,
}

fn provider(tokens: &Arc<Mutex<Tokens>>) -> TokenProvider {
    let tokens = Arc::clone(tokens);
    Box::new(move || {
        let mut t = tokens.lock().unwrap_or_else(PoisonError::into_inner);
        t.fetched += 1;
        if t.failures.contains(&t.fetched) {
            t.newest = None;
            return Err(format!("token service down for fetch {}", t.fetched));
        }
        let token = format!("tok-{}", t.fetched);
        t.newest = Some(token.clone());
        Ok(token)
    })
}

/// An upgrade on its way to the server: URL, headers, and the provider's
/// newest token when the socket was asked for.
#[derive(Debug)]
struct Upgrade {
    url: String,
    headers: Vec<(String, String)>,
    newest: Option<String>,
}

/// Where one accepted connection's server side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    Silent,
    Gone,
}

#[derive(Debug)]
struct Conn {
    plan: Plan,
    phase: Phase,
    frames: u64,
}

#[derive(Clone, Copy, Debug)]
enum ServerTimer {
    Frame,
    PlanEnd,
}

/// One hosted simulation run.
pub struct HostedWorld {
    base: Instant,
    now: Duration,
    scenario: HostedScenario,
    session: Session,
    check: HostedCheck,
    tokens: Arc<Mutex<Tokens>>,
    server: Server,
    net: Net,
    link: Option<LinkId>,
    upgrades: BTreeMap<LinkId, Upgrade>,
    upgrades_seen: u64,
    conns: BTreeMap<LinkId, Conn>,
    timers: BTreeMap<(Duration, u64), (LinkId, ServerTimer)>,
    timer_seq: u64,
    ops: VecDeque<(Duration, AppOp)>,
    requests: u64,
    /// When the client last heard anything on its current socket.
    last_heard: Duration,
    silence_bound: Duration,
    trace: Trace,
}

impl HostedWorld {
    /// Builds the world of `scenario`; `trace` keeps readable trace lines.
    pub fn new(scenario: &HostedScenario, trace: bool) -> HostedWorld {
        let base = Instant::now();
        let jitter = Jitter::from_permille_saturating(scenario.jitter_permille);
        let mut config = HostedConfig::new(BASE, SESSION_ID, ORGANIZATION)
            .unwrap_or_else(|e| unreachable!("the simulation's ids are valid: {e}"));
        config.lifecycle.jitter = jitter;
        let lc = &config.lifecycle;
        let contract = ContractCheck::for_config(lc, None);
        let timings = Timings {
            jitter,
            stability: lc.stability_window,
            force: lc.force_reconnect_delay,
        };
        // D11: the last sign of life is at most one stale threshold plus one
        // watchdog period old when the watchdog gives up.
        let silence_bound = lc.stale_after + lc.ping_interval + Duration::from_millis(1);
        let tokens = Arc::new(Mutex::new(Tokens {
            failures: scenario.token_failures.iter().copied().collect(),
            ..Tokens::default()
        }));
        let seed = scenario.seed.wrapping_mul(31).wrapping_add(7);
        let session = Session::new(config, provider(&tokens), seed, base)
            .unwrap_or_else(|e| unreachable!("the hosted defaults are valid: {e}"));
        HostedWorld {
            base,
            now: Duration::ZERO,
            scenario: scenario.clone(),
            session,
            check: HostedCheck::new(timings, contract),
            tokens,
            server: Server::default(),
            net: Net::default(),
            link: None,
            upgrades: BTreeMap::new(),
            upgrades_seen: 0,
            conns: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            ops: scenario.ops.iter().copied().collect(),
            requests: 0,
            last_heard: Duration::ZERO,
            silence_bound,
            trace: Trace::new(trace),
        }
    }

    fn at(&self) -> Now {
        Now::new(self.base + self.now, UNIX0 + self.now.as_millis() as u64)
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        self.trace.note(self.now, line);
    }

    /// Runs the scenario, then closes the session and lets it settle; every
    /// invariant is checked after every step.
    pub fn run(mut self) -> Outcome {
        let result = self.run_inner();
        Outcome {
            seed: self.scenario.seed,
            steps: self.trace.steps,
            trace_hash: self.trace.hash,
            violation: result.err(),
            tail: self.trace.into_tail(),
            sends: (self.requests as usize, self.check.answered),
            simulated: self.now,
        }
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        self.feed(Event::Connect)?;
        self.run_until(self.scenario.duration)?;
        self.note(|| "the application closes".into());
        self.check.close_fed();
        self.feed(Event::Close)?;
        let end = self.now + Duration::from_secs(5);
        self.run_until(end)?;
        if !self.check.stopped() {
            return Err(Violation(format!("{:?} after close", self.check.status())));
        }
        if self.check.pending() > 0 {
            return Err(Violation(format!(
                "{} control requests neither answered nor failed",
                self.check.pending()
            )));
        }
        Ok(())
    }

    fn next_time(&self) -> Option<Duration> {
        let deadline =
            Machine::next_deadline(&self.session).map(|(at, _)| at.saturating_duration_since(self.base));
        [
            self.net.next_time(),
            self.ops.front().map(|(t, _)| *t),
            self.timers.keys().next().map(|(t, _)| *t),
            deadline,
        ]
        .into_iter()
        .flatten()
        .min()
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
            while let Some(entry) = self.timers.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (link, timer) = entry.remove();
                self.server_timer(link, timer);
            }
            while let Some((link, packet)) = self.net.pop_due(self.now) {
                self.deliver(link, packet)?;
            }
            let due = Machine::next_deadline(&self.session).is_some_and(|(at, _)| at <= self.base + self.now);
            if due {
                self.feed(Event::Tick)?;
            }
            self.check_silence()?;
        }
        self.now = self.now.max(end);
        Ok(())
    }

    /// D11: an open session whose server went silent notices within the bound.
    fn check_silence(&self) -> Result<(), Violation> {
        if self.check.status() == Status::Open && self.now > self.last_heard + self.silence_bound {
            return Err(Violation(format!(
                "still open {:?} after it last heard from the server (bound {:?}, D11)",
                self.now - self.last_heard,
                self.silence_bound
            )));
        }
        Ok(())
    }

    fn apply(&mut self, op: AppOp) -> Result<(), Violation> {
        self.note(|| format!("op {op:?}"));
        match op {
            AppOp::ControlRequest => {
                self.requests += 1;
                let payload = json!({"subtype": "interrupt", "n": self.requests});
                let status = Machine::status(&self.session);
                let result = self.session.send_control_request(payload.clone());
                self.check.control_request(status, &payload, &result)?;
                self.pump()
            }
            AppOp::Reconnect => {
                self.check.reconnect_fed();
                self.feed(Event::Reconnect)
            }
            AppOp::RetryNow => {
                self.check.retry_now_fed();
                self.feed(Event::RetryNow)
            }
        }
    }

    fn feed(&mut self, event: Event) -> Result<(), Violation> {
        let at = self.at();
        // A refusal (input to a closed session) changes nothing; the checks
        // after the drain say so.
        let _ = Machine::handle(&mut self.session, at, event);
        self.pump()
    }

    fn pump(&mut self) -> Result<(), Violation> {
        while let Some(output) = Machine::poll_output(&mut self.session) {
            self.note(|| format!("client {output:?}"));
            match output {
                Output::Io(io) => {
                    self.check.io(&io)?;
                    self.client_io(io);
                }
                Output::Event(event) => self.check.event(self.now, &event)?,
            }
        }
        let fetched = self.tokens.lock().unwrap_or_else(PoisonError::into_inner).fetched;
        let status = Machine::status(&self.session);
        let deadline = Machine::next_deadline(&self.session).is_some();
        let socket = self.session.lifecycle().socket();
        self.check.after_drain(status, deadline, socket, fetched)?;
        // The application answers the server's control requests at once.
        for id in std::mem::take(&mut self.check.server_requests) {
            let answer = json!({
                "type": "control_response",
                "response": {"subtype": "success", "request_id": id, "response": {"behavior": "allow"}},
            });
            if let Err(e) = self.session.send_control_response(answer) {
                return Err(Violation(format!(
                    "answering server request {id} while open: {e}"
                )));
            }
            self.pump()?;
        }
        Ok(())
    }

    fn current_link(&self, socket: SocketId) -> Option<LinkId> {
        self.link
            .filter(|l| self.net.links.get(l).is_some_and(|link| link.socket == socket))
    }

    fn client_io(&mut self, io: Io) {
        let when = self.now + self.scenario.latency;
        match io {
            Io::OpenSocket { socket, url, headers } => {
                let newest = self
                    .tokens
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .newest
                    .clone();
                let id = self.net.link(0, socket, ConnId(socket.0), 0);
                self.link = Some(id);
                self.upgrades.insert(id, Upgrade { url, headers, newest });
                self.net.send(id, when, Packet::BrokerOpen);
            }
            Io::SendText { socket, text } => {
                if let Some(id) = self.current_link(socket) {
                    self.net.send(id, when, Packet::ToBroker(text));
                }
            }
            Io::SendPing { socket } => {
                if let Some(id) = self.current_link(socket) {
                    self.net.send(id, when, Packet::ToBrokerPing);
                }
            }
            Io::CloseSocket { socket, .. } | Io::TerminateSocket { socket } => {
                if let Some(id) = self.current_link(socket) {
                    self.net.send(id, when, Packet::BrokerClosed);
                    self.link = None;
                }
            }
        }
    }

    fn send_to_client(&mut self, link: LinkId, packet: Packet) {
        let when = self.now + self.scenario.latency;
        self.net.send(link, when, packet);
    }

    fn timer(&mut self, link: LinkId, after: Duration, timer: ServerTimer) {
        self.timer_seq += 1;
        self.timers
            .insert((self.now + after, self.timer_seq), (link, timer));
    }

    fn server_timer(&mut self, link: LinkId, timer: ServerTimer) {
        let Some(conn) = self.conns.get_mut(&link) else {
            return;
        };
        if conn.phase != Phase::Serving {
            return;
        }
        match timer {
            ServerTimer::Frame => {
                conn.frames += 1;
                let text = self.server.frame(conn.frames);
                self.note(|| format!("server → link {link}: {text}"));
                self.send_to_client(link, Packet::ToClientText(text));
                let every = self.scenario.frame_every;
                self.timer(link, every, ServerTimer::Frame);
            }
            ServerTimer::PlanEnd => match conn.plan {
                Plan::Close { code, .. } => {
                    conn.phase = Phase::Gone;
                    self.note(|| format!("server closes link {link} with {code}"));
                    let reason = "by plan".into();
                    self.send_to_client(link, Packet::ClientClosed { code, reason });
                }
                Plan::Silent { .. } => {
                    conn.phase = Phase::Silent;
                    self.note(|| format!("server goes silent on link {link}"));
                }
                Plan::Drop { .. } => {
                    conn.phase = Phase::Gone;
                    self.note(|| format!("server drops link {link}"));
                    let reason = String::new();
                    self.send_to_client(link, Packet::ClientClosed { code: 1006, reason });
                }
                Plan::Serve | Plan::Refuse(_) => {}
            },
        }
    }

    fn deliver(&mut self, id: LinkId, packet: Packet) -> Result<(), Violation> {
        let Some(socket) = self.net.links.get(&id).map(|l| l.socket) else {
            return Ok(());
        };
        self.note(|| format!("deliver link {id} {packet:?}"));
        match packet {
            Packet::BrokerOpen => self.upgrade(id)?,
            Packet::ToBroker(text) => {
                let phase = self.conns.get(&id).map(|c| c.phase);
                if phase == Some(Phase::Serving) {
                    if let Some(answer) = self.server.text(&text)? {
                        self.send_to_client(id, Packet::ToClientText(answer));
                    }
                }
            }
            Packet::ToBrokerPing => {
                if self.conns.get(&id).is_some_and(|c| c.phase == Phase::Serving) {
                    self.send_to_client(id, Packet::ToClientPong);
                }
            }
            Packet::BrokerClosed => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.phase = Phase::Gone;
                }
            }
            Packet::BrokerActivity | Packet::ToClientPing => {}
            Packet::ClientOpened => {
                self.last_heard = self.now;
                self.feed(Event::Opened { socket })?;
            }
            Packet::ClientConnectFailed(kind) => {
                self.gone(id, socket);
                let reason = format!("upgrade refused ({})", kind.name());
                self.feed(Event::ConnectFailed { socket, kind, reason })?;
            }
            Packet::ToClientText(text) => {
                let current = self.session.lifecycle().socket() == Some(socket);
                if current {
                    self.last_heard = self.now;
                }
                let expect = (current && self.check.status() == Status::Open).then(|| frame_expect(&text));
                self.check.expect_frame(expect);
                let frame = Frame::Text(text);
                self.feed(Event::Frame { socket, frame })?;
            }
            Packet::ToClientPong => {
                if self.session.lifecycle().socket() == Some(socket) {
                    self.last_heard = self.now;
                }
                self.feed(Event::Frame {
                    socket,
                    frame: Frame::Pong,
                })?;
            }
            Packet::ClientClosed { code, reason } => {
                self.gone(id, socket);
                self.feed(Event::Closed { socket, code, reason })?;
            }
        }
        Ok(())
    }

    fn gone(&mut self, id: LinkId, socket: SocketId) {
        self.check.socket_gone(socket);
        if self.link == Some(id) {
            self.link = None;
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.phase = Phase::Gone;
        }
    }

    fn upgrade(&mut self, id: LinkId) -> Result<(), Violation> {
        let Some(Upgrade { url, headers, newest }) = self.upgrades.remove(&id) else {
            return Ok(());
        };
        self.server.upgrade(&url, &headers, newest.as_deref())?;
        self.upgrades_seen += 1;
        let plan = self.scenario.plan(self.upgrades_seen);
        let n = self.upgrades_seen;
        self.note(|| format!("server: upgrade {n} on link {id} follows {plan:?}"));
        if let Plan::Refuse(status) = plan {
            let packet = Packet::ClientConnectFailed(ConnectFailureKind::HttpStatus(status));
            self.send_to_client(id, packet);
            return Ok(());
        }
        self.conns.insert(
            id,
            Conn {
                plan,
                phase: Phase::Serving,
                frames: 0,
            },
        );
        self.send_to_client(id, Packet::ClientOpened);
        self.send_to_client(id, Packet::ToClientText(Server::greeting()));
        let every = self.scenario.frame_every;
        self.timer(id, every, ServerTimer::Frame);
        if let Plan::Close { after, .. } | Plan::Silent { after } | Plan::Drop { after } = plan {
            self.timer(id, after, ServerTimer::PlanEnd);
        }
        Ok(())
    }
}

/// What a frame must become: an object with a string `type` goes up as it is.
fn frame_expect(text: &str) -> FrameExpect {
    match serde_json::from_str::<Value>(text) {
        Ok(value) if value.get("type").is_some_and(Value::is_string) => FrameExpect::Message(value),
        _ => FrameExpect::Dropped,
    }
}
