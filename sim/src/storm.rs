//! The reconnect storm: many clients see their broker restart at the same
//! instant. Where the seeds' fixed backoff brings them all back in the same
//! 100 ms (D5), seeded jitter spreads them out ([`run`]).
//!
//! At internet scale ([`admission_storm`], issue 16) the restarted broker admits
//! at most R hellos a second, with the broker core's own limiter
//! ([`Admission`]), and refuses the rest with `capacity` and a `retryAfterMs`
//! from its queue: how long until every client is open again, against the ideal
//! N / R; how many attempts each client wasted; how many attempts reach the
//! broker per 100 ms, against the R / 10 it admits — for the seeds' schedule,
//! tether's default, and tether with the broker's hint.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::convert::Infallible;
use std::time::{Duration, Instant};

use tether_broker::core::{Admission, Admit, HelloRate, Refusal, SHUTTING_DOWN};
use tether_proto::lifecycle::{
    Action, Config, Event, Frame, Handshake, HelloError, Io, Lifecycle, PreOpen, Rejection, SocketId, Status,
};
use tether_proto::mesh::wire::{decode_broker_frame, BrokerFrame, DecodeError};
use tether_proto::policy::{ClosePolicy, Jitter};
use tether_proto::Now;

/// A handshake with no protocol: open on socket open.
struct Bare;

impl Handshake for Bare {
    type Message = ();
    type DecodeError = Infallible;
    fn hello(&mut self, _: u64, _: u64) -> Result<Option<String>, HelloError> {
        Ok(None)
    }
    fn decode(&mut self, _: String) -> Result<(), Infallible> {
        Ok(())
    }
    fn classify(&mut self, _: &()) -> PreOpen {
        PreOpen::Other
    }
}

/// Attempts per 100 ms window after the restart, and the numbers that judge them.
#[derive(Clone, Debug)]
pub struct Storm {
    /// Window index (100 ms each, from the restart) → connection attempts.
    pub histogram: BTreeMap<u64, u64>,
    /// Clients.
    pub clients: u64,
    /// The fullest window.
    pub peak: u64,
    /// The fullest window if the first wave were spread evenly over the default
    /// jitter's range (±20 % of 1 s: four windows), the yardstick for both runs.
    pub uniform_ideal: f64,
}

/// Restarts the broker under `clients` open clients at t = 0; the broker is back
/// after `down_for` (attempts before then are refused). Returns the attempts.
pub fn run(clients: u64, jitter: Jitter, down_for: Duration) -> Storm {
    let t0 = Instant::now();
    let at = |d: Duration| Now::new(t0 + d, 1_750_000_000_000 + d.as_millis() as u64);
    let mut lcs: Vec<(Lifecycle<Bare>, Option<SocketId>)> = (0..clients)
        .map(|i| {
            let mut config = Config::new("ws://broker/ws");
            config.jitter = jitter;
            let lc = Lifecycle::new(config, Bare, i, t0).unwrap_or_else(|e| unreachable!("{e}"));
            (lc, None)
        })
        .collect();
    // Everyone connects and opens before the restart.
    for (lc, sock) in &mut lcs {
        let _ = lc.handle(at(Duration::ZERO), Event::Connect);
        *sock = drain(lc);
        if let Some(socket) = *sock {
            let _ = lc.handle(at(Duration::ZERO), Event::Opened { socket });
            drain(lc);
        }
    }
    let restart = Duration::from_secs(60);
    let mut histogram = BTreeMap::new();
    // The restart: every socket closes with 1001 at the same instant.
    let mut pending: BTreeMap<(Duration, u64), ()> = BTreeMap::new();
    for (i, (lc, sock)) in lcs.iter_mut().enumerate() {
        if let Some(socket) = sock.take() {
            let _ = lc.handle(
                at(restart),
                Event::Closed {
                    socket,
                    code: 1001,
                    reason: "shutting down".into(),
                },
            );
            drain(lc);
        }
        if let Some((when, _)) = lc.next_deadline() {
            pending.insert((when - t0, i as u64), ());
        }
    }
    // Step each client to its deadlines until every one is open again.
    while let Some(((when, i), ())) = pending.pop_first() {
        let (lc, sock) = &mut lcs[i as usize];
        let _ = lc.handle(at(when), Event::Tick);
        if let Some(socket) = drain(lc) {
            let since = when.saturating_sub(restart);
            *histogram.entry(since.as_millis() as u64 / 100).or_insert(0) += 1;
            let event = if since < down_for {
                Event::ConnectFailed {
                    socket,
                    kind: tether_proto::lifecycle::ConnectFailureKind::Refused,
                    reason: "connection refused".into(),
                }
            } else {
                Event::Opened { socket }
            };
            let _ = lc.handle(at(when), event);
            drain(lc);
            *sock = lc.socket();
        }
        if lc.status() != Status::Open {
            if let Some((next, _)) = lc.next_deadline() {
                pending.insert((next - t0, i), ());
            }
        }
    }
    let peak = histogram.values().copied().max().unwrap_or(0);
    // The first delay is 1 s ± 20 %: spread evenly, it fills four 100 ms windows.
    let windows = 2.0 * f64::from(tether_proto::policy::DEFAULT_JITTER.permille()) / 100.0;
    Storm {
        histogram,
        clients,
        peak,
        uniform_ideal: clients as f64 / windows,
    }
}

