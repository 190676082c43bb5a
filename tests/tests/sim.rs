//! The simulator's campaign in CI, its determinism, and the replay hook.
//!
//! `TETHER_SIM_SEEDS=N` runs N seeds instead of the default; a failing seed
//! prints one line to replay it and the tail of its trace.

use tether_tests::sim::{replay_command, run_seed, World};

/// Seeds run by a plain `cargo test`.
const CI_SEEDS: u64 = 2_000;

fn seeds() -> u64 {
    std::env::var("TETHER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_SEEDS)
}

#[test]
fn campaign() {
    // proves X2, X3, X4, D5, L6, L9, B4 under random faults
    let first = std::env::var("TETHER_SIM_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0u64);
    let n = seeds();
    let mut steps = 0;
    let mut sends = 0;
    for seed in first..first + n {
        let outcome = run_seed(seed, false);
        steps += outcome.steps;
        sends += outcome.sends.0;
        if let Some(v) = &outcome.violation {
            // Re-run with the trace on to show what led there.
            let traced = run_seed(seed, true);
            panic!(
                "seed {seed} broke an invariant: {}\nreplay: {}\nlast steps:\n{}",
                v.0,
                replay_command(seed),
                World::describe(&traced)
            );
        }
    }
    println!("{n} seeds, {steps} steps, {sends} sends: every invariant held");
}

#[test]
fn same_seed_same_run_byte_for_byte() {
    // proves X2
    for seed in [1, 77, 4_242] {
        let a = run_seed(seed, true);
        let b = run_seed(seed, true);
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} diverged");
        assert_eq!(a.tail, b.tail);
    }
}

/// `TETHER_SIM_SEED=… cargo test -p tether-tests --test sim replay -- --nocapture`
#[test]
fn replay() {
    let Some(seed) = std::env::var("TETHER_SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let outcome = run_seed(seed, true);
    println!("{}", World::describe(&outcome));
    println!(
        "seed {seed}: {} steps, {:?} simulated, {} sends ({} acked)",
        outcome.steps, outcome.simulated, outcome.sends.0, outcome.sends.1
    );
    if let Some(v) = outcome.violation {
        panic!("seed {seed}: {}", v.0);
    }
}
