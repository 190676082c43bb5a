//! The reconnect storm: many clients see their broker restart at the same
//! instant. Where the seeds' fixed backoff brings them all back in the same
//! 100 ms (D5), seeded jitter spreads them out.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use tether_proto::lifecycle::{
    Action, Config, Event, Handshake, HelloError, Io, Lifecycle, PreOpen, SocketId,
};
use tether_proto::policy::Jitter;
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
        if lc.status() != tether_proto::lifecycle::Status::Open {
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
