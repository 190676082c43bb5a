//! Zero allocations per steady-state tick and per ping: on an open session, and
//! in each host on an open socket (tether-mio's `Reactor`, tether-tokio's driver).
//!
//! A counting global allocator (this test binary only) counts the allocation calls
//! made on this thread while the measured steps run. Counts are exact and do not
//! depend on the machine's noise.
// `GlobalAlloc` can only be implemented unsafely; the impl only forwards to the
// system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tether_bench::{ack_template, ack_text, member, presence, push_pool, OpenSession};
use tether_mio::Reactor;
use tether_proto::lifecycle::{Event, Status};
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::session::Outgoing;
use tether_proto::mesh::wire::Priority;
use tungstenite::Message;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the slot is gone while the thread is being torn down.
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call forwards to `System` with the caller's own arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocation calls made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// An open session that has already pinged, been ponged, sent, been acked and
/// received pushes, so every reused queue has its capacity.
fn warm() -> OpenSession {
    let mut s = OpenSession::new();
    for _ in 0..4 {
        s.ping_pong();
        s.idle_tick();
    }
    for (i, push) in push_pool(4).into_iter().enumerate() {
        assert!(s.send_ack(ack_template(i)), "a direct send is written and acked");
        s.push(push);
    }
    s
}

#[test]
fn steady_state_ticks_do_not_allocate() {
    let mut s = warm();
    let n = allocations(|| {
        for _ in 0..1000 {
            s.idle_tick();
        }
    });
    record("session", "tick", n, 1000);
    assert_eq!(n, 0, "allocations in 1000 idle ticks");
}

#[test]
fn pings_and_pongs_do_not_allocate() {
    let mut s = warm();
    let mut actions = 0;
    let n = allocations(|| {
        for _ in 0..1000 {
            actions += s.ping_pong();
        }
    });
    assert!(actions >= 1000, "every watchdog tick pings ({actions} actions)");
    record("session", "ping_pong", n, 1000);
    assert_eq!(n, 0, "allocations in 1000 watchdog pings and their pongs");
}

/// Not a zero claim, a record: what one push costs, so a regression shows.
#[test]
fn push_allocations_are_bounded() {
    let mut s = warm();
    let pool = push_pool(64);
    let texts: Vec<String> = pool.iter().skip(8).cloned().collect();
    let count = texts.len() as u64;
    let n = allocations(|| {
        for text in texts {
            s.push(text);
        }
    });
    let per_push = n / count;
    eprintln!("allocations per push handled end to end: {per_push} ({n} for {count})");
    assert!(per_push <= 16, "{per_push} allocations per push");
}

// ---------------------------------------------------------------------------
// The hosts' steady state on an open socket.
//
// A small WebSocket peer on 127.0.0.1 (threads of its own, so its allocations
// are not counted: the counter is per thread) acks the hello and every send and
// answers every ping, counting the pings. The host under test runs on the test
// thread: tether-mio's `Reactor` driven from it, tether-tokio's driver task on a
// current-thread runtime. Pings come every 2 ms; the counted windows end when the
// peer has seen N more pings, never after a sleep.

/// The peer's side: its URL and the pings it has answered.
struct Peer {
    url: String,
    pings: Arc<AtomicU64>,
    notify: Arc<tokio::sync::Notify>,
}

fn peer() -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "ws://{}/ws",
        listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"))
    );
    let pings = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let (p, n) = (pings.clone(), notify.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (p, n) = (p.clone(), n.clone());
            std::thread::spawn(move || serve(tcp, &p, &n));
        }
    });
    Peer { url, pings, notify }
}

/// One connection: hello → hello_ack, send → its ack, ping → pong (counted).
fn serve(tcp: TcpStream, pings: &AtomicU64, notify: &tokio::sync::Notify) {
    let _ = tcp.set_nodelay(true);
    let Ok(mut ws) = tungstenite::accept(tcp) else {
        return;
    };
    let mut acks = 0;
    loop {
        let reply = match ws.read() {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("hello") => Some(
                        r#"{"type":"hello_ack","presenceId":"p-1","memberDisplayName":"alloc"}"#.to_owned(),
                    ),
                    Some("send") => {
                        acks += 1;
                        Some(ack_text(v["id"].as_str().unwrap_or_default(), acks))
                    }
                    _ => None,
                }
            }
            Ok(Message::Ping(_)) => {
                // tungstenite queued the pong; the flush below sends it.
                pings.fetch_add(1, Ordering::SeqCst);
                notify.notify_one();
                None
            }
            Ok(_) => None,
            Err(_) => return,
        };
        if let Some(text) = reply {
            if ws.send(Message::Text(text.into())).is_err() {
                return;
            }
        } else if ws.flush().is_err() {
            return;
        }
    }
}

/// Pings every 2 ms, nothing else on a timer soon.
fn watchdog_config(url: &str, mesh: &str) -> tether_mio::ConnConfig {
    let mut config = tether_mio::ConnConfig::new(url, Credentials::Member(member(mesh, 1)), presence(1));
    config.seed = Some(1);
    config.session.lifecycle.ping_interval = Duration::from_millis(2);
    config.session.lifecycle.stale_after = Duration::from_secs(60);
    config
}

