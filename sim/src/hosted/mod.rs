//! The hosted session in the simulator: the real [`tether_proto::hosted::Session`]
//! beside a pure model of the hosted server, on the simulated clock and link.
//!
//! One seed fixes the scenario: each attempt's server plan (serve, close 4001,
//! close 4003, another close, refuse the upgrade with 401/403/5xx, go silent,
//! drop mid-stream), which token fetches fail, what the server sends and what
//! the application does (control requests, `reconnect()`, "retry now"). The
//! session is driven through the [`Machine`](tether_proto::Machine) contract
//! exactly as the hosts drive it, and after every step a checker holds it to
//! the lifecycle's contract and to an independent model of the hosted rules:
//! one socket at a time, nothing written before open, a fresh token per
//! attempt, nothing after 4003, reconnects only after a connection had been
//! open and then at most five failed attempts in a row with backoff in its
//! bounds (D10), 4001 retried three times at 2 s × n (S3), a silent server
//! noticed within the watchdog bound (D11), unique request ids each answered or
//! failed with their connection (S7), and every object with a string `type`
//! handed up unchanged (S10).

mod check;
mod scenario;
mod server;
mod world;

pub use scenario::{AppOp, HostedScenario, Plan};
pub use world::HostedWorld;

use crate::world::Outcome;

/// Runs the hosted scenario of `seed`; with `trace`, keeps readable trace
/// lines and a hash of them.
pub fn run_hosted_seed(seed: u64, trace: bool) -> Outcome {
    HostedWorld::new(&HostedScenario::generate(seed), trace).run()
}

/// The one line that replays a failing hosted seed.
pub fn replay_hosted_command(seed: u64) -> String {
    format!(
        "TETHER_SIM_SEED={seed} cargo test -p tether-tests --test sim -- --exact hosted_replay --nocapture"
    )
}
