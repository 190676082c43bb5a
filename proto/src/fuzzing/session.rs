//! The `session` target: application calls interleaved with broker behaviour.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use arbitrary::Unstructured;
use serde_json::{json, Value};

use super::{extreme_or, is_hello, member, presence, short_text, time_step, Clock, MAX_STEPS};
use crate::lifecycle::{Config, ContractCheck, Event, FirstConnect, Frame, Io, SocketId, Status};
use crate::mesh::handshake::{Credentials, MeshHandshake};
use crate::mesh::session::{
    Command, FailureKind, OpId, Outcome, Outgoing, Overflow, Queueing, Request, SendRefusal, Session,
    SessionAction, SessionConfig, SessionEvent, DEFAULT_MAX_SEND_LEN,
};
use crate::mesh::wire::{decode_client_frame, ClientFrame, Priority, RequestKind};
use crate::policy::Jitter;

/// Drives a [`Session`] through application calls and broker behaviour built
/// from `data`, checking its invariants after every step and at the end.
///
/// The input chooses the caps and deadlines (queue, in-flight, pending requests,
/// history, dedupe window, overflow policy, ack and reply timeouts, frame limit,
/// `client_ack`), then up to a few hundred steps: sends with any options
/// (idempotency ids generated, shared or chosen, queueing, resend, priority),
/// requests of every kind, commands; and a broker that acks the oldest written
/// send (with and without an error), answers sends and requests with errors,
/// replies with and without `_reqId` (sometimes of the wrong kind, sometimes in
/// an older shape), pushes (duplicates included), sends free text, opens and
/// acks, rejects, drops the connection; ticks, close, reconnect, retry-now.
///
/// It panics only when the session breaks an invariant of
/// `mesh/session/proptests.rs` or one of the checks below:
///
/// - every [`OpId`] handed out resolves exactly once, the ones never issued never,
///   and after a final close nothing is left unresolved and no deadline armed;
/// - a send resolves with `Sent` or a failure, a request with a reply of its
///   own kind or a failure it can have (never "never sent");
/// - the queue, in-flight, pending-request and history caps always hold;
/// - its outputs keep the lifecycle's contract ([`ContractCheck`](crate::lifecycle::ContractCheck),
///   for its configuration and every retry-after it may be sent: legal status
///   changes in order, only the hello before open, one socket at a time,
///   allowed reconnect delays, no stall, nothing after the close);
/// - every written frame decodes; a send carries its id as `client_message_id`, and a frame written
///   again under an id already used is the very same frame, of a send that asked
///   to be resent (two different frames share an id only when the application
///   gave two sends the same id);
/// - a command is accepted exactly when open; requests only when open.
pub fn session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let config = session_config(&mut u);
    let seed = u.arbitrary().unwrap_or(0);
    let handshake = MeshHandshake::new(Credentials::Member(member()), presence());
    let clock = Clock::new();
    // A configuration is refused exactly when it is invalid, never later.
    let valid = config.validate();
    let session = match Session::new(config.clone(), handshake, seed, clock.now) {
        Ok(session) => session,
        Err(e) => {
            assert_eq!(valid, Err(e), "refused a configuration validate accepts");
            return;
        }
    };
    assert!(valid.is_ok(), "accepted an invalid configuration");
    let mut contract = ContractCheck::for_config(&config.lifecycle, Some(is_hello));
    for hint in HINTS {
        contract.add_retry_after(Duration::from_millis(hint));
    }
    let mut run = Run {
        s: session,
        clock,
        config,
        contract,
        m: Model::new(),
    };
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        run.step(&mut u);
    }
    run.finish();
}

