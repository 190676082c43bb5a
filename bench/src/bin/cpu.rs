//! Client CPU per acked send: each client in a process of its own against one
//! tether broker in another, measured by getrusage(2) of the client process.
//!
//! ```text
//! cpu [--rounds 5] [--sends 20000] [--window 64] [--warmup 5000]
//!     [--broker target/release/tether] [--node bench/node] [--json FILE]
//!     [--icount N] [--kinds tether-tokio,bare-tokio,...]
//! ```
//!
//! Starts `tether broker --open` once, then in every round runs each client kind
//! as a child process (`cpu client KIND URL SENDS WINDOW WARMUP TAG`), in an
//! order rotated by one each round: the child connects, makes `WARMUP` sends
//! (steady state: allocator, caches, Node's JIT), then reads its own CPU time
//! (user + system, `RUSAGE_SELF`), makes `SENDS` sends with at most `WINDOW`
//! waiting for their ack, and reads it again. Every send goes to `*` in a mesh
//! of its own (acked at once, pushed to nobody). Kinds: tether-tokio, tether-mio
//! (`Reactor` from the caller's thread), the bare tokio-tungstenite client and
//! the bare mio event loop (`tether_bench::bare`: ids, nonces, encoding, a map
//! of pending sends, a typed parse of each ack, batched flushes), and with
//! `--node` the seeds' client on Node (`bench/node/runner.ts`, whose
//! `process.cpuUsage()` is the same getrusage). Medians over the rounds.
//!
//! With `--icount N`, each Rust kind also runs once under callgrind, counting
//! the instructions of `N` measured sends: CPU time moves with the machine's
//! load, instruction counts barely do.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tether_bench::bare::{BareMio, BareTokio};
use tether_bench::hosts::{self, ReactorClients};
use tether_bench::node::NodeRunner;
use tether_bench::OneThread as _;

/// The client kinds, in the first round's order.
const KINDS: &[&str] = &["tether-tokio", "tether-mio", "bare-tokio", "bare-mio", "node"];

/// User + system CPU time of this process so far.
#[allow(unsafe_code)]
fn cpu_time() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value (integers and timevals), and
    // getrusage writes a whole `rusage` into the pointer it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF) cannot fail");
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What one measured run cost, as the child prints it.
fn report(cpu: Duration, wall: Duration, sends: usize) -> String {
    serde_json::json!({
        "cpu_us": cpu.as_secs_f64() * 1e6,
        "wall_us": wall.as_secs_f64() * 1e6,
        "sends": sends,
    })
    .to_string()
}

/// The measured part of a child: under `--icount`, callgrind counts only what
/// runs inside this function (`--toggle-collect='cpu::measured_section*'`).
#[inline(never)]
fn measured_section<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Measures `run` (called once with the warm-up count, then with `sends`).
fn measured(sends: usize, warmup: usize, mut run: impl FnMut(usize)) -> String {
    run(warmup);
    let (c0, w0) = (cpu_time(), Instant::now());
    measured_section(|| run(sends));
    let (cpu, wall) = (cpu_time() - c0, w0.elapsed());
    report(cpu, wall, sends)
}