const PINGS: u64 = 200;
const SENDS: u64 = 100;

/// Prints the line `report` reads into BENCHMARKS.md's opening table.
fn record(host: &str, case: &str, allocs: u64, ops: u64) {
    eprintln!(
        "ALLOC {host} {case} {} ({allocs} in {ops})",
        allocs as f64 / ops as f64
    );
}

/// Not a zero claim, a record: what a send and its ack cost in the session
/// (id, nonce, sealing, the frame, the pending op, the decoded ack).
#[test]
fn send_allocations_are_bounded() {
    let mut s = warm();
    let n = allocations(|| {
        for i in 0..1000 {
            assert!(s.send_ack(ack_template(i)), "sent and acked");
        }
    });
    record("session", "send_ack", n, 1000);
    assert!(n <= 32 * 1000, "{n} allocations in 1000 sends and acks");
}

/// proves the mio host's steady state: 0 allocations per idle tick (a `Tick`
/// fed through the reactor and its turn) and per watchdog ping and its pong.
#[test]
fn mio_host_steady_state_does_not_allocate() {
    let peer = peer();
    let mut reactor = Reactor::new().unwrap_or_else(|e| panic!("reactor: {e}"));
    let id = reactor
        .add(watchdog_config(&peer.url, "alloc-mio"))
        .unwrap_or_else(|e| panic!("add: {e}"));
    let turn = |reactor: &mut Reactor| {
        reactor
            .run_once(Some(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("turn: {e}"));
        while reactor.poll_event().is_some() {}
    };
    while reactor.status(id) != Some(Status::Open) {
        turn(&mut reactor);
    }
    let send_ack = |reactor: &mut Reactor| {
        let before = reactor.stats(id).map_or(0, |s| s.sends_acked);
        let _ = reactor
            .send(id, Outgoing::new("*", "steady"))
            .unwrap_or_else(|e| panic!("send: {e}"));
        while reactor.stats(id).map_or(0, |s| s.sends_acked) == before {
            turn(reactor);
        }
    };
    let pings = |reactor: &mut Reactor, n: u64| {
        let until = peer.pings.load(Ordering::SeqCst) + n;
        while peer.pings.load(Ordering::SeqCst) < until {
            turn(reactor);
        }
    };
    // Warm: every queue and buffer grown to what the steady state needs.
    for _ in 0..16 {
        send_ack(&mut reactor);
    }
    pings(&mut reactor, 20);

    let ticks = allocations(|| {
        for _ in 0..1000 {
            reactor
                .control(id, Event::Tick)
                .unwrap_or_else(|e| panic!("tick: {e}"));
            reactor
                .run_once(Some(Duration::ZERO))
                .unwrap_or_else(|e| panic!("turn: {e}"));
        }
    });
    let pinged = allocations(|| pings(&mut reactor, PINGS));
    let sends = allocations(|| {
        for _ in 0..SENDS {
            send_ack(&mut reactor);
        }
    });
    record("mio", "tick", ticks, 1000);
    record("mio", "ping_pong", pinged, PINGS);
    record("mio", "send_ack", sends, SENDS);
    assert_eq!(ticks, 0, "allocations in 1000 idle ticks of the mio host");
    assert_eq!(
        pinged, 0,
        "allocations in {PINGS} watchdog periods of the mio host"
    );
    assert!(
        sends <= 32 * SENDS,
        "{sends} allocations in {SENDS} sends and acks"
    );
}

/// proves the tokio host's steady state: 0 allocations per watchdog period (the
/// driver's timer, the ping written, its pong read) on the driver's thread.
#[test]
fn tokio_host_steady_state_does_not_allocate() {
    let peer = peer();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        let client = tether_tokio::Client::connect(watchdog_config(&peer.url, "alloc-tokio"))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let pings = |n: u64| {
            let until = peer.pings.load(Ordering::SeqCst) + n;
            let notify = peer.notify.clone();
            let count = peer.pings.clone();
            async move {
                while count.load(Ordering::SeqCst) < until {
                    notify.notified().await;
                }
            }
        };
        for _ in 0..16 {
            client
                .send("*", "steady", Priority::Next)
                .await
                .unwrap_or_else(|e| panic!("send: {e}"));
        }
        pings(20).await;

        let wait = pings(PINGS);
        let before = ALLOCS.with(Cell::get);
        wait.await;
        let pinged = ALLOCS.with(Cell::get) - before;
        let before = ALLOCS.with(Cell::get);
        for _ in 0..SENDS {
            client
                .send("*", "steady", Priority::Next)
                .await
                .unwrap_or_else(|e| panic!("send: {e}"));
        }
        let sends = ALLOCS.with(Cell::get) - before;
        record("tokio", "ping_pong", pinged, PINGS);
        record("tokio", "send_ack", sends, SENDS);
        client.close().await;
        assert_eq!(
            pinged, 0,
            "allocations in {PINGS} watchdog periods of the tokio host"
        );
        assert!(
            sends <= 32 * SENDS,
            "{sends} allocations in {SENDS} sends and acks"
        );
    });
}