fn session_config(u: &mut Unstructured<'_>) -> SessionConfig {
    let mut lc = Config::new("wss://broker.fuzz/ws");
    lc.jitter = Jitter::from_permille_saturating(u.int_in_range(0..=1000).unwrap_or(0));
    lc.first_connect = if u.ratio(1, 8).unwrap_or(false) {
        FirstConnect::FailFast
    } else {
        FirstConnect::Retry
    };
    let mut c = SessionConfig::new(lc);
    let ms = |u: &mut Unstructured<'_>, lo: u64, hi: u64| {
        Duration::from_millis(u.int_in_range(lo..=hi).unwrap_or(lo))
    };
    c.send_ack_timeout = ms(u, 1, 20_000);
    c.request_timeout = ms(u, 1, 10_000);
    if u.ratio(1, 8).unwrap_or(false) {
        // Extremes: the bound must run to the end of time, beyond it be refused.
        match u.int_in_range(0u8..=3).unwrap_or(0) {
            0 => c.send_ack_timeout = extreme_or(u, c.send_ack_timeout),
            1 => c.request_timeout = extreme_or(u, c.request_timeout),
            2 => c.lifecycle.hello_ack_timeout = extreme_or(u, c.lifecycle.hello_ack_timeout),
            _ => c.lifecycle.ping_interval = extreme_or(u, c.lifecycle.ping_interval),
        }
    }
    // Small caps, zero included, so every cap is reached in a few steps.
    c.outbound_queue = u.int_in_range(0..=8).unwrap_or(5);
    c.overflow = if u.arbitrary().unwrap_or(false) {
        Overflow::DropOldest
    } else {
        Overflow::RefuseNew
    };
    c.max_in_flight = u.int_in_range(0..=6).unwrap_or(4);
    c.max_pending_requests = u.int_in_range(0..=5).unwrap_or(4);
    c.push_history = u.int_in_range(0..=4).unwrap_or(3);
    c.dedupe_window = u.int_in_range(0..=4).unwrap_or(2);
    c.max_send_len = if u.ratio(1, 4).unwrap_or(false) {
        300
    } else {
        DEFAULT_MAX_SEND_LEN
    };
    c.client_ack = u.arbitrary().unwrap_or(true);
    c
}

/// What an issued op is, to judge how it may resolve.
#[derive(Clone, Copy)]
enum Issued {
    Send,
    Request(RequestKind),
}

struct Model {
    issued: HashMap<OpId, Issued>,
    resolved: BTreeSet<OpId>,
    /// Written send ids on the current socket awaiting an ack, oldest first.
    written_sends: VecDeque<String>,
    /// Written requests on the current socket, oldest first.
    written_requests: VecDeque<(String, RequestKind)>,
    /// The first frame written under each send id.
    first_write: HashMap<String, String>,
    /// How many sends the application gave each explicit id.
    explicit_ids: HashMap<String, usize>,
    /// Explicit ids of which at least one send asked to be resent.
    explicit_resend: BTreeSet<String>,
    /// Unresolved sends with an explicit id, and that id.
    pending_explicit: HashMap<OpId, String>,
    /// Whether any send with a generated id asked to be resent.
    generated_resend: bool,
}

impl Model {
    fn new() -> Self {
        Model {
            issued: HashMap::new(),
            resolved: BTreeSet::new(),
            written_sends: VecDeque::new(),
            written_requests: VecDeque::new(),
            first_write: HashMap::new(),
            explicit_ids: HashMap::new(),
            explicit_resend: BTreeSet::new(),
            pending_explicit: HashMap::new(),
            generated_resend: false,
        }
    }
}

/// Ids the application chooses from, so sends share them now and then.
const IDS: [&str; 3] = ["c0", "c1", "c2"];
const ACK_ERRORS: [&str; 4] = ["rate_limit: x", "payload too large", "forbidden", ""];
const CLOSE_CODES: [u16; 6] = [1000, 1001, 1006, 1011, 4001, 4002];
const REJECTIONS: [&str; 4] = ["capacity", "unauthorized", "timestamp_skew", "revoked"];
/// `retryAfterMs` values a rejection may carry, u64::MAX among them (X10).
const HINTS: [u64; 4] = [0, 1_500, 600_000, u64::MAX];
/// Every reply shape, current and older, with the request it answers.
const REPLIES: [(&str, RequestKind); 10] = [
    ("peers_list", RequestKind::ListPeers),
    ("state_result", RequestKind::GetState),
    ("state_value", RequestKind::GetState),
    ("state_data", RequestKind::GetState),
    ("state_list", RequestKind::ListState),
    ("memory_stored", RequestKind::Remember),
    ("memory_results", RequestKind::Recall),
    ("memory_recall_result", RequestKind::Recall),
    ("skill_list", RequestKind::ListSkills),
    ("skill_data", RequestKind::GetSkill),
];

