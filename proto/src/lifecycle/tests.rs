//! Stories of the lifecycle, one or more per behaviour id of BEHAVIORS.md.
//!
//! Each test drives the machine with a [`Harness`] that jumps the clock to the
//! next deadline, like quinn-proto's `Pair`, and asserts on the actions.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::policy::{Budget, ClosePolicy, Jitter, Limit, LimitDelay, Match, Rule};

pub(crate) mod support {
    use super::*;

    /// A decoded test frame: its `type` and the raw text.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) struct Msg {
        pub kind: String,
        pub text: String,
    }

    /// Why a test frame was dropped (L5).
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    pub(crate) enum Malformed {
        #[error("not a JSON object")]
        NotObject,
        #[error("no string type")]
        NoType,
    }

    /// A JSON handshake like the seeds': `hello_ack` acks, `error` rejects.
    #[derive(Debug, Default)]
    pub(crate) struct TestHandshake {
        /// Attempts whose hello build fails (L13, D2).
        pub fail_hello: BTreeSet<u64>,
        /// Attempts whose headers fail.
        pub fail_headers: BTreeSet<u64>,
        /// Header-authenticated endpoint: no hello frame (S1).
        pub no_hello: bool,
    }

    impl Handshake for TestHandshake {
        type Message = Msg;
        type DecodeError = Malformed;

        fn headers(&mut self, attempt: u64, unix_ms: u64) -> Result<Vec<(String, String)>, HelloError> {
            if self.fail_headers.contains(&attempt) {
                return Err(HelloError("token endpoint down".into()));
            }
            Ok(vec![(
                "authorization".into(),
                format!("Bearer token-{attempt}-{unix_ms}"),
            )])
        }

        fn hello(&mut self, attempt: u64, unix_ms: u64) -> Result<Option<String>, HelloError> {
            if self.fail_hello.contains(&attempt) {
                return Err(HelloError("signer unavailable".into()));
            }
            if self.no_hello {
                return Ok(None);
            }
            Ok(Some(format!(
                r#"{{"type":"hello","attempt":{attempt},"timestamp":{unix_ms}}}"#
            )))
        }

        fn decode(&mut self, text: String) -> Result<Msg, Malformed> {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| Malformed::NotObject)?;
            let obj = value.as_object().ok_or(Malformed::NotObject)?;
            let kind = obj
                .get("type")
                .and_then(|t| t.as_str())
                .ok_or(Malformed::NoType)?;
            Ok(Msg {
                kind: kind.to_owned(),
                text,
            })
        }

        fn classify(&mut self, m: &Msg) -> PreOpen {
            match m.kind.as_str() {
                "hello_ack" => PreOpen::Ack,
                "error" => {
                    let v: serde_json::Value = serde_json::from_str(&m.text).unwrap_or_default();
                    PreOpen::Rejection(Rejection {
                        code: v["code"].as_str().unwrap_or("").into(),
                        message: v["message"].as_str().unwrap_or("").into(),
                        retry_after: v["retryAfterMs"].as_u64().map(Duration::from_millis),
                    })
                }
                _ => PreOpen::Other,
            }
        }
    }

    pub(crate) type TestAction = LifecycleAction<TestHandshake>;
    pub(crate) const UNIX0: u64 = 1_700_000_000_000;

    /// Drives one lifecycle; every call drains the actions it caused.
    pub(crate) struct Harness {
        pub lc: Lifecycle<TestHandshake>,
        pub t0: Instant,
        pub now: Instant,
    }

    impl Harness {
        pub(crate) fn new(config: Config) -> Self {
            Self::with(config, TestHandshake::default())
        }

        pub(crate) fn with(config: Config, hs: TestHandshake) -> Self {
            let t0 = Instant::now();
            Harness {
                lc: Lifecycle::new(config, hs, 42, t0).expect("valid config"),
                t0,
                now: t0,
            }
        }

        /// The seeds' defaults without jitter, so delays are exact.
        pub(crate) fn exact() -> Self {
            let mut c = Config::new("ws://broker.test/ws");
            c.jitter = Jitter::NONE;
            Self::new(c)
        }

        pub(crate) fn at(&self) -> Now {
            let elapsed = u64::try_from((self.now - self.t0).as_millis()).unwrap_or(u64::MAX);
            Now::new(self.now, UNIX0.saturating_add(elapsed))
        }

        pub(crate) fn elapsed(&self) -> Duration {
            self.now - self.t0
        }

        pub(crate) fn handle(&mut self, event: Event) -> Vec<TestAction> {
            self.lc.handle(self.at(), event).expect("accepted");
            self.drain()
        }

        pub(crate) fn drain(&mut self) -> Vec<TestAction> {
            std::iter::from_fn(|| self.lc.poll_action()).collect()
        }

        pub(crate) fn advance(&mut self, d: Duration) {
            self.now += d;
        }

        /// Jumps to the next deadline and ticks.
        pub(crate) fn fire(&mut self) -> (Timer, Vec<TestAction>) {
            let (at, timer) = self.lc.next_deadline().expect("a timer is armed");
            self.now = self.now.max(at);
            (timer, self.handle(Event::Tick))
        }

        pub(crate) fn connect(&mut self) -> SocketId {
            let actions = self.handle(Event::Connect);
            opened_socket(&actions).expect("an open-socket action")
        }

        pub(crate) fn open(&mut self, socket: SocketId) -> Vec<TestAction> {
            self.handle(Event::Opened { socket })
        }

        pub(crate) fn text(&mut self, socket: SocketId, text: &str) -> Vec<TestAction> {
            self.handle(Event::Frame {
                socket,
                frame: Frame::Text(text.into()),
            })
        }

        pub(crate) fn ack(&mut self, socket: SocketId) -> Vec<TestAction> {
            self.text(socket, r#"{"type":"hello_ack","presenceId":"p1"}"#)
        }

        pub(crate) fn closed(&mut self, socket: SocketId, code: u16, reason: &str) -> Vec<TestAction> {
            self.handle(Event::Closed {
                socket,
                code,
                reason: reason.into(),
            })
        }

        /// Connect, open, ack: returns the open socket.
        pub(crate) fn establish(&mut self) -> SocketId {
            let s = self.connect();
            self.open(s);
            let a = self.ack(s);
            assert!(statuses(&a).contains(&Status::Open), "{a:?}");
            s
        }

        /// Waits out a scheduled reconnect, opens and acks: returns the new socket.
        pub(crate) fn reestablish(&mut self) -> SocketId {
            let (timer, a) = self.fire();
            assert_eq!(timer, Timer::Reconnect);
            let s = opened_socket(&a).expect("reconnect opens a socket");
            self.open(s);
            self.ack(s);
            s
        }
    }

    pub(crate) fn opened_socket(actions: &[TestAction]) -> Option<SocketId> {
        actions.iter().find_map(|a| match a {
            Action::Io(Io::OpenSocket { socket, .. }) => Some(*socket),
            _ => None,
        })
    }

    pub(crate) fn notes(actions: &[TestAction]) -> Vec<&Notification<Msg, Malformed>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Notify(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn statuses(actions: &[TestAction]) -> Vec<Status> {
        notes(actions)
            .into_iter()
            .filter_map(|n| match n {
                Notification::StatusChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn scheduled_delay(actions: &[TestAction]) -> Option<Duration> {
        notes(actions).into_iter().find_map(|n| match n {
            Notification::ReconnectScheduled { delay, .. } => Some(*delay),
            _ => None,
        })
    }

    pub(crate) fn stop_reason(actions: &[TestAction]) -> Option<&StopReason> {
        notes(actions).into_iter().find_map(|n| match n {
            Notification::Closed { reason } => Some(reason),
            _ => None,
        })
    }

    pub(crate) fn failure(actions: &[TestAction]) -> Option<&Failure> {
        notes(actions).into_iter().find_map(|n| match n {
            Notification::Disconnected { failure, .. } => Some(failure),
            _ => None,
        })
    }

    pub(crate) fn sent_texts(actions: &[TestAction]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Io(Io::SendText { text, .. }) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

use support::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn connect_requests_a_socket_and_reports_connecting() {
    // proves L1
    let mut h = Harness::exact();
    let a = h.handle(Event::Connect);
    assert_eq!(statuses(&a), [Status::Connecting]);
    match &a[1] {
        Action::Io(Io::OpenSocket { url, .. }) => assert_eq!(url, "ws://broker.test/ws"),
        other => panic!("expected OpenSocket, got {other:?}"),
    }
    assert_eq!(h.lc.next_deadline().map(|d| d.1), Some(Timer::Open));
}

#[test]
fn open_sends_a_fresh_hello_and_arms_the_ack_deadline() {
    // proves L2
    let mut h = Harness::exact();
    let s = h.connect();
    h.advance(Duration::from_millis(30));
    let a = h.open(s);
    assert_eq!(
        sent_texts(&a),
        [format!(r#"{{"type":"hello","attempt":1,"timestamp":{}}}"#, UNIX0 + 30).as_str()]
    );
    assert_eq!(h.lc.next_deadline(), Some((h.now + secs(5), Timer::HelloAck)));
    assert!(notes(&a).contains(&&Notification::HelloSent { attempt: 1 }));
}

#[test]
fn ack_opens_clears_the_deadline_and_starts_the_watchdog() {
    // proves L3, L8
    let mut h = Harness::exact();
    let s = h.connect();
    h.open(s);
    h.advance(Duration::from_millis(40));
    let a = h.ack(s);
    assert_eq!(statuses(&a), [Status::Open]);
    assert!(notes(&a).iter().any(|n| matches!(
        n,
        Notification::Connected { attempt: 1, first: true, handshake } if *handshake == Duration::from_millis(40)
    )));
    assert_eq!(h.lc.next_deadline(), Some((h.now + secs(30), Timer::Watchdog)));
}

#[test]
fn backoff_resets_only_after_the_stability_window() {
    // proves L3, X7
    let mut h = Harness::exact();
    let s = h.establish();
    // Kicked right after each ack: the backoff keeps growing.
    let a = h.closed(s, 1001, "shutting down");
    assert_eq!(scheduled_delay(&a), Some(secs(1)));
    let s = h.reestablish();
    let a = h.closed(s, 1001, "shutting down");
    assert_eq!(scheduled_delay(&a), Some(secs(2)));
    // This one stays up past the 10 s window: the next delay starts over.
    let s = h.reestablish();
    h.advance(secs(10));
    let a = h.closed(s, 1001, "shutting down");
    assert_eq!(scheduled_delay(&a), Some(secs(1)));
}

#[test]
fn zero_stability_window_resets_on_ack_like_the_seeds() {
    // proves L3, X7
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::NONE;
    c.stability_window = Duration::ZERO;
    let mut h = Harness::new(c);
    let s = h.establish();
    assert_eq!(scheduled_delay(&h.closed(s, 1006, "")), Some(secs(1)));
    let s = h.reestablish();
    assert_eq!(scheduled_delay(&h.closed(s, 1006, "")), Some(secs(1)));
}

#[test]
fn missing_ack_closes_the_socket_and_fails_with_hello_ack_timeout() {
    // proves L4, L8, D1
    let mut h = Harness::exact();
    let s = h.connect();
    h.open(s);
    let (timer, a) = h.fire();
    assert_eq!(timer, Timer::HelloAck);
    assert_eq!(h.elapsed(), secs(5));
    assert!(a.contains(&Action::Io(Io::CloseSocket {
        socket: s,
        code: 1000,
        reason: "hello_ack_timeout"
    })));
    assert_eq!(failure(&a), Some(&Failure::HelloAckTimeout));
    // First connect fails fast: nothing is left running (D1).
    assert_eq!(
        stop_reason(&a),
        Some(&StopReason::FirstConnectFailed {
            failure: Failure::HelloAckTimeout
        })
    );
    assert_eq!(h.lc.next_deadline(), None);
    assert_eq!(h.lc.status(), Status::Closed);
}

#[test]
fn first_connect_can_keep_retrying_instead() {
    // proves L8
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::NONE;
    c.first_connect = FirstConnect::Retry;
    let mut h = Harness::new(c);
    let s = h.connect();
    let a = h.handle(Event::ConnectFailed {
        kind: ConnectFailureKind::Refused,
        socket: s,
        reason: "connection refused".into(),
    });
    assert_eq!(statuses(&a), [Status::Reconnecting]);
    assert_eq!(scheduled_delay(&a), Some(secs(1)));
    let s = h.reestablish();
    // A later ack is not the first any more: reconnects are silent (L8).
    let a = h.closed(s, 1006, "");
    assert_eq!(statuses(&a), [Status::Reconnecting]);
    let (_, a) = h.fire();
    let s = opened_socket(&a).unwrap();
    h.open(s);
    let a = h.ack(s);
    assert!(notes(&a)
        .iter()
        .any(|n| matches!(n, Notification::Connected { first: false, .. })));
}

#[test]
fn other_frames_are_handed_up_unchanged_and_garbage_is_counted() {
    // proves L5
    let mut h = Harness::exact();
    let s = h.establish();
    let text = r#"{"type":"push","x":[1,2],"unknown":true}"#;
    let a = h.text(s, text);
    assert_eq!(
        notes(&a),
        [&Notification::Message(Msg {
            kind: "push".into(),
            text: text.into()
        })]
    );
    for garbage in [
        "not json",
        "[1,2]",
        r#"{"type":7}"#,
        r#"{"no":"type"}"#,
        "\"str\"",
    ] {
        let a = h.text(s, garbage);
        assert!(
            matches!(
                notes(&a)[..],
                [Notification::FrameDropped(DropReason::Undecodable(_))]
            ),
            "{garbage}"
        );
    }
    let a = h.handle(Event::Frame {
        socket: s,
        frame: Frame::Binary(vec![1, 2, 3]),
    });
    assert_eq!(
        notes(&a),
        [&Notification::FrameDropped(DropReason::Binary { len: 3 })]
    );
    assert_eq!(h.lc.status(), Status::Open);
    assert_eq!(h.lc.stats(h.now).frames_dropped, 6);
}

#[test]
fn close_tells_pending_work_first_then_reconnecting_then_the_delay() {
    // proves L6, S6
    let mut h = Harness::exact();
    let s = h.establish();
    let a = h.closed(s, 1001, "shutting down");
    let n = notes(&a);
    assert!(matches!(
        n[0],
        Notification::Disconnected {
            failure: Failure::Closed(PeerClose { code: 1001, .. }),
            was_open: true,
            ..
        }
    ));
    assert_eq!(
        n[1],
        &Notification::StatusChanged {
            from: Status::Open,
            to: Status::Reconnecting
        }
    );
    assert_eq!(
        n[2],
        &Notification::ReconnectScheduled {
            attempt: 2,
            delay: secs(1)
        }
    );
}

#[test]
fn backoff_follows_the_seeds_schedule_and_the_attempt_counter_grows() {
    // proves L6, L7
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::NONE;
    c.first_connect = FirstConnect::Retry;
    let mut h = Harness::new(c);
    let mut s = h.connect();
    let mut delays = Vec::new();
    for _ in 0..8 {
        let a = h.handle(Event::ConnectFailed {
            kind: ConnectFailureKind::Refused,
            socket: s,
            reason: "refused".into(),
        });
        delays.push(scheduled_delay(&a).unwrap().as_secs());
        let (_, a) = h.fire();
        s = opened_socket(&a).unwrap();
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(h.lc.attempt(), 9);
}

#[test]
fn watchdog_pings_while_alive_and_terminates_when_stale() {
    // proves L9, L14
    let mut h = Harness::exact();
    let s = h.establish();
    // 30 s: alive (ack just arrived) → ping.
    let (timer, a) = h.fire();
    assert_eq!(timer, Timer::Watchdog);
    assert_eq!(a, [Action::Io(Io::SendPing { socket: s })]);
    // A pong 20 ms later counts as activity and gives a round-trip sample.
    h.advance(Duration::from_millis(20));
    h.handle(Event::Frame {
        socket: s,
        frame: Frame::Pong,
    });
    assert_eq!(h.lc.stats(h.now).last_ping_rtt, Some(Duration::from_millis(20)));
    // Then silence: pings at 60 s and 90 s; at 120 s idle is 90 s > 75 s → terminate.
    let (_, a) = h.fire();
    assert_eq!(a, [Action::Io(Io::SendPing { socket: s })]);
    let (_, a) = h.fire();
    assert_eq!(a, [Action::Io(Io::SendPing { socket: s })]);
    let (_, a) = h.fire();
    assert_eq!(a[0], Action::Io(Io::TerminateSocket { socket: s }));
    assert!(matches!(failure(&a), Some(Failure::Stale { idle }) if *idle > secs(75)));
    assert_eq!(statuses(&a), [Status::Reconnecting]);
}

#[test]
fn send_is_refused_unless_open_and_hands_the_frame_back() {
    // proves L10
    let mut h = Harness::exact();
    let err = h.lc.send("early".into()).unwrap_err();
    assert_eq!(err.status, Status::Idle);
    assert_eq!(err.text, "early");
    let s = h.connect();
    h.open(s);
    assert!(h.lc.send("before ack".into()).is_err());
    h.ack(s);
    h.lc.send("now".into()).unwrap();
    assert_eq!(
        h.drain(),
        [Action::Io(Io::SendText {
            socket: s,
            text: "now".into()
        })]
    );
}

#[test]
fn close_is_idempotent_cancels_everything_and_never_reconnects() {
    // proves L11, B13
    let mut h = Harness::exact();
    let s = h.establish();
    let a = h.handle(Event::Close);
    assert_eq!(
        a[0],
        Action::Io(Io::CloseSocket {
            socket: s,
            code: 1000,
            reason: "client_closed"
        })
    );
    assert_eq!(statuses(&a), [Status::Closed]);
    assert_eq!(stop_reason(&a), Some(&StopReason::User));
    assert_eq!(h.lc.next_deadline(), None);
    assert!(h.handle(Event::Close).is_empty());
    // Late news from the old socket changes nothing.
    assert!(h.closed(s, 1000, "").is_empty());
    assert_eq!(h.lc.handle(h.at(), Event::Connect), Err(LifecycleError::Closed));
    assert_eq!(h.lc.handle(h.at(), Event::Reconnect), Err(LifecycleError::Closed));
    assert_eq!(h.lc.handle(h.at(), Event::RetryNow), Err(LifecycleError::Closed));
    assert!(h.drain().is_empty());
}

#[test]
fn close_while_waiting_to_reconnect_cancels_the_timer() {
    // proves L11, D1
    let mut h = Harness::exact();
    let s = h.establish();
    h.closed(s, 1006, "");
    assert!(h.lc.next_deadline().is_some());
    let a = h.handle(Event::Close);
    assert_eq!(statuses(&a), [Status::Closed]);
    assert_eq!(h.lc.next_deadline(), None);
}

#[test]
fn status_changes_only_when_it_changes() {
    // proves L12
    let mut h = Harness::exact();
    let s = h.connect();
    assert!(statuses(&h.open(s)).is_empty());
    // Connect while connecting is a no-op (B13).
    assert!(h.handle(Event::Connect).is_empty());
    assert_eq!(statuses(&h.ack(s)), [Status::Open]);
    assert!(h.handle(Event::Connect).is_empty());
}

#[test]
fn hello_build_failure_fails_the_attempt_and_closes_the_socket() {
    // proves L13, D2
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::NONE;
    c.first_connect = FirstConnect::Retry;
    let hs = TestHandshake {
        fail_hello: [1].into(),
        ..Default::default()
    };
    let mut h = Harness::with(c, hs);
    let s = h.connect();
    let a = h.open(s);
    assert!(a.contains(&Action::Io(Io::CloseSocket {
        socket: s,
        code: 1000,
        reason: "hello_build_failed"
    })));
    assert!(matches!(failure(&a), Some(Failure::HelloBuild { .. })));
    assert_eq!(scheduled_delay(&a), Some(secs(1)));
    // The next attempt builds a good hello and opens.
    h.reestablish();
    assert_eq!(h.lc.status(), Status::Open);
}

#[test]
fn header_build_failure_fails_the_attempt_without_a_socket() {
    // proves L13
    let mut c = Config::new("ws://b/ws");
    c.first_connect = FirstConnect::Retry;
    let hs = TestHandshake {
        fail_headers: [1].into(),
        ..Default::default()
    };
    let mut h = Harness::with(c, hs);
    let a = h.handle(Event::Connect);
    assert_eq!(opened_socket(&a), None);
    assert!(matches!(failure(&a), Some(Failure::HelloBuild { .. })));
    assert_eq!(h.lc.status(), Status::Reconnecting);
}

#[test]
fn every_step_is_observable() {
    // proves L14
    let mut h = Harness::exact();
    let mut all = h.handle(Event::Connect);
    let s = opened_socket(&all).unwrap();
    all.extend(h.open(s));
    all.extend(h.ack(s));
    all.extend(h.closed(s, 1001, "shutting down"));
    let kinds: Vec<&str> = all
        .iter()
        .map(|a| match a {
            Action::Io(Io::OpenSocket { .. }) => "open_attempt",
            Action::Io(Io::SendText { .. }) => "send",
            Action::Notify(Notification::SocketOpened { .. }) => "open_ok",
            Action::Notify(Notification::HelloSent { .. }) => "hello_sent",
            Action::Notify(Notification::Connected { .. }) => "hello_acked",
            Action::Notify(Notification::Disconnected { .. }) => "closed",
            Action::Notify(Notification::ReconnectScheduled { .. }) => "reconnect_scheduled",
            Action::Notify(Notification::StatusChanged { .. }) => "status",
            Action::Notify(Notification::Message(_)) => "message",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "status",
            "open_attempt",
            "open_ok",
            "send",
            "hello_sent",
            "status",
            "hello_acked",
            "message",
            "closed",
            "status",
            "reconnect_scheduled"
        ]
    );
}

#[test]
fn headers_are_fresh_for_every_attempt() {
    // proves S1, D8
    let mut c = Config::new("ws://b/ws");
    c.first_connect = FirstConnect::Retry;
    let mut h = Harness::new(c);
    let a = h.handle(Event::Connect);
    let first = match &a[1] {
        Action::Io(Io::OpenSocket { headers, .. }) => headers.clone(),
        other => panic!("{other:?}"),
    };
    let s = opened_socket(&a).unwrap();
    h.handle(Event::ConnectFailed {
        kind: ConnectFailureKind::Refused,
        socket: s,
        reason: "x".into(),
    });
    let (_, a) = h.fire();
    let second = a
        .iter()
        .find_map(|a| match a {
            Action::Io(Io::OpenSocket { headers, .. }) => Some(headers.clone()),
            _ => None,
        })
        .unwrap();
    assert_ne!(first, second);
    assert!(second[0].1.starts_with("Bearer token-2-"));
}

#[test]
fn header_authenticated_endpoint_opens_on_socket_open() {
    // proves S1, S6
    let hs = TestHandshake {
        no_hello: true,
        ..Default::default()
    };
    let mut h = Harness::with(Config::new("wss://s/ws"), hs);
    let s = h.connect();
    let a = h.open(s);
    assert!(sent_texts(&a).is_empty());
    assert_eq!(statuses(&a), [Status::Open]);
}

#[test]
fn permanent_close_codes_stop_at_once() {
    // proves S2, D3
    for (code, reason) in [(4003, "unauthorized"), (4002, "banned"), (1008, "bad_signature")] {
        let mut h = Harness::exact();
        let s = h.establish();
        let a = h.closed(s, code, reason);
        assert_eq!(statuses(&a), [Status::Closed], "{code}");
        assert!(matches!(stop_reason(&a), Some(StopReason::Permanent { .. })));
        assert_eq!(h.lc.next_deadline(), None);
    }
}

#[test]
fn a_kick_from_the_mesh_broker_stops_for_good() {
    // 4001 `kicked`: the real broker's kick, on which the product's CLI exits.
    let mut h = Harness::exact();
    let s = h.establish();
    let a = h.closed(s, 4001, "kicked");
    assert!(scheduled_delay(&a).is_none(), "a kicked client came back");
    assert!(
        matches!(stop_reason(&a), Some(StopReason::Permanent { .. })),
        "{a:?}"
    );
}

#[test]
fn session_not_found_is_retried_three_times_two_seconds_apart_times_n() {
    // proves S3 (the hosted endpoint's table; on the mesh broker 4001 is a kick)
    let mut c = Config::new("ws://broker.test/ws");
    c.jitter = Jitter::NONE;
    c.policy = crate::policy::ClosePolicy::hosted();
    let mut h = Harness::new(c);
    let mut s = h.establish();
    let mut delays = Vec::new();
    for _ in 0..3 {
        let a = h.closed(s, 4001, "session not found");
        delays.push(scheduled_delay(&a).unwrap());
        s = h.reestablish();
    }
    assert_eq!(delays, [secs(2), secs(4), secs(6)]);
    let a = h.closed(s, 4001, "session not found");
    assert!(matches!(
        stop_reason(&a),
        Some(StopReason::RetriesExhausted { retries: 3, .. })
    ));
}

#[test]
fn attempt_budget_caps_reconnects_without_an_open() {
    // proves S4, X11
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::NONE;
    c.budget = Budget {
        max_attempts: Some(5),
        ..Budget::default()
    };
    let mut h = Harness::new(c);
    let s = h.establish();
    let mut a = h.closed(s, 1006, "");
    for _ in 0..5 {
        assert!(scheduled_delay(&a).is_some());
        let (_, opened) = h.fire();
        let s = opened_socket(&opened).unwrap();
        a = h.handle(Event::ConnectFailed {
            kind: ConnectFailureKind::Refused,
            socket: s,
            reason: "refused".into(),
        });
    }
    assert!(matches!(
        stop_reason(&a),
        Some(StopReason::BudgetExhausted { attempts: 5, .. })
    ));
}

#[test]
fn time_budget_stops_a_long_outage() {
    // proves X11
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::NONE;
    c.budget = Budget {
        max_elapsed: Some(secs(20)),
        ..Budget::default()
    };
    let mut h = Harness::new(c);
    let s = h.establish();
    let mut a = h.closed(s, 1006, "");
    let mut rounds = 0;
    while stop_reason(&a).is_none() {
        let (_, opened) = h.fire();
        let s = opened_socket(&opened).unwrap();
        a = h.handle(Event::ConnectFailed {
            kind: ConnectFailureKind::Refused,
            socket: s,
            reason: "refused".into(),
        });
        rounds += 1;
        assert!(rounds < 10);
    }
    assert!(
        matches!(stop_reason(&a), Some(StopReason::BudgetExhausted { elapsed, .. }) if *elapsed >= secs(20))
    );
}

#[test]
fn reconnect_only_after_open_stops_an_attempt_that_never_opened() {
    // proves S4
    let mut c = Config::new("ws://b/ws");
    c.budget.only_after_open = true;
    let mut h = Harness::new(c);
    let s = h.establish();
    let a = h.closed(s, 1006, "");
    assert!(scheduled_delay(&a).is_some());
    let (_, a) = h.fire();
    let s = opened_socket(&a).unwrap();
    let a = h.handle(Event::ConnectFailed {
        kind: ConnectFailureKind::Refused,
        socket: s,
        reason: "refused".into(),
    });
    assert!(matches!(stop_reason(&a), Some(StopReason::NeverOpened { .. })));
}

#[test]
fn forced_reconnect_closes_resets_and_retries_after_500ms() {
    // proves S5
    let mut h = Harness::exact();
    let s = h.establish();
    let s = {
        let a = h.closed(s, 1006, "");
        assert_eq!(scheduled_delay(&a), Some(secs(1)));
        h.reestablish()
    };
    let a = h.handle(Event::Reconnect);
    assert_eq!(
        a[0],
        Action::Io(Io::CloseSocket {
            socket: s,
            code: 1000,
            reason: "reconnect"
        })
    );
    assert_eq!(failure(&a), Some(&Failure::Forced));
    assert_eq!(scheduled_delay(&a), Some(Duration::from_millis(500)));
    let s = h.reestablish();
    // Counters were reset: the next drop waits the first step again.
    assert_eq!(scheduled_delay(&h.closed(s, 1006, "")), Some(secs(1)));
}

#[test]
fn retry_now_skips_the_backoff() {
    // proves X11
    let mut h = Harness::exact();
    let s = h.establish();
    h.closed(s, 1006, "");
    let a = h.handle(Event::RetryNow);
    assert!(opened_socket(&a).is_some());
    assert_eq!(h.elapsed(), Duration::ZERO);
}

#[test]
fn rejection_frame_becomes_the_attempts_reason() {
    // proves D6, D3
    let mut h = Harness::exact();
    let s = h.establish();
    h.closed(s, 1006, "");
    let (_, a) = h.fire();
    let s = opened_socket(&a).unwrap();
    h.open(s);
    let a = h.text(
        s,
        r#"{"type":"error","code":"revoked","message":"key revoked by admin"}"#,
    );
    assert!(notes(&a).is_empty(), "the rejection is held for the close: {a:?}");
    let a = h.closed(s, 4002, "banned");
    let expected = Failure::Rejected {
        rejection: Rejection {
            code: "revoked".into(),
            message: "key revoked by admin".into(),
            retry_after: None,
        },
        close: Some(PeerClose {
            code: 4002,
            reason: "banned".into(),
        }),
    };
    assert_eq!(failure(&a), Some(&expected));
    assert_eq!(
        stop_reason(&a),
        Some(&StopReason::Permanent { failure: expected })
    );
}

#[test]
fn rejection_without_a_close_is_reported_at_the_deadline() {
    // proves D6
    let mut h = Harness::exact();
    let s = h.connect();
    h.open(s);
    h.text(
        s,
        r#"{"type":"error","code":"unauthorized","message":"who are you"}"#,
    );
    let (_, a) = h.fire();
    assert!(matches!(
        stop_reason(&a),
        Some(StopReason::Permanent { failure: Failure::Rejected { rejection, close: None } }) if rejection.code == "unauthorized"
    ));
}

#[test]
fn session_replaced_stops_instead_of_fighting() {
    // proves D4
    let mut h = Harness::exact();
    let s = h.establish();
    let a = h.closed(s, 1000, "session_replaced");
    assert!(matches!(stop_reason(&a), Some(StopReason::Permanent { .. })));
}

#[test]
fn capacity_with_retry_after_is_honoured() {
    // proves X10
    let mut h = Harness::exact();
    let s = h.establish();
    h.closed(s, 1006, "");
    let (_, a) = h.fire();
    let s = opened_socket(&a).unwrap();
    h.open(s);
    h.text(
        s,
        r#"{"type":"error","code":"capacity","message":"mesh full","retryAfterMs":7000}"#,
    );
    let a = h.closed(s, 1008, "capacity");
    assert_eq!(scheduled_delay(&a), Some(secs(7)));
}

#[test]
fn timestamp_skew_gets_a_small_budget_then_stops() {
    // proves D3
    let mut h = Harness::exact();
    let s = h.establish();
    h.closed(s, 1006, "");
    let mut outcomes = Vec::new();
    loop {
        let (_, a) = h.fire();
        let s = opened_socket(&a).unwrap();
        h.open(s);
        h.text(s, r#"{"type":"error","code":"timestamp_skew","message":"clock"}"#);
        let a = h.closed(s, 1008, "timestamp_skew");
        if let Some(r) = stop_reason(&a) {
            assert!(matches!(r, StopReason::RetriesExhausted { retries: 2, .. }));
            break;
        }
        outcomes.push(scheduled_delay(&a).unwrap());
    }
    assert_eq!(outcomes.len(), 2);
}

#[test]
fn jitter_spreads_every_delay_within_bounds() {
    // proves D5
    let mut delays = BTreeSet::new();
    for seed in 0..50 {
        let c = Config::new("ws://b/ws");
        let mut lc = Lifecycle::new(c, TestHandshake::default(), seed, Instant::now()).unwrap();
        let t = Instant::now();
        let now = Now::new(t, UNIX0);
        lc.handle(now, Event::Connect).unwrap();
        let s = lc.socket().unwrap();
        lc.handle(now, Event::Opened { socket: s }).unwrap();
        lc.handle(
            now,
            Event::Frame {
                socket: s,
                frame: Frame::Text(r#"{"type":"hello_ack"}"#.into()),
            },
        )
        .unwrap();
        lc.handle(
            now,
            Event::Closed {
                socket: s,
                code: 1006,
                reason: String::new(),
            },
        )
        .unwrap();
        let d = std::iter::from_fn(|| lc.poll_action())
            .find_map(|a| match a {
                Action::Notify(Notification::ReconnectScheduled { delay, .. }) => Some(delay),
                _ => None,
            })
            .unwrap();
        assert!(
            d >= Duration::from_millis(800) && d <= Duration::from_millis(1200),
            "{d:?}"
        );
        delays.insert(d);
    }
    assert!(
        delays.len() > 40,
        "50 clients should not share a handful of delays"
    );
}

#[test]
fn suspend_triggers_a_probe_instead_of_waiting_out_the_stale_window() {
    // proves X13
    let mut h = Harness::exact();
    let s = h.establish();
    // The laptop sleeps for 10 minutes: the watchdog tick arrives very late.
    h.advance(Duration::from_secs(600));
    let a = h.handle(Event::Tick);
    assert!(notes(&a)
        .iter()
        .any(|n| matches!(n, Notification::SuspendDetected { .. })));
    assert!(a.contains(&Action::Io(Io::SendPing { socket: s })));
    assert_eq!(
        h.lc.status(),
        Status::Open,
        "silence during sleep says nothing about the peer"
    );
    // The peer answers: the connection survives.
    h.handle(Event::Frame {
        socket: s,
        frame: Frame::Pong,
    });
    assert_eq!(h.lc.next_deadline().map(|d| d.1), Some(Timer::Watchdog));
    // Sleep again, and this time nobody answers within the probe timeout.
    h.advance(Duration::from_secs(600));
    h.handle(Event::Tick);
    let (timer, a) = h.fire();
    assert_eq!(timer, Timer::Probe);
    assert_eq!(a[0], Action::Io(Io::TerminateSocket { socket: s }));
    assert_eq!(h.lc.status(), Status::Reconnecting);
}

#[test]
fn events_from_old_sockets_are_ignored_and_counted() {
    let mut h = Harness::exact();
    let old = h.establish();
    h.closed(old, 1006, "");
    let new = h.reestablish();
    assert!(h.closed(old, 1006, "").is_empty());
    assert!(h.text(old, r#"{"type":"push"}"#).is_empty());
    assert_eq!(h.lc.socket(), Some(new));
    assert_eq!(h.lc.status(), Status::Open);
    assert_eq!(h.lc.stats(h.now).stale_socket_events, 2);
}

#[test]
fn early_and_repeated_ticks_do_nothing() {
    let mut h = Harness::exact();
    let s = h.connect();
    h.open(s);
    assert!(h.handle(Event::Tick).is_empty());
    h.advance(secs(4));
    assert!(h.handle(Event::Tick).is_empty());
    h.advance(secs(1));
    assert!(!h.handle(Event::Tick).is_empty());
    assert!(h.handle(Event::Tick).is_empty());
}

#[test]
fn open_timeout_terminates_a_socket_that_never_opens() {
    let mut h = Harness::exact();
    let s = h.connect();
    let (timer, a) = h.fire();
    assert_eq!(timer, Timer::Open);
    assert_eq!(a[0], Action::Io(Io::TerminateSocket { socket: s }));
    assert_eq!(failure(&a), Some(&Failure::OpenTimeout));
}

#[test]
fn stats_count_attempts_connects_causes_and_time() {
    // proves X12
    let mut h = Harness::exact();
    let s = h.connect();
    h.open(s);
    h.advance(Duration::from_millis(50));
    h.ack(s);
    h.advance(secs(3));
    h.closed(s, 1001, "shutting down");
    let st = h.lc.stats(h.now + secs(1));
    assert_eq!(st.attempts, 1);
    assert_eq!(st.connects, 1);
    assert_eq!(st.last_handshake, Some(Duration::from_millis(50)));
    assert_eq!(st.failures_of(FailureClass::PeerClosed), 1);
    assert_eq!(st.time_in(Status::Connecting), Duration::from_millis(50));
    assert_eq!(st.time_in(Status::Open), secs(3));
    assert_eq!(st.time_in(Status::Reconnecting), secs(1));
    assert_eq!(st.frames_out, 1);
    assert_eq!(st.frames_in, 1);
}

#[test]
fn a_rule_can_override_the_table() {
    // Policy is data: an application can declare 4003 transient.
    let mut c = Config::new("ws://b/ws");
    c.jitter = Jitter::NONE;
    c.policy.prepend(Rule {
        on: Match::Close(4003),
        verdict: Verdict::Limited(Limit {
            max_retries: 1,
            delay: LimitDelay::Linear(secs(3)),
        }),
    });
    let mut h = Harness::new(c);
    let s = h.establish();
    assert_eq!(scheduled_delay(&h.closed(s, 4003, "")), Some(secs(3)));
    let _ = ClosePolicy::always_reconnect();
}

#[test]
fn invalid_config_is_refused() {
    let mut c = Config::new("ws://b/ws");
    c.ping_interval = Duration::ZERO;
    let err = Lifecycle::new(c, TestHandshake::default(), 0, Instant::now()).unwrap_err();
    assert_eq!(err, ConfigError::Zero("ping_interval"));
}

#[test]
fn every_duration_of_the_config_has_an_upper_bound() {
    // A duration no deadline can hold is refused at construction, naming the
    // setting, instead of panicking with "overflow when adding duration to
    // instant" in the first `handle` that arms it.
    type Set = fn(&mut Config, Duration);
    let settings: [(&str, Set); 11] = [
        ("hello_ack_timeout", |c, d| c.hello_ack_timeout = d),
        ("open_timeout", |c, d| c.open_timeout = Some(d)),
        ("ping_interval", |c, d| c.ping_interval = d),
        ("stale_after", |c, d| c.stale_after = d),
        ("stability_window", |c, d| c.stability_window = d),
        ("force_reconnect_delay", |c, d| c.force_reconnect_delay = d),
        ("suspend_gap", |c, d| c.suspend_gap = d),
        ("probe_timeout", |c, d| c.probe_timeout = d),
        ("max_retry_after", |c, d| c.max_retry_after = d),
        ("budget.max_elapsed", |c, d| c.budget.max_elapsed = Some(d)),
        ("backoff", |c, d| {
            c.backoff = crate::policy::Backoff::new(vec![d]).unwrap()
        }),
    ];
    for (name, set) in settings {
        for too_long in [Duration::MAX, crate::MAX_DURATION + Duration::from_nanos(1)] {
            let mut c = Config::new("ws://b/ws");
            set(&mut c, too_long);
            let err = Lifecycle::new(c, TestHandshake::default(), 0, Instant::now()).unwrap_err();
            assert_eq!(
                err,
                ConfigError::TooLong {
                    name,
                    max: crate::MAX_DURATION
                },
                "{name}"
            );
        }
        // The bound itself is accepted.
        let mut c = Config::new("ws://b/ws");
        set(&mut c, crate::MAX_DURATION);
        assert!(c.validate().is_ok(), "{name}");
    }
    let mut c = Config::new("ws://b/ws");
    c.policy.prepend(Rule {
        on: Match::Close(4009),
        verdict: Verdict::Limited(Limit {
            max_retries: 1,
            delay: LimitDelay::Linear(Duration::MAX),
        }),
    });
    assert!(matches!(c.validate(), Err(ConfigError::TooLong { .. })));
}

#[test]
fn the_longest_timeouts_run_without_panicking_even_at_the_end_of_time() {
    // Every timer at the bound, and a host clock that jumps as far as an Instant
    // goes: deadlines saturate, nothing panics, the machine still decides.
    let mut c = Config::new("ws://b/ws");
    c.hello_ack_timeout = crate::MAX_DURATION;
    c.open_timeout = Some(crate::MAX_DURATION);
    c.ping_interval = crate::MAX_DURATION;
    c.probe_timeout = crate::MAX_DURATION;
    c.backoff = crate::policy::Backoff::new(vec![crate::MAX_DURATION]).unwrap();
    c.first_connect = FirstConnect::Retry;
    let mut h = Harness::new(c);
    h.establish();
    h.now = crate::time::deadline_after(h.now, Duration::MAX);
    // The watchdog finds a suspend; its probe saturates to "now" and so is due at
    // once, in the same tick: the connection is given up and a reconnect armed.
    let (timer, a) = h.fire();
    assert_eq!(timer, Timer::Watchdog);
    assert!(matches!(failure(&a), Some(Failure::Stale { .. })), "{a:?}");
    assert!(scheduled_delay(&a).is_some());
    let (timer, a) = h.fire();
    assert_eq!(timer, Timer::Reconnect);
    let s = opened_socket(&a).unwrap();
    h.open(s);
    assert!(h.lc.next_deadline().is_some());
}

#[test]
fn a_huge_retry_after_is_capped_and_counted() {
    // proves X10: a broker cannot park the client for ever with a huge hint.
    let mut h = Harness::exact();
    let s = h.establish();
    h.closed(s, 1006, "");
    let (_, a) = h.fire();
    let s = opened_socket(&a).unwrap();
    h.open(s);
    h.text(
        s,
        r#"{"type":"error","code":"capacity","message":"full","retryAfterMs":18446744073709551615}"#,
    );
    let a = h.closed(s, 1008, "capacity");
    assert_eq!(scheduled_delay(&a), Some(DEFAULT_MAX_RETRY_AFTER));
    assert_eq!(h.lc.stats(h.now).retry_after_capped, 1);
    // A hint under the cap is honoured as it is and not counted.
    let s = h.reestablish();
    let a = h.closed(s, 1008, r#"{"code":"capacity","retryAfterMs":7000}"#);
    assert_eq!(scheduled_delay(&a), Some(secs(7)));
    assert_eq!(h.lc.stats(h.now).retry_after_capped, 1);
}

#[test]
fn a_refused_input_changes_nothing_not_even_the_clock() {
    let mut h = Harness::exact();
    h.establish();
    h.handle(Event::Close);
    let before = format!("{:?}", h.lc);
    h.advance(secs(60));
    for event in [Event::Connect, Event::Reconnect, Event::RetryNow] {
        assert_eq!(h.lc.handle(h.at(), event), Err(LifecycleError::Closed));
        assert_eq!(h.lc.poll_action(), None);
        assert_eq!(format!("{:?}", h.lc), before);
    }
}

#[test]
fn configuration_and_certificate_failures_stop_other_connect_failures_retry() {
    // proves S8: a proxy refusing its credentials (407) stops like a typo.
    // A typo in the URL or a certificate that does not verify fails the same way
    // every time: even with FirstConnect::Retry, and after having been open, the
    // machine stops and says why instead of retrying for ever.
    for (kind, stops) in [
        (ConnectFailureKind::Configuration, true),
        (ConnectFailureKind::TlsCertificate, true),
        (ConnectFailureKind::Dns, false),
        (ConnectFailureKind::Refused, false),
        (ConnectFailureKind::Tls, false),
        (ConnectFailureKind::HttpStatus(502), false),
        (ConnectFailureKind::Proxy(407), true),
        (ConnectFailureKind::Proxy(502), false),
        (ConnectFailureKind::Upgrade, false),
        (ConnectFailureKind::Timeout, false),
        (ConnectFailureKind::Network, false),
    ] {
        let mut c = Config::new("ws://b/ws");
        c.first_connect = FirstConnect::Retry;
        let mut h = Harness::new(c);
        let s = h.connect();
        let a = h.handle(Event::ConnectFailed {
            socket: s,
            kind,
            reason: "r".into(),
        });
        match stop_reason(&a) {
            Some(StopReason::Permanent {
                failure: Failure::ConnectFailed { kind: k, .. },
            }) => assert!(stops && *k == kind, "{kind:?}"),
            Some(other) => panic!("{kind:?}: {other:?}"),
            None => assert!(!stops && scheduled_delay(&a).is_some(), "{kind:?}"),
        }
    }
}

#[test]
fn first_connect_spends_the_small_budgets_of_fixable_refusals() {
    // proves D1, D3: with FailFast, a transient failure still ends the first
    // connect at once, but timestamp_skew gets PROTOCOL.md's small budget of
    // fresh-timestamp attempts (and an attestation refusal one re-mint) first.
    let mut h = Harness::exact();
    let s = h.connect();
    let a = h.handle(Event::ConnectFailed {
        socket: s,
        kind: ConnectFailureKind::Refused,
        reason: "refused".into(),
    });
    assert!(matches!(
        stop_reason(&a),
        Some(StopReason::FirstConnectFailed { .. })
    ));
    assert_eq!(h.lc.next_deadline(), None, "nothing left running (D1)");

    for (code, retries) in [("timestamp_skew", TIMESTAMP_SKEW), ("expired", ATTESTATION)] {
        let mut h = Harness::exact();
        let mut s = h.connect();
        let mut hellos = BTreeSet::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let a = h.open(s);
            hellos.insert(sent_texts(&a)[0].to_owned());
            h.text(s, &format!(r#"{{"type":"error","code":"{code}","message":"m"}}"#));
            let a = h.closed(s, 1008, code);
            if let Some(reason) = stop_reason(&a) {
                assert!(
                    matches!(reason, StopReason::RetriesExhausted { retries: r, .. } if *r == retries),
                    "{code}: {reason:?}"
                );
                break;
            }
            let (_, a) = h.fire();
            s = opened_socket(&a).expect("a fresh attempt");
        }
        assert_eq!(attempts, retries + 1, "{code}");
        assert_eq!(
            hellos.len() as u32,
            retries + 1,
            "{code}: every attempt a fresh hello"
        );
        assert_eq!(h.lc.next_deadline(), None);
    }
}

const TIMESTAMP_SKEW: u32 = crate::policy::TIMESTAMP_SKEW_RETRIES;
const ATTESTATION: u32 = crate::policy::ATTESTATION_RETRIES;

#[test]
fn a_frame_over_the_limit_again_after_reconnect_waits_the_longest_delay() {
    // A push larger than our limit closes the socket with 1009; the broker
    // pushes it again after every reconnect. The first time is an ordinary
    // backoff; a repeat is reported as its own failure and waits the longest
    // delay of the schedule instead of spinning.
    let mut h = Harness::exact();
    let s = h.establish();
    let a = h.closed(s, 1009, "Space limit exceeded: Message too long");
    assert!(matches!(failure(&a), Some(Failure::TooLarge(_))), "{a:?}");
    assert_eq!(scheduled_delay(&a), Some(secs(1)));
    let s = h.reestablish();
    let a = h.closed(s, 1009, "Space limit exceeded: Message too long");
    assert!(matches!(failure(&a), Some(Failure::TooLarge(_))));
    assert_eq!(scheduled_delay(&a), Some(crate::policy::Backoff::default().max()));
    assert_eq!(h.lc.stats(h.now).failures_of(FailureClass::TooLarge), 2);
    // Any other ending in between breaks the streak.
    let s = h.reestablish();
    h.closed(s, 1006, "");
    let s = h.reestablish();
    let a = h.closed(s, 1009, "");
    assert_ne!(scheduled_delay(&a), Some(crate::policy::Backoff::default().max()));
}
