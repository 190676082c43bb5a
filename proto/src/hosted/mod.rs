//! The hosted session socket (`seeds/sessions-websocket.ts`): a session's event
//! stream at `…/v1/sessions/ws/{session}/subscribe?organization_uuid=…`,
//! authenticated by headers alone, as pure code.
//!
//! - Every attempt asks the caller's [`TokenProvider`] for a fresh bearer token
//!   and sends it with the `anthropic-version` header (S1, S10); there is no
//!   hello, so an open socket is a connected session.
//! - Close 4003 stops at once, 4001 is retried three times at 2 s × n (S2, S3,
//!   from the lifecycle's default close table).
//! - Reconnects happen only after a connection that had been open: a failed
//!   first connect stops ([`FirstConnect::FailFast`](crate::lifecycle::FirstConnect)),
//!   and after an open connection up to [`HOSTED_RECONNECT_ATTEMPTS`]
//!   consecutive failed attempts back off before the session gives up (S4). The
//!   seed's budget was dead code — its first failed reconnect was final (D10).
//! - Pings every 30 s with the lifecycle's liveness watchdog, so a silent server
//!   is noticed (D11: the seed only logged pongs).
//! - `reconnect()` forces a fresh connection after 500 ms (S5).
//! - Control requests carry a fresh `request_id`; control requests and
//!   responses are refused while not connected (S7).
//! - Every JSON object with a string `type` is handed up unchanged; anything
//!   else is dropped and counted (L5).
//!
//! [`Session`] implements [`Machine`](crate::Machine), so both hosts drive it.

mod handshake;
mod session;

#[cfg(test)]
mod tests;

pub use handshake::{
    subscribe_url, HostedHandshake, Message, MessageError, TokenProvider, UrlError, ANTHROPIC_VERSION,
};
pub use session::{
    HostedConfig, HostedError, HostedEvent, Session, HOSTED_BACKOFF, HOSTED_RECONNECT_ATTEMPTS,
};