#[derive(Clone, Copy)]
enum Kind {
    Connect,
    Send,
    Request,
    Command,
    AckOldest,
    AckUnknown,
    ErrorForSend,
    Reply,
    ErrorForRequest,
    Push,
    FreeText,
    Disconnect,
    OpenAndAck,
    Reject,
    StaleSocket,
    Advance,
    TickAtDeadline,
    Close,
    Reconnect,
    RetryNow,
}

/// Each kind as often as it appears (the proptest's weights, plus the new kinds).
const KINDS: &[Kind] = &[
    Kind::Connect,
    Kind::Send,
    Kind::Send,
    Kind::Send,
    Kind::Send,
    Kind::Send,
    Kind::Send,
    Kind::Send,
    Kind::Send,
    Kind::Request,
    Kind::Request,
    Kind::Request,
    Kind::Request,
    Kind::Command,
    Kind::AckOldest,
    Kind::AckOldest,
    Kind::AckOldest,
    Kind::AckOldest,
    Kind::AckOldest,
    Kind::AckOldest,
    Kind::AckUnknown,
    Kind::ErrorForSend,
    Kind::Reply,
    Kind::Reply,
    Kind::Reply,
    Kind::ErrorForRequest,
    Kind::Push,
    Kind::Push,
    Kind::Push,
    Kind::FreeText,
    Kind::Disconnect,
    Kind::Disconnect,
    Kind::OpenAndAck,
    Kind::OpenAndAck,
    Kind::OpenAndAck,
    Kind::OpenAndAck,
    Kind::Reject,
    Kind::StaleSocket,
    Kind::Advance,
    Kind::Advance,
    Kind::Advance,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::TickAtDeadline,
    Kind::Close,
    Kind::Reconnect,
    Kind::RetryNow,
];

struct Run {
    s: Session,
    clock: Clock,
    config: SessionConfig,
    /// The lifecycle's contract for the session's configuration, every
    /// retry-after of `HINTS` allowed.
    contract: ContractCheck,
    m: Model,
}

