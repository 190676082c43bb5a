//! Stories of the hosted session, one or more per behaviour id (S1–S7, S10,
//! D10, D11). The harness jumps the clock to the next deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::lifecycle::{
    ConnectFailureKind, Event, Failure, Frame, Io, Notification, SocketId, Status, StopReason,
};
use crate::machine::{Machine, Output};
use crate::policy::Jitter;
use crate::time::Now;

const URL: &str = "wss://api.example/v1/sessions/ws/s1/subscribe?organization_uuid=o1";

struct Harness {
    session: Session,
    now: Instant,
    t0: Instant,
    /// Tokens handed out so far (the provider counts them).
    tokens: Arc<AtomicU64>,
}

type Out = Vec<Output<HostedEvent>>;

impl Harness {
    fn new() -> Self {
        let mut config = HostedConfig::for_url(URL);
        config.lifecycle.jitter = Jitter::NONE;
        Harness::with(config)
    }

    fn with(config: HostedConfig) -> Self {
        let tokens = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&tokens);
        let provider: TokenProvider =
            Box::new(move || Ok(format!("tok-{}", counter.fetch_add(1, Ordering::SeqCst) + 1)));
        let t0 = Instant::now();
        let session = Session::new(config, provider, 7, t0).unwrap_or_else(|e| panic!("{e}"));
        Harness {
            session,
            now: t0,
            t0,
            tokens,
        }
    }

    fn feed(&mut self, event: Event) -> Out {
        let now = Now::new(self.now, 1_700_000_000_000);
        let _ = Machine::handle(&mut self.session, now, event);
        self.drain()
    }

    fn drain(&mut self) -> Out {
        std::iter::from_fn(|| self.session.poll_output()).collect()
    }

    /// Jumps to the next deadline and ticks.
    fn tick(&mut self) -> Out {
        let Some((at, _)) = self.session.next_deadline() else {
            return Vec::new();
        };
        self.now = self.now.max(at);
        self.feed(Event::Tick)
    }

    fn since_start(&self) -> Duration {
        self.now - self.t0
    }
}

/// The socket, URL and headers of an attempt.
type Open = (SocketId, String, Vec<(String, String)>);

fn open_request(out: &Out) -> Option<Open> {
    out.iter().find_map(|o| match o {
        Output::Io(Io::OpenSocket { socket, url, headers }) => Some((*socket, url.clone(), headers.clone())),
        _ => None,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn sent_texts(out: &Out) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Io(Io::SendText { text, .. }) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn stop(out: &Out) -> Option<StopReason> {
    out.iter().find_map(|o| match o {
        Output::Event(HostedEvent::Lifecycle(Notification::Closed { reason })) => Some(reason.clone()),
        _ => None,
    })
}

fn scheduled(out: &Out) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        Output::Event(HostedEvent::Lifecycle(Notification::ReconnectScheduled { delay, .. })) => Some(*delay),
        _ => None,
    })
}

/// Connects and opens; returns the socket.
fn establish(h: &mut Harness) -> SocketId {
    let out = h.feed(Event::Connect);
    let (socket, ..) = open_request(&out).unwrap_or_else(|| panic!("no open in {out:?}"));
    h.feed(Event::Opened { socket });
    socket
}

/// Waits out the scheduled delay and opens the next attempt.
fn reestablish(h: &mut Harness) -> SocketId {
    let out = h.tick();
    let (socket, ..) = open_request(&out).unwrap_or_else(|| panic!("no open in {out:?}"));
    h.feed(Event::Opened { socket });
    socket
}

#[test]
fn the_subscribe_url_carries_the_session_and_organization() {
    // proves S10
    assert_eq!(
        subscribe_url("https://api.anthropic.com", "sess_01", "org-9").as_deref(),
        Ok("wss://api.anthropic.com/v1/sessions/ws/sess_01/subscribe?organization_uuid=org-9")
    );
    assert_eq!(
        subscribe_url("http://127.0.0.1:8080/", "s", "o").as_deref(),
        Ok("ws://127.0.0.1:8080/v1/sessions/ws/s/subscribe?organization_uuid=o")
    );
    assert!(matches!(
        subscribe_url("ftp://x", "s", "o"),
        Err(UrlError::Scheme(_))
    ));
    assert!(matches!(
        subscribe_url("https://x", "s/../admin", "o"),
        Err(UrlError::BadId {
            what: "session id",
            ..
        })
    ));
    assert!(matches!(
        subscribe_url("https://x", "s", "o&x=1"),
        Err(UrlError::BadId { .. })
    ));
}

