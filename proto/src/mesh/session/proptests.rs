//! Random interleavings of application calls and broker behaviour against the
//! session's invariants: exactly-once resolution, nothing but the hello before
//! open, caps respected, resends under the same idempotency id.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::tests::support::*;
use super::*;
use crate::lifecycle::Io;

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Send {
        resend: bool,
        deadline: Option<Duration>,
        never: bool,
        target: &'static str,
        body_len: usize,
    },
    Request(u8),
    Command,
    AckOldest {
        error: Option<&'static str>,
    },
    ErrorForSend,
    Reply {
        with_req_id: bool,
    },
    ErrorForRequest,
    Push(u8),
    Disconnect(u16),
    OpenAndAck,
    Reject(&'static str),
    /// A `capacity` refusal with this `retryAfterMs`.
    RejectWithHint(u64),
    Advance(u64),
    TickAtDeadline,
    Close,
    Reconnect,
    RetryNow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Connect),
        8 => (any::<bool>(), prop::option::of(deadline()), prop::bool::weighted(0.1), target(), body_len())
            .prop_map(|(resend, deadline, never, target, body_len)| Op::Send { resend, deadline, never, target, body_len }),
        4 => (0u8..7).prop_map(Op::Request),
        1 => Just(Op::Command),
        6 => prop::option::of(prop::sample::select(&["rate_limit: x", "payload too large"][..]))
            .prop_map(|error| Op::AckOldest { error }),
        1 => Just(Op::ErrorForSend),
        3 => any::<bool>().prop_map(|with_req_id| Op::Reply { with_req_id }),
        1 => Just(Op::ErrorForRequest),
        3 => (0u8..6).prop_map(Op::Push),
        2 => prop::sample::select(&[1000u16, 1001, 1006, 4001][..]).prop_map(Op::Disconnect),
        4 => Just(Op::OpenAndAck),
        1 => prop::sample::select(&["capacity", "unauthorized"][..]).prop_map(Op::Reject),
        1 => prop_oneof![Just(u64::MAX), Just(0u64), 0u64..100_000].prop_map(Op::RejectWithHint),
        3 => (0u64..15_000).prop_map(Op::Advance),
        4 => Just(Op::TickAtDeadline),
        1 => Just(Op::Close),
        1 => Just(Op::Reconnect),
        1 => Just(Op::RetryNow),
    ]
}

/// Offline deadlines, the extremes included: the bound is accepted, beyond it refused.
fn deadline() -> impl Strategy<Value = Duration> {
    prop_oneof![
        8 => (100u64..20_000).prop_map(Duration::from_millis),
        1 => Just(Duration::ZERO),
        1 => Just(crate::MAX_DURATION),
        1 => Just(Duration::MAX),
        1 => (0u64..=u64::MAX).prop_map(Duration::from_millis),
    ]
}

/// Mostly ordinary targets (groups, and pubkeys whose bodies are sealed, B14),
/// sometimes none at all. Names take the resolution path, proven on its own.
fn target() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("@peer"),
        4 => Just("8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"),
        1 => Just(""),
        1 => Just("@group")
    ]
}

/// Mostly short bodies, sometimes one far over the session's frame limit.
fn body_len() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..64, 1 => Just(0usize), 1 => Just(2 * DEFAULT_MAX_SEND_LEN)]
}

/// Everything observable of a session (queues, timers, counters, pending ops,
/// the generator), with the counter a refusal is allowed to move taken out.
fn state_of(s: &Session) -> (String, u64) {
    let debug = format!("{s:?}|{:?}", s.next_deadline());
    let refused = s.stats.queue_refused;
    (
        debug.replace(&format!("queue_refused: {refused},"), "queue_refused: _,"),
        refused,
    )
}

/// A refused call changes nothing: the state is as it was, no action is queued,
/// and only a full queue's refusal counts itself.
fn check_refusal(sim: &mut Sim, before: &(String, u64), full_queue: bool) -> Result<(), TestCaseError> {
    let after = state_of(&sim.s);
    prop_assert_eq!(&after.0, &before.0, "a refusal changed the session");
    prop_assert_eq!(after.1, before.1 + u64::from(full_queue));
    prop_assert!(sim.s.poll_action().is_none(), "a refusal queued an action");
    Ok(())
}