impl Run {
    fn step(&mut self, u: &mut Unstructured<'_>) {
        let kind = u.choose(KINDS).copied().unwrap_or(Kind::Advance);
        match kind {
            Kind::Connect => self.handle(Event::Connect),
            Kind::Send => self.send(u),
            Kind::Request => self.request(u),
            Kind::Command => self.command(u),
            Kind::AckOldest => {
                if let Some(id) = self.m.written_sends.pop_front() {
                    let mut ack = json!({"type":"ack","id":id,"queued":u.arbitrary().unwrap_or(false)});
                    if u.arbitrary().unwrap_or(true) {
                        ack["messageId"] = json!(format!("m-{id}"));
                    }
                    if u.arbitrary().unwrap_or(false) {
                        ack["error"] = json!(u.choose(&ACK_ERRORS).copied().unwrap_or(""));
                    }
                    self.broker(ack);
                }
            }
            Kind::AckUnknown => self.broker(json!({"type":"ack","id":"never-sent","messageId":"m"})),
            Kind::ErrorForSend => {
                if let Some(id) = self.m.written_sends.pop_front() {
                    self.broker(json!({"type":"error","code":"forbidden","message":"no","id":id}));
                }
            }
            Kind::Reply => self.reply(u),
            Kind::ErrorForRequest => {
                if let Some((req, _)) = self.m.written_requests.pop_front() {
                    self.broker(json!({"type":"error","code":"not_found","message":"x","_reqId":req}));
                }
            }
            Kind::Push => {
                // Few ids, so duplicates (re-pushes) are common.
                let n: u8 = u.int_in_range(0..=5).unwrap_or(0);
                let kind = if u.ratio(1, 4).unwrap_or(false) {
                    "inbound"
                } else {
                    "push"
                };
                let mut push = json!({"type":kind,"meshId":"mesh-fuzz","senderPubkey":"ab",
                    "priority":"next","nonce":"","ciphertext":"","createdAt":""});
                if u.ratio(3, 4).unwrap_or(true) {
                    push["messageId"] = json!(format!("p{n}"));
                } else {
                    push["client_message_id"] = json!(format!("c{n}"));
                }
                self.broker(push);
            }
            Kind::FreeText => {
                let text = short_text(u, 256);
                self.frame(Frame::Text(text));
            }
            Kind::Disconnect => {
                if let Some(socket) = self.s.lifecycle().socket() {
                    let code = u.choose(&CLOSE_CODES).copied().unwrap_or(1006);
                    self.handle(Event::Closed {
                        socket,
                        code,
                        reason: String::new(),
                    });
                }
            }
            Kind::OpenAndAck => {
                if let Some(socket) = self.connecting_socket() {
                    self.handle(Event::Opened { socket });
                    self.broker(json!({"type":"hello_ack","presenceId":"p"}));
                }
            }
            Kind::Reject => {
                if let Some(socket) = self.connecting_socket() {
                    let code = u.choose(&REJECTIONS).copied().unwrap_or("capacity");
                    self.handle(Event::Opened { socket });
                    let mut error = json!({"type":"error","code":code,"message":"no"});
                    if u.arbitrary().unwrap_or(false) {
                        error["retryAfterMs"] = json!(u.choose(&HINTS).copied().unwrap_or(0));
                    }
                    self.broker(error);
                    self.handle(Event::Closed {
                        socket,
                        code: 1008,
                        reason: code.into(),
                    });
                }
            }
            Kind::StaleSocket => {
                // News from a socket the session no longer owns must change nothing
                // of the current one.
                let current = self.s.lifecycle().socket().map_or(0, |s| s.0);
                let socket = SocketId(current.saturating_sub(u.int_in_range(1..=2).unwrap_or(1)));
                let event = match u.int_in_range(0..=2).unwrap_or(0) {
                    0 => Event::Opened { socket },
                    1 => Event::Frame {
                        socket,
                        frame: Frame::Text(r#"{"type":"hello_ack"}"#.into()),
                    },
                    _ => Event::Closed {
                        socket,
                        code: 1006,
                        reason: String::new(),
                    },
                };
                self.handle(event);
            }
            Kind::Advance => {
                self.clock.advance(time_step(u));
                self.handle(Event::Tick);
            }
            Kind::TickAtDeadline => {
                if let Some((at, _)) = self.s.next_deadline() {
                    self.clock.jump_to(at);
                }
                self.handle(Event::Tick);
            }
            Kind::Close => self.handle(Event::Close),
            Kind::Reconnect => self.handle(Event::Reconnect),
            Kind::RetryNow => self.handle(Event::RetryNow),
        }
    }

    fn connecting_socket(&self) -> Option<SocketId> {
        let socket = self.s.lifecycle().socket()?;
        (self.contract.status() == Status::Connecting).then_some(socket)
    }

    fn send(&mut self, u: &mut Unstructured<'_>) {
        let target = match u.int_in_range(0..=9).unwrap_or(0) {
            0 => "",
            1 => "@group",
            // A display name: resolved through list_peers first (B15).
            2 | 3 => "peer",
            // A direct message: sealed end to end (B14).
            _ => "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
        };
        let body = if u.ratio(1, 16).unwrap_or(false) {
            // Far over any frame limit: refused, handed back, nothing changed.
            "x".repeat(2 * DEFAULT_MAX_SEND_LEN)
        } else {
            short_text(u, 160)
        };
        let mut out = Outgoing::new(target, body);
        out.priority = match u.int_in_range(0..=2).unwrap_or(1) {
            0 => Priority::Now,
            1 => Priority::Next,
            _ => Priority::Low,
        };
        out.client_message_id = match u.int_in_range(0..=3).unwrap_or(0) {
            0 | 1 => None,
            2 => u.choose(&IDS).ok().map(|id| (*id).to_owned()),
            _ => Some(short_text(u, 12)),
        };
        // One idempotency id, one pending send: a second one under the same id
        // must be refused (FUZZING.md, finding 2).
        let duplicate = out
            .client_message_id
            .as_ref()
            .is_some_and(|id| self.m.pending_explicit.values().any(|pending| pending == id));
        if u.ratio(1, 4).unwrap_or(false) {
            out.request_fingerprint = Some("ff00".into());
        }
        if u.ratio(1, 4).unwrap_or(false) {
            out.reply_to = Some("m-0".into());
        }
        out.queueing = match u.int_in_range(0..=3).unwrap_or(0) {
            0 => Queueing::Never,
            1 => {
                let ordinary = Duration::from_millis(u.int_in_range(0..=20_000).unwrap_or(0));
                Queueing::Queue {
                    deadline: Some(extreme_or(u, ordinary)),
                }
            }
            _ => Queueing::Queue { deadline: None },
        };
        out.resend_if_unknown = u.arbitrary().unwrap_or(false);
        let explicit = out.client_message_id.clone();
        let resend = out.resend_if_unknown;
        let body_len = out.body.len();
        let before = self.state();
        let result = self.s.send(self.clock.at(), out);
        if let Err(e) = &result {
            assert_eq!(
                e.outgoing.body.len(),
                body_len,
                "a refused message is handed back"
            );
            self.check_refusal(&before, e.reason == SendRefusal::QueueFull);
        }
        assert!(
            !(duplicate && result.is_ok()),
            "a second send under a pending client_message_id was accepted"
        );
        if let Ok(id) = result {
            self.issue(id, Issued::Send);
            match explicit {
                Some(explicit) => {
                    if resend {
                        self.m.explicit_resend.insert(explicit.clone());
                    }
                    *self.m.explicit_ids.entry(explicit.clone()).or_default() += 1;
                    self.m.pending_explicit.insert(id, explicit);
                }
                None => self.m.generated_resend |= resend,
            }
        }
        self.observe();
    }

    fn request(&mut self, u: &mut Unstructured<'_>) {
        let text = short_text(u, 24);
        let request = match u.int_in_range(0..=6).unwrap_or(0) {
            0 => Request::ListPeers,
            1 => Request::GetState { key: text },
            2 => Request::ListState,
            3 => Request::Remember {
                content: text,
                tags: u
                    .arbitrary::<bool>()
                    .unwrap_or(false)
                    .then(|| vec!["t".to_owned()]),
            },
            4 => Request::Recall { query: text },
            5 => Request::ListSkills {
                query: (!text.is_empty()).then_some(text),
            },
            _ => Request::GetSkill { name: text },
        };
        let kind = match &request {
            Request::ListPeers => RequestKind::ListPeers,
            Request::GetState { .. } => RequestKind::GetState,
            Request::ListState => RequestKind::ListState,
            Request::Remember { .. } => RequestKind::Remember,
            Request::Recall { .. } => RequestKind::Recall,
            Request::ListSkills { .. } => RequestKind::ListSkills,
            Request::GetSkill { .. } => RequestKind::GetSkill,
        };
        let open = self.contract.status() == Status::Open;
        let before = self.state();
        match self.s.request(self.clock.at(), request) {
            Ok(id) => {
                assert!(open, "a request accepted while {:?}", self.contract.status());
                self.issue(id, Issued::Request(kind));
            }
            Err(_) => self.check_refusal(&before, false),
        }
        self.observe();
    }

    fn command(&mut self, u: &mut Unstructured<'_>) {
        let text = short_text(u, 24);
        let command = match u.int_in_range(0..=5).unwrap_or(0) {
            0 => Command::SetState {
                key: text,
                value: json!({"n": 1}),
            },
            1 => Command::Forget { memory_id: text },
            2 => Command::SetProfile {
                avatar: None,
                title: Some(text),
                bio: None,
                capabilities: None,
            },
            3 => Command::SetSummary { summary: text },
            4 => Command::SetStatus { status: text },
            _ => Command::SetVisible {
                visible: u.arbitrary().unwrap_or(true),
            },
        };
        let open = self.contract.status() == Status::Open;
        let before = self.state();
        let accepted = self.s.command(self.clock.at(), command).is_ok();
        assert_eq!(accepted, open, "a command is accepted exactly when open");
        if !accepted {
            self.check_refusal(&before, false);
        }
        self.observe();
    }

    fn reply(&mut self, u: &mut Unstructured<'_>) {
        let Some((req, kind)) = self.m.written_requests.pop_front() else {
            return;
        };
        let shapes: Vec<&str> = REPLIES
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(ty, _)| *ty)
            .collect();
        // Now and then a reply of another kind: the session must fail the
        // request it lands on, not hand it the wrong answer.
        let ty = if u.ratio(1, 8).unwrap_or(false) {
            u.choose(&REPLIES).map(|(ty, _)| *ty).unwrap_or("peers_list")
        } else {
            u.choose(&shapes).copied().unwrap_or("peers_list")
        };
        let mut reply = json!({ "type": ty });
        if u.arbitrary().unwrap_or(true) {
            reply["_reqId"] = json!(req);
        }
        self.broker(reply);
    }

