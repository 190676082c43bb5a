//! One module per command.

pub mod broker;
pub mod client;
pub mod demo;
pub mod keygen;
pub mod sim;
