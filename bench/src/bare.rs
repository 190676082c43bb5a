//! The bare baselines: what a client without tether does for the same sends.
//!
//! [`BareWork`] is the work every send and ack needs, done by hand: a fresh
//! idempotency id, a fresh 24-byte nonce in base64, the body in base64, the
//! `send` frame encoded with serde, the send kept in a map of pending sends, and
//! each reply parsed with a typed serde struct and matched to its send. Both
//! bare clients do it inside the measured time, as tether does; their clock for
//! a send starts before its frame is encoded.
//!
//! - [`BareTokio`]: tokio-tungstenite, one task per connection, batched flushes
//!   (every frame a turn wrote goes out in one flush).
//! - [`BareMio`]: a mio event loop over tungstenite, every connection on the
//!   caller's thread, edge-triggered, with tether-mio's WebSocket settings and
//!   one flush per connection per turn, as tether-mio does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::TcpStream as StdTcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};
use tether_proto::mesh::wire::ClientFrame;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use crate::{member, presence, unix_ms};

/// The body every benchmark send carries.
pub const BODY: &str = "hello from the loopback bench";

/// The WebSocket settings both hosts use (tether-host's `Transport` defaults:
/// its size limits, tungstenite's write buffer, a 2 KiB read buffer); the bare
/// clients get the same, so a ratio measures the client, not a setting. The
/// read buffer is 4 KiB all the same on every client but tether-mio:
/// tungstenite keeps its handshake's 4 KiB buffer for life, and only tether-mio
/// rebuilds the socket with the configured size.
pub fn ws_config() -> WebSocketConfig {
    tether_mio::Transport::default().ws_config()
}

/// A signed hello for connection `n` of `mesh`, encoded (before any clock starts).
pub fn hello_frame(mesh: &str, n: u32) -> String {
    ClientFrame::Hello(member(mesh, n).hello(&presence(n), unix_ms())).encode()
}

#[derive(Serialize)]
struct SendOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(rename = "targetSpec")]
    target_spec: &'a str,
    priority: &'static str,
    nonce: &'a str,
    ciphertext: &'a str,
    client_message_id: &'a str,
}

/// Any broker frame, as far as the bare client reads it.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, rename = "messageId", borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
}

/// What a reply meant to the bare client.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The ack of a pending send, with the time its send started.
    Acked(Instant),
    /// The reply the client was waiting for while connecting.
    HelloAck,
    /// Anything else (pushes to nobody never come; other frames are ignored).
    Other,
}

/// One connection's send bookkeeping, done by hand (see the module docs).
#[derive(Debug)]
pub struct BareWork {
    rng: u64,
    pending: HashMap<String, Instant>,
}