    fn issue(&mut self, id: OpId, what: Issued) {
        assert!(self.m.issued.insert(id, what).is_none(), "op id {id:?} reused");
    }

    fn broker(&mut self, frame: Value) {
        self.frame(Frame::Text(frame.to_string()));
    }

    /// A frame on the current socket; nothing when there is none.
    fn frame(&mut self, frame: Frame) {
        if let Some(socket) = self.s.lifecycle().socket() {
            self.handle(Event::Frame { socket, frame });
        }
    }

    fn handle(&mut self, event: Event) {
        if let Event::Closed { socket, .. } | Event::ConnectFailed { socket, .. } = &event {
            self.contract.socket_gone(*socket);
        }
        let refusable = matches!(event, Event::Connect | Event::Reconnect | Event::RetryNow);
        let before = refusable.then(|| self.state());
        if self.s.handle(self.clock.at(), event).is_err() {
            assert!(refusable, "only connect, reconnect and retry-now are refused");
            if let Some(before) = before {
                self.check_refusal(&before, false);
            }
        }
        self.observe();
    }

    /// Everything observable of the session (queues, timers, counters, pending
    /// ops, its generator), with the one counter a refusal may move taken out.
    fn state(&self) -> (String, u64) {
        let refused = self.s.stats(self.clock.now).queue_refused;
        let debug = format!("{:?}|{:?}", self.s, self.s.next_deadline());
        let debug = debug.replace(&format!("queue_refused: {refused},"), "queue_refused: _,");
        (debug, refused)
    }