/// The child: one client of `kind`, warmed up, then measured.
fn client(kind: &str, url: &str, sends: usize, window: usize, warmup: usize, tag: &str) -> String {
    let mesh = format!("cpu-{kind}-{tag}");
    let tokio_rt = || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("client runtime: {e}"),
    };
    match kind {
        "tether-tokio" => {
            let rt = tokio_rt();
            let client = rt.block_on(hosts::tokio_connect(url, &mesh, 1));
            // Each run in a spawned task, as application code runs: block_on's own
            // future is woken through a zero-timeout poll of the reactor.
            let line = measured(sends, warmup, |n| {
                let c = client.clone();
                if let Err(e) =
                    rt.block_on(rt.spawn(async move { hosts::tokio_run(&c, n, window, None).await }))
                {
                    panic!("run: {e}");
                }
            });
            rt.block_on(client.close());
            line
        }
        "bare-tokio" => {
            let rt = tokio_rt();
            let mut bare = Some(rt.block_on(BareTokio::connect(url, &mesh, 1)));
            measured(sends, warmup, |n| {
                let Some(mut b) = bare.take() else {
                    return;
                };
                match rt.block_on(rt.spawn(async move {
                    b.run(n, window, None).await;
                    b
                })) {
                    Ok(b) => bare = Some(b),
                    Err(e) => panic!("run: {e}"),
                }
            })
        }
        "tether-mio" => {
            let mut r = ReactorClients::connect(url, &mesh, 1);
            let line = measured(sends, warmup, |n| r.run(1, n, window, None));
            r.close();
            line
        }
        "bare-mio" => {
            let mut b = BareMio::connect(url, &mesh, 1);
            measured(sends, warmup, |n| b.run(1, n, window, None))
        }
        other => panic!("unknown client kind {other:?}; kinds: {}", KINDS.join(", ")),
    }
}

/// The seeds' client on Node, as a child of its own (see `bench/node/runner.ts`).
fn node(dir: &str, url: &str, sends: usize, window: usize, warmup: usize) -> String {
    let mut node = NodeRunner::start(dir, url, 1);
    node.ask(&format!("cpu {window} {warmup}"));
    let out = node.ask(&format!("cpu {window} {sends}"));
    node.stop();
    out
}

