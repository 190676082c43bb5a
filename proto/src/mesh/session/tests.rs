//! Stories of the mesh session, each naming the behaviour ids it proves.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::lifecycle::{Config, FirstConnect, Io, SocketId};
use crate::mesh::handshake::Credentials;
use crate::mesh::identity::{verify_hello, verify_session_hello, MemberIdentity, Presence, SecretKey};
use crate::mesh::wire::{decode_client_frame, Priority, Reply, SendFrame};
use crate::policy::Jitter;

pub(crate) mod support {
    use super::*;

    pub(crate) const UNIX0: u64 = 1_700_000_000_000;

    pub(crate) fn member() -> MemberIdentity {
        MemberIdentity {
            mesh_id: "mesh-test".into(),
            member_id: "member-1".into(),
            secret: SecretKey::from_seed([7; 32]),
        }
    }

    pub(crate) fn config() -> SessionConfig {
        let mut lc = Config::new("ws://broker.test/ws");
        lc.jitter = Jitter::NONE;
        lc.first_connect = FirstConnect::Retry;
        SessionConfig::new(lc)
    }

    /// Drives one session against a scripted broker.
    pub(crate) struct Sim {
        pub s: Session,
        pub t0: Instant,
        pub now: Instant,
        pub socket: Option<SocketId>,
    }

    impl Sim {
        pub(crate) fn new(config: SessionConfig) -> Self {
            Self::with(config, Credentials::Member(member()))
        }

        pub(crate) fn with(config: SessionConfig, credentials: Credentials) -> Self {
            let t0 = Instant::now();
            let presence = Presence {
                session_id: "s-1".into(),
                pid: 42,
                cwd: "/tmp".into(),
                ..Presence::default()
            };
            let hs = MeshHandshake::new(credentials, presence);
            Sim {
                s: Session::new(config, hs, 5, t0).expect("valid config"),
                t0,
                now: t0,
                socket: None,
            }
        }

        pub(crate) fn at(&self) -> Now {
            let elapsed = u64::try_from((self.now - self.t0).as_millis()).unwrap_or(u64::MAX);
            Now::new(self.now, UNIX0.saturating_add(elapsed))
        }

        pub(crate) fn drain(&mut self) -> Vec<SessionAction> {
            let actions: Vec<SessionAction> = std::iter::from_fn(|| self.s.poll_action()).collect();
            for a in &actions {
                if let SessionAction::Io(Io::OpenSocket { socket, .. }) = a {
                    self.socket = Some(*socket);
                }
            }
            actions
        }

        pub(crate) fn handle(&mut self, event: Event) -> Vec<SessionAction> {
            self.s.handle(self.at(), event).expect("accepted");
            self.drain()
        }

        pub(crate) fn fire(&mut self) -> (Deadline, Vec<SessionAction>) {
            let (at, which) = self.s.next_deadline().expect("a deadline");
            self.now = self.now.max(at);
            (which, self.handle(Event::Tick))
        }

        pub(crate) fn broker(&mut self, frame: serde_json::Value) -> Vec<SessionAction> {
            let socket = self.socket.expect("a socket");
            self.handle(Event::Frame {
                socket,
                frame: crate::lifecycle::Frame::Text(frame.to_string()),
            })
        }

        pub(crate) fn drop_connection(&mut self, code: u16) -> Vec<SessionAction> {
            let socket = self.socket.expect("a socket");
            self.handle(Event::Closed {
                socket,
                code,
                reason: String::new(),
            })
        }

        /// Connect, open, ack; returns the actions of the ack.
        pub(crate) fn establish(&mut self) -> Vec<SessionAction> {
            self.handle(Event::Connect);
            self.open_and_ack()
        }

        pub(crate) fn open_and_ack(&mut self) -> Vec<SessionAction> {
            let socket = self.socket.expect("a socket");
            self.handle(Event::Opened { socket });
            let a = self.broker(json!({"type":"hello_ack","presenceId":"p","memberDisplayName":"me"}));
            assert_eq!(self.s.status(), Status::Open);
            a
        }

        pub(crate) fn reconnect(&mut self) -> Vec<SessionAction> {
            let (_, a) = self.fire();
            assert!(a
                .iter()
                .any(|a| matches!(a, SessionAction::Io(Io::OpenSocket { .. }))));
            self.open_and_ack()
        }

        pub(crate) fn send(&mut self, target: &str, body: &str) -> (OpId, Vec<SessionAction>) {
            let id = self
                .s
                .send(self.at(), Outgoing::new(target, body))
                .expect("accepted");
            (id, self.drain())
        }
    }

    pub(crate) fn written(actions: &[SessionAction]) -> Vec<ClientFrame> {
        actions
            .iter()
            .filter_map(|a| match a {
                SessionAction::Io(Io::SendText { text, .. }) => {
                    Some(decode_client_frame(text, usize::MAX).expect("we write valid frames"))
                }
                _ => None,
            })
            .collect()
    }

