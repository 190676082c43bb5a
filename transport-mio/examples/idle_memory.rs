//! Memory per idle connection on one reactor, against the reference broker.
//!
//! `bash -c 'ulimit -n 65536; cargo run --release -p tether-mio --example idle_memory -- 10000 ws://127.0.0.1:PORT/ws'`
//! with a broker started by `tether broker --open --listen 127.0.0.1:PORT`. Prints the live heap (a counting
//! allocator: what the connections keep) and the resident-set growth (what the OS sees) per connection, once
//! every connection is open and the handshake's transient buffers are gone.

use std::time::{Duration, Instant};

use tether_mio::{ConnConfig, Reactor};
use tether_proto::lifecycle::{Notification, Status};
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::session::SessionEvent;
use tether_test_support::{live_heap, resident};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:7878/ws".into());
    let mut reactor = Reactor::new().expect("a reactor");
    // The baseline comes before anything of any connection exists, its
    // configuration included: what a connection costs is everything it needs.
    let (heap0, rss0) = (live_heap(), resident());
    let started = Instant::now();
    for i in 0..n {
        let me = MemberIdentity {
            // The reference broker admits 100 connections per mesh.
            mesh_id: format!("mem-bench-{}", i / 50),
            member_id: format!("m{i}"),
            secret: SecretKey::from_seed([(i % 251) as u8 + 1; 32]),
        };
        let presence = Presence {
            session_id: format!("idle-{i}"),
            ..Presence::default()
        };
        let mut c = ConnConfig::new(url.clone(), Credentials::Member(me), presence);
        c.seed = Some(i as u64);
        reactor.add(c).expect("a connection");
    }
    let ids: Vec<_> = reactor.connections().collect();
    let mut open = 0;
    while open < n {
        reactor
            .run_once(Some(Duration::from_millis(100)))
            .expect("a turn");
        for (_, event) in reactor.drain_events() {
            if let SessionEvent::Lifecycle(Notification::Connected { .. }) = event {
                open += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {open}/{n} opened"
        );
    }
    // Let the last acks and pushes settle: run until a turn passes with nothing to do.
    reactor
        .run_once(Some(Duration::from_millis(200)))
        .expect("a turn");
    reactor.drain_events().for_each(drop);
    assert!(ids.iter().all(|id| reactor.status(*id) == Some(Status::Open)));
    let heap = (live_heap() - heap0) / n as isize;
    let rss = (resident() - rss0) / n as isize;
    println!(
        "{n} idle connections open in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    println!("live heap per idle connection: {heap} bytes");
    println!("resident growth per idle connection: {rss} bytes");
}
