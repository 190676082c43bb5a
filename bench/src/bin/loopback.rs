//! Loopback round trips: tether-tokio against a bare tokio-tungstenite client,
//! both talking to the reference broker in this process, A/B interleaved.
//!
//! `cargo run --release -p tether-bench --bin loopback -- [--rounds 5] [--quick]
//! [--only latency|throughput] [--json FILE] [--node bench/node]`; pin latency runs
//! with `taskset -c 0`. With `--node`, the seeds' own client on Node
//! (`bench/node/runner.ts`, prepared by `bench/run.sh`) runs the same workload in
//! the same rounds, against the same broker, and an interop check at the end.
//!
//! Every client sends `send` frames to `*` in a mesh of its own (so the broker acks
//! at once and pushes to nobody) and waits for each `ack`. The bare client sends the
//! very frames tether encodes (a pre-signed hello, then pre-encoded `send`s with
//! unique idempotency ids) and parses each reply with `serde_json::Value`.
//! Configurations: 1 or 100 connections, 1 or 100 sends in flight per connection.

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use tether_bench::{member, presence};
use tether_broker::{BrokerConfig, BrokerServer, Membership, ServerConfig};
use tether_proto::lifecycle::Config;
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::session::SessionConfig;
use tether_proto::mesh::wire::{ClientFrame, Priority, SendFrame};
use tether_tokio::{Client, ClientConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const BODY: &str = "hello from the loopback bench";

/// One configuration of the matrix.
#[derive(Clone, Copy, Debug)]
struct Shape {
    conns: usize,
    in_flight: usize,
    /// Sends per connection per round.
    per_conn: usize,
}

/// What one run of one client kind measured.
#[derive(Clone, Debug, Default)]
struct Run {
    ops: usize,
    elapsed: Duration,
    /// Per-send round trips (only recorded with one in flight).
    rtts: Vec<Duration>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn rtt_quantile(&mut self, q: f64) -> Duration {
        if self.rtts.is_empty() {
            return Duration::ZERO;
        }
        self.rtts.sort_unstable();
        let i = ((self.rtts.len() - 1) as f64 * q).round() as usize;
        self.rtts[i]
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A bare client: the socket, a hello signed before the clock starts, nothing else.
struct Bare {
    ws: Ws,
    mesh: String,
    next: u64,
}

impl Bare {
    async fn connect(url: &str, n: u32) -> Bare {
        let mesh = format!("bare-{n}");
        let me = member(&mesh, n);
        let hello = ClientFrame::Hello(me.hello(&presence(n), unix_ms())).encode();
        let (mut ws, _) =
            match tokio_tungstenite::connect_async_with_config(url, Some(bare_config()), true).await {
                Ok(pair) => pair,
                Err(e) => panic!("bare client connects: {e}"),
            };
        if let Err(e) = ws.send(Message::Text(hello.into())).await {
            panic!("bare hello written: {e}");
        }
        let mut bare = Bare { ws, mesh, next: 0 };
        bare.wait_for("hello_ack").await;
        bare
    }

    /// `count` send frames, encoded like tether's, with fresh idempotency ids.
    fn frames(&mut self, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| {
                self.next += 1;
                send_frame(&format!("{}-{:012x}", self.mesh, self.next))
            })
            .collect()
    }

    /// Waits for the next `ack`.
    async fn next_ack(&mut self) {
        self.wait_for("ack").await;
    }

    /// Reads until a frame of type `kind`, parsing each as the seeds do; an
    /// `error` frame or a lost socket ends the run.
    async fn wait_for(&mut self, kind: &str) {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some(k) if k == kind => return,
                        Some("error") => panic!("bare client refused while waiting for {kind}: {t}"),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("bare client lost while waiting for {kind}: {other:?}"),
            }
        }
    }

    /// One at a time through a channel, the way a client that gives its callers a
    /// handle to a connection task works: the caller hands each frame over (an
    /// mpsc send) and waits for a oneshot reply; the socket side, polled in the
    /// same task, writes, waits for the ack and answers. Measures what that
    /// hand-over costs by itself, with no session behind it.
    async fn run_handed_over(&mut self, frames: Vec<String>) -> Vec<Duration> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, tokio::sync::oneshot::Sender<()>)>(16);
        let socket = async {
            while let Some((frame, done)) = rx.recv().await {
                if let Err(e) = self.ws.send(Message::Text(frame.into())).await {
                    panic!("bare send written: {e}");
                }
                self.next_ack().await;
                let _ = done.send(());
            }
        };
        let caller = async move {
            let mut rtts = Vec::new();
            for frame in frames {
                let start = Instant::now();
                let (done, acked) = tokio::sync::oneshot::channel();
                if tx.send((frame, done)).await.is_err() || acked.await.is_err() {
                    panic!("the socket side stopped");
                }
                rtts.push(start.elapsed());
            }
            rtts
        };
        let ((), rtts) = tokio::join!(socket, caller);
        rtts
    }

    async fn run(&mut self, frames: Vec<String>, in_flight: usize) -> Vec<Duration> {
        let mut rtts = Vec::new();
        if in_flight <= 1 {
            for frame in frames {
                let start = Instant::now();
                if let Err(e) = self.ws.send(Message::Text(frame.into())).await {
                    panic!("bare send written: {e}");
                }
                self.next_ack().await;
                rtts.push(start.elapsed());
            }
            return rtts;
        }
        let total = frames.len();
        let mut frames = frames.into_iter();
        let mut sent = 0;
        for frame in frames.by_ref().take(in_flight) {
            sent += 1;
            if let Err(e) = self.ws.feed(Message::Text(frame.into())).await {
                panic!("bare send written: {e}");
            }
        }
        if let Err(e) = self.ws.flush().await {
            panic!("bare flush: {e}");
        }
        let mut acked = 0;
        while acked < total {
            self.next_ack().await;
            acked += 1;
            if let Some(frame) = frames.next() {
                sent += 1;
                if let Err(e) = self.ws.send(Message::Text(frame.into())).await {
                    panic!("bare send written: {e}");
                }
            }
        }
        debug_assert_eq!(sent, total);
        rtts
    }
}

