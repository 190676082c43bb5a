//! The mesh broker protocol (`../shared/PROTOCOL.md`).
pub mod handshake;
pub mod hex;
pub mod identity;
pub mod session;
pub mod wire;
