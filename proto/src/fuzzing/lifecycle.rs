//! The `lifecycle` target: the connection lifecycle under any event sequence.

use std::time::Duration;

use arbitrary::Unstructured;

use super::{extreme_or, is_hello, member, presence, short_text, time_step, Clock, MAX_STEPS};
use crate::lifecycle::{
    Action, Config, ConnectFailureKind, ContractCheck, Event, FirstConnect, Frame, Io, Lifecycle, SocketId,
    Status, DEFAULT_OPEN_TIMEOUT,
};
use crate::mesh::handshake::{Credentials, MeshHandshake, DEFAULT_MAX_FRAME_LEN};
use crate::mesh::identity::SecretKey;
use crate::mesh::wire::{decode_broker_frame, BrokerFrame};
use crate::policy::{parse_reason, Backoff, Budget, ClosePolicy, Jitter};

/// Drives a [`Lifecycle`] with the real [`MeshHandshake`] through an event
/// sequence built from `data`, checking its invariants after every step.
///
/// The input chooses the configuration (jitter, first-connect mode, budgets,
/// timeouts, backoff schedule, close policy, credentials, frame limit and seed),
/// then up to a few hundred steps, each a time step and one of: connect; socket
/// opened, frame (hello acks, rejections with and without `retryAfterMs`, pushes,
/// garbage or free text; binary, ping, pong), closed or connect-failed on the
/// current or on a stale socket; a tick now or exactly at the next deadline;
/// close, reconnect, retry-now; an application send; a wall-clock jump.
///
/// It panics only when the machine breaks one of these rules:
///
/// - the lifecycle's contract ([`ContractCheck`], the one checker of the
///   property tests and the simulator), made for the input's configuration: status
///   changes in order and legal, and the reported status the machine's; only
///   the one hello before open, nothing on a socket that is not alive; sockets
///   asked for only while connecting, one at a time, none after the stop, only
///   live ones closed (with a sendable code) or terminated; once closed no timer
///   and no socket, while open or reconnecting always a timer; every reconnect
///   delay within the jitter bounds of a delay the configuration can schedule,
///   or of a retry-after hint the broker actually sent;
/// - while connecting with an open timeout, a deadline is armed;
/// - a send is accepted exactly when the status is open, and input is refused
///   only once closed, only `Connect`, `Reconnect` and `RetryNow`, and a
///   refusal changes nothing.
pub fn lifecycle(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let setup = Setup::new(&mut u);
    let Some(mut run) = Run::new(setup) else {
        return;
    };
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        run.step(&mut u);
    }
}

/// What the input chose before the first step.
struct Setup {
    config: Config,
    handshake: MeshHandshake,
    seed: u64,
}

