//! X15: memory given back after a wave of connections — RSS once the wave has closed
//! within 2× of RSS before it, or 20 MB above it, whichever is larger (issue 14).
//! Alone in its test binary, so no other test's memory is counted.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use tether_broker::BrokerConfig;

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn raw_ws(addr: &str) -> std::net::TcpStream {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    tcp
}

// proves X15: a wave of 1 000 connections leaves no lasting memory behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_given_back_after_a_wave_of_connections() {
    let broker = start(BrokerConfig::default()).await;
    let addr = broker.local_addr().to_string();
    let before = rss();
    for wave in 0..3 {
        let a = addr.clone();
        let socks = tokio::task::spawn_blocking(move || (0..1000).map(|_| raw_ws(&a)).collect::<Vec<_>>())
            .await
            .unwrap();
        loop {
            let s = broker.stats().await;
            if s.core.live_connections >= 1000 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let peak = rss();
        drop(socks);
        loop {
            let s = broker.stats().await;
            if s.core.live_connections == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let after = rss();
        eprintln!(
            "wave {wave}: before {} KiB, peak {} KiB, after {} KiB",
            before / 1024,
            peak / 1024,
            after / 1024
        );
        let bound = (2 * before).max(before + 20 * 1024 * 1024);
        assert!(after <= bound, "wave {wave}: {after} bytes after, bound {bound}");
    }
    assert!(broker.stats().await.memory_trims >= 3, "one trim per wave");
    broker.stop().await;
}
