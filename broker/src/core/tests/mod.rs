//! Unit tests of the core, driven by a harness that owns the clock and the outbox.

mod faults;
mod hello;
mod hostile;
mod liveness;
mod requests;
mod routing;

use std::time::{Duration, Instant};

use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::wire::{decode_broker_frame, BrokerFrame, ClientFrame, HelloExtras, SendFrame};
use tether_proto::Now;

use super::{Broker, BrokerConfig, ConnId, Fault, Output, OutputKind};

/// Wall clock at the harness's start.
pub const T0_MS: u64 = 1_700_000_000_000;
pub const MESH: &str = "mesh-1";

pub struct Harness {
    pub broker: Broker,
    t0: Instant,
    pub elapsed: Duration,
    next_conn: u64,
    pub outbox: Vec<Output>,
}

impl Harness {
    pub fn new(config: BrokerConfig) -> Self {
        Harness {
            broker: Broker::new(config),
            t0: Instant::now(),
            elapsed: Duration::ZERO,
            next_conn: 1,
            outbox: Vec::new(),
        }
    }

    pub fn open_broker() -> Self {
        Self::new(BrokerConfig::default())
    }

    pub fn now(&self) -> Now {
        Now::new(self.t0 + self.elapsed, T0_MS + self.elapsed.as_millis() as u64)
    }

    pub fn instant_in(&self, d: Duration) -> Instant {
        self.t0 + self.elapsed + d
    }

    fn drain(&mut self) {
        while let Some(out) = self.broker.poll_output() {
            self.outbox.push(out);
        }
    }

    /// Moves the clock and ticks, as a host does when its sleep ends.
    pub fn advance(&mut self, d: Duration) {
        self.elapsed += d;
        let now = self.now();
        self.broker.handle_tick(now);
        self.drain();
    }

    /// Jumps from deadline to deadline until `d` has passed, ticking at each.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.t0 + self.elapsed + d;
        while let Some(at) = self.broker.next_deadline().filter(|&at| at <= end) {
            self.elapsed = at.max(self.t0 + self.elapsed) - self.t0;
            let now = self.now();
            self.broker.handle_tick(now);
            self.drain();
        }
        self.elapsed = end - self.t0;
    }

    pub fn open(&mut self) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let now = self.now();
        self.broker.handle_open(conn, now);
        self.drain();
        conn
    }

    pub fn frame(&mut self, conn: ConnId, text: &str) {
        let now = self.now();
        self.broker.handle_frame(conn, text, now);
        self.drain();
    }

    pub fn client(&mut self, conn: ConnId, frame: impl Into<ClientFrame>) {
        self.frame(conn, &frame.into().encode());
    }

    pub fn closed(&mut self, conn: ConnId) {
        let now = self.now();
        self.broker.handle_closed(conn, now);
        self.drain();
    }

    pub fn pong(&mut self, conn: ConnId) {
        let now = self.now();
        self.broker.handle_activity(conn, now);
        self.drain();
    }

    pub fn fault(&mut self, fault: Fault) {
        let now = self.now();
        self.broker.handle_fault(fault, now);
        self.drain();
    }

    /// Takes every socket instruction for `conn` from the outbox (notices stay).
    pub fn take(&mut self, conn: ConnId) -> Vec<OutputKind> {
        let (mine, rest): (Vec<Output>, Vec<Output>) = std::mem::take(&mut self.outbox)
            .into_iter()
            .partition(|o| o.conn == conn && !matches!(o.kind, OutputKind::Notice(_)));
        self.outbox = rest;
        mine.into_iter().map(|o| o.kind).collect()
    }

    /// Takes the frames sent to `conn` and the close that ended it, if any.
    pub fn frames_and_close(&mut self, conn: ConnId) -> (Vec<BrokerFrame>, Option<(u16, String)>) {
        let mut frames = Vec::new();
        let mut close = None;
        for kind in self.take(conn) {
            match kind {
                OutputKind::Send(text) => frames.push(decode(&text)),
                OutputKind::Close { code, reason } => close = Some((code, reason)),
                _ => {}
            }
        }
        (frames, close)
    }

    /// Takes the frames sent to `conn`, decoded; panics on anything else sent to it.
    pub fn frames(&mut self, conn: ConnId) -> Vec<BrokerFrame> {
        self.take(conn)
            .into_iter()
            .filter_map(|kind| match kind {
                OutputKind::Send(text) => Some(decode(&text)),
                OutputKind::Ping => None,
                other => panic!("unexpected {other:?} for {conn}"),
            })
            .collect()
    }

    /// Opens a connection and says hello as `who` in `session`; asserts the ack.
    pub fn join(&mut self, who: &MemberIdentity, session: &str) -> ConnId {
        self.join_with(who, presence(session, None))
    }

    pub fn join_with(&mut self, who: &MemberIdentity, presence: Presence) -> ConnId {
        let conn = self.open();
        let hello = who.hello(&presence, self.now().unix_ms);
        self.client(conn, hello);
        let frames = self.frames(conn);
        assert!(
            matches!(frames.first(), Some(BrokerFrame::HelloAck(_))),
            "no hello_ack: {frames:?}"
        );
        conn
    }
}

pub fn decode(text: &str) -> BrokerFrame {
    decode_broker_frame(text, usize::MAX).unwrap_or_else(|e| panic!("undecodable {text}: {e}"))
}

pub fn member(n: u8) -> MemberIdentity {
    member_in(n, MESH)
}

pub fn member_in(n: u8, mesh: &str) -> MemberIdentity {
    MemberIdentity {
        mesh_id: mesh.to_owned(),
        member_id: format!("member-{n}"),
        secret: SecretKey::from_seed([n; 32]),
    }
}

pub fn pubkey(n: u8) -> String {
    SecretKey::from_seed([n; 32]).public_key().to_hex()
}

pub fn presence(session: &str, name: Option<&str>) -> Presence {
    Presence {
        session_id: session.to_owned(),
        pid: 1,
        cwd: "/work".to_owned(),
        extras: HelloExtras {
            display_name: name.map(str::to_owned),
            ..HelloExtras::default()
        }
        .into(),
    }
}

pub fn send(id: &str, target: &str, body: &str) -> SendFrame {
    SendFrame {
        id: id.to_owned(),
        target_spec: target.to_owned(),
        priority: Default::default(),
        nonce: "bm9uY2U=".to_owned(),
        ciphertext: body.to_owned(),
        client_message_id: Some(id.to_owned()),
        request_fingerprint: Some("ab12".to_owned()),
        mentions: None,
        reply_to_id: None,
        body_version: None,
    }
}

/// A roster file with members 1..=n of `MESH` (names `Member N`, group `ops` for odd n).
pub fn roster_json(n: u8, revoked: &[u8]) -> String {
    let members: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                r#"{{"memberId":"member-{i}","pubkey":"{}","displayName":"Member {i}","revoked":{},"groups":[{}]}}"#,
                pubkey(i),
                revoked.contains(&i),
                if i % 2 == 1 { r#"{"name":"ops"}"# } else { "" }
            )
        })
        .collect();
    format!(
        r#"{{"meshes":{{"{MESH}":{{"members":[{}]}}}}}}"#,
        members.join(",")
    )
}

pub fn listed(n: u8, revoked: &[u8]) -> BrokerConfig {
    BrokerConfig {
        membership: super::Membership::from_json_str(&roster_json(n, revoked)).unwrap(),
        ..BrokerConfig::default()
    }
}