#[test]
fn every_attempt_sends_a_freshly_fetched_token_and_the_version_header() {
    // proves S1, S10, D8
    let mut h = Harness::new();
    let out = h.feed(Event::Connect);
    let (socket, url, headers) = open_request(&out).unwrap_or_else(|| panic!("no open"));
    assert_eq!(url, URL);
    assert_eq!(header(&headers, "authorization"), Some("Bearer tok-1"));
    assert_eq!(header(&headers, "anthropic-version"), Some(ANTHROPIC_VERSION));
    h.feed(Event::Opened { socket });
    h.feed(Event::Closed {
        socket,
        code: 1006,
        reason: String::new(),
    });
    let out = h.tick();
    let (_, _, headers) = open_request(&out).unwrap_or_else(|| panic!("no reconnect"));
    assert_eq!(header(&headers, "authorization"), Some("Bearer tok-2"));
    assert_eq!(h.tokens.load(Ordering::SeqCst), 2);
}

#[test]
fn a_token_provider_that_fails_fails_that_attempt() {
    // proves S1, L13
    let provider: TokenProvider = Box::new(|| Err("token endpoint down".into()));
    let t0 = Instant::now();
    let mut s = Session::new(HostedConfig::for_url(URL), provider, 1, t0).unwrap_or_else(|e| panic!("{e}"));
    let _ = s.handle(Now::new(t0, 0), Event::Connect);
    let out: Out = std::iter::from_fn(|| s.poll_output()).collect();
    assert!(open_request(&out).is_none(), "no socket without a token");
    assert!(matches!(
        stop(&out),
        Some(StopReason::FirstConnectFailed {
            failure: Failure::HelloBuild { .. }
        })
    ));
}

#[test]
fn an_open_socket_is_a_connected_session_with_no_hello() {
    // proves S10, S6
    let mut h = Harness::new();
    let out = h.feed(Event::Connect);
    let (socket, ..) = open_request(&out).unwrap_or_else(|| panic!("no open"));
    let out = h.feed(Event::Opened { socket });
    assert!(sent_texts(&out).is_empty(), "no hello: {out:?}");
    assert_eq!(h.session.status(), Status::Open);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(HostedEvent::Lifecycle(Notification::Connected {
            first: true,
            ..
        }))
    )));
}

#[test]
fn messages_with_a_string_type_are_handed_up_unchanged_and_others_dropped() {
    // proves S10, L5
    let mut h = Harness::new();
    let socket = establish(&mut h);
    let text = r#"{"type":"assistant","message":{"content":[1,2.5,"x"]},"extra":null}"#;
    let out = h.feed(Event::Frame {
        socket,
        frame: Frame::Text(text.into()),
    });
    let got = out.iter().find_map(|o| match o {
        Output::Event(HostedEvent::Message(m)) => Some(m.clone()),
        _ => None,
    });
    let got = got.unwrap_or_else(|| panic!("no message in {out:?}"));
    assert_eq!(got.kind(), "assistant");
    assert_eq!(
        got.value(),
        &serde_json::from_str::<serde_json::Value>(text).unwrap_or_default()
    );
    for junk in ["[1,2]", r#"{"type":3}"#, "{", r#"{"no":"type"}"#] {
        let out = h.feed(Event::Frame {
            socket,
            frame: Frame::Text(junk.into()),
        });
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Event(HostedEvent::Lifecycle(Notification::FrameDropped(_)))
            )),
            "{junk} was not dropped: {out:?}"
        );
    }
    assert_eq!(h.session.status(), Status::Open, "junk is never fatal");
}

