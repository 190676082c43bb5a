//! The reconnect storm as a count (not a time): jitter spreads a restart's herd.

use std::time::Duration;

use tether_proto::policy::{Jitter, DEFAULT_JITTER};
use tether_tests::storm;

#[test]
fn jitter_keeps_the_peak_window_within_twice_the_uniform_ideal() {
    // proves D5
    let s = storm::run(2_000, DEFAULT_JITTER, Duration::from_secs(2));
    assert!(s.peak as f64 <= 2.0 * s.uniform_ideal, "{s:?}");
    assert_eq!(
        s.histogram.keys().next(),
        Some(&8),
        "first attempts at 0.8 s at the earliest"
    );
}

#[test]
fn without_jitter_every_client_comes_back_in_the_same_window() {
    // the seeds' behaviour, D5 in reverse
    let s = storm::run(2_000, Jitter::NONE, Duration::from_secs(2));
    assert_eq!(s.peak, 2_000, "{s:?}");
}