const REPLIES: [(&str, RequestKind); 7] = [
    ("peers_list", RequestKind::ListPeers),
    ("state_result", RequestKind::GetState),
    ("state_list", RequestKind::ListState),
    ("memory_stored", RequestKind::Remember),
    ("memory_results", RequestKind::Recall),
    ("skill_list", RequestKind::ListSkills),
    ("skill_data", RequestKind::GetSkill),
];

fn request(n: u8) -> Request {
    match n {
        0 => Request::ListPeers,
        1 => Request::GetState { key: "k".into() },
        2 => Request::ListState,
        3 => Request::Remember {
            content: "c".into(),
            tags: None,
        },
        4 => Request::Recall { query: "q".into() },
        5 => Request::ListSkills { query: None },
        _ => Request::GetSkill { name: "s".into() },
    }
}

struct Model {
    issued: BTreeSet<OpId>,
    resolved: BTreeSet<OpId>,
    /// Written send ids awaiting an ack, oldest first.
    written_sends: VecDeque<String>,
    /// Written request ids and kinds, oldest first.
    written_requests: VecDeque<(String, RequestKind)>,
    resend_ids: BTreeSet<String>,
    ever_written: BTreeSet<String>,
    status: Status,
    socket_open: bool,
}

fn observe(
    sim: &mut Sim,
    m: &mut Model,
    cfg: &SessionConfig,
    got: Vec<SessionAction>,
) -> Result<(), TestCaseError> {
    for action in got.into_iter().chain(sim.drain()) {
        match action {
            SessionAction::Io(Io::OpenSocket { .. }) => {
                m.written_sends.clear();
                m.written_requests.clear();
                m.socket_open = false;
            }
            SessionAction::Io(Io::CloseSocket { .. } | Io::TerminateSocket { .. }) => {
                m.written_sends.clear();
                m.written_requests.clear();
            }
            SessionAction::Io(Io::SendText { text, .. }) => {
                let frame = crate::mesh::wire::decode_client_frame(&text, usize::MAX).expect("valid frame");
                if m.status != Status::Open {
                    prop_assert!(
                        matches!(frame, ClientFrame::Hello(_)),
                        "only the hello before open, got {}",
                        frame.kind()
                    );
                    continue;
                }
                match &frame {
                    ClientFrame::Send(s) => {
                        prop_assert_eq!(s.client_message_id.as_deref(), Some(s.id.as_str()));
                        if !m.ever_written.insert(s.id.clone()) {
                            prop_assert!(
                                m.resend_ids.contains(&s.id),
                                "{} written twice without resend",
                                s.id
                            );
                        }
                        m.written_sends.push_back(s.id.clone());
                    }
                    other => {
                        if let (Some(r), Some(k)) = (other.req_id(), other.request_kind()) {
                            m.written_requests.push_back((r.to_owned(), k));
                        }
                    }
                }
            }
            SessionAction::Io(Io::SendPing { .. }) => {}
            SessionAction::Event(SessionEvent::Resolved { id, .. }) => {
                prop_assert!(m.issued.contains(&id), "resolved an op never issued");
                prop_assert!(m.resolved.insert(id), "op {id:?} resolved twice");
            }
            SessionAction::Event(SessionEvent::Lifecycle(
                crate::lifecycle::Notification::StatusChanged { to, .. },
            )) => {
                m.status = to;
            }
            SessionAction::Event(_) => {}
        }
    }
    let st = sim.s.stats(sim.now);
    prop_assert!(st.queue_depth <= cfg.outbound_queue);
    prop_assert!(st.in_flight <= cfg.max_in_flight);
    prop_assert!(st.history_len <= cfg.push_history);
    prop_assert!(st.pending_requests <= cfg.max_pending_requests);
    Ok(())
}

