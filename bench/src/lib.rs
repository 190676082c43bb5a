//! # tether-bench
//!
//! Fixtures shared by tether's benchmarks: an open [`Session`] driven by hand
//! ([`OpenSession`]), the exact wire frames a broker sends (push, ack, pong), and an
//! in-memory socket ([`Replay`]) that lets tungstenite's codec read the same frame
//! over and over. Every benchmark measures tether beside a baseline of the same
//! bytes in the same run: `serde_json::from_str::<serde_json::Value>` (what the
//! seeds' `JSON.parse` does) and tungstenite reading the frame.
//!
//! - `benches/step.rs` — criterion (`cargo bench -p tether-bench`).
//! - `src/bin/icount.rs` — one case in a loop, for `valgrind --tool=callgrind`
//!   (`bench/icount.sh` turns the totals into instructions per operation).
//! - `benches/instructions.rs` — the same cases ([`cases`]), one and 200 operations,
//!   counted by gungraun (`bench/gungraun.sh`; needs `--features gungraun`).
//! - `src/bin/loopback.rs` — round trips against the reference broker over
//!   loopback, beside a bare tokio-tungstenite client.
//! - `tests/alloc.rs` — zero allocations per steady-state tick and per ping.

pub mod bare;
pub mod cases;
pub mod hosts;
pub mod node;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tether_proto::lifecycle::{Config, Event, FirstConnect, Frame, Handshake, Io, SocketId, Status};
use tether_proto::mesh::crypto::DirectBox;
use tether_proto::mesh::handshake::{Credentials, MeshHandshake};
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::session::{Outgoing, Session, SessionAction, SessionConfig, SessionEvent};
use tether_proto::mesh::wire::{AckFrame, BrokerFrame, HelloExtras, Priority, PushFrame};
use tether_proto::policy::Jitter;
use tether_proto::Now;
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::Message;

/// Many connections driven from the calling thread, loaded alike: the mio rows'
/// tether-mio `Reactor` ([`hosts::ReactorClients`]) and bare mio client
/// ([`bare::BareMio`]), so a bench runs the same load through either.
pub trait OneThread {
    /// `per_conn` sends on each of the first `conns` connections, at most
    /// `window` in flight on each, all from this thread; with `rtts`, every
    /// send's round trip.
    fn run(&mut self, conns: usize, per_conn: usize, window: usize, rtts: Option<&mut Vec<Duration>>);
}

/// The wall clock in Unix milliseconds (stamps the hellos of real connections).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The wall clock the benchmarks pretend it is (only stamps hellos).
pub const UNIX0: u64 = 1_700_000_000_000;

/// Distinct pushes (and acks) cycled through, so the session's dedupe never sees a
/// repeat within its window (1 024) and the history buffer (500) stays full.
pub const POOL: usize = 4096;

/// A member identity whose key is derived from `n`.
pub fn member(mesh: &str, n: u32) -> MemberIdentity {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0x5a;
    MemberIdentity {
        mesh_id: mesh.to_owned(),
        member_id: format!("member-{n}"),
        secret: SecretKey::from_seed(seed),
    }
}

/// The presence fields every benchmark client sends.
pub fn presence(n: u32) -> Presence {
    Presence {
        session_id: format!("bench-session-{n}"),
        pid: 4242,
        cwd: "/bench".to_owned(),
        extras: HelloExtras {
            display_name: Some(format!("bench-{n}")),
            ..HelloExtras::default()
        }
        .into(),
    }
}

/// The handshake of the in-memory session.
pub fn handshake() -> MeshHandshake {
    MeshHandshake::new(Credentials::Member(member("mesh-bench", 1)), presence(1))
}

/// The signed hello frame [`MeshHandshake::hello`] builds at [`UNIX0`].
pub fn hello_text() -> String {
    let mut hs = handshake();
    match hs.hello(1, UNIX0) {
        Ok(Some(text)) => text,
        other => panic!("the mesh handshake always builds a hello: {other:?}"),
    }
}

/// The bench's other peer, who sends the pushes and receives the sends: the
/// public key of [`peer_2`].
pub const PEER_2_PUBKEY: &str = "cecacaefde3cef21eb6d433cfe132b8ce43ea8723d331ab8ab9cdf59a8f65161";

