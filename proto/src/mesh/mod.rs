//! The mesh broker protocol (`../shared/PROTOCOL.md`).
pub mod crypto;
pub mod handshake;
pub mod hex;
pub mod identity;
mod json;
pub mod push;
#[cfg(test)]
mod real_broker_golden;
pub mod session;
pub mod target;
pub mod wire;