    pub(crate) fn resolved(actions: &[SessionAction]) -> Vec<(OpId, OpResult)> {
        actions
            .iter()
            .filter_map(|a| match a {
                SessionAction::Event(SessionEvent::Resolved { id, result }) => Some((*id, result.clone())),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn sends(actions: &[SessionAction]) -> Vec<SendFrame> {
        written(actions)
            .into_iter()
            .filter_map(|f| match f {
                ClientFrame::Send(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn failure_of(actions: &[SessionAction], id: OpId) -> OpFailure {
        resolved(actions)
            .into_iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, r)| r.err())
            .expect("a failure for the op")
    }
}

use support::*;

#[test]
fn send_resolves_with_the_brokers_message_id() {
    // proves B1, B6
    let mut sim = Sim::new(config());
    sim.establish();
    let (id, a) = sim.send("@alice", "hello there");
    let frames = sends(&a);
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    assert_eq!(f.target_spec, "@alice");
    assert_eq!(f.priority, Priority::Next);
    assert_eq!(f.client_message_id.as_deref(), Some(f.id.as_str()));
    assert_eq!(f.ciphertext, "aGVsbG8gdGhlcmU=");
    assert_eq!(f.nonce.len(), 32, "24 bytes in base64");
    let a = sim.broker(json!({"type":"ack","id":f.id,"messageId":"m-9","queued":false}));
    assert_eq!(
        resolved(&a),
        [(
            id,
            Ok(Outcome::Sent {
                message_id: "m-9".into(),
                queued: false
            })
        )]
    );
}

#[test]
fn ack_error_and_error_frame_fail_the_send_with_its_class() {
    // proves B1, B5, X8
    let mut sim = Sim::new(config());
    sim.establish();
    let (a_id, a) = sim.send("@alice", "x");
    let a_frame = sends(&a).remove(0);
    let (b_id, a) = sim.send("@bob", "y");
    let b_frame = sends(&a).remove(0);
    let (c_id, a) = sim.send("@carol", "z");
    let c_frame = sends(&a).remove(0);
    let r = sim.broker(
        json!({"type":"ack","id":a_frame.id,"messageId":"","queued":false,"error":"payload too large: 2MB"}),
    );
    let f = failure_of(&r, a_id);
    assert_eq!((f.kind, f.permanent), (FailureKind::Rejected, true));
    let r = sim.broker(
        json!({"type":"ack","id":b_frame.id,"messageId":"","queued":false,"error":"rate_limit: slow down"}),
    );
    let f = failure_of(&r, b_id);
    assert_eq!((f.kind, f.permanent), (FailureKind::Rejected, false));
    let r =
        sim.broker(json!({"type":"error","code":"target_not_found","message":"no carol","id":c_frame.id}));
    let f = failure_of(&r, c_id);
    assert_eq!(f.reason, "target_not_found");
    assert_eq!(
        (f.code.as_deref(), f.message.as_str()),
        (Some("target_not_found"), "no carol")
    );
    assert_eq!(f.to_string(), "target_not_found: no carol");
    assert!(f.permanent);
}

#[test]
fn error_acks_are_failed_sends_classed_by_their_code() {
    // proves B16: `queued: true` is an accepted send; the real broker's error
    // acks for an offline target are failed sends, transient by their code, and
    // a transient code stays transient whatever words its message contains; a
    // message repeating its code is said once.
    let mut sim = Sim::new(config());
    sim.establish();
    let (ok_id, a) = sim.send("@alice", "x");
    let ok = sends(&a).remove(0);
    let r = sim.broker(json!({"type":"ack","id":ok.id,"messageId":"m-1","queued":true}));
    assert!(
        matches!(&resolved(&r)[0].1, Ok(Outcome::Sent { message_id, queued: true }) if message_id == "m-1")
    );
    assert_eq!(resolved(&r)[0].0, ok_id);

    let offline =
        "no connected peer for target (not online, or targetSpec is your own key without another session)";
    let cases = [
        (offline, "no connected peer for target", false),
        (
            "rate_limit: unknown burst, unauthorized pace",
            "rate_limit",
            false,
        ),
        (
            "payload too large: 70000 bytes > MAX_MESSAGE_BYTES=65536",
            "payload too large",
            true,
        ),
        (
            "blocked by recipient grants (sender lacks dm capability)",
            "blocked by recipient grants",
            false,
        ),
    ];
    for (error, code, permanent) in cases {
        let (id, a) = sim.send("@bob", "y");
        let frame = sends(&a).remove(0);
        let r = sim.broker(json!({"type":"ack","id":frame.id,"messageId":"","queued":false,"error":error}));
        let f = failure_of(&r, id);
        assert_eq!(f.kind, FailureKind::Rejected, "{error}");
        assert_eq!(f.code.as_deref(), Some(code), "{error}");
        assert_eq!(f.permanent, permanent, "{error}");
        assert!(!f.may_have_been_delivered(), "the broker said no");
    }
    let (id, a) = sim.send("@carol", "z");
    let frame = sends(&a).remove(0);
    let r =
        sim.broker(json!({"type":"error","code":"forbidden","message":"forbidden: not yours","id":frame.id}));
    assert_eq!(failure_of(&r, id).to_string(), "forbidden: not yours");
}

#[test]
fn unanswered_send_times_out_after_ten_seconds() {
    // proves B2, X8
    let mut sim = Sim::new(config());
    sim.establish();
    let (id, _) = sim.send("@alice", "x");
    let sent_at = sim.now;
    // The watchdog (30 s) is later than the ack deadline (10 s).
    let (which, a) = sim.fire();
    assert_eq!(which, Deadline::Op(id));
    assert_eq!(sim.now - sent_at, Duration::from_secs(10));
    let f = failure_of(&a, id);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::TimedOut, "ack_timeout")
    );
}

#[test]
fn sends_while_away_wait_in_order_and_a_full_queue_refuses() {
    // proves B3, X4
    let mut c = config();
    c.outbound_queue = 3;
    let mut sim = Sim::new(c);
    sim.handle(Event::Connect);
    let mut ids = Vec::new();
    for body in ["one", "two", "three"] {
        let (id, a) = sim.send("@alice", body);
        assert!(written(&a).is_empty(), "nothing but the hello before open");
        ids.push(id);
    }
    let err = sim.s.send(sim.at(), Outgoing::new("@alice", "four")).unwrap_err();
    assert_eq!(err.reason, SendRefusal::QueueFull);
    assert_eq!(err.outgoing.body, "four", "the refused message is handed back");
    assert_eq!(err.to_string(), "outbound_queue_full");
    assert_eq!(sim.s.stats(sim.now).queue_refused, 1);
    let a = sim.open_and_ack();
    let bodies: Vec<String> = sends(&a).iter().map(|f| f.ciphertext.clone()).collect();
    assert_eq!(bodies, ["b25l", "dHdv", "dGhyZWU="]);
}

#[test]
fn disconnect_fails_in_flight_with_the_close_code_and_close_fails_everything() {
    // proves B4, L6, X8
    let mut sim = Sim::new(config());
    sim.establish();
    let (sent, _) = sim.send("@alice", "x");
    let req = sim.s.request(sim.at(), Request::ListPeers).unwrap();
    let a = sim.drop_connection(1006);
    let f = failure_of(&a, sent);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::OutcomeUnknown, "broker_disconnected_1006")
    );
    assert_eq!(failure_of(&a, req).reason, "broker_disconnected_1006");
    // The results come before the status change (L6).
    let first_status = a
        .iter()
        .position(|a| {
            matches!(
                a,
                SessionAction::Event(SessionEvent::Lifecycle(Notification::StatusChanged { .. }))
            )
        })
        .unwrap();
    let last_resolved = a
        .iter()
        .rposition(|a| matches!(a, SessionAction::Event(SessionEvent::Resolved { .. })))
        .unwrap();
    assert!(last_resolved < first_status);
    // Queued while away, then closed: never sent.
    let (queued, _) = sim.send("@alice", "y");
    let a = sim.handle(Event::Close);
    let f = failure_of(&a, queued);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::NeverSent, "client_closed")
    );
}