/// The seeds' client on Node, driven line by line (see `bench/node/runner.ts`).
struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Node {
    fn start(dir: &str, url: &str, conns: usize) -> Node {
        let mut child = match Command::new("node")
            .args(["--import", "tsx", "runner.ts", url, &conns.to_string()])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start node in {dir}: {e}"),
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("node's pipes");
        };
        let mut node = Node {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let ready = node.line();
        assert_eq!(ready.trim(), "ready", "the Node runner connects its clients");
        node
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => line,
            other => panic!("the Node runner stopped: {other:?}"),
        }
    }

    fn ask(&mut self, cmd: &str) -> serde_json::Value {
        if let Err(e) = writeln!(self.stdin, "{cmd}") {
            panic!("the Node runner stopped: {e}");
        }
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("Node runner answered {line:?}: {e}"))
    }

    fn round(&mut self, shape: Shape) -> Summary {
        let v = self.ask(&format!(
            "round {} {} {}",
            shape.conns, shape.in_flight, shape.per_conn
        ));
        Summary {
            throughput: v["throughput"].as_f64().unwrap_or(0.0),
            rtt_p50_us: v["rtt_p50_us"].as_f64().unwrap_or(0.0),
            rtt_p99_us: v["rtt_p99_us"].as_f64().unwrap_or(0.0),
        }
    }

    fn stop(mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// The blocking host (tether-mio) beside a bare blocking tungstenite client.
mod blocking {
    use std::net::TcpStream;
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    use tether_bench::{member, presence};
    use tether_mio::{BlockingClient, ConnConfig, ConnId, Reactor};
    use tether_proto::lifecycle::Status;
    use tether_proto::mesh::handshake::Credentials;
    use tether_proto::mesh::session::{OpId, Outgoing, SessionEvent};
    use tether_proto::mesh::wire::{ClientFrame, Priority};
    use tungstenite::stream::MaybeTlsStream;
    use tungstenite::{Message, WebSocket};

    use super::{Run, Shape, BODY};

    pub(super) fn connect_tether(url: &str, n: u32) -> BlockingClient {
        let mesh = format!("mio-{n}");
        let mut config = ConnConfig::new(url, Credentials::Member(member(&mesh, n)), presence(n));
        config.seed = Some(u64::from(n));
        match BlockingClient::connect(config) {
            Ok(c) => c,
            Err(e) => panic!("tether-mio client connects: {e}"),
        }
    }

    /// tether-mio's `Reactor` driven from the caller's own thread: the event-loop
    /// API a mio program uses, which pipelines without threads.
    pub(super) struct ReactorClients {
        reactor: Reactor,
        conns: Vec<ConnId>,
    }

    pub(super) fn connect_reactor(url: &str, count: u32) -> ReactorClients {
        let mut reactor = match Reactor::new() {
            Ok(r) => r,
            Err(e) => panic!("reactor: {e}"),
        };
        let conns: Vec<ConnId> = (1..=count)
            .map(|n| {
                let mesh = format!("reactor-{n}");
                let mut config = ConnConfig::new(url, Credentials::Member(member(&mesh, n)), presence(n));
                config.seed = Some(u64::from(n));
                match reactor.add(config) {
                    Ok(id) => id,
                    Err(e) => panic!("reactor connection: {e}"),
                }
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !conns.iter().all(|&c| reactor.status(c) == Some(Status::Open)) {
            assert!(Instant::now() < deadline, "reactor connections open within 30 s");
            if let Err(e) = reactor.run_once(Some(Duration::from_millis(100))) {
                panic!("reactor turn: {e}");
            }
            reactor.drain_events().for_each(drop);
        }
        ReactorClients { reactor, conns }
    }

    impl ReactorClients {
        /// Sends one frame on connection `conn`; operation ids are per connection.
        fn send(&mut self, conn: usize) -> (ConnId, OpId) {
            let id = self.conns[conn];
            match self.reactor.send(
                self.conns[conn],
                Outgoing::new("*", BODY).priority(Priority::Next),
            ) {
                Ok(op) => (id, op),
                Err(e) => panic!("reactor send: {e}"),
            }
        }

        /// One round over the first `shape.conns` connections, all from this thread.
        pub(super) fn round(&mut self, shape: Shape) -> Run {
            let conns = shape.conns.min(self.conns.len());
            let total = shape.per_conn * conns;
            let mut left = vec![shape.per_conn; conns];
            let mut started: std::collections::HashMap<(ConnId, OpId), (usize, Instant)> =
                std::collections::HashMap::new();
            let mut rtts = Vec::new();
            let start = Instant::now();
            for (conn, left) in left.iter_mut().enumerate() {
                for _ in 0..shape.in_flight.min(*left) {
                    *left -= 1;
                    let id = self.send(conn);
                    started.insert(id, (conn, Instant::now()));
                }
            }
            let mut done = 0;
            while done < total {
                if let Err(e) = self.reactor.run_once(Some(Duration::from_secs(5))) {
                    panic!("reactor turn: {e}");
                }
                while let Some((from, event)) = self.reactor.poll_event() {
                    let SessionEvent::Resolved { id, result } = event else {
                        continue;
                    };
                    if let Err(e) = result {
                        panic!("reactor send acked: {e}");
                    }
                    let Some((conn, at)) = started.remove(&(from, id)) else {
                        continue;
                    };
                    done += 1;
                    if shape.in_flight <= 1 {
                        rtts.push(at.elapsed());
                    }
                    if left[conn] > 0 {
                        left[conn] -= 1;
                        let id = self.send(conn);
                        started.insert(id, (conn, Instant::now()));
                    }
                }
            }
            Run {
                ops: total,
                elapsed: start.elapsed(),
                rtts,
            }
        }

        pub(super) fn close(mut self) {
            self.reactor.close_all();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline
                && self
                    .conns
                    .iter()
                    .any(|&c| self.reactor.status(c).is_some_and(|s| s != Status::Closed))
            {
                let _ = self.reactor.run_once(Some(Duration::from_millis(50)));
                self.reactor.drain_events().for_each(drop);
            }
        }
    }

    /// A bare blocking client: tungstenite on a std socket, a pre-signed hello.
    pub(super) struct BareBlocking {
        ws: WebSocket<MaybeTlsStream<TcpStream>>,
        mesh: String,
        next: u64,
    }

    impl BareBlocking {
        pub(super) fn connect(url: &str, n: u32) -> BareBlocking {
            let mesh = format!("bare-blocking-{n}");
            let me = member(&mesh, n);
            let hello = ClientFrame::Hello(me.hello(&presence(n), super::unix_ms())).encode();
            let (mut ws, _) =
                match tungstenite::client::connect_with_config(url, Some(super::bare_config()), 3) {
                    Ok(pair) => pair,
                    Err(e) => panic!("bare blocking client connects: {e}"),
                };
            if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                let _ = s.set_nodelay(true);
            }
            if let Err(e) = ws.send(Message::Text(hello.into())) {
                panic!("bare blocking hello: {e}");
            }
            let mut me = BareBlocking { ws, mesh, next: 0 };
            me.wait_for("hello_ack");
            me
        }

        fn wait_for(&mut self, kind: &str) {
            loop {
                match self.ws.read() {
                    Ok(Message::Text(t)) => {
                        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                        if v["type"].as_str() == Some(kind) {
                            return;
                        }
                        if v["type"].as_str() == Some("error") {
                            panic!("bare blocking client refused: {t}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => panic!("bare blocking client lost: {e}"),
                }
            }
        }

        fn frame(&mut self) -> String {
            self.next += 1;
            super::send_frame(&format!("{}-{:012x}", self.mesh, self.next))
        }

        fn run(&mut self, count: usize, in_flight: usize, barrier: &Barrier) -> Vec<Duration> {
            let frames: Vec<String> = (0..count).map(|_| self.frame()).collect();
            let mut rtts = Vec::new();
            barrier.wait();
            if in_flight <= 1 {
                for f in frames {
                    let start = Instant::now();
                    if let Err(e) = self.ws.send(Message::Text(f.into())) {
                        panic!("bare blocking send: {e}");
                    }
                    self.wait_for("ack");
                    rtts.push(start.elapsed());
                }
                return rtts;
            }
            let mut frames = frames.into_iter();
            for f in frames.by_ref().take(in_flight) {
                if let Err(e) = self.ws.write(Message::Text(f.into())) {
                    panic!("bare blocking send: {e}");
                }
            }
            if let Err(e) = self.ws.flush() {
                panic!("bare blocking flush: {e}");
            }
            for _ in 0..count {
                self.wait_for("ack");
                if let Some(f) = frames.next() {
                    if let Err(e) = self.ws.send(Message::Text(f.into())) {
                        panic!("bare blocking send: {e}");
                    }
                }
            }
            rtts
        }
    }

    fn tether_sequential(client: &BlockingClient, count: usize, barrier: &Barrier) -> Vec<Duration> {
        barrier.wait();
        (0..count)
            .map(|_| {
                let start = Instant::now();
                if let Err(e) = client.send("*", BODY, Priority::Next) {
                    panic!("tether-mio send acked: {e}");
                }
                start.elapsed()
            })
            .collect()
    }

    /// One round: every connection on its own thread; with `in_flight` > 1 on one
    /// connection, tether-mio gets that many threads sharing the handle.
    pub(super) fn round_tether(clients: &[BlockingClient], shape: Shape) -> Run {
        let threads = if shape.in_flight > 1 {
            shape.in_flight
        } else {
            clients.len()
        };
        let per_thread = shape.per_conn * clients.len() / threads;
        let barrier = Barrier::new(threads + 1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let client = &clients[i % clients.len()];
                    let barrier = &barrier;
                    scope.spawn(move || tether_sequential(client, per_thread, barrier))
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            let rtts: Vec<Duration> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect();
            Run {
                ops: per_thread * threads,
                elapsed: start.elapsed(),
                rtts: if shape.in_flight > 1 { Vec::new() } else { rtts },
            }
        })
    }

    pub(super) fn round_bare(bares: &mut [BareBlocking], shape: Shape) -> Run {
        let barrier = Barrier::new(bares.len() + 1);
        let ops = shape.per_conn * bares.len();
        std::thread::scope(|scope| {
            let handles: Vec<_> = bares
                .iter_mut()
                .map(|b| {
                    let barrier = &barrier;
                    scope.spawn(move || b.run(shape.per_conn, shape.in_flight, barrier))
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            let rtts: Vec<Duration> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect();
            Run {
                ops,
                elapsed: start.elapsed(),
                rtts,
            }
        })
    }
}

/// The bare clients' WebSocket settings: tungstenite's defaults but tether's read
/// buffer. tungstenite zero-fills its whole read buffer (128 KiB by default) before
/// every read, which would make any client with a small buffer look fast; with the
/// same buffer on both sides the ratio measures what tether adds, not a setting.
fn bare_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(tether_tokio::DEFAULT_READ_BUFFER_SIZE)
}

/// A `send` frame exactly as tether encodes one, with idempotency id `id`.
fn send_frame(id: &str) -> String {
    ClientFrame::Send(SendFrame {
        id: id.to_owned(),
        target_spec: "*".to_owned(),
        priority: Priority::Next,
        nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ciphertext: "aGVsbG8gZnJvbSB0aGUgbG9vcGJhY2sgYmVuY2g=".to_owned(),
        client_message_id: Some(id.to_owned()),
        request_fingerprint: None,
        mentions: None,
        reply_to_id: None,
        body_version: None,
    })
    .encode()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn tether_connect(url: &str, n: u32) -> Client {
    let mesh = format!("tether-{n}");
    let mut config = ClientConfig::new(url, Credentials::Member(member(&mesh, n)), presence(n));
    config.session = SessionConfig::new(Config::new(url));
    config.seed = Some(u64::from(n));
    match Client::connect(config).await {
        Ok(c) => c,
        Err(e) => panic!("tether client connects: {e}"),
    }
}

async fn tether_run(client: &Client, count: usize, in_flight: usize) -> Vec<Duration> {
    let mut rtts = Vec::new();
    if in_flight <= 1 {
        for _ in 0..count {
            let start = Instant::now();
            if let Err(e) = client.send("*", BODY, Priority::Next).await {
                panic!("tether send acked: {e}");
            }
            rtts.push(start.elapsed());
        }
        return rtts;
    }
    let mut pending = FuturesUnordered::new();
    let mut started = 0;
    while started < count.min(in_flight) {
        pending.push(client.send("*", BODY, Priority::Next));
        started += 1;
    }
    while let Some(result) = pending.next().await {
        if let Err(e) = result {
            panic!("tether send acked: {e}");
        }
        if started < count {
            pending.push(client.send("*", BODY, Priority::Next));
            started += 1;
        }
    }
    rtts
}

/// One round of tether over `clients`, in a task of its own.
///
/// Both kinds run their rounds in a spawned task, as application code does:
/// `block_on`'s own future is woken by another path (a zero-timeout poll of the
/// reactor per wake-up), which would charge a client that is woken by another
/// task, as tether's callers are, for a quirk of the harness.
async fn round_tether(clients: &[Client], shape: Shape) -> Run {
    let clients = clients.to_vec();
    match tokio::spawn(async move { round_tether_here(&clients, shape).await }).await {
        Ok(run) => run,
        Err(e) => panic!("tether round: {e}"),
    }
}

/// One round of the bare client over the first `conns` of `bares`, in a task of
/// its own (see `round_tether`); with `handed_over`, one at a time through a
/// channel (see `Bare::run_handed_over`).
async fn round_bare(bares: &mut Vec<Bare>, shape: Shape, handed_over: bool) -> Run {
    let mut mine: Vec<Bare> = bares.drain(..shape.conns).collect();
    let task = tokio::spawn(async move {
        let run = round_bare_here(&mut mine, shape, handed_over).await;
        (mine, run)
    });
    match task.await {
        Ok((mine, run)) => {
            bares.splice(0..0, mine);
            run
        }
        Err(e) => panic!("bare round: {e}"),
    }
}

/// One round of one kind over all its connections, concurrently.
async fn round_tether_here(clients: &[Client], shape: Shape) -> Run {
    let start = Instant::now();
    let runs = futures_util::future::join_all(
        clients
            .iter()
            .map(|c| tether_run(c, shape.per_conn, shape.in_flight)),
    )
    .await;
    Run {
        ops: shape.per_conn * clients.len(),
        elapsed: start.elapsed(),
        rtts: runs.into_iter().flatten().collect(),
    }
}

async fn round_bare_here(bares: &mut [Bare], shape: Shape, handed_over: bool) -> Run {
    // Frames are encoded before the clock starts: the bare client does no JSON work
    // on the way out.
    let work: Vec<(&mut Bare, Vec<String>)> = bares
        .iter_mut()
        .map(|b| {
            let f = b.frames(shape.per_conn);
            (b, f)
        })
        .collect();
    let start = Instant::now();
    let runs = futures_util::future::join_all(work.into_iter().map(|(b, frames)| async move {
        if handed_over {
            b.run_handed_over(frames).await
        } else {
            b.run(frames, shape.in_flight).await
        }
    }))
    .await;
    Run {
        ops: shape.per_conn * runs.len(),
        elapsed: start.elapsed(),
        rtts: runs.into_iter().flatten().collect(),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Medians over the rounds of one shape, for one kind.
#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    throughput: f64,
    rtt_p50_us: f64,
    rtt_p99_us: f64,
}

fn summarise(runs: &mut [Run]) -> Summary {
    Summary {
        throughput: median(runs.iter().map(Run::throughput).collect()),
        rtt_p50_us: median(
            runs.iter_mut()
                .map(|r| r.rtt_quantile(0.5).as_secs_f64() * 1e6)
                .collect(),
        ),
        rtt_p99_us: median(
            runs.iter_mut()
                .map(|r| r.rtt_quantile(0.99).as_secs_f64() * 1e6)
                .collect(),
        ),
    }
}

struct Options {
    rounds: usize,
    quick: bool,
    only: Option<String>,
    json: Option<String>,
    node: Option<String>,
    /// Only the configurations `CONNSxIN_FLIGHT` (e.g. `100x1`), for profiling.
    shape: Option<(usize, usize)>,
}

impl Options {
    fn wants(&self, shape: &Shape) -> bool {
        self.shape
            .is_none_or(|(c, f)| c == shape.conns && f == shape.in_flight)
    }
}

fn options() -> Options {
    let mut o = Options {
        rounds: 5,
        quick: false,
        only: None,
        json: None,
        node: None,
        shape: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => o.rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--quick" => o.quick = true,
            "--only" => o.only = args.next(),
            "--json" => o.json = args.next(),
            "--node" => o.node = args.next(),
            "--shape" => {
                o.shape = args.next().and_then(|v| {
                    let (c, f) = v.split_once('x')?;
                    Some((c.parse().ok()?, f.parse().ok()?))
                });
                if o.shape.is_none() {
                    eprintln!("--shape wants CONNSxIN_FLIGHT, e.g. 100x1");
                    std::process::exit(2);
                }
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    o
}

fn start_broker() -> String {
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("broker")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("broker runtime: {e}"),
        };
        rt.block_on(async move {
            let config = ServerConfig {
                broker: BrokerConfig {
                    membership: Membership::Open,
                    ..BrokerConfig::default()
                },
                ..ServerConfig::default()
            };
            let handle = match BrokerServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), None).await
            {
                Ok(h) => h,
                Err(e) => panic!("broker starts: {e}"),
            };
            let _ = tx.send(handle.url());
            std::future::pending::<()>().await;
        });
    });
    match rx.recv() {
        Ok(url) => url,
        Err(e) => panic!("broker url: {e}"),
    }
}

fn main() {
    let opts = options();
    let url = start_broker();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("client runtime: {e}"),
    };
    let scale = if opts.quick { 10 } else { 1 };
    let shapes: Vec<(&str, Shape)> = vec![
        (
            "latency",
            Shape {
                conns: 1,
                in_flight: 1,
                per_conn: 2000 / scale,
            },
        ),
        (
            "throughput",
            Shape {
                conns: 1,
                in_flight: 100,
                per_conn: 20_000 / scale,
            },
        ),
        (
            "throughput",
            Shape {
                conns: 100,
                in_flight: 1,
                per_conn: 100 / scale,
            },
        ),
        (
            "throughput",
            Shape {
                conns: 100,
                in_flight: 100,
                per_conn: 200 / scale,
            },
        ),
    ];
    let mut rows = Vec::new();
    let mut interop = serde_json::Value::Null;
    rt.block_on(async {
        let max_conns = shapes.iter().map(|(_, s)| s.conns).max().unwrap_or(1);
        let mut tethers = Vec::new();
        let mut bares = Vec::new();
        for n in 0..max_conns as u32 {
            tethers.push(tether_connect(&url, n + 1).await);
            bares.push(Bare::connect(&url, n + 1).await);
        }
        let mut node = opts.node.as_deref().map(|dir| Node::start(dir, &url, max_conns));
        for (kind, shape) in &shapes {
            if opts.only.as_deref().is_some_and(|o| o != *kind) || !opts.wants(shape) {
                continue;
            }
            // Warm-up round, not counted.
            let warm = Shape {
                per_conn: shape.per_conn.min(50),
                ..*shape
            };
            round_bare(&mut bares, warm, false).await;
            round_tether(&tethers[..shape.conns], warm).await;
            if let Some(node) = node.as_mut() {
                node.round(warm);
            }
            let mut t_runs = Vec::new();
            let mut b_runs = Vec::new();
            let mut n_runs = Vec::new();
            let mut h_runs = Vec::new();
            let one_at_a_time = shape.conns == 1 && shape.in_flight == 1;
            for round in 0..opts.rounds {
                if one_at_a_time {
                    h_runs.push(round_bare(&mut bares, *shape, true).await);
                }
                // A/B interleaved, alternating which goes first.
                if round % 2 == 0 {
                    b_runs.push(round_bare(&mut bares, *shape, false).await);
                    t_runs.push(round_tether(&tethers[..shape.conns], *shape).await);
                } else {
                    t_runs.push(round_tether(&tethers[..shape.conns], *shape).await);
                    b_runs.push(round_bare(&mut bares, *shape, false).await);
                }
                if let Some(node) = node.as_mut() {
                    n_runs.push(node.round(*shape));
                }
            }
            let row = Row {
                host: "tokio",
                shape: *shape,
                tether: summarise(&mut t_runs),
                bare: summarise(&mut b_runs),
                node: (!n_runs.is_empty()).then(|| Summary {
                    throughput: median(n_runs.iter().map(|r| r.throughput).collect()),
                    rtt_p50_us: median(n_runs.iter().map(|r| r.rtt_p50_us).collect()),
                    rtt_p99_us: median(n_runs.iter().map(|r| r.rtt_p99_us).collect()),
                }),
                handed_over: (!h_runs.is_empty()).then(|| summarise(&mut h_runs)),
            };
            print_row(&row);
            rows.push(row);
        }
        if let Some(mut node) = node {
            interop = node.ask("interop");
            println!("seed client interop: {interop}");
            node.stop();
        }
        for c in &tethers {
            c.close().await;
        }
    });
    for kind in ["blocking-latency", "blocking"] {
        if opts.only.as_deref().is_none_or(|o| o == kind) {
            rows.extend(blocking_rows(&url, &opts, scale, kind));
        }
    }
    if let Some(path) = opts.json {
        let summary = |s: &Summary| serde_json::json!({"throughput": s.throughput, "rtt_p50_us": s.rtt_p50_us, "rtt_p99_us": s.rtt_p99_us});
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "host": r.host,
                    "conns": r.shape.conns, "in_flight": r.shape.in_flight, "per_conn": r.shape.per_conn,
                    "rounds": opts.rounds,
                    "tether": summary(&r.tether),
                    "bare": summary(&r.bare),
                    "node": r.node.as_ref().map(summary),
                    "bare_handed_over": r.handed_over.as_ref().map(summary),
                })
            })
            .collect();
        let out = serde_json::json!({"rows": json, "interop": interop});
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap_or_default()) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}

