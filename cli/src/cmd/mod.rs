//! One module per command.

pub mod client;
pub mod keygen;
