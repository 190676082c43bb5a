//! # tether-proto
//!
//! Everything in tether that decides, and nothing that waits: the connection
//! [`lifecycle`], the reconnect [`policy`], the [`mesh`] broker protocol and the
//! [`hosted`] session protocol. No sockets, clocks, threads or global randomness
//! live here — time, IO results and a seed come in as inputs, so a host (tokio,
//! mio, a simulator, a fuzzer) drives the very same logic.
//!
//! ## The contract a host drives: [`Machine`]
//!
//! Every protocol is a [`Machine`]: the host feeds `handle(now, Event)`, drains
//! `poll_output()` — [`Output::Io`] is socket work, [`Output::Event`] news for
//! the application — and sleeps until `next_deadline()`. [`Lifecycle`](lifecycle::Lifecycle)
//! implements it for a bare protocol of your own [`Handshake`](lifecycle::Handshake)
//! (below), [`mesh::session::Session`] and [`hosted::Session`] for theirs, so
//! tether-tokio and tether-mio run any of them with no socket loop of your own
//! (X14). See [`machine`]; the `Bearer` handshake below runs on a real socket
//! in `transport-tokio/examples/own_protocol_async.rs` and
//! `transport-mio/examples/own_protocol_blocking.rs`.
//!
//! ## The drain rule
//!
//! **After every call that feeds the machine (`handle`, `send`, …), drain
//! `poll_output` (`poll_action`) until it returns `None` before feeding it
//! again.** Then sleep until `next_deadline()` and feed `Event::Tick`. Outputs
//! are queued in order; skipping the drain does not lose them, but a host that
//! acts on them late acts on stale decisions. Socket news a host produces while
//! draining (a write to a dead socket) is fed after the drain, never during it.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_proto::lifecycle::{Action, Config, Event, Handshake, HelloError, Io, Lifecycle, PreOpen};
//! use tether_proto::Now;
//!
//! /// A header-authenticated endpoint: the open socket is the handshake.
//! struct Bearer;
//! impl Handshake for Bearer {
//!     type Message = String;
//!     type DecodeError = std::convert::Infallible;
//!     fn headers(&mut self, _attempt: u64, _unix_ms: u64) -> Result<Vec<(String, String)>, HelloError> {
//!         Ok(vec![("Authorization".into(), "Bearer fresh-token".into())])
//!     }
//!     fn hello(&mut self, _: u64, _: u64) -> Result<Option<String>, HelloError> { Ok(None) }
//!     fn decode(&mut self, text: String) -> Result<String, Self::DecodeError> { Ok(text) }
//!     fn classify(&mut self, _: &String) -> PreOpen { PreOpen::Other }
//! }
//!
//! let t0 = Instant::now();
//! let mut lc = Lifecycle::new(Config::new("wss://broker.example/ws"), Bearer, 7, t0).unwrap();
//! lc.handle(Now::new(t0, 1_700_000_000_000), Event::Connect).unwrap();
//! while let Some(action) = lc.poll_action() {
//!     if let Action::Io(Io::OpenSocket { url, headers, .. }) = action {
//!         assert_eq!(url, "wss://broker.example/ws");
//!         assert_eq!(headers[0].1, "Bearer fresh-token");
//!     }
//! }
//! let (wake_at, timer) = lc.next_deadline().unwrap();
//! assert_eq!(wake_at, t0 + Duration::from_secs(10));
//! assert_eq!(timer.name(), "open");
//! ```

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hosted;
pub mod lifecycle;
pub mod machine;
pub mod mesh;
pub mod policy;
mod queue;
mod rng;
mod time;

pub use machine::{Machine, Output};
pub use rng::Rng;
pub use time::{deadline_after, Now, MAX_DURATION};