fn drain(lc: &mut Lifecycle<Bare>) -> Option<SocketId> {
    let mut opened = None;
    while let Some(action) = lc.poll_action() {
        if let Action::Io(Io::OpenSocket { socket, .. }) = action {
            opened = Some(socket);
        }
    }
    opened
}

// ---------------------------------------------------------------------------
// The storm at internet scale (issue 16): a broker that admits at most R hellos
// per second after its restart.

/// How the clients of [`admission_storm`] schedule their reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// The seeds' clients (`ws-lifecycle.ts`, `broker-ws-client.ts`): 1, 2, 4,
    /// 8, 16, 30 s without jitter, every close reconnects, the attempt counter
    /// resets on the ack. They read neither the error frame's fields nor the
    /// close reason, so the broker's hint is not sent to them.
    Seeds,
    /// tether's default configuration against a broker that sends no hint
    /// (the real broker's `capacity`: `retryAfterMs` is tether's extension):
    /// its backoff with ±20 % jitter, its close policy (`capacity` reconnects).
    Tether,
    /// tether's default configuration against a broker that sends
    /// `retryAfterMs` (X10), its turn in the broker's queue of promised turns.
    TetherWithHint,
}

impl Schedule {
    /// Every schedule, in the order tables and charts show them.
    pub const ALL: [Schedule; 3] = [Schedule::Seeds, Schedule::Tether, Schedule::TetherWithHint];

    /// The name tables and charts give it.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Seeds => "the seeds' schedule",
            Schedule::Tether => "tether's default",
            Schedule::TetherWithHint => "tether with the broker's hint",
        }
    }

    /// Whether the broker's refusals carry `retryAfterMs` for these clients.
    pub fn hinted(self) -> bool {
        self == Schedule::TetherWithHint
    }

    fn config(self) -> Config {
        let mut config = Config::new("ws://broker/ws");
        if self == Schedule::Seeds {
            // DEFAULT_BACKOFF_CAPS_MS of ws-lifecycle.ts: the same schedule as
            // tether's default, with no jitter, and `reconnectAttempt = 0` on
            // the ack; the seeds reconnect after every close whatever its code.
            config.jitter = Jitter::NONE;
            config.stability_window = Duration::ZERO;
            config.policy = ClosePolicy::always_reconnect();
        }
        config
    }
}

/// A handshake whose hello is one fixed frame (the broker here admits by rate,
/// before any signature would be checked) and whose inbound frames are decoded
/// by the mesh protocol's own decoder and classified as the mesh handshake
/// classifies them.
struct Admitted;

impl Handshake for Admitted {
    type Message = BrokerFrame;
    type DecodeError = DecodeError;