#[test]
fn resend_after_reconnect_reuses_the_same_client_message_id() {
    // proves B6, X3
    let mut sim = Sim::new(config());
    sim.establish();
    let mut out = Outgoing::new("@alice", "important");
    out.resend_if_unknown = true;
    out.client_message_id = Some("outbox-row-17".into());
    let id = sim.s.send(sim.at(), out).unwrap();
    let first = sends(&sim.drain()).remove(0);
    assert_eq!(first.id, "outbox-row-17");
    let a = sim.drop_connection(1001);
    assert!(resolved(&a).is_empty(), "kept for a resend, not failed");
    let a = sim.reconnect();
    let again = sends(&a).remove(0);
    assert_eq!(again.client_message_id, first.client_message_id);
    assert_eq!(again.id, first.id);
    let a = sim.broker(json!({"type":"ack","id":"outbox-row-17","messageId":"m1","queued":false}));
    assert_eq!(resolved(&a).len(), 1);
    assert_eq!(resolved(&a)[0].0, id);
    assert_eq!(sim.s.stats(sim.now).resends, 1);
}

#[test]
fn pushes_reach_the_application_and_a_bounded_history() {
    // proves B7, X4
    let mut c = config();
    c.push_history = 3;
    let mut sim = Sim::new(c);
    sim.establish();
    for n in 0..5 {
        let a = sim.broker(json!({"type": if n % 2 == 0 {"push"} else {"inbound"}, "messageId": format!("m{n}"), "meshId":"mesh-test",
            "senderPubkey":"ab", "priority":"now", "nonce":"", "ciphertext":"aGk=", "createdAt":"2026-01-01T00:00:00Z",
            "client_message_id": format!("c{n}")}));
        assert!(a.iter().any(
            |a| matches!(a, SessionAction::Event(SessionEvent::Push(p)) if p.message_id == format!("m{n}"))
        ));
        // Every push is confirmed so the broker stops re-pushing it.
        let acks = written(&a);
        assert!(
            matches!(&acks[..], [ClientFrame::ClientAck(c)] if c.broker_message_id.as_deref() == Some(format!("m{n}").as_str()))
        );
    }
    let st = sim.s.stats(sim.now);
    assert_eq!((st.history_len, st.history_dropped), (3, 2));
    let drained: Vec<String> = sim
        .s
        .drain_history()
        .iter()
        .map(|p| p.message_id.clone())
        .collect();
    assert_eq!(drained, ["m2", "m3", "m4"]);
    assert!(sim.s.drain_history().is_empty());
}

#[test]
fn the_same_client_message_id_under_a_new_broker_id_is_not_delivered_twice() {
    // proves X3: a restarted broker forgot its dedupe and pushes a resend again
    let mut sim = Sim::new(config());
    sim.establish();
    for message_id in ["m1", "m1-after-restart"] {
        sim.broker(
            json!({"type":"push","messageId":message_id,"meshId":"x","senderPubkey":"ab","priority":"next",
            "nonce":"","ciphertext":"","createdAt":"","client_message_id":"c-7"}),
        );
    }
    let st = sim.s.stats(sim.now);
    assert_eq!((st.pushes, st.push_duplicates, st.history_len), (2, 1, 1));
}