    /// A refused call changes nothing, queues no action, and only a full
    /// queue's refusal counts itself.
    fn check_refusal(&mut self, before: &(String, u64), full_queue: bool) {
        let after = self.state();
        assert_eq!(after.0, before.0, "a refusal changed the session");
        assert_eq!(after.1, before.1 + u64::from(full_queue), "refusal counter");
        assert!(self.s.poll_action().is_none(), "a refusal queued an action");
    }

    /// Drains the session and checks every action, then the caps.
    fn observe(&mut self) {
        while let Some(action) = self.s.poll_action() {
            let kept = match &action {
                SessionAction::Io(io) => self.contract.io(io),
                SessionAction::Event(SessionEvent::Lifecycle(note)) => self.contract.notification(note),
                SessionAction::Event(_) => Ok(()),
            };
            if let Err(broken) = kept {
                panic!("{broken}");
            }
            match action {
                SessionAction::Io(io) => self.check_io(io),
                SessionAction::Event(event) => self.check_event(event),
            }
        }
        let (status, deadline) = (self.s.status(), self.s.next_deadline().is_some());
        if let Err(broken) = self
            .contract
            .after_drain(status, deadline, self.s.lifecycle().socket())
        {
            panic!("{broken}");
        }
        let st = self.s.stats(self.clock.now);
        let c = &self.config;
        assert!(
            st.queue_depth <= c.outbound_queue,
            "queue over its cap: {}",
            st.queue_depth
        );
        assert!(
            st.in_flight <= c.max_in_flight,
            "in flight over its cap: {}",
            st.in_flight
        );
        assert!(
            st.history_len <= c.push_history,
            "history over its cap: {}",
            st.history_len
        );
        assert!(
            st.pending_requests <= c.max_pending_requests,
            "pending requests over their cap: {}",
            st.pending_requests
        );
        assert_eq!(
            self.s.status(),
            self.contract.status(),
            "status differs from the reported one"
        );
    }

