//! The mesh broker protocol (`../shared/PROTOCOL.md`).
pub mod identity;
pub mod wire;