#[test]
fn a_re_pushed_message_is_not_delivered_twice() {
    // proves X3
    let mut sim = Sim::new(config());
    sim.establish();
    let push = json!({"type":"push","messageId":"m1","meshId":"x","senderPubkey":"ab","priority":"next","nonce":"","ciphertext":"","createdAt":""});
    sim.broker(push.clone());
    let a = sim.broker(push);
    assert!(!a
        .iter()
        .any(|a| matches!(a, SessionAction::Event(SessionEvent::Push(_)))));
    assert_eq!(written(&a).len(), 1, "the duplicate is confirmed again");
    assert_eq!(sim.s.stats(sim.now).push_duplicates, 1);
}

#[test]
fn every_request_carries_a_fresh_req_id_and_resolves_with_its_reply() {
    // proves B8, B10, S7
    let mut sim = Sim::new(config());
    sim.establish();
    let requests = [
        (
            Request::ListPeers,
            json!({"type":"peers_list","peers":[{"pubkey":"ab","displayName":"bob","status":"idle","summary":null,"groups":[],"sessionId":"s","connectedAt":"t","peerRole":"control-plane"}]}),
        ),
        (
            Request::GetState { key: "k".into() },
            json!({"type":"state_result","key":"k","value":5,"updatedBy":"bob","updatedAt":"t"}),
        ),
        (
            Request::ListState,
            json!({"type":"state_list","entries":[{"key":"k","value":5,"updatedBy":"bob","updatedAt":"t"}]}),
        ),
        (
            Request::Remember {
                content: "c".into(),
                tags: None,
            },
            json!({"type":"memory_stored","id":"mem-1"}),
        ),
        (
            Request::Recall { query: "q".into() },
            json!({"type":"memory_results","memories":[{"id":"mem-1","content":"c","tags":[],"rememberedBy":"me","rememberedAt":"t"}]}),
        ),
        (
            Request::ListSkills { query: None },
            json!({"type":"skill_list","skills":[]}),
        ),
        (
            Request::GetSkill {
                name: "deploy".into(),
            },
            json!({"type":"skill_data","skill":null}),
        ),
    ];
    let mut req_ids = std::collections::BTreeSet::new();
    for (request, mut reply) in requests {
        let id = sim.s.request(sim.at(), request).unwrap();
        let frame = written(&sim.drain()).remove(0);
        let req_id = frame.req_id().expect("a _reqId").to_owned();
        assert!(req_ids.insert(req_id.clone()), "fresh per request");
        reply["_reqId"] = json!(req_id);
        let r = resolved(&sim.broker(reply));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, id);
        let Ok(Outcome::Reply(reply)) = &r[0].1 else {
            panic!("{r:?}")
        };
        assert_eq!(Some(reply.kind()), frame.request_kind());
        if let Reply::Peers(peers) = reply {
            assert!(!peers[0].is_user_facing(), "B11: control-plane hidden by default");
        }
    }
}

#[test]
fn requests_time_out_and_never_hang() {
    // proves B8, X8
    let mut sim = Sim::new(config());
    sim.establish();
    let id = sim.s.request(sim.at(), Request::ListState).unwrap();
    let (which, a) = sim.fire();
    assert_eq!(which, Deadline::Op(id));
    let f = failure_of(&a, id);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::TimedOut, "request_timeout")
    );
    // A late reply matches nothing and is counted.
    sim.broker(json!({"type":"state_list","entries":[],"_reqId":"r1"}));
    assert_eq!(sim.s.stats(sim.now).unmatched, 1);
}

#[test]
fn older_reply_shapes_and_missing_req_ids_still_resolve() {
    // proves B10, D7
    let mut sim = Sim::new(config());
    sim.establish();
    let get = sim
        .s
        .request(sim.at(), Request::GetState { key: "k".into() })
        .unwrap();
    let recall = sim
        .s
        .request(sim.at(), Request::Recall { query: "q".into() })
        .unwrap();
    let remember = sim
        .s
        .request(
            sim.at(),
            Request::Remember {
                content: "c".into(),
                tags: Some(vec!["t".into()]),
            },
        )
        .unwrap();
    sim.drain();
    let a = sim.broker(
        json!({"type":"state_value","state":{"key":"k","value":"v","updatedBy":"b","updatedAt":"t"}}),
    );
    assert!(
        matches!(&resolved(&a)[..], [(id, Ok(Outcome::Reply(Reply::State(Some(row)))))] if *id == get && row.value == json!("v"))
    );
    let a = sim.broker(json!({"type":"memory_recall_result","matches":[{"id":"m","content":"c","tags":[],"rememberedBy":"b","rememberedAt":"t"}]}));
    assert!(
        matches!(&resolved(&a)[..], [(id, Ok(Outcome::Reply(Reply::Recalled(rows))))] if *id == recall && rows.len() == 1)
    );
    let a = sim.broker(json!({"type":"memory_stored","memoryId":"mem-7"}));
    assert!(
        matches!(&resolved(&a)[..], [(id, Ok(Outcome::Reply(Reply::Remembered(Some(m)))))] if *id == remember && m == "mem-7")
    );
}

#[test]
fn an_error_with_a_req_id_rejects_that_request() {
    // proves B8, X8
    let mut sim = Sim::new(config());
    sim.establish();
    let id = sim
        .s
        .request(sim.at(), Request::GetSkill { name: "x".into() })
        .unwrap();
    let req = written(&sim.drain()).remove(0).req_id().unwrap().to_owned();
    let a = sim.broker(json!({"type":"error","code":"not_found","message":"no skill x","_reqId":req}));
    let f = failure_of(&a, id);
    assert_eq!(f.kind, FailureKind::Rejected);
}