/// tether-mio beside a bare blocking tungstenite client, same broker, A/B
/// interleaved, in two forms: the `Reactor` driven from the caller's own thread
/// (how a mio program uses it; it pipelines without threads) and the
/// `BlockingClient` facade, whose calls each hand over to its reactor thread and
/// back. Pipelining the facade takes threads: 100 in flight on one connection is
/// 100 threads sharing one handle (the bare client pipelines from its one
/// thread); 100 connections run a thread each on both sides, except the reactor,
/// which runs every connection from one thread. `kind` is "blocking-latency"
/// (1 × 1, to be pinned to one core) or "blocking" (the rest).
fn blocking_rows(url: &str, opts: &Options, scale: usize, kind: &str) -> Vec<Row> {
    let all = [(1, 1, 2000), (1, 100, 20_000), (100, 1, 100), (100, 100, 200)];
    let shapes: Vec<Shape> = all
        .iter()
        .map(|&(conns, in_flight, per_conn)| Shape {
            conns,
            in_flight,
            per_conn: per_conn / scale,
        })
        .filter(|s| (s.conns == 1 && s.in_flight == 1) == (kind == "blocking-latency") && opts.wants(s))
        .collect();
    if shapes.is_empty() {
        return Vec::new();
    }
    let max = shapes.iter().map(|s| s.conns).max().unwrap_or(1) as u32;
    let mut reactor = blocking::connect_reactor(url, max);
    let tethers: Vec<_> = (1..=max).map(|n| blocking::connect_tether(url, n)).collect();
    let mut bares: Vec<_> = (1..=max)
        .map(|n| blocking::BareBlocking::connect(url, n))
        .collect();
    let mut rows = Vec::new();
    for shape in shapes {
        // 100 × 100 through the facade would take 10 000 threads.
        let facade = shape.conns * shape.in_flight <= 100;
        let warm = Shape {
            per_conn: shape.per_conn.min(50),
            ..shape
        };
        blocking::round_bare(&mut bares[..shape.conns], warm);
        reactor.round(warm);
        if facade {
            blocking::round_tether(&tethers[..shape.conns], warm);
        }
        let (mut b_runs, mut r_runs, mut f_runs) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..opts.rounds {
            // A/B interleaved, rotating which goes first.
            for step in 0..3 {
                match (round + step) % 3 {
                    0 => b_runs.push(blocking::round_bare(&mut bares[..shape.conns], shape)),
                    1 => r_runs.push(reactor.round(shape)),
                    _ if facade => f_runs.push(blocking::round_tether(&tethers[..shape.conns], shape)),
                    _ => {}
                }
            }
        }
        let bare = summarise(&mut b_runs);
        let mut kinds = vec![("mio Reactor", r_runs)];
        if facade {
            kinds.push(("mio BlockingClient", f_runs));
        }
        for (host, mut runs) in kinds {
            let row = Row {
                host,
                shape,
                tether: summarise(&mut runs),
                bare,
                node: None,
                handed_over: None,
            };
            print_row(&row);
            rows.push(row);
        }
    }
    reactor.close();
    for t in &tethers {
        t.close();
    }
    rows
}