impl Setup {
    fn new(u: &mut Unstructured<'_>) -> Self {
        let mut config = Config::new("wss://broker.fuzz/ws");
        // Any u16: the constructor's clamp to 1000 is part of what is tested.
        config.jitter = Jitter::from_permille_saturating(u.arbitrary().unwrap_or(200));
        if u.arbitrary().unwrap_or(false) {
            config.first_connect = FirstConnect::Retry;
        }
        config.budget = Budget {
            max_attempts: option(u, |u| u.int_in_range(0..=8)),
            max_elapsed: option(u, |u| u.int_in_range(0..=120_000).map(Duration::from_millis)),
            only_after_open: u.ratio(1, 4).unwrap_or(false),
        };
        if u.ratio(1, 3).unwrap_or(false) {
            // Timings off the defaults: short ones make every timer fire often,
            // zero delays make a reconnect start inside the same tick.
            let ms = |u: &mut Unstructured<'_>, lo: u64, hi: u64| {
                Duration::from_millis(u.int_in_range(lo..=hi).unwrap_or(lo))
            };
            config.hello_ack_timeout = ms(u, 1, 10_000);
            config.open_timeout = option(u, |u| Ok(ms(u, 1, 15_000)));
            config.ping_interval = ms(u, 1, 40_000);
            config.stale_after = ms(u, 1, 100_000);
            config.stability_window = ms(u, 0, 20_000);
            config.force_reconnect_delay = ms(u, 0, 2_000);
            config.suspend_gap = ms(u, 1, 20_000);
            config.probe_timeout = ms(u, 1, 15_000);
        }
        if u.ratio(1, 4).unwrap_or(false) {
            let steps = u.int_in_range(1..=4).unwrap_or(1);
            let schedule = (0..steps)
                .map(|_| Duration::from_millis(u.int_in_range(0..=60_000).unwrap_or(0)))
                .collect();
            if let Some(backoff) = Backoff::new(schedule) {
                config.backoff = backoff;
            }
        }
        if u.ratio(1, 5).unwrap_or(false) {
            config.policy = ClosePolicy::always_reconnect();
        }
        if u.ratio(1, 4).unwrap_or(false) {
            // One setting at an extreme: the bound must run, beyond it be refused.
            let c = &mut config;
            match u.int_in_range(0u8..=10).unwrap_or(0) {
                0 => c.hello_ack_timeout = extreme_or(u, c.hello_ack_timeout),
                1 => c.open_timeout = Some(extreme_or(u, DEFAULT_OPEN_TIMEOUT)),
                2 => c.ping_interval = extreme_or(u, c.ping_interval),
                3 => c.stale_after = extreme_or(u, c.stale_after),
                4 => c.stability_window = extreme_or(u, c.stability_window),
                5 => c.force_reconnect_delay = extreme_or(u, c.force_reconnect_delay),
                6 => c.suspend_gap = extreme_or(u, c.suspend_gap),
                7 => c.probe_timeout = extreme_or(u, c.probe_timeout),
                8 => c.max_retry_after = extreme_or(u, c.max_retry_after),
                9 => c.budget.max_elapsed = Some(extreme_or(u, Duration::from_secs(60))),
                _ => {
                    if let Some(b) = Backoff::new(vec![extreme_or(u, Duration::from_secs(1))]) {
                        c.backoff = b;
                    }
                }
            }
        }
        let credentials = if u.ratio(1, 4).unwrap_or(false) {
            Credentials::Session(Box::new(crate::mesh::handshake::SessionCredentials {
                parent: member(),
                session_key: SecretKey::from_seed([9; 32]),
                role: Some("fuzz".into()),
                attestation_ttl: Duration::from_secs(3600),
            }))
        } else {
            Credentials::Member(member())
        };
        // A tight frame limit turns ordinary frames into undecodable ones.
        let max_frame = if u.ratio(1, 8).unwrap_or(false) {
            64
        } else {
            DEFAULT_MAX_FRAME_LEN
        };
        let handshake = MeshHandshake::new(credentials, presence()).with_max_frame_len(max_frame);
        Setup {
            config,
            handshake,
            seed: u.arbitrary().unwrap_or(0),
        }
    }
}