#[test]
fn commands_and_requests_are_refused_while_not_open() {
    // proves B9, D9, S7, L10
    let mut sim = Sim::new(config());
    let cmd = Command::SetStatus {
        status: "working".into(),
    };
    assert_eq!(
        sim.s.command(sim.at(), cmd.clone()),
        Err(RequestError::NotOpen(Status::Idle))
    );
    assert_eq!(
        sim.s.request(sim.at(), Request::ListPeers),
        Err(RequestError::NotOpen(Status::Idle))
    );
    sim.handle(Event::Connect);
    assert_eq!(
        sim.s.command(sim.at(), cmd.clone()),
        Err(RequestError::NotOpen(Status::Connecting))
    );
    sim.open_and_ack();
    sim.s.command(sim.at(), cmd).unwrap();
    assert!(matches!(&written(&sim.drain())[..], [ClientFrame::SetStatus(s)] if s.status == "working"));
    sim.handle(Event::Close);
    assert_eq!(
        sim.s.request(sim.at(), Request::ListPeers),
        Err(RequestError::Closed)
    );
}

#[test]
fn every_attempt_signs_a_fresh_hello() {
    // proves B12, D8
    let mut sim = Sim::new(config());
    sim.handle(Event::Connect);
    let socket = sim.socket.unwrap();
    let hello_of = |a: &[SessionAction]| match written(a).remove(0) {
        ClientFrame::Hello(h) => h,
        other => panic!("{other:?}"),
    };
    let first = hello_of(&sim.handle(Event::Opened { socket }));
    assert_eq!(verify_hello(&first, UNIX0), Ok(()));
    sim.drop_connection(1006);
    let (_, _) = sim.fire();
    let socket = sim.socket.unwrap();
    let second = hello_of(&sim.handle(Event::Opened { socket }));
    assert!(second.timestamp > first.timestamp);
    assert_ne!(second.signature, first.signature);
    assert_eq!(verify_hello(&second, second.timestamp), Ok(()));
}

#[test]
fn session_hello_re_mints_its_attestation_every_attempt() {
    // proves B12, D8
    let creds = Credentials::Session(Box::new(crate::mesh::handshake::SessionCredentials {
        parent: member(),
        session_key: SecretKey::from_seed([9; 32]),
        role: Some("worker".into()),
        attestation_ttl: Duration::from_secs(3600),
    }));
    let mut sim = Sim::with(config(), creds);
    sim.handle(Event::Connect);
    let hello_of = |a: &[SessionAction]| match written(a).remove(0) {
        ClientFrame::SessionHello(h) => h,
        other => panic!("{other:?}"),
    };
    let socket = sim.socket.unwrap();
    let first = hello_of(&sim.handle(Event::Opened { socket }));
    assert_eq!(verify_session_hello(&first, UNIX0), Ok(()));
    assert_eq!(first.role.as_deref(), Some("worker"));
    sim.drop_connection(1006);
    sim.fire();
    let socket = sim.socket.unwrap();
    let second = hello_of(&sim.handle(Event::Opened { socket }));
    assert!(second.parent_attestation.expires_at > first.parent_attestation.expires_at);
    assert_eq!(verify_session_hello(&second, second.timestamp), Ok(()));
}

#[test]
fn connect_is_a_no_op_while_connecting_or_open_and_an_error_after_close() {
    // proves B13
    let mut sim = Sim::new(config());
    sim.handle(Event::Connect);
    assert!(sim.handle(Event::Connect).is_empty());
    sim.open_and_ack();
    assert!(sim.handle(Event::Connect).is_empty());
    sim.handle(Event::Close);
    assert_eq!(
        sim.s.handle(sim.at(), Event::Connect),
        Err(LifecycleError::Closed)
    );
    let err = sim.s.send(sim.at(), Outgoing::new("@a", "b")).unwrap_err();
    assert_eq!(err.reason, SendRefusal::Closed);
}

#[test]
fn a_rejection_before_the_ack_is_the_attempts_reason_and_stops() {
    // proves D6, D3
    let mut sim = Sim::new(config());
    sim.handle(Event::Connect);
    let (queued, _) = sim.send("@alice", "x");
    let socket = sim.socket.unwrap();
    sim.handle(Event::Opened { socket });
    sim.broker(json!({"type":"error","code":"unauthorized","message":"not a member of mesh-test"}));
    let a = sim.handle(Event::Closed {
        socket,
        code: 1008,
        reason: "unauthorized".into(),
    });
    let reason = a
        .iter()
        .find_map(|a| match a {
            SessionAction::Event(SessionEvent::Lifecycle(Notification::Closed { reason })) => {
                Some(reason.clone())
            }
            _ => None,
        })
        .expect("closed for good");
    let Some(Failure::Rejected { rejection, .. }) = reason.failure() else {
        panic!("{reason:?}")
    };
    assert_eq!(rejection.message, "not a member of mesh-test");
    let f = failure_of(&a, queued);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::NeverSent, "session_closed: unauthorized")
    );
}