    fn hello(&mut self, _: u64, _: u64) -> Result<Option<String>, HelloError> {
        Ok(Some(r#"{"type":"hello"}"#.to_owned()))
    }

    fn decode(&mut self, text: String) -> Result<BrokerFrame, DecodeError> {
        decode_broker_frame(&text, usize::MAX)
    }

    fn classify(&mut self, message: &BrokerFrame) -> PreOpen {
        match message {
            BrokerFrame::HelloAck(_) => PreOpen::Ack,
            BrokerFrame::Error(e) => PreOpen::Rejection(Rejection {
                code: e.code.clone(),
                message: e.message.clone(),
                retry_after: e.retry_after_ms.map(Duration::from_millis),
            }),
            _ => PreOpen::Other,
        }
    }
}

/// What one run of [`admission_storm`] measured.
#[derive(Clone, Debug)]
pub struct AdmissionStorm {
    /// The clients' schedule.
    pub schedule: Schedule,
    /// Clients, all open before the restart.
    pub clients: u64,
    /// Hellos the broker admits per second.
    pub rate: u32,
    /// Connection attempts per 100 ms window from the restart.
    pub attempts_per_window: Vec<u64>,
    /// Attempts in all (each client's successful one included).
    pub attempts: u64,
    /// Hellos the broker refused with `capacity`.
    pub refused: u64,
    /// From the restart until the last client was open again; `None` when
    /// some were still not open at the horizon.
    pub all_open_after: Option<Duration>,
    /// Clients open again by the end of the run.
    pub open: u64,
    /// How long after the restart the run stopped at the latest.
    pub horizon: Duration,
    /// The fullest 100 ms window.
    pub peak: u64,
    /// The window in which the last client made its first attempt: until
    /// then clients cannot know the broker is refusing.
    pub first_wave_ends: usize,
    /// Most attempts one client made.
    pub most_attempts: u32,
}

impl AdmissionStorm {
    /// The fullest 100 ms window once every client has tried once: what a
    /// schedule does when it knows the broker is refusing.
    pub fn peak_after_first_wave(&self) -> u64 {
        self.attempts_per_window
            .iter()
            .skip(self.first_wave_ends + 1)
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// The least time in which `clients` can be admitted at `rate`: N / R.
    pub fn ideal(&self) -> Duration {
        Duration::from_secs_f64(self.clients as f64 / f64::from(self.rate))
    }

    /// Attempts beyond the one that succeeded, per client.
    pub fn wasted_per_client(&self) -> f64 {
        (self.attempts - self.clients) as f64 / self.clients as f64
    }

    /// What the broker admits in one 100 ms window: R / 10.
    pub fn admitted_per_window(&self) -> f64 {
        f64::from(self.rate) / 10.0
    }
}

/// `clients` open clients of `schedule` see their broker restart at once
/// (every socket closed with 1001); the broker is back at once and admits
/// hellos at `rate` ([`Admission`], the broker core's own limiter), refusing
/// the rest with `capacity` and `retryAfterMs` from its queue of promised turns.
/// Every client is a real [`Lifecycle`] with its schedule's configuration; the
/// network is instant, so a refused attempt costs its client nothing but the
/// wait its own policy chooses. Runs until every client is open again, or
/// until `horizon` after the restart.
pub fn admission_storm(
    clients: u64,
    rate: HelloRate,
    schedule: Schedule,
    horizon: Duration,
) -> AdmissionStorm {
    let t0 = Instant::now();
    let at = |d: Duration| Now::new(t0 + d, 1_750_000_000_000 + d.as_millis() as u64);
    let ack = BrokerFrame::HelloAck(Box::default()).encode();
    let mut lcs: Vec<(Lifecycle<Admitted>, Option<SocketId>)> = (0..clients)
        .map(|i| {
            let lc =
                Lifecycle::new(schedule.config(), Admitted, i, t0).unwrap_or_else(|e| unreachable!("{e}"));
            (lc, None)
        })
        .collect();
    // Open before the restart: every client's ack arrives at once.
    for (lc, sock) in &mut lcs {
        let _ = lc.handle(at(Duration::ZERO), Event::Connect);
        if let Some(socket) = drain_admitted(lc) {
            let _ = lc.handle(at(Duration::ZERO), Event::Opened { socket });
            drain_admitted(lc);
            let frame = Frame::Text(ack.clone());
            let _ = lc.handle(at(Duration::ZERO), Event::Frame { socket, frame });
            drain_admitted(lc);
            *sock = Some(socket);
        }
    }
    let restart = Duration::from_secs(60);
    let mut broker = Admission::new(rate);
    let mut pending: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    for (i, (lc, sock)) in lcs.iter_mut().enumerate() {
        // Timers due by now (pings, the stability window) first, then the restart.
        let _ = lc.handle(at(restart), Event::Tick);
        drain_admitted(lc);
        if let Some(socket) = sock.take() {
            let (code, reason) = SHUTTING_DOWN;
            let closed = Event::Closed {
                socket,
                code,
                reason: reason.into(),
            };
            let _ = lc.handle(at(restart), closed);
            drain_admitted(lc);
        }
        if let Some((when, _)) = lc.next_deadline() {
            pending.push(Reverse((when, i as u64)));
        }
    }
    let mut windows: Vec<u64> = Vec::new();
    let mut attempts = 0;
    let mut tries = vec![0u32; lcs.len()];
    let mut tried = 0;
    let mut first_wave_ends = 0;
    let mut last_open = restart;
    let mut open = 0;
    let end = t0 + restart + horizon;
    while let Some(Reverse((when, i))) = pending.pop() {
        if when > end {
            break;
        }
        let (lc, _) = &mut lcs[i as usize];
        let since = when.saturating_duration_since(t0);
        let now = at(since);
        let _ = lc.handle(now, Event::Tick);
        if let Some(socket) = drain_admitted(lc) {
            attempts += 1;
            let window = since.saturating_sub(restart).as_millis() as usize / 100;
            if windows.len() <= window {
                windows.resize(window + 1, 0);
            }
            windows[window] += 1;
            if tries[i as usize] == 0 {
                tried += 1;
                if tried == tries.len() {
                    first_wave_ends = window;
                }
            }
            tries[i as usize] += 1;
            // The upgrade succeeds at once; the hello goes out; the broker decides.
            let _ = lc.handle(now, Event::Opened { socket });
            drain_admitted(lc);
            match broker.admit(when) {
                Admit::Yes => {
                    let frame = Frame::Text(ack.clone());
                    let _ = lc.handle(now, Event::Frame { socket, frame });
                    drain_admitted(lc);
                    last_open = since;
                    open += 1;
                }
                Admit::Later(wait) => {
                    let message = format!("admitting {} hellos a second", rate.per_second);
                    let refusal = if schedule.hinted() {
                        Refusal::capacity(
                            message,
                            u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
                        )
                    } else {
                        Refusal::for_code("capacity", message)
                    };
                    let error = BrokerFrame::Error(refusal.error_frame()).encode();
                    let frame = Frame::Text(error);
                    let _ = lc.handle(now, Event::Frame { socket, frame });
                    drain_admitted(lc);
                    let closed = Event::Closed {
                        socket,
                        code: refusal.close_code,
                        reason: refusal.close_reason,
                    };
                    let _ = lc.handle(now, closed);
                    drain_admitted(lc);
                }
            }
        }
        if lc.status() != Status::Open {
            if let Some((next, _)) = lc.next_deadline() {
                pending.push(Reverse((next, i)));
            }
        }
    }
    let peak = windows.iter().copied().max().unwrap_or(0);
    AdmissionStorm {
        schedule,
        clients,
        rate: rate.per_second,
        attempts_per_window: windows,
        attempts,
        refused: broker.refused,
        all_open_after: (open == clients).then(|| last_open.saturating_sub(restart)),
        open,
        horizon,
        peak,
        first_wave_ends,
        most_attempts: tries.iter().copied().max().unwrap_or(0),
    }
}

fn drain_admitted(lc: &mut Lifecycle<Admitted>) -> Option<SocketId> {
    let mut opened = None;
    while let Some(action) = lc.poll_action() {
        if let Action::Io(Io::OpenSocket { socket, .. }) = action {
            opened = Some(socket);
        }
    }
    opened
}
