//! # tether-tests
//!
//! What tether is tested with, usable for your own code too:
//!
//! - [`sim`]: the deterministic simulator — real sessions and the real broker
//!   core on a simulated clock and network, one seed per reproducible run
//!   (the `tether-sim` crate, re-exported here under its old path), the
//!   hosted session beside a model of its server among them (`sim::hosted`).
//! - [`e2e`] and [`hosts`]: the reference broker on loopback with short timings,
//!   and one client API over both hosts so each scenario runs on tokio and mio.
//! - [`hosted_server`]: a hosted-session server that checks headers, closes
//!   with 4001/4003 on demand and echoes control requests.
//! - [`hello_recorder`]: a mesh broker stand-in that records each attempt's
//!   hello and restarts the first connections, for freshness checks.
//! - [`proxy`]: an HTTP CONNECT proxy that records what it was asked for.
//! - [`stand_in`]: the accept loop these three stand-ins share.
//! - [`storm`]: the reconnect-storm measurement (`tether_sim::storm`).
//! - [`readme`]: the README's library examples, run as doc tests.
//!
//! Everything here waits on events, never on the clock.

pub mod e2e;
pub mod hello_recorder;
pub mod hosted_server;
pub mod hosts;
pub mod proxy;
pub mod readme;
pub mod stand_in;
pub use tether_sim as sim;
pub use tether_sim::storm;