#[test]
fn offline_deadline_overflow_policy_and_never_queue() {
    // proves X9, X8
    let mut c = config();
    c.outbound_queue = 2;
    c.overflow = Overflow::DropOldest;
    let mut sim = Sim::new(c);
    sim.handle(Event::Connect);
    // Worthless late: refused at once while not open.
    let mut urgent = Outgoing::new("@alice", "now or never");
    urgent.queueing = Queueing::Never;
    assert_eq!(
        sim.s.send(sim.at(), urgent).unwrap_err().reason,
        SendRefusal::NotOpen
    );
    // A queued send with an offline deadline of 1 s.
    let mut expiring = Outgoing::new("@alice", "expiring");
    expiring.queueing = Queueing::Queue {
        deadline: Some(Duration::from_secs(1)),
    };
    let expiring = sim.s.send(sim.at(), expiring).unwrap();
    let (oldest, _) = sim.send("@alice", "oldest");
    // The queue holds two: a third drops the oldest queued one (`expiring`).
    let (newest, a) = sim.send("@alice", "newest");
    let f = failure_of(&a, expiring);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::NeverSent, "outbound_queue_overflow")
    );
    // Another one with a 1 s deadline, which passes before the broker answers.
    let mut short = Outgoing::new("@bob", "short-lived");
    short.queueing = Queueing::Queue {
        deadline: Some(Duration::from_secs(1)),
    };
    let short = sim.s.send(sim.at(), short).unwrap();
    assert_eq!(failure_of(&sim.drain(), oldest).reason, "outbound_queue_overflow");
    let (which, a) = sim.fire();
    assert_eq!(which, Deadline::Op(short));
    let f = failure_of(&a, short);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::NeverSent, "queue_deadline")
    );
    let st = sim.s.stats(sim.now);
    assert_eq!((st.queue_dropped, st.queue_expired, st.queue_depth), (2, 1, 1));
    let a = sim.open_and_ack();
    assert_eq!(sends(&a).len(), 1);
    let ack = sim.broker(json!({"type":"ack","id":sends(&a)[0].id,"messageId":"m","queued":true}));
    assert_eq!(resolved(&ack)[0].0, newest);
}

#[test]
fn a_zero_capacity_queue_refuses_even_when_dropping_oldest() {
    // proves X4, X9 (found by the session fuzz target: with nothing to drop the
    // send used to be queued anyway, one over the cap)
    let mut c = config();
    c.outbound_queue = 0;
    c.overflow = Overflow::DropOldest;
    let mut sim = Sim::new(c);
    sim.handle(Event::Connect);
    let refused = sim
        .s
        .send(sim.at(), Outgoing::new("@alice", "no room"))
        .unwrap_err();
    assert_eq!(refused.reason, SendRefusal::QueueFull);
    let st = sim.s.stats(sim.now);
    assert_eq!((st.queue_depth, st.queue_refused), (0, 1));
    // Open, a send still goes straight out: the queue is only for waiting.
    sim.open_and_ack();
    let (_, a) = sim.send("@alice", "straight out");
    assert_eq!(sends(&a).len(), 1);
}

#[test]
fn in_flight_cap_holds_the_rest_in_the_queue() {
    // proves X4
    let mut c = config();
    c.max_in_flight = 2;
    let mut sim = Sim::new(c);
    sim.establish();
    let mut frames = Vec::new();
    for n in 0..4 {
        let (_, a) = sim.send("@alice", &n.to_string());
        frames.extend(sends(&a));
    }
    assert_eq!(frames.len(), 2);
    assert_eq!(sim.s.stats(sim.now).queue_depth, 2);
    let a = sim.broker(json!({"type":"ack","id":frames[0].id,"messageId":"m","queued":false}));
    assert_eq!(sends(&a).len(), 1, "an ack frees a slot for the next queued send");
}

#[test]
fn unknown_types_and_state_changes_are_handed_up() {
    // proves L5
    let mut sim = Sim::new(config());
    sim.establish();
    let a = sim.broker(json!({"type":"brand_new_thing","x":1}));
    assert!(
        matches!(&a[..], [SessionAction::Event(SessionEvent::Inbound(f))] if matches!(&**f, BrokerFrame::Unknown { kind, .. } if kind == "brand_new_thing"))
    );
    let a = sim.broker(json!({"type":"state_change","key":"k","value":1,"updatedBy":"bob"}));
    assert!(
        matches!(&a[..], [SessionAction::Event(SessionEvent::Inbound(f))] if matches!(**f, BrokerFrame::StateChange(_)))
    );
    let socket = sim.socket.unwrap();
    let a = sim.handle(Event::Frame {
        socket,
        frame: crate::lifecycle::Frame::Text("x".repeat(10)),
    });
    assert!(matches!(
        &a[..],
        [SessionAction::Event(SessionEvent::Lifecycle(
            Notification::FrameDropped(_)
        ))]
    ));
}

#[test]
fn a_second_pending_send_under_the_same_id_is_refused() {
    // proves X3: one idempotency id, one pending send (found by fuzzing)
    let mut sim = Sim::new(config());
    sim.establish();
    let mut out = Outgoing::new("@alice", "once");
    out.client_message_id = Some("dup".into());
    let first = sim.s.send(sim.at(), out.clone()).unwrap();
    let frame = sends(&sim.drain()).remove(0);
    let err = sim.s.send(sim.at(), out.clone()).unwrap_err();
    assert_eq!(err.reason, SendRefusal::DuplicateId);
    // Once the first resolved, the same id may be sent again (an outbox retry).
    let a = sim.broker(json!({"type":"ack","id":frame.id,"messageId":"m","queued":false}));
    assert_eq!(resolved(&a)[0].0, first);
    assert!(sim.s.send(sim.at(), out).is_ok());
}

