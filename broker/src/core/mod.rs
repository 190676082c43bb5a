//! The pure broker core: no sockets, clocks, threads or global randomness.
//!
//! A host (the tokio [`crate::server`], or the simulator) owns a [`Broker`] and
//! feeds it inputs, each stamped with a [`Now`](tether_proto::Now) (monotonic
//! instant for timers, unix ms for hello checks and timestamps):
//!
//! - [`Broker::handle_open`] when a WebSocket connection is accepted (the host picks
//!   a never reused [`ConnId`]);
//! - [`Broker::handle_frame`] for every text frame;
//! - [`Broker::handle_activity`] for every pong or ping;
//! - [`Broker::handle_closed`] when the socket is gone;
//! - [`Broker::handle_tick`] once [`Broker::next_deadline`] has passed;
//! - [`Broker::handle_fault`] to set a fault switch ([`Fault`]).
//!
//! **After every input, drain [`Broker::poll_output`] until it returns `None`**, and
//! carry each [`Output`] out in order: send a frame, ping, close (send the close
//! frame, then drop the socket), abort (drop without a close frame), or silence
//! (stop reading and writing). After `Close` or `Abort` the core has forgotten the
//! connection; later inputs for it are ignored. Then sleep until `next_deadline`.
//!
//! Every buffer is bounded by a [`BrokerConfig`] cap and counted in [`BrokerStats`].

mod admission;
mod bounds;
mod broker;
mod clock;
mod config;
mod conn;
mod dedupe;
mod dispatch;
mod faults;
mod hello;
mod keys;
mod lease;
mod liveness;
mod load_error;
mod membership;
mod mesh;
mod output;
mod requests;
mod routing;
mod skills;
mod stats;

#[cfg(test)]
mod tests;

pub use admission::{Admission, Admit, HelloRate};
pub use broker::Broker;
pub use clock::rfc3339_from_unix_ms;
pub use config::{
    BrokerConfig, DEFAULT_HELLO_TIMEOUT, DEFAULT_MAX_CONNECTIONS_PER_MESH, DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_REPLY_LEN, DEFAULT_PING_INTERVAL, DEFAULT_PRESENCE_GRACE,
    DEFAULT_PUSH_LEASE, DEFAULT_STALE_AFTER,
};
pub use dispatch::{Breach, CLOSE_NOT_UTF8, CLOSE_TOO_BIG};
pub use faults::{ConnSelector, Fault, Refusal, SHUTTING_DOWN};
pub use liveness::HELLO_TIMEOUT_REASON;
pub use load_error::LoadError;
pub use membership::{MemberRecord, Membership, Roster};
pub use output::{ConnId, Notice, Output, OutputKind};
pub use routing::NO_CONNECTED_PEER;
pub use skills::SkillBook;
pub use stats::BrokerStats;
