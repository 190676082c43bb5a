//! # tether-sim
//!
//! A deterministic simulator built from the product's own parts: the real mesh
//! sessions, the real broker core, a simulated clock that jumps to the earliest
//! deadline, and a simulated network with latency, lost connections, half-open
//! links, partitions and refused connects. One u64 seed fixes the scenario
//! (clients, workload, faults) and so the whole run, byte for byte.
//!
//! After every step it checks the lifecycle and session invariants (legal status
//! transitions, only the hello before open, one socket at a time, nothing after a
//! stop, delays within their bounds, every buffer within its cap, every op
//! resolved exactly once) and the end-to-end ones: no message delivered twice
//! to an application, nothing delivered that was not sent, and a client whose
//! broker is reachable and accepting reaches open within the bound of one full
//! backoff plus the open and hello deadlines.
//!
//! Hostile members (X15) attack the broker core directly with the attacks of issue
//! 14 as seeded ops; after every step the broker's bounds are checked
//! (`Broker::check_bounds`), no reply exceeds `max_reply_len`, no hostile connection
//! receives an honest client's direct message, and no hostile hello replaces an
//! honest session.
//!
//! ```
//! let outcome = tether_sim::run_seed(42, false);
//! assert!(outcome.violation.is_none(), "{:?}", outcome.violation);
//! ```

//!
//! [`hosted`] steps the hosted session the same way: the real
//! `hosted::Session` beside a pure hosted server, a seeded plan per attempt,
//! and its own invariants after every step ([`hosted::run_hosted_seed`]).
//!
//! [`storm`] is the reconnect-storm measurement (D5): many clients whose broker
//! restarts at the same instant, counted per window.

mod check;
pub mod hosted;
mod net;
mod scenario;
pub mod storm;
mod trace;
mod world;

pub use check::Violation;
pub use scenario::{Attack, Fault, Op, Scenario, ATTACKS, HOSTILE_MEMBERS};
pub use world::{Outcome, World};

/// Runs the scenario of `seed`; with `trace`, keeps readable trace lines and a
/// hash of them (slower).
pub fn run_seed(seed: u64, trace: bool) -> Outcome {
    let scenario = Scenario::generate(seed);
    World::new(&scenario, trace).run(&scenario)
}

/// The one line that replays a failing seed.
pub fn replay_command(seed: u64) -> String {
    format!("TETHER_SIM_SEED={seed} cargo test -p tether-tests --test sim -- --exact replay --nocapture")
}
