//! The simulator's campaigns in CI (mesh and hosted), their determinism, and
//! the replay hooks.
//!
//! `TETHER_SIM_SEEDS=N` (mesh) and `TETHER_SIM_HOSTED_SEEDS=N` (hosted) run N
//! seeds from `TETHER_SIM_FROM` (default 0) instead of the default; a failing
//! seed prints one line to replay it and the tail of its trace.

use tether_tests::sim::hosted::{replay_hosted_command, run_hosted_seed};
use tether_tests::sim::{replay_command, run_seed, Outcome, World};

/// Mesh seeds run by a plain `cargo test`.
const CI_SEEDS: u64 = 2_000;
/// Hosted seeds run by a plain `cargo test` (about 3 s in a debug build).
const CI_HOSTED_SEEDS: u64 = 1_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Runs `n` seeds from `TETHER_SIM_FROM`; on a violation, re-runs the seed
/// with the trace on and panics with it and the replay line. Returns the
/// steps and the summed `sends` of every outcome.
fn campaign_of(n: u64, run: fn(u64, bool) -> Outcome, replay: fn(u64) -> String) -> (u64, usize, u64) {
    let first = env_u64("TETHER_SIM_FROM").unwrap_or(0);
    let mut totals = (0, 0, 0);
    for seed in first..first + n {
        let outcome = run(seed, false);
        totals.0 += outcome.steps;
        totals.1 += outcome.sends.0;
        totals.2 += outcome.sends.1;
        if let Some(v) = &outcome.violation {
            let traced = run(seed, true);
            panic!(
                "seed {seed} broke an invariant: {}\nreplay: {}\nlast steps:\n{}",
                v.0,
                replay(seed),
                World::describe(&traced)
            );
        }
    }
    totals
}

/// Runs each seed twice with the trace on: the same steps, lines and hash.
fn same_run_twice(seeds: &[u64], run: fn(u64, bool) -> Outcome) {
    for &seed in seeds {
        let a = run(seed, true);
        let b = run(seed, true);
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} diverged");
        assert_eq!(a.tail, b.tail);
    }
}

/// Replays `TETHER_SIM_SEED` with its trace, if it is set.
fn replay_of(run: fn(u64, bool) -> Outcome, (sent, done): (&str, &str)) {
    let Some(seed) = env_u64("TETHER_SIM_SEED") else {
        return;
    };
    let outcome = run(seed, true);
    println!("{}", World::describe(&outcome));
    println!(
        "seed {seed}: {} steps, {:?} simulated, {} {sent} ({} {done})",
        outcome.steps, outcome.simulated, outcome.sends.0, outcome.sends.1
    );
    if let Some(v) = outcome.violation {
        panic!("seed {seed}: {}", v.0);
    }
}

#[test]
fn campaign() {
    // proves X2, X3, X4, D5, L6, L9, B4 under random faults
    let n = env_u64("TETHER_SIM_SEEDS").unwrap_or(CI_SEEDS);
    let (steps, sends, _) = campaign_of(n, run_seed, replay_command);
    println!("{n} seeds, {steps} steps, {sends} sends: every invariant held");
}

#[test]
fn same_seed_same_run_byte_for_byte() {
    // proves X2
    same_run_twice(&[1, 77, 4_242], run_seed);
}

/// `TETHER_SIM_SEED=… cargo test -p tether-tests --test sim -- --exact replay --nocapture`
#[test]
fn replay() {
    replay_of(run_seed, ("sends", "acked"));
}

#[test]
fn hosted_campaign() {
    // proves S1, S2, S3, S4, S5, S7, S10, D10, D11, X2 for the hosted session
    // against a server that serves, closes 4001/4003, refuses, goes silent, drops
    let n = env_u64("TETHER_SIM_HOSTED_SEEDS").unwrap_or(CI_HOSTED_SEEDS);
    let (steps, requests, answered) = campaign_of(n, run_hosted_seed, replay_hosted_command);
    println!("{n} hosted seeds, {steps} steps, {requests} control requests ({answered} answered): every invariant held");
}

#[test]
fn hosted_same_seed_same_run_byte_for_byte() {
    // proves X2 for the hosted session
    same_run_twice(&[3, 99, 5_150], run_hosted_seed);
}

/// `TETHER_SIM_SEED=… cargo test -p tether-tests --test sim -- --exact hosted_replay --nocapture`
#[test]
fn hosted_replay() {
    replay_of(run_hosted_seed, ("control requests", "answered"));
}