/// The other peer's identity: its key is [`PEER_2_PUBKEY`]'s.
pub fn peer_2() -> MemberIdentity {
    member("mesh-bench", 2)
}

/// What every bench push says, before it is sealed.
pub const PUSH_PLAINTEXT: &str = "hello from the other side of the mesh";

/// The box between the bench's two peers, as either side computes it.
pub fn peer_box() -> DirectBox {
    match DirectBox::new(&member("mesh-bench", 1).secret.public_key(), &peer_2().secret) {
        Ok(b) => b,
        Err(e) => panic!("the bench keys make a box: {e}"),
    }
}

/// A direct push exactly as the reference broker relays it, message number `i`:
/// [`PUSH_PLAINTEXT`] sealed by [`peer_2`] for the bench session's member key
/// (B14) with a nonce of its own, so the session opens it as it would a real one.
pub fn push_text(i: usize) -> String {
    push_text_sealed_by(&peer_box(), i)
}

fn push_text_sealed_by(sealer: &DirectBox, i: usize) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
    nonce[8..16].copy_from_slice(&0x6e6f_6e63_655f_6265_u64.to_le_bytes());
    let sealed = match sealer.seal(&nonce, PUSH_PLAINTEXT.as_bytes()) {
        Ok(sealed) => sealed,
        Err(e) => panic!("a short message seals: {e}"),
    };
    let push = PushFrame {
        message_id: format!("msg-{i:016x}"),
        mesh_id: "mesh-bench".to_owned(),
        sender_pubkey: PEER_2_PUBKEY.to_owned(),
        priority: Priority::Next,
        nonce: b64.encode(nonce),
        ciphertext: b64.encode(sealed),
        created_at: "2023-11-14T22:13:20.000Z".to_owned(),
        sender_member_id: Some("member-2".to_owned()),
        sender_name: Some("peer-2".to_owned()),
        client_message_id: Some(format!(
            "{:016x}",
            0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)
        )),
        ..PushFrame::default()
    };
    BrokerFrame::from(push).encode()
}

/// The broker's ack of the send whose id is `id`.
pub fn ack_text(id: &str, i: usize) -> String {
    BrokerFrame::Ack(AckFrame {
        id: id.to_owned(),
        message_id: format!("msg-{i:016x}"),
        queued: false,
        error: None,
        req_id: None,
    })
    .encode()
}

/// What precedes a frame's id in tether's encoding.
const ID_KEY: &str = "\"id\":\"";

/// The id of an [`ack_template`], replaced by the send's own id.
pub const ID_PLACEHOLDER: &str = "@@@@@@@@@@@@@@@@";

/// The broker's ack of send number `i`, its id left as [`ID_PLACEHOLDER`] (16
/// characters, like the ids the session generates).
pub fn ack_template(i: usize) -> String {
    ack_text(ID_PLACEHOLDER, i)
}

/// The idempotency id of bench send number `i`.
pub fn send_id(i: usize) -> String {
    format!("{:016x}", 0x51_7cc1_b727_220a_u64.wrapping_mul(i as u64 + 1))
}

/// A pool of `n` distinct push frames.
pub fn push_pool(n: usize) -> Vec<String> {
    let sealer = peer_box();
    (0..n).map(|i| push_text_sealed_by(&sealer, i)).collect()
}

/// A session configuration with the defaults, no jitter.
pub fn session_config() -> SessionConfig {
    let mut lc = Config::new("ws://broker.bench/ws");
    lc.jitter = Jitter::NONE;
    lc.first_connect = FirstConnect::Retry;
    SessionConfig::new(lc)
}

/// An open [`Session`] driven by hand, with a clock that only moves when told.
#[derive(Debug)]
pub struct OpenSession {
    /// The session.
    pub session: Session,
    /// The socket it owns.
    pub socket: SocketId,
    t0: Instant,
    now: Instant,
    sends: usize,
}

