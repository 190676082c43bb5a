//! Pings, pongs, stale drops and the deadline the host sleeps until.

use std::time::Duration;

use super::*;
use crate::core::DEFAULT_PRESENCE_GRACE;

// proves L9 (broker side): pings every 30 s; a pong keeps the connection; 75 s of silence drops it.
#[test]
fn pings_keep_a_live_connection_and_drop_a_dead_one() {
    let mut h = Harness::open_broker();
    let conn = h.join(&member(1), "s1");
    assert_eq!(
        h.broker.next_deadline(),
        Some(h.instant_in(Duration::from_secs(30)))
    );
    h.advance(Duration::from_secs(30));
    assert_eq!(h.take(conn), vec![OutputKind::Ping]);
    h.pong(conn);
    h.advance(Duration::from_secs(30));
    assert_eq!(h.take(conn), vec![OutputKind::Ping]);
    // No pong from now on: pinged once more at 90 s, dropped at 30 + 75 = 105 s.
    h.run_for(Duration::from_secs(44));
    assert_eq!(h.take(conn), vec![OutputKind::Ping]);
    assert!(h.broker.is_open(conn));
    h.run_for(Duration::from_secs(1));
    assert_eq!(h.take(conn), vec![OutputKind::Abort]);
    assert!(!h.broker.is_open(conn));
    assert_eq!(h.broker.stats().stale_dropped, 1);
    // Its presence lingers for the grace, then nothing is left to wake for.
    assert_eq!(
        h.broker.next_deadline(),
        Some(h.instant_in(DEFAULT_PRESENCE_GRACE))
    );
    h.run_for(DEFAULT_PRESENCE_GRACE);
    assert_eq!(h.broker.stats().lingering_presences, 0);
    assert_eq!(h.broker.next_deadline(), None);
}

#[test]
fn an_early_or_repeated_tick_does_nothing() {
    let mut h = Harness::open_broker();
    let conn = h.join(&member(1), "s1");
    h.advance(Duration::from_secs(29));
    h.advance(Duration::ZERO);
    assert!(h.take(conn).is_empty());
    h.advance(Duration::from_secs(1));
    h.advance(Duration::ZERO);
    assert_eq!(h.take(conn), vec![OutputKind::Ping]);
}

#[test]
fn a_frame_counts_as_activity() {
    let mut h = Harness::open_broker();
    let conn = h.join(&member(1), "s1");
    h.run_for(Duration::from_secs(70));
    h.client(conn, tether_proto::mesh::wire::ListStateFrame::default());
    h.run_for(Duration::from_secs(70));
    assert!(h.broker.is_open(conn));
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut h = Harness::open_broker();
    let conn = h.join(&member(1), "s1");
    h.advance(Duration::from_secs(31));
    h.elapsed = Duration::from_secs(1);
    h.pong(conn);
    h.advance(Duration::ZERO);
    assert_eq!(h.take(conn), vec![OutputKind::Ping]);
    assert!(h.broker.is_open(conn));
}

// Same seed, same inputs: the same bytes out (X2).
#[test]
fn the_core_is_deterministic() {
    let run = || {
        let mut h = Harness::open_broker();
        let ada = h.join(&member(1), "s1");
        h.join(&member(2), "s2");
        h.client(ada, send("c1", "*", "eA=="));
        h.run_for(Duration::from_secs(100));
        format!("{:?}", h.outbox)
    };
    assert_eq!(run(), run());
}