/// One configuration's medians, per client kind.
struct Row {
    host: &'static str,
    shape: Shape,
    tether: Summary,
    bare: Summary,
    node: Option<Summary>,
    /// The bare client one at a time through a channel (1 × 1 only).
    handed_over: Option<Summary>,
}

fn print_row(r: &Row) {
    let (s, t, b) = (r.shape, r.tether, r.bare);
    let rtt = if s.in_flight == 1 && s.conns == 1 {
        format!(
            "  rtt p50 tether {:.1} µs / bare {:.1} µs = {:.2}×; p99 {:.1} / {:.1} µs",
            t.rtt_p50_us,
            b.rtt_p50_us,
            t.rtt_p50_us / b.rtt_p50_us,
            t.rtt_p99_us,
            b.rtt_p99_us
        )
    } else {
        String::new()
    };
    let handed = r.handed_over.map_or(String::new(), |h| {
        format!(
            "  bare through a channel: rtt p50 {:.1} µs = {:.2}× bare",
            h.rtt_p50_us,
            h.rtt_p50_us / b.rtt_p50_us
        )
    });
    let node = r.node.map_or(String::new(), |n| {
        format!(
            "  node {:.0}/s (tether {:.1}×), rtt p50 {:.1} µs",
            n.throughput,
            t.throughput / n.throughput,
            n.rtt_p50_us
        )
    });
    println!(
        "{:<5} conns {:>3} in-flight {:>3}: tether {:>8.0}/s bare {:>8.0}/s = {:.2}×{rtt}{handed}{node}",
        r.host,
        s.conns,
        s.in_flight,
        t.throughput,
        b.throughput,
        t.throughput / b.throughput
    );
}
