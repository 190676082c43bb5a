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
//! at once and pushes to nobody) and waits for each `ack`. Every client's clock
//! for a send starts before the send is encoded and written. The bare clients
//! (`tether_bench::bare`) do the same work as tether inside that time: a fresh id
//! and nonce, the frame encoded with serde, a map of pending sends, a typed parse
//! of each ack, batched flushes. tokio rows: tether-tokio beside the bare
//! tokio-tungstenite client; mio rows: tether-mio's `Reactor` and its
//! `BlockingClient` facade beside a bare mio event loop with tether-mio's
//! WebSocket settings. Every kind is warmed up with at least 5 000 sends, and the
//! kinds take turns going first, round by round.
//! Configurations: 1 or 100 connections, 1 or 100 sends in flight per connection.

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tether_bench::bare::{BareMio, BareTokio};
use tether_bench::hosts::{self, ReactorClients};
use tether_bench::node::NodeRunner;
use tether_bench::OneThread as _;
use tether_broker::{BrokerConfig, BrokerServer, Membership, ServerConfig};
use tether_tokio::Client;

/// Sends of the warm-up before each configuration's rounds, per kind: the
/// seeds' client on Node needs about 5 000 for its JIT to settle.
const WARM_SENDS: usize = 5_000;

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

/// The seeds' client on Node (see `bench/node/runner.ts`).
struct Node(NodeRunner);

impl Node {
    fn start(dir: &str, url: &str, conns: usize) -> Node {
        Node(NodeRunner::start(dir, url, conns))
    }

    fn ask(&mut self, cmd: &str) -> serde_json::Value {
        let line = self.0.ask(cmd);
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

    fn stop(self) {
        self.0.stop();
    }
}

/// tether-mio's `BlockingClient` facade, a reactor thread behind each handle.
mod blocking {
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    use tether_bench::bare::BODY;
    use tether_bench::{member, presence};
    use tether_mio::{BlockingClient, ConnConfig};
    use tether_proto::mesh::handshake::Credentials;
    use tether_proto::mesh::wire::Priority;

    use super::{Run, Shape};

