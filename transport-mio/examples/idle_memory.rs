//! Memory per idle connection on one reactor, against the reference broker.
//!
//! `bash -c 'ulimit -n 65536; cargo run --release -p tether-mio --example idle_memory -- 10000 ws://127.0.0.1:PORT/ws'`
//! with a broker started by `tether broker --open --listen 127.0.0.1:PORT`. Prints the live heap (a counting
//! allocator: what the connections keep) and the resident-set growth (what the OS sees) per connection, once
//! every connection is open and the handshake's transient buffers are gone.

// The counting global allocator below is the only unsafe code, and only here.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use tether_mio::{ConnConfig, Reactor};
use tether_proto::lifecycle::{Notification, Status};
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::session::SessionEvent;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn resident() -> isize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<isize>().ok())
        .unwrap_or(0)
        * 4096
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:7878/ws".into());
    let configs: Vec<ConnConfig> = (0..n)
        .map(|i| {
            let me = MemberIdentity {
                // The reference broker admits 1 000 connections per mesh.
                mesh_id: format!("mem-bench-{}", i / 500),
                member_id: format!("m{i}"),
                secret: SecretKey::from_seed([(i % 251) as u8 + 1; 32]),
            };
            let presence = Presence {
                session_id: format!("idle-{i}"),
                ..Presence::default()
            };
            let mut c = ConnConfig::new(url.clone(), Credentials::Member(me), presence);
            c.seed = Some(i as u64);
            c
        })
        .collect();
    let mut reactor = Reactor::new().expect("a reactor");
    let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), resident());
    let started = Instant::now();
    for c in configs {
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
    let heap = (LIVE.load(Ordering::Relaxed) - heap0) / n as isize;
    let rss = (resident() - rss0) / n as isize;
    println!(
        "{n} idle connections open in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    println!("live heap per idle connection: {heap} bytes");
    println!("resident growth per idle connection: {rss} bytes");
}