    fn check_io(&mut self, io: Io) {
        match io {
            Io::OpenSocket { .. } | Io::CloseSocket { .. } | Io::TerminateSocket { .. } => {
                self.m.written_sends.clear();
                self.m.written_requests.clear();
            }
            Io::SendPing { .. } => {}
            Io::SendText { text, .. } => {
                let frame = decode_client_frame(&text, usize::MAX);
                assert!(frame.is_ok(), "the session wrote an undecodable frame: {text}");
                let Ok(frame) = frame else {
                    return;
                };
                if self.contract.status() != Status::Open {
                    // The hello (the contract allows nothing else before open).
                    return;
                }
                match frame {
                    ClientFrame::Send(s) => self.check_send_write(s.id, s.client_message_id, text),
                    other => {
                        if let (Some(r), Some(k)) = (other.req_id(), other.request_kind()) {
                            self.m.written_requests.push_back((r.to_owned(), k));
                        }
                    }
                }
            }
        }
    }

    fn check_send_write(&mut self, id: String, client_message_id: Option<String>, text: String) {
        assert_eq!(
            client_message_id.as_deref(),
            Some(id.as_str()),
            "a send without its own id"
        );
        match self.m.first_write.get(&id) {
            None => {
                self.m.first_write.insert(id.clone(), text);
            }
            Some(first) if *first == text => {
                // The same frame again: a resend, which only a send that asked to
                // be resent may get.
                let allowed = match self.m.explicit_ids.get(&id) {
                    Some(_) => self.m.explicit_resend.contains(&id),
                    None => self.m.generated_resend,
                };
                assert!(allowed, "{id} written twice without resend");
            }
            Some(_) => {
                // A different frame under a used id: only two sends the
                // application gave the same id may do that.
                let shared = self.m.explicit_ids.get(&id).copied().unwrap_or(0);
                assert!(shared >= 2, "{id} reused by a different frame");
            }
        }
        self.m.written_sends.push_back(id);
    }

    fn check_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Resolved { id, result } => {
                let issued = self.m.issued.get(&id).copied();
                assert!(issued.is_some(), "resolved an op never issued: {id:?}");
                assert!(self.m.resolved.insert(id), "op {id:?} resolved twice");
                self.m.pending_explicit.remove(&id);
                match (issued, &result) {
                    (Some(Issued::Send), Ok(Outcome::Sent { .. })) | (Some(Issued::Send), Err(_)) => {}
                    (Some(Issued::Request(kind)), Ok(Outcome::Reply(reply))) => {
                        assert_eq!(reply.kind(), kind, "a reply of the wrong kind");
                    }
                    (Some(Issued::Request(_)), Err(f)) => {
                        assert_ne!(f.kind, FailureKind::NeverSent, "a written request never sent");
                    }
                    (_, result) => panic!("op {id:?} resolved with {result:?}"),
                }
            }
            SessionEvent::Lifecycle(_) | SessionEvent::Push(_) | SessionEvent::Inbound(_) => {}
        }
    }

    /// Closes for good: everything issued must have its one result by then (X3).
    fn finish(mut self) {
        self.handle(Event::Close);
        let unresolved: Vec<&OpId> = self
            .m
            .issued
            .keys()
            .filter(|id| !self.m.resolved.contains(id))
            .collect();
        assert!(
            unresolved.is_empty(),
            "unresolved ops after close: {unresolved:?}"
        );
        assert_eq!(self.s.next_deadline(), None, "a deadline survived close");
    }
}
