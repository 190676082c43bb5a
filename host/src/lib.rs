//! # tether-host
//!
//! What tether-tokio and tether-mio share, so they cannot drift apart: the
//! `wss://` trust options (verification always on, X5), the error types of
//! connecting and of calls, and the events a client reports. Neither host adds
//! anything to these; both re-export them.

mod error;
mod tls;

pub use error::{ClientError, ClientEvent, ConnectError, Sent};
pub use tls::{Roots, TlsError, TlsOptions};