    pub(super) fn connect_tether(url: &str, n: u32) -> BlockingClient {
        let mesh = format!("mio-{n}");
        let mut config = ConnConfig::new(url, Credentials::Member(member(&mesh, n)), presence(n));
        config.seed = Some(u64::from(n));
        match BlockingClient::connect(config) {
            Ok(c) => c,
            Err(e) => panic!("tether-mio client connects: {e}"),
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
}

/// One round of tether-tokio over `clients`, in a task of its own.
///
/// Every kind runs its rounds in a spawned task, as application code does:
/// `block_on`'s own future is woken by another path (a zero-timeout poll of the
/// reactor per wake-up), which would charge a client that is woken by another
/// task, as tether's callers are, for a quirk of the harness.
async fn round_tether(clients: &[Client], shape: Shape) -> Run {
    let clients = clients.to_vec();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let runs = futures_util::future::join_all(clients.iter().map(|c| async move {
            let mut rtts = Vec::new();
            hosts::tokio_run(c, shape.per_conn, shape.in_flight, Some(&mut rtts)).await;
            rtts
        }))
        .await;
        Run {
            ops: shape.per_conn * clients.len(),
            elapsed: start.elapsed(),
            rtts: runs.into_iter().flatten().collect(),
        }
    });
    match task.await {
        Ok(run) => run,
        Err(e) => panic!("tether round: {e}"),
    }
}

/// One round of the bare tokio client over the first `shape.conns` of
/// `bares`, in a task of its own (see `round_tether`).
async fn round_bare(bares: &mut Vec<BareTokio>, shape: Shape) -> Run {
    let mut mine: Vec<BareTokio> = bares.drain(..shape.conns).collect();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let runs = futures_util::future::join_all(mine.iter_mut().map(|b| async move {
            let mut rtts = Vec::new();
            b.run(shape.per_conn, shape.in_flight, Some(&mut rtts)).await;
            rtts
        }))
        .await;
        let run = Run {
            ops: shape.per_conn * runs.len(),
            elapsed: start.elapsed(),
            rtts: runs.into_iter().flatten().collect(),
        };
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

/// One round of a client driven from this thread: `f` records round trips.
fn timed(ops: usize, keep_rtts: bool, f: impl FnOnce(Option<&mut Vec<Duration>>)) -> Run {
    let mut rtts = Vec::new();
    let start = Instant::now();
    f(Some(&mut rtts));
    let elapsed = start.elapsed();
    Run {
        ops,
        elapsed,
        rtts: if keep_rtts { rtts } else { Vec::new() },
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
                    // Every client has a mesh of its own: 100 each of tether,
                    // bare and Node at once (the default bound is 256).
                    max_meshes: 1024,
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
        for n in 1..=max_conns as u32 {
            tethers.push(hosts::tokio_connect(&url, &format!("tether-{n}"), n).await);
            bares.push(BareTokio::connect(&url, &format!("bare-{n}"), n).await);
        }
        let mut node = opts.node.as_deref().map(|dir| Node::start(dir, &url, max_conns));
        for (kind, shape) in &shapes {
            if opts.only.as_deref().is_some_and(|o| o != *kind) || !opts.wants(shape) {
                continue;
            }
            // Warm-up, not counted: at least WARM_SENDS sends per kind (Node's JIT
            // needs about 5 000 to settle).
            let warm = Shape {
                per_conn: (WARM_SENDS / shape.conns).max(shape.per_conn.min(50)),
                ..*shape
            };
            round_bare(&mut bares, warm).await;
            round_tether(&tethers[..shape.conns], warm).await;
            if let Some(node) = node.as_mut() {
                node.round(warm);
            }
            let mut t_runs = Vec::new();
            let mut b_runs = Vec::new();
            let mut n_runs = Vec::new();
            let kinds = if node.is_some() { 3 } else { 2 };
            for round in 0..opts.rounds {
                // Interleaved, rotating which kind goes first.
                for step in 0..kinds {
                    match (round + step) % kinds {
                        0 => b_runs.push(round_bare(&mut bares, *shape).await),
                        1 => t_runs.push(round_tether(&tethers[..shape.conns], *shape).await),
                        _ => {
                            if let Some(node) = node.as_mut() {
                                n_runs.push(node.round(*shape));
                            }
                        }
                    }
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
    let mut reactor = ReactorClients::connect(url, "reactor", max);
    let tethers: Vec<_> = (1..=max).map(|n| blocking::connect_tether(url, n)).collect();
    let mut bare = BareMio::connect(url, "bare-mio", max);
    let mut rows = Vec::new();
    for shape in shapes {
        // 100 × 100 through the facade would take 10 000 threads.
        let facade = shape.conns * shape.in_flight <= 100;
        let warm = Shape {
            per_conn: (WARM_SENDS / shape.conns).max(shape.per_conn.min(50)),
            ..shape
        };
        let (conns, per, window) = (shape.conns, shape.per_conn, shape.in_flight);
        let ops = conns * per;
        let one = window == 1 && conns == 1;
        bare.run(conns, warm.per_conn, window, None);
        reactor.run(conns, warm.per_conn, window, None);
        if facade {
            blocking::round_tether(&tethers[..shape.conns], warm);
        }
        let (mut b_runs, mut r_runs, mut f_runs) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..opts.rounds {
            // Interleaved, rotating which goes first.
            for step in 0..3 {
                match (round + step) % 3 {
                    0 => b_runs.push(timed(ops, one, |r| bare.run(conns, per, window, r))),
                    1 => r_runs.push(timed(ops, one, |r| reactor.run(conns, per, window, r))),
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
    let node = r.node.map_or(String::new(), |n| {
        format!(
            "  node {:.0}/s (tether {:.1}×), rtt p50 {:.1} µs",
            n.throughput,
            t.throughput / n.throughput,
            n.rtt_p50_us
        )
    });
    println!(
        "{:<5} conns {:>3} in-flight {:>3}: tether {:>8.0}/s bare {:>8.0}/s = {:.2}×{rtt}{node}",
        r.host,
        s.conns,
        s.in_flight,
        t.throughput,
        b.throughput,
        t.throughput / b.throughput
    );
}