#[test]
fn close_4003_stops_at_once() {
    // proves S2, S6
    let mut h = Harness::new();
    let socket = establish(&mut h);
    let out = h.feed(Event::Closed {
        socket,
        code: 4003,
        reason: "unauthorized".into(),
    });
    assert!(
        matches!(stop(&out), Some(StopReason::Permanent { .. })),
        "{out:?}"
    );
    assert_eq!(h.session.status(), Status::Closed);
    assert_eq!(h.session.next_deadline(), None, "nothing left to wake for");
}

#[test]
fn close_4001_is_retried_three_times_two_seconds_times_n() {
    // proves S3
    let mut h = Harness::new();
    let mut socket = establish(&mut h);
    let mut delays = Vec::new();
    for _ in 0..3 {
        let out = h.feed(Event::Closed {
            socket,
            code: 4001,
            reason: "session not found".into(),
        });
        delays.push(scheduled(&out).unwrap_or_default());
        socket = reestablish(&mut h);
    }
    let secs = Duration::from_secs;
    assert_eq!(delays, [secs(2), secs(4), secs(6)]);
    let out = h.feed(Event::Closed {
        socket,
        code: 4001,
        reason: "session not found".into(),
    });
    assert!(matches!(
        stop(&out),
        Some(StopReason::RetriesExhausted { retries: 3, .. })
    ));
}

#[test]
fn a_failed_first_connect_stops_and_leaves_nothing_running() {
    // proves S4, D1
    let mut h = Harness::new();
    let out = h.feed(Event::Connect);
    let (socket, ..) = open_request(&out).unwrap_or_else(|| panic!("no open"));
    let out = h.feed(Event::ConnectFailed {
        socket,
        kind: ConnectFailureKind::Refused,
        reason: "connection refused".into(),
    });
    assert!(matches!(stop(&out), Some(StopReason::FirstConnectFailed { .. })));
    assert_eq!(h.session.next_deadline(), None);
}

#[test]
fn after_an_open_connection_five_failed_attempts_back_off_before_giving_up() {
    // proves D10, S4: the seed's first failed reconnect was final
    let mut h = Harness::new();
    let socket = establish(&mut h);
    let mut out = h.feed(Event::Closed {
        socket,
        code: 1006,
        reason: String::new(),
    });
    let mut delays = Vec::new();
    for _ in 0..HOSTED_RECONNECT_ATTEMPTS {
        delays.push(scheduled(&out).unwrap_or_else(|| panic!("no reconnect scheduled: {out:?}")));
        let next = h.tick();
        let (socket, ..) = open_request(&next).unwrap_or_else(|| panic!("no attempt: {next:?}"));
        out = h.feed(Event::ConnectFailed {
            socket,
            kind: ConnectFailureKind::Refused,
            reason: "connection refused".into(),
        });
    }
    assert_eq!(delays, HOSTED_BACKOFF[..HOSTED_RECONNECT_ATTEMPTS as usize]);
    assert!(
        matches!(stop(&out), Some(StopReason::BudgetExhausted { .. })),
        "{out:?}"
    );
}

#[test]
fn a_connection_that_stays_open_restarts_the_attempt_budget() {
    // proves D10, X7
    let mut h = Harness::new();
    let socket = establish(&mut h);
    let out = h.feed(Event::Closed {
        socket,
        code: 1006,
        reason: String::new(),
    });
    assert!(scheduled(&out).is_some());
    // Four failures, then an open that lasts past the stability window.
    for _ in 0..4 {
        let next = h.tick();
        let (socket, ..) = open_request(&next).unwrap_or_else(|| panic!("no attempt"));
        h.feed(Event::ConnectFailed {
            socket,
            kind: ConnectFailureKind::Refused,
            reason: "refused".into(),
        });
    }
    let socket = reestablish(&mut h);
    h.now += crate::lifecycle::DEFAULT_STABILITY_WINDOW + Duration::from_secs(1);
    h.feed(Event::Frame {
        socket,
        frame: Frame::Pong,
    });
    let mut out = h.feed(Event::Closed {
        socket,
        code: 1006,
        reason: String::new(),
    });
    for _ in 0..HOSTED_RECONNECT_ATTEMPTS {
        assert!(scheduled(&out).is_some(), "the budget was not restarted: {out:?}");
        let next = h.tick();
        let (socket, ..) = open_request(&next).unwrap_or_else(|| panic!("no attempt"));
        out = h.feed(Event::ConnectFailed {
            socket,
            kind: ConnectFailureKind::Refused,
            reason: "refused".into(),
        });
    }
    assert!(matches!(stop(&out), Some(StopReason::BudgetExhausted { .. })));
}