fn run(steps: &[Op]) -> Result<(), TestCaseError> {
    let mut cfg = config();
    cfg.outbound_queue = 5;
    cfg.max_in_flight = 4;
    cfg.push_history = 3;
    cfg.max_pending_requests = 4;
    cfg.overflow = Overflow::DropOldest;
    let mut sim = Sim::new(cfg.clone());
    let mut m = Model {
        issued: BTreeSet::new(),
        resolved: BTreeSet::new(),
        written_sends: VecDeque::new(),
        written_requests: VecDeque::new(),
        resend_ids: BTreeSet::new(),
        ever_written: BTreeSet::new(),
        status: Status::Idle,
        socket_open: false,
    };
    let issue = |m: &mut Model, id: OpId| {
        prop_assert!(m.issued.insert(id), "op id reused");
        Ok(())
    };
    let mut pushes: HashMap<u8, u32> = HashMap::new();
    for step in steps {
        let at = sim.at();
        let mut got: Vec<SessionAction> = Vec::new();
        match step.clone() {
            Op::Connect => {
                let before = state_of(&sim.s);
                if sim.s.handle(at, Event::Connect).is_err() {
                    check_refusal(&mut sim, &before, false)?;
                }
            }
            Op::Send {
                resend,
                deadline,
                never,
                target,
                body_len,
            } => {
                let mut out = Outgoing::new(target, "b".repeat(body_len));
                out.resend_if_unknown = resend;
                out.queueing = if never {
                    Queueing::Never
                } else {
                    Queueing::Queue { deadline }
                };
                let before = state_of(&sim.s);
                match sim.s.send(at, out) {
                    Ok(id) => {
                        prop_assert!(deadline.is_none_or(|d| d <= crate::MAX_DURATION) || never);
                        issue(&mut m, id)?;
                        // The id is generated: learn it from the write or the queue later.
                        if resend {
                            m.resend_ids.insert(format!("{:?}", id));
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.outgoing.body.len(), body_len, "the message is handed back");
                        check_refusal(&mut sim, &before, e.reason == SendRefusal::QueueFull)?;
                    }
                }
            }
            Op::Request(n) => {
                let before = state_of(&sim.s);
                match sim.s.request(at, request(n)) {
                    Ok(id) => issue(&mut m, id)?,
                    Err(_) => check_refusal(&mut sim, &before, false)?,
                }
            }
            Op::Command => {
                let before = state_of(&sim.s);
                let r = sim.s.command(at, Command::SetVisible { visible: true });
                prop_assert_eq!(r.is_ok(), m.status == Status::Open);
                if r.is_err() {
                    check_refusal(&mut sim, &before, false)?;
                }
            }
            Op::AckOldest { error } => {
                if let Some(id) = m.written_sends.pop_front() {
                    let mut ack = json!({"type":"ack","id":id,"messageId":format!("m-{id}"),"queued":false});
                    if let Some(e) = error {
                        ack["error"] = json!(e);
                    }
                    got.extend(sim.broker(ack));
                }
            }
            Op::ErrorForSend => {
                if let Some(id) = m.written_sends.pop_front() {
                    got.extend(sim.broker(json!({"type":"error","code":"forbidden","message":"no","id":id})));
                }
            }
            Op::Reply { with_req_id } => {
                if let Some((req, kind)) = m.written_requests.pop_front() {
                    let (ty, _) = REPLIES
                        .iter()
                        .find(|(_, k)| *k == kind)
                        .copied()
                        .unwrap_or(REPLIES[0]);
                    let mut reply = json!({"type": ty});
                    if with_req_id {
                        reply["_reqId"] = json!(req);
                    }
                    got.extend(sim.broker(reply));
                }
            }
            Op::ErrorForRequest => {
                if let Some((req, _)) = m.written_requests.pop_front() {
                    got.extend(
                        sim.broker(json!({"type":"error","code":"not_found","message":"x","_reqId":req})),
                    );
                }
            }
            Op::Push(n) => {
                if m.status == Status::Open {
                    *pushes.entry(n).or_default() += 1;
                    got.extend(sim.broker(
                        json!({"type":"push","messageId":format!("p{n}"),"meshId":"m","senderPubkey":"ab",
                        "priority":"next","nonce":"","ciphertext":"","createdAt":""}),
                    ));
                }
            }
            Op::Disconnect(code) => {
                if let Some(socket) = sim.s.lifecycle().socket() {
                    got.extend(sim.handle(Event::Closed {
                        socket,
                        code,
                        reason: String::new(),
                    }));
                }
            }
            Op::OpenAndAck => {
                if let Some(socket) = sim.s.lifecycle().socket() {
                    if m.status == Status::Connecting {
                        got.extend(sim.handle(Event::Opened { socket }));
                        got.extend(sim.broker(json!({"type":"hello_ack","presenceId":"p"})));
                    }
                }
            }
            Op::Reject(code) => {
                if let Some(socket) = sim.s.lifecycle().socket() {
                    if m.status == Status::Connecting {
                        got.extend(sim.handle(Event::Opened { socket }));
                        got.extend(sim.broker(json!({"type":"error","code":code,"message":"no"})));
                        got.extend(sim.handle(Event::Closed {
                            socket,
                            code: 1008,
                            reason: code.into(),
                        }));
                    }
                }
            }
            Op::RejectWithHint(ms) => {
                if let Some(socket) = sim.s.lifecycle().socket() {
                    if m.status == Status::Connecting {
                        got.extend(sim.handle(Event::Opened { socket }));
                        got.extend(sim.broker(
                            json!({"type":"error","code":"capacity","message":"full","retryAfterMs":ms}),
                        ));
                        got.extend(sim.handle(Event::Closed {
                            socket,
                            code: 1008,
                            reason: "capacity".into(),
                        }));
                        if let Some((at, _)) = sim.s.next_deadline() {
                            // The hint is obeyed up to the cap, never beyond it (X10).
                            let cap = cfg.lifecycle.max_retry_after;
                            let longest = cap + cap / 5 + Duration::from_millis(1);
                            prop_assert!(at <= sim.now + longest.max(cfg.lifecycle.backoff.max() * 2));
                        }
                    }
                }
            }
            Op::Advance(ms) => {
                sim.now += Duration::from_millis(ms);
                got.extend(sim.handle(Event::Tick));
            }
            Op::TickAtDeadline => {
                if let Some((at, _)) = sim.s.next_deadline() {
                    sim.now = sim.now.max(at);
                }
                got.extend(sim.handle(Event::Tick));
            }
            Op::Close => {
                got.extend(sim.handle(Event::Close));
            }
            Op::Reconnect => {
                let before = state_of(&sim.s);
                if sim.s.handle(at, Event::Reconnect).is_err() {
                    check_refusal(&mut sim, &before, false)?;
                }
            }
            Op::RetryNow => {
                let before = state_of(&sim.s);
                if sim.s.handle(at, Event::RetryNow).is_err() {
                    check_refusal(&mut sim, &before, false)?;
                }
            }
        }
        // Resend-flagged ids are known by op id; map them to wire ids as they are
        // first written, which happens before any second write.
        if !m.resend_ids.is_empty() {
            for (wire_id, op) in sim.s.work.by_id.iter() {
                if m.resend_ids.contains(&format!("{op:?}")) {
                    m.resend_ids.insert(wire_id.clone());
                }
            }
        }
        observe(&mut sim, &mut m, &cfg, got)?;
    }
    // Closing resolves whatever is left: every op resolved exactly once (X3).
    let got = sim.handle(Event::Close);
    observe(&mut sim, &mut m, &cfg, got)?;
    let unresolved: BTreeMap<_, _> = m.issued.difference(&m.resolved).map(|id| (id, ())).collect();
    prop_assert!(unresolved.is_empty(), "unresolved ops: {unresolved:?}");
    prop_assert_eq!(sim.s.next_deadline(), None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn every_op_resolves_exactly_once_whatever_happens(steps in prop::collection::vec(op(), 1..150)) {
        run(&steps)?;
    }
}