fn option<T>(
    u: &mut Unstructured<'_>,
    f: impl FnOnce(&mut Unstructured<'_>) -> arbitrary::Result<T>,
) -> Option<T> {
    if u.arbitrary().unwrap_or(false) {
        f(u).ok()
    } else {
        None
    }
}

/// Any kind of connect failure, the ones that stop included.
fn connect_kind(u: &mut Unstructured<'_>) -> ConnectFailureKind {
    use ConnectFailureKind::*;
    match u.int_in_range(0u8..=9).unwrap_or(1) {
        0 => Configuration,
        1 => Dns,
        2 => Refused,
        3 => TlsCertificate,
        4 => Tls,
        5 => HttpStatus(u.arbitrary().unwrap_or(502)),
        6 => Upgrade,
        7 => Timeout,
        8 => Proxy(u.arbitrary().unwrap_or(407)),
        _ => Network,
    }
}

/// The frame that opens a connection, on its own so it comes often enough.
const ACK: &str = r#"{"type":"hello_ack","presenceId":"p","memberDisplayName":"me"}"#;

/// Broker frames worth sending at any moment: the ack, every kind of refusal,
/// ordinary traffic and frames that must be dropped, not obeyed.
const FRAMES: &[&str] = &[
    r#"{"type":"hello_ack","presenceId":"p","memberDisplayName":"me"}"#,
    r#"{"type":"hello_ack"}"#,
    r#"{"type":"error","code":"capacity","message":"full"}"#,
    r#"{"type":"error","code":"capacity","message":"full","retryAfterMs":1500}"#,
    r#"{"type":"error","code":"capacity","message":"full","retryAfterMs":45000}"#,
    r#"{"type":"error","code":"capacity","message":"full","retryAfterMs":0}"#,
    r#"{"type":"error","code":"capacity","message":"full","retryAfterMs":18446744073709551615}"#,
    r#"{"type":"error","code":"unauthorized","message":"who"}"#,
    r#"{"type":"error","code":"unauthorized","message":"who","retryAfterMs":1500}"#,
    r#"{"type":"error","code":"revoked","message":"gone"}"#,
    r#"{"type":"error","code":"revoked","message":"gone","retryAfterMs":45000}"#,
    r#"{"type":"error","code":"timestamp_skew","message":"clock"}"#,
    r#"{"type":"error","code":"timestamp_skew","message":"clock","retryAfterMs":1500}"#,
    r#"{"type":"error","code":"expired","message":"attestation"}"#,
    r#"{"type":"error","code":"whatever","message":"?"}"#,
    r#"{"type":"push","messageId":"m1","meshId":"mesh-fuzz","senderPubkey":"ab","ciphertext":"aGk="}"#,
    r#"{"type":"ack","id":"x","messageId":"y","queued":false}"#,
    r#"{"type":"state_change","key":"k","value":1}"#,
    r#"{"type":"something_new","n":1}"#,
    "{not json",
    "[]",
    r#"{"type":5}"#,
    r#"{"kind":"hello_ack"}"#,
    r#"{"type":"ack","queued":"yes"}"#,
    "",
];

/// Close codes and reasons a broker or a transport reports.
const CLOSES: &[(u16, &str)] = &[
    (1000, ""),
    (1000, "session_replaced"),
    (1001, "shutting down"),
    (1005, ""),
    (1006, ""),
    (1008, "capacity"),
    (1008, "bad_signature"),
    (1008, "timestamp_skew"),
    (1008, r#"{"code":"capacity","retryAfterMs":2500}"#),
    (1013, r#"{"reason":"try_again_later","retryAfterMs":30000}"#),
    (1011, "internal"),
    (4001, "session not found"),
    (4002, "banned"),
    (4003, ""),
];

#[derive(Clone, Copy)]
enum Kind {
    Connect,
    Opened,
    Ack,
    Text,
    FreeText,
    Binary,
    Ping,
    Pong,
    Closed,
    ConnectFailed,
    Tick,
    TickAtDeadline,
    Close,
    Reconnect,
    RetryNow,
    Send,
    WallJump,
}

/// Each kind as often as it appears: socket news and deadlines dominate, as in
/// the proptest's weights, so runs get past the handshake.
const KINDS: &[Kind] = &[
    Kind::Connect,
    Kind::Connect,
    Kind::Opened,
    Kind::Opened,
    Kind::Opened,
    Kind::Opened,
    Kind::Opened,
    Kind::Ack,
    Kind::Ack,
    Kind::Ack,
    Kind::Ack,
    Kind::Ack,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::FreeText,
    Kind::Binary,
    Kind::Ping,
    Kind::Pong,
    Kind::Pong,
    Kind::Closed,
    Kind::Closed,
    Kind::Closed,
    Kind::Closed,
    Kind::ConnectFailed,
    Kind::ConnectFailed,
    Kind::Tick,
    Kind::Tick,
    Kind::Tick,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::Close,
    Kind::Reconnect,
    Kind::RetryNow,
    Kind::Send,
    Kind::Send,
    Kind::Send,
    Kind::WallJump,
];

/// One run: the machine and the harness's model of what it may do.
struct Run {
    lc: Lifecycle<MeshHandshake>,
    clock: Clock,
    /// The lifecycle's contract for this configuration; the broker's
    /// retry-after hints join it as they are sent, each cut to the cap (X10).
    contract: ContractCheck,
    open_timeout: bool,
    last_socket: u64,
}

impl Run {
    fn new(setup: Setup) -> Option<Self> {
        let Setup {
            config,
            handshake,
            seed,
        } = setup;
        let clock = Clock::new();
        let contract = ContractCheck::for_config(&config, Some(is_hello));
        let open_timeout = config.open_timeout.is_some();
        // A configuration is refused exactly when it is invalid, and with the
        // reason validate gives: never a panic later in `handle`.
        let valid = config.validate();
        let lc = match Lifecycle::new(config, handshake, seed, clock.now) {
            Ok(lc) => lc,
            Err(e) => {
                assert_eq!(valid, Err(e), "refused a configuration validate accepts");
                return None;
            }
        };
        assert!(valid.is_ok(), "accepted an invalid configuration");
        Some(Run {
            lc,
            clock,
            contract,
            open_timeout,
            last_socket: 0,
        })
    }

    /// The socket an event is about: usually the current one, sometimes a stale
    /// or never-requested id (which the machine must ignore).
    fn socket(&self, u: &mut Unstructured<'_>) -> SocketId {
        match self.lc.socket() {
            Some(current) if u.ratio(7, 8).unwrap_or(true) => current,
            _ => SocketId(u.int_in_range(0..=self.last_socket + 1).unwrap_or(0)),
        }
    }

    fn step(&mut self, u: &mut Unstructured<'_>) {
        self.clock.advance(time_step(u));
        let kind = u.choose(KINDS).copied().unwrap_or(Kind::Tick);
        let event = match kind {
            Kind::Connect => Event::Connect,
            Kind::Opened => Event::Opened {
                socket: self.socket(u),
            },
            Kind::Ack => self.text(u, ACK.to_owned()),
            Kind::Text => {
                let text = u.choose(FRAMES).copied().unwrap_or_default();
                self.text(u, text.to_owned())
            }
            Kind::FreeText => {
                let text = short_text(u, 256);
                self.text(u, text)
            }
            Kind::Binary => Event::Frame {
                socket: self.socket(u),
                frame: Frame::Binary(short_text(u, 16).into_bytes()),
            },
            Kind::Ping => Event::Frame {
                socket: self.socket(u),
                frame: Frame::Ping,
            },
            Kind::Pong => Event::Frame {
                socket: self.socket(u),
                frame: Frame::Pong,
            },
            Kind::Closed => {
                let socket = self.socket(u);
                let (code, reason) = if u.ratio(1, 8).unwrap_or(false) {
                    (u.arbitrary().unwrap_or(1006), short_text(u, 64))
                } else {
                    let (code, reason) = u.choose(CLOSES).copied().unwrap_or((1006, ""));
                    (code, reason.to_owned())
                };
                if let Some(hint) = parse_reason(&reason).1 {
                    self.contract.add_retry_after(hint);
                }
                Event::Closed { socket, code, reason }
            }
            Kind::ConnectFailed => Event::ConnectFailed {
                socket: self.socket(u),
                kind: connect_kind(u),
                reason: "refused".into(),
            },
            Kind::Tick => Event::Tick,
            Kind::TickAtDeadline => {
                if let Some((at, _)) = self.lc.next_deadline() {
                    self.clock.jump_to(at);
                }
                Event::Tick
            }
            Kind::Close => Event::Close,
            Kind::Reconnect => Event::Reconnect,
            Kind::RetryNow => Event::RetryNow,
            Kind::Send => {
                let open = self.lc.status() == Status::Open;
                let accepted = self
                    .lc
                    .send(r#"{"type":"set_visible","visible":true}"#.into())
                    .is_ok();
                assert_eq!(accepted, open, "a send is accepted exactly when open");
                self.check_actions();
                return;
            }
            Kind::WallJump => {
                // A suspend as the wall clock sees it; the monotonic clock goes on.
                self.clock.wall_skew_ms = self
                    .clock
                    .wall_skew_ms
                    .saturating_add(u.int_in_range(0..=3_600_000).unwrap_or(0));
                Event::Tick
            }
        };
        self.feed(event);
    }

    /// A text frame; any retry-after hint it carries becomes a legal delay floor.
    fn text(&mut self, u: &mut Unstructured<'_>, text: String) -> Event {
        if let Ok(BrokerFrame::Error(e)) = decode_broker_frame(&text, usize::MAX) {
            if let Some(ms) = e.retry_after_ms {
                self.contract.add_retry_after(Duration::from_millis(ms));
            }
        }
        Event::Frame {
            socket: self.socket(u),
            frame: Frame::Text(text),
        }
    }

    fn feed(&mut self, event: Event) {
        // The host reports the end of its current socket: it is gone then.
        if let Event::Closed { socket, .. } | Event::ConnectFailed { socket, .. } = &event {
            self.contract.socket_gone(*socket);
        }
        let refusable = matches!(event, Event::Connect | Event::Reconnect | Event::RetryNow);
        let before = refusable.then(|| format!("{:?}|{:?}", self.lc, self.lc.next_deadline()));
        if let Err(e) = self.lc.handle(self.clock.at(), event) {
            assert!(
                self.contract.stopped(),
                "only a closed machine refuses input, got {e:?}"
            );
            assert!(refusable, "only connect, reconnect and retry-now are refused");
            // A refusal changes nothing: no timer, counter, socket or clock moved.
            let after = format!("{:?}|{:?}", self.lc, self.lc.next_deadline());
            assert_eq!(Some(after), before, "a refusal changed the machine");
            assert!(self.lc.poll_action().is_none(), "a refusal queued an action");
        }
        self.check_actions();
    }

    /// Drains the machine and checks every action and the state after them.
    fn check_actions(&mut self) {
        while let Some(action) = self.lc.poll_action() {
            let kept = match action {
                Action::Io(io) => {
                    if let Io::OpenSocket { socket, .. } = io {
                        self.last_socket = self.last_socket.max(socket.0);
                    }
                    self.contract.io(&io)
                }
                Action::Notify(note) => self.contract.notification(&note),
            };
            if let Err(broken) = kept {
                panic!("{broken}");
            }
        }
        let status = self.lc.status();
        let deadline = self.lc.next_deadline();
        if let Err(broken) = self
            .contract
            .after_drain(status, deadline.is_some(), self.lc.socket())
        {
            panic!("{broken}");
        }
        if status == Status::Connecting && self.open_timeout {
            assert!(deadline.is_some(), "connecting with no deadline");
        }
    }
}