#[test]
fn a_silent_server_is_pinged_then_dropped_by_the_watchdog() {
    // proves D11, L9: the seed pinged but never noticed a silent server
    let mut h = Harness::new();
    let socket = establish(&mut h);
    let out = h.tick();
    assert_eq!(h.since_start(), Duration::from_secs(30));
    assert!(out.iter().any(|o| matches!(o, Output::Io(Io::SendPing { .. }))));
    let mut terminated = None;
    for _ in 0..4 {
        let out = h.tick();
        if out
            .iter()
            .any(|o| matches!(o, Output::Io(Io::TerminateSocket { socket: s }) if *s == socket))
        {
            terminated = Some(out);
            break;
        }
    }
    let out = terminated.unwrap_or_else(|| panic!("a silent server was never noticed"));
    assert!(h.since_start() > Duration::from_secs(75));
    assert!(scheduled(&out).is_some(), "a stale connection reconnects");
}

#[test]
fn reconnect_forces_a_fresh_connection_after_half_a_second() {
    // proves S5
    let mut h = Harness::new();
    let socket = establish(&mut h);
    let at = h.now;
    let out = h.feed(Event::Reconnect);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Io(Io::CloseSocket { socket: s, .. }) if *s == socket)));
    let out = h.tick();
    assert_eq!(h.now - at, Duration::from_millis(500));
    let (_, _, headers) = open_request(&out).unwrap_or_else(|| panic!("no fresh attempt"));
    assert_eq!(header(&headers, "authorization"), Some("Bearer tok-2"));
}

#[test]
fn control_requests_carry_fresh_ids_and_are_refused_while_not_connected() {
    // proves S7, S10
    let mut h = Harness::new();
    let refused = h.session.send_control_request(json!({"subtype": "interrupt"}));
    assert!(
        matches!(&refused, Err(HostedError::NotConnected { status: Status::Idle, payload }) if payload["subtype"] == "interrupt"),
        "{refused:?}"
    );
    assert!(h.drain().is_empty(), "a refused call changes nothing");
    establish(&mut h);
    let a = h.session.send_control_request(json!({"subtype": "interrupt"}));
    let b = h.session.send_control_request(json!({"subtype": "interrupt"}));
    let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
    assert_ne!(a, b);
    assert_eq!(a.len(), 36, "UUID-shaped: {a}");
    let sent = sent_texts(&h.drain());
    let frames: Vec<serde_json::Value> = sent
        .iter()
        .map(|t| serde_json::from_str(t).unwrap_or_default())
        .collect();
    assert_eq!(frames[0]["type"], "control_request");
    assert_eq!(frames[0]["request_id"], a.as_str());
    assert_eq!(frames[0]["request"]["subtype"], "interrupt");
    assert_eq!(frames[1]["request_id"], b.as_str());
    let response = json!({"type": "control_response", "response": {"request_id": "x", "subtype": "success"}});
    assert!(h.session.send_control_response(response.clone()).is_ok());
    assert_eq!(sent_texts(&h.drain()), [response.to_string()]);
    assert!(matches!(
        h.session.send_control_response(json!("no")),
        Err(HostedError::NotAnObject(_))
    ));
}

#[test]
fn a_control_response_is_refused_after_close() {
    // proves S7
    let mut h = Harness::new();
    establish(&mut h);
    h.feed(Event::Close);
    let refused = h
        .session
        .send_control_response(json!({"type": "control_response"}));
    assert!(matches!(
        refused,
        Err(HostedError::NotConnected {
            status: Status::Closed,
            ..
        })
    ));
}

#[test]
fn the_token_is_never_printed() {
    // proves X5
    let h = Harness::new();
    let shown = format!("{:?}", h.session);
    assert!(!shown.contains("tok-"), "{shown}");
}
