//! The `hosted` target: the hosted session under any event sequence.

use std::collections::BTreeSet;

use arbitrary::Unstructured;
use serde_json::json;

use super::{short_text, time_step, Clock, MAX_STEPS};
use crate::hosted::{HostedConfig, HostedError, HostedEvent, Session, TokenProvider};
use crate::lifecycle::{ConnectFailureKind, ContractCheck, Event, Frame, Io, SocketId, Status};
use crate::machine::{Machine, Output};
use crate::policy::Jitter;

/// Drives a [`hosted::Session`](crate::hosted::Session) through an event
/// sequence built from `data`, checking after every step that:
///
/// - its outputs keep the lifecycle's contract ([`ContractCheck`], made for the
///   session's configuration and no hello: legal status changes in order,
///   nothing sent before open or on a dead socket, one socket at a time,
///   reconnect delays the configuration allows, no stall, nothing after the
///   close), and the live socket is the session's;
/// - every attempt carries a bearer token fetched for it and `anthropic-version`;
/// - a control request is accepted exactly when open, with a request id never
///   seen before, and a refusal hands the payload back;
/// - every message handed up is a JSON object with a string `type`.
pub fn hosted(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut config =
        HostedConfig::for_url("wss://api.example/v1/sessions/ws/s/subscribe?organization_uuid=o");
    if u.arbitrary::<bool>().unwrap_or(false) {
        config.lifecycle.jitter = Jitter::NONE;
    }
    let fail_tokens = u.int_in_range(0u8..=7).unwrap_or(0) == 0;
    let fetched = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&fetched);
    let tokens: TokenProvider = Box::new(move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if fail_tokens && n % 2 == 0 {
            Err("token endpoint down".into())
        } else {
            Ok(format!("tok-{n}"))
        }
    });
    let seed = u.arbitrary::<u64>().unwrap_or(0);
    let contract = ContractCheck::for_config(&config.lifecycle, None);
    let mut clock = Clock::new();
    let Ok(session) = Session::new(config, tokens, seed, clock.now) else {
        return;
    };
    let mut run = Run {
        session,
        contract,
        ids: BTreeSet::new(),
    };
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        clock.advance(time_step(&mut u));
        run.step(&mut u, &mut clock);
    }
}

struct Run {
    session: Session,
    contract: ContractCheck,
    ids: BTreeSet<String>,
}

impl Run {
    fn step(&mut self, u: &mut Unstructured<'_>, clock: &mut Clock) {
        let socket = match (self.contract.live(), u.int_in_range(0u8..=5).unwrap_or(0)) {
            (Some(s), 1..=5) => s,
            // Now and then news about a socket the session never had or left.
            (_, _) => SocketId(u.int_in_range(0u64..=4).unwrap_or(0)),
        };
        let event = match u.int_in_range(0u8..=13).unwrap_or(0) {
            0 => Some(Event::Connect),
            1 => Some(Event::Opened { socket }),
            2 => Some(Event::Frame {
                socket,
                frame: Frame::Text(match u.int_in_range(0u8..=3).unwrap_or(0) {
                    0 => json!({"type": "assistant", "n": u.arbitrary::<u32>().unwrap_or(0)}).to_string(),
                    1 => json!({"type": "control_response", "response": {}}).to_string(),
                    _ => short_text(u, 40),
                }),
            }),
            3 => Some(Event::Frame {
                socket,
                frame: [Frame::Ping, Frame::Pong, Frame::Binary(vec![1, 2])]
                    [u.int_in_range(0usize..=2).unwrap_or(0)]
                .clone(),
            }),
            4 => Some(Event::Closed {
                socket,
                code: [1000, 1006, 4001, 4003, 1011, 4000][u.int_in_range(0usize..=5).unwrap_or(0)],
                reason: short_text(u, 12),
            }),
            5 => Some(Event::ConnectFailed {
                socket,
                kind: ConnectFailureKind::Refused,
                reason: "refused".into(),
            }),
            6 | 7 => Some(Event::Tick),
            8 => {
                if let Some((at, _)) = self.session.next_deadline() {
                    clock.jump_to(at);
                }
                Some(Event::Tick)
            }
            9 => Some(Event::Close),
            10 => Some(Event::Reconnect),
            11 => Some(Event::RetryNow),
            12 => {
                let open = self.session.status() == Status::Open;
                match self.session.send_control_request(json!({"subtype": "interrupt"})) {
                    Ok(id) => {
                        assert!(
                            open,
                            "a control request was accepted while {:?}",
                            self.contract.status()
                        );
                        assert!(self.ids.insert(id.clone()), "request id {id} reused");
                    }
                    Err(HostedError::NotConnected { payload, .. }) => {
                        assert!(!open, "a control request was refused while open");
                        assert_eq!(payload["subtype"], "interrupt", "the payload was not handed back");
                    }
                    Err(e) => panic!("unexpected refusal {e}"),
                }
                None
            }
            _ => {
                let open = self.session.status() == Status::Open;
                let accepted = self
                    .session
                    .send_control_response(json!({"type": "control_response"}))
                    .is_ok();
                assert_eq!(accepted, open, "a control response accepted iff open");
                None
            }
        };
        if let Some(event) = event {
            // The host reporting the end of the live socket ends it for the session too.
            if let Event::Closed { socket, .. } | Event::ConnectFailed { socket, .. } = &event {
                self.contract.socket_gone(*socket);
            }
            let closed = self.session.status() == Status::Closed;
            let refusable = matches!(event, Event::Connect | Event::Reconnect | Event::RetryNow);
            let result = Machine::handle(&mut self.session, clock.at(), event);
            if result.is_err() {
                assert!(
                    closed && refusable,
                    "input refused while {:?}",
                    self.contract.status()
                );
            }
        }
        self.check();
    }

    fn check(&mut self) {
        while let Some(output) = self.session.poll_output() {
            let kept = match output {
                Output::Io(io) => {
                    self.check_io(&io);
                    self.contract.io(&io)
                }
                Output::Event(HostedEvent::Message(m)) => {
                    assert!(m.value().is_object() && m.value()["type"].is_string(), "{m:?}");
                    Ok(())
                }
                Output::Event(HostedEvent::Lifecycle(note)) => self.contract.notification(&note),
            };
            if let Err(broken) = kept {
                panic!("{broken}");
            }
        }
        assert_eq!(
            self.contract.live(),
            self.session.lifecycle().socket(),
            "the live socket drifted"
        );
        let status = self.session.status();
        let has_deadline = self.session.next_deadline().is_some();
        if let Err(broken) =
            self.contract
                .after_drain(status, has_deadline, self.session.lifecycle().socket())
        {
            panic!("{broken}");
        }
    }

    /// What the contract does not know of: the hosted attempt's headers.
    fn check_io(&self, io: &Io) {
        if let Io::OpenSocket { headers, .. } = io {
            let auth = headers
                .iter()
                .find(|(n, _)| n == "Authorization")
                .map(|(_, v)| v.as_str());
            assert!(auth.is_some_and(|a| a.starts_with("Bearer tok-")), "{headers:?}");
            assert!(headers.iter().any(|(n, _)| n == "anthropic-version"));
        }
    }
}
