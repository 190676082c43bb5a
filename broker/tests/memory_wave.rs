//! X15: memory given back after a wave of connections — RSS once the wave has closed
//! within 2× of RSS before it, or 20 MB above it, whichever is larger (issue 14).
//! Alone in its test binary, so no other test's memory is counted.

mod common;

use common::*;
use tether_broker::testing::RawPeer;
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

// proves X15: a wave of 1 000 connections leaves no lasting memory behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_given_back_after_a_wave_of_connections() {
    let broker = start(BrokerConfig::default()).await;
    let url = broker.url();
    let before = rss();
    for wave in 0..3 {
        let u = url.clone();
        let socks = tokio::task::spawn_blocking(move || {
            (0..1000)
                .map(|_| RawPeer::connect(&u).unwrap())
                .collect::<Vec<_>>()
        })
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