impl BareWork {
    /// Bookkeeping seeded with `seed` (ids and nonces are drawn from it).
    pub fn new(seed: u64) -> Self {
        BareWork {
            rng: seed ^ 0x2545_f491_4f6c_dd1d,
            pending: HashMap::new(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next `send` frame to `*`: id, nonce, body, encoded, and the send
    /// recorded as pending since `start`.
    pub fn frame(&mut self, start: Instant) -> String {
        let id = format!("{:016x}", self.next_u64());
        let mut nonce = [0u8; 24];
        for chunk in nonce.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.encode(nonce);
        let ciphertext = b64.encode(BODY);
        let text = match serde_json::to_string(&SendOut {
            kind: "send",
            id: &id,
            target_spec: "*",
            priority: "next",
            nonce: &nonce,
            ciphertext: &ciphertext,
            client_message_id: &id,
        }) {
            Ok(t) => t,
            Err(e) => panic!("a send frame encodes: {e}"),
        };
        self.pending.insert(id, start);
        text
    }

    /// Parses one reply; an ack resolves its pending send (an error ack or an
    /// `error` frame ends the benchmark: the broker refused the workload).
    pub fn reply(&mut self, text: &str) -> Reply {
        let Ok(frame) = serde_json::from_str::<Incoming<'_>>(text) else {
            return Reply::Other;
        };
        match &*frame.kind {
            "ack" => {
                if let Some(e) = frame.error {
                    panic!("the broker refused a bare send: {e}");
                }
                let started = frame.id.and_then(|id| self.pending.remove(&*id));
                std::hint::black_box(frame.message_id);
                started.map_or(Reply::Other, Reply::Acked)
            }
            "hello_ack" => Reply::HelloAck,
            "error" => panic!("the broker refused the bare client: {text}"),
            _ => Reply::Other,
        }
    }

    /// Sends waiting for their ack.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A bare tokio-tungstenite client (see the module docs).
pub struct BareTokio {
    ws: Ws,
    work: BareWork,
}

impl BareTokio {
    /// Connects connection `n` in mesh `mesh` and waits for its `hello_ack`.
    pub async fn connect(url: &str, mesh: &str, n: u32) -> BareTokio {
        let hello = hello_frame(mesh, n);
        let (ws, _) = match tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await {
            Ok(pair) => pair,
            Err(e) => panic!("bare client connects: {e}"),
        };
        let mut me = BareTokio {
            ws,
            work: BareWork::new(u64::from(n)),
        };
        if let Err(e) = me.ws.send(Message::Text(hello.into())).await {
            panic!("bare hello written: {e}");
        }
        loop {
            if me.read().await == Reply::HelloAck {
                return me;
            }
        }
    }

    async fn read(&mut self) -> Reply {
        match self.ws.next().await {
            Some(Ok(m)) => self.handle(m),
            other => panic!("bare client lost: {other:?}"),
        }
    }

    fn handle(&mut self, message: Message) -> Reply {
        match message {
            Message::Text(t) => self.work.reply(t.as_str()),
            _ => Reply::Other,
        }
    }

    /// `sends` sends, at most `window` waiting for their ack; with `rtts`, each
    /// send's round trip (from before its frame is encoded to its ack parsed).
    pub async fn run(&mut self, sends: usize, window: usize, mut rtts: Option<&mut Vec<Duration>>) {
        let window = window.max(1);
        let (mut sent, mut acked) = (0, 0);
        while acked < sends {
            let mut wrote = false;
            while sent < sends && self.work.in_flight() < window {
                let text = self.work.frame(Instant::now());
                if let Err(e) = self.ws.feed(Message::Text(text.into())).await {
                    panic!("bare send written: {e}");
                }
                sent += 1;
                wrote = true;
            }
            if wrote {
                if let Err(e) = self.ws.flush().await {
                    panic!("bare flush: {e}");
                }
            }
            let mut reply = self.read().await;
            loop {
                if let Reply::Acked(at) = reply {
                    acked += 1;
                    if let Some(r) = rtts.as_deref_mut() {
                        r.push(at.elapsed());
                    }
                }
                // With a window, take every reply that is already here before
                // writing (one flush for all their replacements); one at a
                // time there is never a second.
                if window == 1 {
                    break;
                }
                match self.ws.next().now_or_never() {
                    Some(Some(Ok(m))) => reply = self.handle(m),
                    Some(other) => panic!("bare client lost: {other:?}"),
                    None => break,
                }
            }
        }
    }
}

/// One connection of [`BareMio`].
struct MioConn {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<StdTcpStream>>,
    work: BareWork,
    left: usize,
    /// A flush that would have blocked: retried on the writable edge.
    unflushed: bool,
}

/// A bare mio event loop over tungstenite (see the module docs).
pub struct BareMio {
    poll: Poll,
    events: Events,
    conns: Vec<MioConn>,
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl BareMio {
    /// Connects `count` connections (mesh `{mesh}-{n}`), each acked, then hands
    /// them to one edge-triggered `Poll`.
    pub fn connect(url: &str, mesh: &str, count: u32) -> BareMio {
        let poll = match Poll::new() {
            Ok(p) => p,
            Err(e) => panic!("mio poll: {e}"),
        };
        let mut conns = Vec::new();
        for n in 1..=count {
            let mesh = format!("{mesh}-{n}");
            let (mut ws, _) = match tungstenite::client::connect_with_config(url, Some(ws_config()), 3) {
                Ok(pair) => pair,
                Err(e) => panic!("bare mio client connects: {e}"),
            };
            let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() else {
                panic!("the bench broker is plain ws");
            };
            // As tether-mio: no Nagle delay.
            let _ = tcp.set_nodelay(true);
            if let Err(e) = ws.send(Message::Text(hello_frame(&mesh, n).into())) {
                panic!("bare mio hello: {e}");
            }
            let mut work = BareWork::new(u64::from(n));
            loop {
                match ws.read() {
                    Ok(Message::Text(t)) if work.reply(t.as_str()) == Reply::HelloAck => break,
                    Ok(_) => {}
                    Err(e) => panic!("bare mio client lost: {e}"),
                }
            }
            let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() else {
                panic!("the bench broker is plain ws");
            };
            if let Err(e) = tcp.set_nonblocking(true) {
                panic!("nonblocking: {e}");
            }
            let fd = tcp.as_raw_fd();
            let token = Token(conns.len());
            if let Err(e) =
                poll.registry()
                    .register(&mut SourceFd(&fd), token, Interest::READABLE | Interest::WRITABLE)
            {
                panic!("register: {e}");
            }
            conns.push(MioConn {
                ws,
                work,
                left: 0,
                unflushed: false,
            });
        }
        BareMio {
            poll,
            events: Events::with_capacity(1024),
            conns,
        }
    }
}

impl crate::OneThread for BareMio {
    fn run(&mut self, conns: usize, per_conn: usize, window: usize, mut rtts: Option<&mut Vec<Duration>>) {
        let window = window.max(1);
        let conns = conns.min(self.conns.len());
        let mut done = 0;
        let total = conns * per_conn;
        for c in &mut self.conns[..conns] {
            c.left = per_conn;
            c.top_up(window);
        }
        while done < total {
            if let Err(e) = self.poll.poll(&mut self.events, Some(Duration::from_secs(5))) {
                panic!("mio poll: {e}");
            }
            assert!(!self.events.is_empty(), "the broker answers within 5 s");
            for event in &self.events {
                let Some(c) = self.conns.get_mut(event.token().0) else {
                    continue;
                };
                loop {
                    match c.ws.read() {
                        Ok(Message::Text(t)) => {
                            if let Reply::Acked(at) = c.work.reply(t.as_str()) {
                                done += 1;
                                if let Some(r) = rtts.as_deref_mut() {
                                    r.push(at.elapsed());
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) if would_block(&e) => break,
                        Err(e) => panic!("bare mio client lost: {e}"),
                    }
                }
                c.top_up(window);
            }
        }
    }
}

impl MioConn {
    /// Writes sends until `window` are in flight, then one flush for all of them.
    fn top_up(&mut self, window: usize) {
        while self.left > 0 && self.work.in_flight() < window {
            let text = self.work.frame(Instant::now());
            self.left -= 1;
            match self.ws.write(Message::Text(text.into())) {
                Ok(()) => {}
                // tungstenite keeps the frame; the flush below sends it on.
                Err(e) if would_block(&e) => {}
                Err(e) => panic!("bare mio send: {e}"),
            }
            self.unflushed = true;
        }
        if self.unflushed {
            match self.ws.flush() {
                Ok(()) => self.unflushed = false,
                Err(e) if would_block(&e) => {}
                Err(e) => panic!("bare mio flush: {e}"),
            }
        }
    }
}
