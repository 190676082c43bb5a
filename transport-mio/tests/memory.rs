//! Memory held per idle connection: session, socket state and tungstenite's
//! buffers (the small read buffer, not the 128 KiB default). The broker runs in
//! a child process (this binary again) so that only the client side is counted,
//! both as live heap bytes (a counting allocator: exact, what the connection
//! keeps) and as the growth of this process's resident set (what the OS sees,
//! allocator slack and transient peaks of the handshake included).

mod common;

use std::collections::HashSet;
use std::io::Read;

use common::{config, Behaviour, Server, PATIENCE};
use tether_mio::Reactor;
use tether_proto::lifecycle::Notification;
use tether_proto::mesh::session::SessionEvent;
use tether_test_support::{live_heap, resident, BrokerChild};

const SERVER_ENV: &str = "TETHER_MIO_MEMORY_SERVER";

/// The broker half: only does something when started by the test below.
#[test]
fn broker_process() {
    if std::env::var_os(SERVER_ENV).is_none() {
        return;
    }
    let server = Server::start(Behaviour::Ack);
    println!("PORT {}", server.addr.port());
    // Serve until the parent closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// What an idle connection may hold, its configuration included (issue 12).
const IDLE_BOUND: isize = 8 * 1024;

#[cfg(target_os = "linux")]
#[test]
fn an_idle_connection_holds_at_most_8_kib_with_its_configuration() {
    // proves X4 (memory per idle connection)
    const N: usize = 500;
    let broker = BrokerChild::start("broker_process", SERVER_ENV);
    let url = broker.url();
    let mut reactor = Reactor::new().unwrap();
    let mut open = HashSet::with_capacity(N);
    // The baseline comes before anything of any connection exists, its
    // configuration included: what a connection costs is everything it needs.
    let before = resident();
    let heap_before = live_heap();
    for i in 0..N {
        let mut c = config(&url);
        c.seed = Some(i as u64);
        reactor.add(c).unwrap();
    }
    let done = reactor
        .run_until(Some(PATIENCE), |r| {
            for (id, event) in r.drain_events() {
                if let SessionEvent::Lifecycle(Notification::Connected { .. }) = event {
                    open.insert(id);
                }
            }
            open.len() == N
        })
        .unwrap();
    let per_conn = (resident() - before).max(0) as usize / N;
    let heap_per_conn = (live_heap() - heap_before) / N as isize;
    drop(broker);
    assert!(done, "only {} of {N} opened", open.len());
    println!("resident memory per idle connection: {per_conn} bytes");
    println!("live heap per idle connection: {heap_per_conn} bytes");
    assert!(
        heap_per_conn <= IDLE_BOUND,
        "{heap_per_conn} B of live heap per idle connection, over {IDLE_BOUND}"
    );
    // A regression guard, not the target: tungstenite's default buffers alone
    // would be 256 KiB.
    assert!(
        per_conn < 32 * 1024,
        "{per_conn} bytes resident per idle connection"
    );
}
