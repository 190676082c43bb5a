//! # tether-broker
//!
//! The reference mesh broker of tether, speaking `PROTOCOL.md` in memory.
//!
//! It is built like the client: [`core::Broker`] is a pure machine (frames in,
//! frames out, time as an input, no IO, clocks or threads), and [`server`] is a thin
//! tokio host that feeds it from WebSocket connections. The simulator drives the
//! very same core, fault switches included ([`core::Fault`]), so a scenario behaves
//! the same on loopback and in simulation.
//!
//! With the `testing` feature, the `testing` module has what a test of a program that runs
//! the broker needs to see it from outside: a bare WebSocket peer that shows
//! the frames (a close code) exactly as the broker writes them.

pub mod core;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::core::{
    Breach, Broker, BrokerConfig, BrokerStats, ConnId, ConnSelector, Fault, LoadError, Membership, Output,
    OutputKind, Refusal, SkillBook,
};

pub use crate::server::{
    BrokerHandle, BrokerServer, ServerConfig, ServerError, ServerStats, TlsFiles, TlsSetup,
};