impl OpenSession {
    /// A session that has connected, sent its hello and been acked.
    pub fn new() -> Self {
        let t0 = Instant::now();
        let session = match Session::new(session_config(), handshake(), 7, t0) {
            Ok(s) => s,
            Err(e) => panic!("bench config is valid: {e}"),
        };
        let mut me = OpenSession {
            session,
            socket: SocketId(0),
            t0,
            now: t0,
            sends: 0,
        };
        me.handle(Event::Connect);
        let mut socket = None;
        while let Some(a) = me.session.poll_action() {
            if let SessionAction::Io(Io::OpenSocket { socket: s, .. }) = a {
                socket = Some(s);
            }
        }
        me.socket = socket.unwrap_or_else(|| panic!("connect opens a socket"));
        me.handle(Event::Opened { socket: me.socket });
        me.drain();
        me.frame(r#"{"type":"hello_ack","presenceId":"p-1","memberDisplayName":"bench-1"}"#.to_owned());
        me.drain();
        assert_eq!(me.session.status(), Status::Open, "the session opens");
        me
    }

    /// The current time as the session sees it.
    pub fn at(&self) -> Now {
        let ms = u64::try_from((self.now - self.t0).as_millis()).unwrap_or(u64::MAX);
        Now::new(self.now, UNIX0 + ms)
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Feeds one event (an `Err` would be a bench bug: the session never closes).
    pub fn handle(&mut self, event: Event) {
        if let Err(e) = self.session.handle(self.at(), event) {
            panic!("the bench session is never closed: {e}");
        }
    }

    /// Feeds one text frame on the open socket.
    pub fn frame(&mut self, text: String) {
        let socket = self.socket;
        self.handle(Event::Frame {
            socket,
            frame: Frame::Text(text),
        });
    }

    /// Drains every action; returns how many there were.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(action) = self.session.poll_action() {
            std::hint::black_box(&action);
            n += 1;
        }
        n
    }

    /// A tick with nothing due, then the drain.
    pub fn idle_tick(&mut self) -> usize {
        self.handle(Event::Tick);
        self.drain()
    }

    /// The watchdog's ping (the clock moves one ping interval), then the pong.
    pub fn ping_pong(&mut self) -> usize {
        let due = self
            .session
            .next_deadline()
            .map_or(self.now, |(at, _)| at.max(self.now));
        self.now = due;
        self.handle(Event::Tick);
        let mut pinged = false;
        while let Some(action) = self.session.poll_action() {
            pinged |= matches!(action, SessionAction::Io(Io::SendPing { .. }));
        }
        debug_assert!(pinged, "the watchdog pings");
        let socket = self.socket;
        self.handle(Event::Frame {
            socket,
            frame: Frame::Pong,
        });
        self.drain() + usize::from(pinged)
    }

    /// One send with an id the session generates: `Session::send` (no
    /// `client_message_id`: the session draws the id and the nonce), the
    /// `SendText` polled, the id it carries copied into `ack` (an
    /// [`ack_template`]), the ack fed back, the `Resolved` polled. The copy is
    /// the only work not tether's: a search for `"id":"` and 16 bytes.
    pub fn send_ack(&mut self, mut ack: String) -> bool {
        self.sends += 1;
        // A direct message, sealed end to end as every direct send is (B14).
        let out = Outgoing::new(PEER_2_PUBKEY, "hello from the bench");
        if let Err(e) = self.session.send(self.at(), out) {
            panic!("the open session accepts the send: {e}");
        }
        let mut wrote = false;
        while let Some(action) = self.session.poll_action() {
            if let SessionAction::Io(Io::SendText { text, .. }) = action {
                if let Some(at) = text.find(ID_KEY).map(|i| i + ID_KEY.len()) {
                    if let (Some(id), Some(slot)) = (text.get(at..at + 16), ack.find(ID_PLACEHOLDER)) {
                        ack.replace_range(slot..slot + 16, id);
                        wrote = true;
                    }
                }
                std::hint::black_box(text);
            }
        }
        self.frame(ack);
        let mut resolved = false;
        while let Some(action) = self.session.poll_action() {
            if let SessionAction::Event(SessionEvent::Resolved { result, .. }) = action {
                resolved = result.is_ok();
            }
        }
        wrote && resolved
    }

    /// One push handled end to end: the frame in, every action drained.
    pub fn push(&mut self, text: String) -> usize {
        self.frame(text);
        self.drain()
    }
}