#[test]
fn generated_ids_are_sixteen_lowercase_hex_digits() {
    // proves B6: generated idempotency ids keep their wire form
    for x in [0, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
        assert_eq!(hex16(x), format!("{x:016x}"));
    }
}

#[test]
fn push_fingerprints_depend_on_the_session_seed() {
    // proves X3: dedupe that a peer cannot aim at another's message. The keys
    // come from each session's own seed: two sessions seeded differently
    // fingerprint the same push differently, the same seed alike (replays stay
    // exact). With the dedupe key seeded by a constant, as an earlier version of
    // this test could not notice, every session would agree and a peer could
    // search offline for a colliding id.
    let push = PushFrame {
        sender_pubkey: "ab".repeat(32),
        client_message_id: Some("m-1".into()),
        ..PushFrame::default()
    };
    let session = |seed| {
        let hs = MeshHandshake::new(Credentials::Member(member()), Default::default());
        Session::new(config(), hs, seed, Instant::now()).expect("valid config")
    };
    let key = |s: &Session| dedupe_key(&s.dedupe_keys, &push);
    let (a, a_again, b, c) = (session(1), session(1), session(2), session(3));
    assert_eq!(key(&a), key(&a_again));
    assert_ne!(key(&a), key(&b));
    assert_ne!(key(&b), key(&c));
    assert_ne!(key(&a), key(&c));
    assert_eq!(dedupe_key(&a.dedupe_keys, &PushFrame::default()), None);
}

#[test]
fn a_send_refused_as_too_large_evicts_nothing_even_when_dropping_oldest() {
    // proves X9: a refused call changes nothing. The oldest queued send used to
    // be failed as "overflow" before the new one's size was checked, so the new
    // one was refused and the old one lost anyway.
    let mut c = config();
    c.outbound_queue = 1;
    c.overflow = Overflow::DropOldest;
    c.max_send_len = 400;
    let mut sim = Sim::new(c);
    sim.handle(Event::Connect);
    let (queued, _) = sim.send("@alice", "waiting");
    let before = format!("{:?}", sim.s);
    let refused = sim
        .s
        .send(sim.at(), Outgoing::new("@alice", "x".repeat(1000)))
        .unwrap_err();
    assert!(
        matches!(refused.reason, SendRefusal::TooLarge { .. }),
        "{refused:?}"
    );
    assert_eq!(refused.outgoing.body.len(), 1000, "the message is handed back");
    assert!(resolved(&sim.drain()).is_empty(), "nothing was evicted");
    assert_eq!(format!("{:?}", sim.s), before);
    let st = sim.s.stats(sim.now);
    assert_eq!((st.queue_depth, st.queue_dropped), (1, 0));
    // The queued send is still the one that goes out.
    let a = sim.open_and_ack();
    let ack = sim.broker(json!({"type":"ack","id":sends(&a)[0].id,"messageId":"m","queued":true}));
    assert_eq!(resolved(&ack)[0].0, queued);
}

#[test]
fn session_deadlines_have_an_upper_bound() {
    // A deadline the session could not arm is refused where it is set: in the
    // configuration, or at the call for a send's offline deadline.
    for too_long in [Duration::MAX, crate::MAX_DURATION + Duration::from_millis(1)] {
        let mut c = config();
        c.send_ack_timeout = too_long;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TooLong {
                name: "send_ack_timeout",
                ..
            })
        ));
        let hs = MeshHandshake::new(Credentials::Member(member()), Default::default());
        assert!(Session::new(c, hs, 0, Instant::now()).is_err());
        let mut c = config();
        c.request_timeout = too_long;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TooLong {
                name: "request_timeout",
                ..
            })
        ));
        let mut c = config();
        c.lifecycle.hello_ack_timeout = too_long;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TooLong {
                name: "hello_ack_timeout",
                ..
            })
        ));
    }
    let mut c = config();
    c.send_ack_timeout = Duration::ZERO;
    assert_eq!(c.validate(), Err(ConfigError::Zero("send_ack_timeout")));

    let mut sim = Sim::new(config());
    sim.handle(Event::Connect);
    let before = format!("{:?}", sim.s);
    let mut out = Outgoing::new("@alice", "later");
    out.queueing = Queueing::Queue {
        deadline: Some(Duration::MAX),
    };
    let refused = sim.s.send(sim.at(), out).unwrap_err();
    assert!(
        matches!(refused.reason, SendRefusal::DeadlineTooLong { .. }),
        "{refused:?}"
    );
    assert_eq!(format!("{:?}", sim.s), before);
    // At the bound it is accepted, and the clock may run to the end of time.
    let mut out = Outgoing::new("@alice", "much later");
    out.queueing = Queueing::Queue {
        deadline: Some(crate::MAX_DURATION),
    };
    let id = sim.s.send(sim.at(), out).unwrap();
    sim.now = crate::time::deadline_after(sim.now, Duration::MAX);
    let a = sim.handle(Event::Tick);
    assert_eq!(failure_of(&a, id).kind, FailureKind::NeverSent);
}

