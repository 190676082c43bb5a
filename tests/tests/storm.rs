//! The reconnect storm as a count (not a time): jitter spreads a restart's herd,
//! and a rate-limited broker's hint brings it back at the broker's pace.

use std::time::Duration;

use tether_broker::core::HelloRate;
use tether_proto::policy::{Jitter, DEFAULT_JITTER};
use tether_tests::storm::{self, AdmissionStorm, Schedule};

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

/// Issue 16's storm at the suite's scale: 10 000 open clients, a restart, a
/// broker admitting 1 000 hellos a second (ideal N / R = 10 s). The same code
/// at 100 000 clients is `cargo run --release -p tether-bench --bin storm`.
fn admission(schedule: Schedule) -> AdmissionStorm {
    storm::admission_storm(
        10_000,
        HelloRate::per_second(1_000),
        schedule,
        Duration::from_secs(120),
    )
}

#[test]
fn with_the_brokers_hint_every_client_is_back_near_n_over_r_wasting_about_one_attempt() {
    // proves X10 at scale, D5 (issue 16)
    let s = admission(Schedule::TetherWithHint);
    let after = s.all_open_after.expect("every client open again");
    let ideal = s.ideal().as_secs_f64();
    assert!(after.as_secs_f64() <= 1.5 * ideal, "{after:?} against {ideal} s");
    assert!(
        s.wasted_per_client() <= 1.25,
        "{} wasted per client",
        s.wasted_per_client()
    );
    // Once every client has heard from the broker, attempts stay near its rate.
    let after_wave = s.peak_after_first_wave() as f64;
    assert!(
        after_wave <= 5.0 * s.admitted_per_window(),
        "{after_wave} in one 100 ms window"
    );
}

#[test]
fn without_the_hint_tether_wastes_more_and_the_seeds_herd_never_clears() {
    // D5 against a rate-limited broker
    let tether = admission(Schedule::Tether);
    let after = tether
        .all_open_after
        .expect("tether's default gets every client back");
    assert!(after > Duration::from_secs(20), "{after:?}");
    assert!(
        tether.wasted_per_client() >= 2.0,
        "{}",
        tether.wasted_per_client()
    );
    let seeds = admission(Schedule::Seeds);
    assert_eq!(seeds.all_open_after, None, "{} of 10 000 open", seeds.open);
    // Every refused seed client comes back in the same 100 ms, every time.
    assert!(
        seeds.peak_after_first_wave() >= 9_000,
        "{}",
        seeds.peak_after_first_wave()
    );
}
