//! Random event sequences against the lifecycle's invariants.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::support::*;
use super::*;
use crate::policy::Jitter;

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Opened(bool),
    Ack(bool),
    Other(bool),
    Garbage(bool),
    Reject(bool, &'static str, Option<u64>),
    Ping(bool),
    Pong(bool),
    Closed(bool, u16, &'static str),
    ConnectFailed(bool, ConnectFailureKind),
    Tick,
    TickAtDeadline,
    Close,
    Reconnect,
    RetryNow,
    Send,
}

const REJECTIONS: [&str; 6] = [
    "capacity",
    "unauthorized",
    "timestamp_skew",
    "revoked",
    "expired",
    "whatever",
];
const CLOSES: [(u16, &str); 9] = [
    (1000, ""),
    (1000, "session_replaced"),
    (1001, "shutting down"),
    (1006, ""),
    (1008, "capacity"),
    (1008, "bad_signature"),
    (4001, "session not found"),
    (4002, "banned"),
    (4003, ""),
];
/// Broker hints, u64::MAX among them: that one must be cut to the cap (X10).
const HINTS: [u64; 4] = [0, 1_500, 45_000, u64::MAX];

fn op() -> impl Strategy<Value = Op> {
    let cur = prop::bool::weighted(0.9);
    prop_oneof![
        2 => Just(Op::Connect),
        6 => cur.prop_map(Op::Opened),
        5 => cur.prop_map(Op::Ack),
        3 => cur.prop_map(Op::Other),
        1 => cur.prop_map(Op::Garbage),
        2 => (cur, prop::sample::select(&REJECTIONS[..]), prop::option::of(prop::sample::select(&HINTS[..])))
            .prop_map(|(c, r, h)| Op::Reject(c, r, h)),
        1 => cur.prop_map(Op::Ping),
        2 => cur.prop_map(Op::Pong),
        4 => (cur, prop::sample::select(&CLOSES[..])).prop_map(|(c, (code, r))| Op::Closed(c, code, r)),
        2 => (cur, connect_kind()).prop_map(|(c, k)| Op::ConnectFailed(c, k)),
        3 => Just(Op::Tick),
        8 => Just(Op::TickAtDeadline),
        1 => Just(Op::Close),
        1 => Just(Op::Reconnect),
        1 => Just(Op::RetryNow),
        3 => Just(Op::Send),
    ]
}

/// Every kind of connect failure, the stopping ones included.
fn connect_kind() -> impl Strategy<Value = ConnectFailureKind> {
    use ConnectFailureKind::*;
    prop_oneof![
        6 => prop::sample::select(vec![Dns, Refused, Tls, Upgrade, Timeout, Network]),
        1 => prop::sample::select(vec![Configuration, TlsCertificate]),
        1 => any::<u16>().prop_map(HttpStatus),
        1 => any::<u16>().prop_map(Proxy),
    ]
}

fn step() -> impl Strategy<Value = (u64, Op)> {
    (
        prop_oneof![3 => 0u64..50, 2 => 0u64..5_000, 1 => 0u64..700_000],
        op(),
    )
}

fn config(jitter: u16, first_connect_retry: bool) -> Config {
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::from_permille_saturating(jitter);
    if first_connect_retry {
        c.first_connect = FirstConnect::Retry;
    }
    c
}

/// Runs a sequence, checking every invariant after every step; returns the log.
fn run(config: Config, seed: u64, steps: &[(u64, Op)]) -> Result<Vec<TestAction>, TestCaseError> {
    let t0 = Instant::now();
    let mut contract =
        ContractCheck::for_config(&config, Some(|text: &str| text.contains(r#""type":"hello""#)));
    for hint in HINTS {
        contract.add_retry_after(Duration::from_millis(hint));
    }
    let mut lc = Lifecycle::new(config, TestHandshake::default(), seed, t0).unwrap();
    let mut now = t0;
    let mut log = Vec::new();
    let mut last_socket = SocketId(0);

    for (delta, op) in steps {
        now += Duration::from_millis(*delta);
        let socket_now = lc.socket();
        let pick = |current: bool| match (current, socket_now) {
            (true, Some(s)) => s,
            _ => SocketId(last_socket.0.saturating_sub(1)),
        };
        let event = match op.clone() {
            Op::Connect => Event::Connect,
            Op::Opened(c) => Event::Opened { socket: pick(c) },
            Op::Ack(c) => Event::Frame {
                socket: pick(c),
                frame: Frame::Text(r#"{"type":"hello_ack"}"#.into()),
            },
            Op::Other(c) => Event::Frame {
                socket: pick(c),
                frame: Frame::Text(r#"{"type":"push","n":1}"#.into()),
            },
            Op::Garbage(c) => Event::Frame {
                socket: pick(c),
                frame: Frame::Text("{not json".into()),
            },
            Op::Reject(c, code, hint) => {
                let hint = hint
                    .map(|h| format!(r#","retryAfterMs":{h}"#))
                    .unwrap_or_default();
                Event::Frame {
                    socket: pick(c),
                    frame: Frame::Text(format!(
                        r#"{{"type":"error","code":"{code}","message":"m"{hint}}}"#
                    )),
                }
            }
            Op::Ping(c) => Event::Frame {
                socket: pick(c),
                frame: Frame::Ping,
            },
            Op::Pong(c) => Event::Frame {
                socket: pick(c),
                frame: Frame::Pong,
            },
            Op::Closed(c, code, reason) => Event::Closed {
                socket: pick(c),
                code,
                reason: reason.into(),
            },
            Op::ConnectFailed(c, kind) => Event::ConnectFailed {
                socket: pick(c),
                kind,
                reason: "refused".into(),
            },
            Op::Tick => Event::Tick,
            Op::TickAtDeadline => {
                if let Some((at, _)) = lc.next_deadline() {
                    now = now.max(at);
                }
                Event::Tick
            }
            Op::Close => Event::Close,
            Op::Reconnect => Event::Reconnect,
            Op::RetryNow => Event::RetryNow,
            Op::Send => {
                let was_open = lc.status() == Status::Open;
                let r = lc.send("{\"type\":\"app\"}".into());
                prop_assert_eq!(r.is_ok(), was_open, "send accepted iff open");
                Event::Tick
            }
        };
        // The host reports closes of its current socket; the socket is gone then.
        if let Event::Closed { socket, .. } | Event::ConnectFailed { socket, .. } = &event {
            if Some(*socket) == socket_now {
                contract.socket_gone(*socket);
            }
        }
        let before = format!("{lc:?}|{:?}", lc.next_deadline());
        let result = lc.handle(
            Now::new(now, UNIX0 + (now - t0).as_millis() as u64),
            event.clone(),
        );
        if let Err(e) = result {
            // A refusal changes nothing: not a timer, a counter or the clock.
            prop_assert_eq!(format!("{lc:?}|{:?}", lc.next_deadline()), before);
            prop_assert!(lc.poll_action().is_none(), "a refusal queued an action");
            prop_assert!(
                contract.stopped(),
                "only a closed machine refuses input, got {e:?} for {event:?}"
            );
            prop_assert!(matches!(
                event,
                Event::Connect | Event::Reconnect | Event::RetryNow
            ));
        }
        while let Some(action) = lc.poll_action() {
            let checked = match &action {
                Action::Io(io) => {
                    if let Io::OpenSocket { socket, .. } = io {
                        last_socket = *socket;
                    }
                    contract.io(io)
                }
                Action::Notify(note) => contract.notification(note),
            };
            if let Err(broken) = checked {
                return Err(TestCaseError::fail(format!("{broken} (after {event:?})")));
            }
            log.push(action);
        }
        if let Err(broken) = contract.after_drain(lc.status(), lc.next_deadline().is_some(), lc.socket()) {
            return Err(TestCaseError::fail(broken.to_string()));
        }
    }
    Ok(log)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn invariants_hold_for_any_event_sequence(
        seed in any::<u64>(),
        jitter in prop_oneof![Just(0u16), Just(200u16), 0u16..=1000],
        retry_first in any::<bool>(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        run(config(jitter, retry_first), seed, &steps)?;
    }

    #[test]
    fn same_seed_same_events_same_actions(
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let a = run(config(200, true), seed, &steps)?;
        let b = run(config(200, true), seed, &steps)?;
        prop_assert_eq!(a, b);
    }
}