#[test]
fn a_queued_send_whose_deadline_passed_is_never_sent_later() {
    // proves D12: the seeds reported such a send "ack timeout" but kept it in the
    // queue and sent it on reconnect, so a caller's retry delivered it twice.
    // Here it leaves the queue at once, resolves "never sent", and nothing is
    // written for it, however the connection comes back.
    let mut sim = Sim::new(config());
    sim.handle(Event::Connect);
    let mut late = Outgoing::new("@alice", "too late");
    late.queueing = Queueing::Queue {
        deadline: Some(Duration::from_secs(3)),
    };
    let id = sim.s.send(sim.at(), late).unwrap();
    let (which, a) = sim.fire();
    assert_eq!(which, Deadline::Op(id));
    let f = failure_of(&a, id);
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::NeverSent, "queue_deadline")
    );
    assert!(!f.may_have_been_delivered());
    assert_eq!(sim.s.stats(sim.now).queue_depth, 0, "it left the queue at once");
    let a = sim.open_and_ack();
    assert!(sends(&a).is_empty(), "an op that resolved was written: {a:?}");
    // A retry by the caller is the only copy that goes out.
    let (retry, a) = sim.send("@alice", "too late");
    assert_eq!(sends(&a).len(), 1);
    let ack = sim.broker(json!({"type":"ack","id":sends(&a)[0].id,"messageId":"m","queued":true}));
    assert_eq!(resolved(&ack)[0].0, retry);
    assert!(resolved(&ack).iter().all(|(op, _)| *op != id), "resolved twice");
}

#[test]
fn a_send_queued_while_away_gets_the_default_deadline() {
    // proves B3, X9: a send that names no deadline of its own waits at most the
    // session's queue_deadline (60 s by default), then resolves "never sent",
    // so a caller awaiting it while the broker is away always gets an answer.
    let mut sim = Sim::new(config());
    sim.handle(Event::Connect);
    let (id, _) = sim.send("@alice", "while away");
    let mut failure = None;
    while failure.is_none() && sim.now - sim.t0 <= 2 * DEFAULT_QUEUE_DEADLINE {
        let (which, a) = sim.fire();
        if which == Deadline::Op(id) {
            failure = Some(failure_of(&a, id));
        } else {
            assert!(resolved(&a).is_empty(), "resolved early: {a:?}");
        }
    }
    let f = failure.expect("resolved by the default deadline");
    assert_eq!(
        (f.kind, f.reason.as_str()),
        (FailureKind::NeverSent, "queue_deadline")
    );
    assert_eq!(sim.now - sim.t0, DEFAULT_QUEUE_DEADLINE);
    assert_eq!(sim.s.stats(sim.now).queue_expired, 1);
}

#[test]
fn without_a_queue_deadline_a_queued_send_waits_for_the_connection() {
    // proves B3: `queue_deadline: None` keeps the seeds' behaviour, a send
    // waits however long the outage lasts and goes out once open.
    let mut c = config();
    c.queue_deadline = None;
    let mut sim = Sim::new(c);
    sim.handle(Event::Connect);
    let (id, _) = sim.send("@alice", "patient");
    while sim.now - sim.t0 < 10 * DEFAULT_QUEUE_DEADLINE {
        let (which, a) = sim.fire();
        assert_ne!(which, Deadline::Op(id));
        assert!(resolved(&a).is_empty(), "resolved while away: {a:?}");
    }
    let a = sim.open_and_ack();
    assert_eq!(sends(&a).len(), 1);
}

#[test]
fn a_zero_queue_deadline_is_refused_at_construction() {
    // proves X9: zero would fail every queued send at once.
    let mut c = config();
    c.queue_deadline = Some(Duration::ZERO);
    assert_eq!(c.validate(), Err(ConfigError::Zero("queue_deadline")));
}

#[test]
fn a_session_that_only_connects_never_makes_its_work_box() {
    // The idle-memory saving: connecting, pinging, losing the connection,
    // reconnecting and closing read the send/request/push tables but never
    // write them, so the box stays unmade; the first send makes it.
    let mut sim = Sim::new(config());
    sim.establish();
    let _ = sim.s.next_deadline();
    sim.fire();
    sim.drop_connection(1006);
    sim.reconnect();
    assert!(sim.s.drain_history().is_empty());
    let _ = sim.s.stats(sim.now);
    assert!(sim.s.work.work.is_none(), "made by an idle connection");
    sim.send("@alice", "hi");
    assert!(sim.s.work.work.is_some());

    let mut closing = Sim::new(config());
    closing.establish();
    closing.drop_connection(1006);
    closing.handle(Event::Close);
    assert_eq!(closing.s.status(), Status::Closed);
    assert!(closing.s.work.work.is_none(), "made by a close");
}

#[test]
fn by_default_a_send_the_real_broker_would_close_the_connection_over_is_refused_at_the_call() {
    // The real broker's WebSocket server closes any frame over MAX_MESSAGE_BYTES
    // (65 536 by default) with 1009 before its size check can ack; the session
    // refuses such a send itself, measured on the encoded frame.
    assert_eq!(SessionConfig::new(Config::new("ws://x")).max_send_len, 65_536);
    let mut sim = Sim::new(config());
    sim.handle(Event::Connect);
    sim.open_and_ack();
    // Bodies travel base64-encoded: 48 000 bytes make a frame of about 64 000.
    let (fits, _) = sim.send("*", &"x".repeat(48_000));
    let refused = sim
        .s
        .send(sim.at(), Outgoing::new("*", "x".repeat(50_000)))
        .unwrap_err();
    assert!(
        matches!(refused.reason, SendRefusal::TooLarge { len, max: 65_536 } if len > 65_536),
        "{refused:?}"
    );
    assert!(!resolved(&sim.drain()).iter().any(|(id, _)| *id == fits));
}