impl Default for OpenSession {
    fn default() -> Self {
        Self::new()
    }
}

/// A server → client WebSocket frame (unmasked, FIN) carrying `payload` as text.
pub fn ws_text_frame(payload: &str) -> Vec<u8> {
    ws_frame(0x81, payload.as_bytes())
}

/// A server → client pong frame with an empty payload.
pub fn ws_pong_frame() -> Vec<u8> {
    ws_frame(0x8a, &[])
}

fn ws_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(first);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// An in-memory duplex socket: reads replay `frame` forever, writes are discarded.
#[derive(Debug)]
pub struct Replay {
    frame: Vec<u8>,
    pos: usize,
}

impl Replay {
    /// A socket whose peer sends `frame` again and again.
    pub fn new(frame: Vec<u8>) -> Self {
        Replay { frame, pos: 0 }
    }
}

impl Read for Replay {
    /// Fills `buf` completely, wrapping around, as a busy socket would.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let rest = &self.frame[self.pos..];
            let n = rest.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            self.pos = (self.pos + n) % self.frame.len();
        }
        Ok(filled)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite's client-side codec over a [`Replay`] of one frame.
pub fn replay_socket(frame: Vec<u8>) -> WebSocket<Replay> {
    WebSocket::from_raw_socket(Replay::new(frame), Role::Client, None)
}

/// Reads one message with tungstenite's codec.
pub fn ws_read(ws: &mut WebSocket<Replay>) -> Message {
    match ws.read() {
        Ok(m) => m,
        Err(e) => panic!("the replayed frame is valid: {e}"),
    }
}

/// The baseline: what the seeds do with every frame (`JSON.parse`).
pub fn bare_parse(text: &str) -> serde_json::Value {
    match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => panic!("bench frames are JSON: {e}"),
    }
}

/// The second baseline: straight into the typed struct, no session around it.
pub fn typed_push_parse(text: &str) -> PushFrame {
    // `type` is an unknown field to the struct and skipped, as in the session's
    // second decoding pass.
    match serde_json::from_str::<PushFrame>(text) {
        Ok(p) => p,
        Err(e) => panic!("bench pushes decode: {e}"),
    }
}

/// The fair baseline of a push: the typed parse plus what the frame asks of any
/// client that reads it, its body opened (base64 decoded, crypto_box opened
/// with the pair's precomputed key, checked as UTF-8). Same work as the
/// session's decode of a direct push, no session around it.
pub fn typed_parse_open_push(text: &str, peer: &DirectBox) -> (PushFrame, String) {
    let push = typed_push_parse(text);
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut nonce = [0u8; 24];
    let mut sealed = match (
        b64.decode_slice(&push.nonce, &mut nonce),
        b64.decode(&push.ciphertext),
    ) {
        (Ok(24), Ok(sealed)) => sealed,
        other => panic!("bench pushes carry a nonce and a ciphertext: {other:?}"),
    };
    if let Err(e) = peer.open_in_place(&nonce, &mut sealed) {
        panic!("bench pushes are sealed for the bench session: {e}");
    }
    match String::from_utf8(sealed) {
        Ok(text) => (push, text),
        Err(e) => panic!("bench pushes are text: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_peer_sends_from_its_own_key() {
        assert_eq!(peer_2().secret.public_key().to_hex(), PEER_2_PUBKEY);
    }

    #[test]
    fn bench_pushes_open_as_the_session_opens_them() {
        // proves B14: the bench measures a push that really opens.
        let mut s = OpenSession::new();
        s.frame(push_text(3));
        let mut text = None;
        while let Some(action) = s.session.poll_action() {
            if let SessionAction::Event(SessionEvent::Push(push)) = action {
                text = push.body.text().map(str::to_owned);
                assert!(matches!(
                    push.body,
                    tether_proto::mesh::push::PushBody::Text { encrypted: true, .. }
                ));
            }
        }
        assert_eq!(text.as_deref(), Some(PUSH_PLAINTEXT));
        let (_, opened) = typed_parse_open_push(&push_text(3), &peer_box());
        assert_eq!(opened, PUSH_PLAINTEXT);
    }
}
