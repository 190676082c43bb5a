//! # tether-tests
//!
//! The end-to-end harness: the reference broker on loopback with short timings,
//! identities and client configurations for tests, and waiting helpers that
//! wait on events, never on the clock.

pub mod e2e;
pub mod sim;
pub mod storm;
pub mod hosts;