/// One child of `kind`; its JSON line.
fn run_child(kind: &str, url: &str, opts: &Options, round: usize) -> serde_json::Value {
    let line = if kind == "node" {
        node(
            opts.node.as_deref().unwrap_or("bench/node"),
            url,
            opts.sends,
            opts.window,
            opts.warmup,
        )
    } else {
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => panic!("own path: {e}"),
        };
        let out = match Command::new(exe)
            .args([
                "client",
                kind,
                url,
                &opts.sends.to_string(),
                &opts.window.to_string(),
                &opts.warmup.to_string(),
                &round.to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
        {
            Ok(o) if o.status.success() => o,
            Ok(o) => panic!("{kind} client failed: {}", o.status),
            Err(e) => panic!("cannot start the {kind} client: {e}"),
        };
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{kind} answered {line:?}: {e}"))
}

/// Instructions per acked send of one Rust client kind, by callgrind: the child
/// run once under valgrind, counting only [`measured_section`] (`n` sends after
/// the warm-up). User-space instructions of the client process only; the
/// kernel's share of a send (its system calls) is not in them.
fn icount_child(kind: &str, url: &str, opts: &Options, n: usize) -> f64 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => panic!("own path: {e}"),
    };
    let out = std::env::temp_dir().join(format!("tether-cpu-{kind}-{}.callgrind", std::process::id()));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--toggle-collect=cpu::measured_section*")
        .arg(exe)
        .args([
            "client",
            kind,
            url,
            &n.to_string(),
            &opts.window.to_string(),
            &opts.warmup.min(2000).to_string(),
            "icount",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("valgrind {kind}: {other:?} (is valgrind installed?)"),
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let total: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    total / n as f64
}

struct Options {
    icount: Option<usize>,
    rounds: usize,
    sends: usize,
    window: usize,
    warmup: usize,
    broker: String,
    node: Option<String>,
    json: Option<String>,
    kinds: Vec<String>,
}

fn options(args: &[String]) -> Options {
    let mut o = Options {
        icount: None,
        rounds: 5,
        sends: 20_000,
        window: 64,
        warmup: 5_000,
        broker: "target/release/tether".into(),
        node: None,
        json: None,
        kinds: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--rounds" => o.rounds = value().parse().unwrap_or(5),
            "--sends" => o.sends = value().parse().unwrap_or(20_000),
            "--window" => o.window = value().parse().unwrap_or(64),
            "--warmup" => o.warmup = value().parse().unwrap_or(5_000),
            "--broker" => o.broker = value(),
            "--node" => o.node = Some(value()),
            "--json" => o.json = Some(value()),
            "--icount" => o.icount = value().parse().ok(),
            "--kinds" => o.kinds = value().split(',').map(str::to_owned).collect(),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if o.kinds.is_empty() {
        o.kinds = KINDS
            .iter()
            .filter(|k| **k != "node" || o.node.is_some())
            .map(|k| (*k).to_owned())
            .collect();
    }
    o
}

/// `tether broker --open` on a free port, in its own process; its URL.
fn start_broker(path: &str) -> (std::process::Child, String) {
    let mut child = match Command::new(path)
        .args(["broker", "--open", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot start {path} broker (build it: cargo build --release -p tether-cli): {e}"),
    };
    let Some(stderr) = child.stderr.take() else {
        panic!("the broker's stderr");
    };
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(rest) = l.strip_prefix("broker listening on ") {
                    break rest.split_whitespace().next().unwrap_or_default().to_owned();
                }
            }
            other => panic!("the broker stopped before listening: {other:?}"),
        }
    };
    // Keep reading its stderr, or a full pipe would stop it at its next log line.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        let [_, kind, url, sends, window, warmup, tag] = args.as_slice() else {
            eprintln!("usage: cpu client KIND URL SENDS WINDOW WARMUP TAG");
            std::process::exit(2);
        };
        let n = |s: &str| s.parse::<usize>().unwrap_or(0);
        println!("{}", client(kind, url, n(sends), n(window), n(warmup), tag));
        return;
    }
    let opts = options(&args);
    let (mut broker, url) = start_broker(&opts.broker);
    let mut per_kind: Vec<Vec<serde_json::Value>> = vec![Vec::new(); opts.kinds.len()];
    for round in 0..opts.rounds {
        let k = opts.kinds.len();
        for step in 0..k {
            let i = (round + step) % k;
            let v = run_child(&opts.kinds[i], &url, &opts, round);
            eprintln!(
                "round {round} {:<13} {:.3} µs CPU per acked send ({:.0} sends/s)",
                opts.kinds[i],
                v["cpu_us"].as_f64().unwrap_or(0.0) / opts.sends as f64,
                opts.sends as f64 / (v["wall_us"].as_f64().unwrap_or(1.0) / 1e6)
            );
            per_kind[i].push(v);
        }
    }
    let icounts: Vec<Option<f64>> = opts
        .kinds
        .iter()
        .map(|kind| {
            let n = opts.icount.filter(|_| kind != "node")?;
            let per_send = icount_child(kind, &url, &opts, n);
            eprintln!("{kind:<13} {per_send:.0} instructions per acked send (callgrind, {n} sends)");
            Some(per_send)
        })
        .collect();
    let _ = broker.kill();
    let _ = broker.wait();
    let rows: Vec<serde_json::Value> = opts
        .kinds
        .iter()
        .zip(&per_kind)
        .zip(&icounts)
        .map(|((kind, runs), icount)| {
            let per_send: Vec<f64> = runs
                .iter()
                .map(|v| v["cpu_us"].as_f64().unwrap_or(0.0) / opts.sends as f64)
                .collect();
            let rate: Vec<f64> = runs
                .iter()
                .map(|v| opts.sends as f64 / (v["wall_us"].as_f64().unwrap_or(1.0) / 1e6))
                .collect();
            println!(
                "{kind:<13} median {:.3} µs CPU per acked send (rounds: {}), {:.0} sends/s",
                median(per_send.clone()),
                per_send
                    .iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                median(rate.clone())
            );
            serde_json::json!({
                "kind": kind,
                "cpu_us_per_send": median(per_send.clone()),
                "rounds_us_per_send": per_send,
                "sends_per_s": median(rate),
                "instructions_per_send": icount,
            })
        })
        .collect();
    if let Some(path) = opts.json {
        let out = serde_json::json!({
            "sends": opts.sends, "window": opts.window, "warmup": opts.warmup, "rounds": opts.rounds,
            "rows": rows,
        });
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap_or_default()) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
