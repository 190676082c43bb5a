//! The hosted session client (`sessions-websocket.ts`), written once for both hosts.

use std::time::{Duration, Instant};

use serde_json::Value;
use tether_proto::hosted::{HostedEvent, Session, TokenProvider};
use tether_proto::lifecycle::Status;

use super::GenericClient;
use crate::drive::Drive;
use crate::error::ConnectError;
use crate::fanout::Receiver;
use crate::hosted::{HostedCallError, HostedClientConfig};
use crate::queue::IoStats;
use crate::router::Broadcast;

/// A handle to one hosted session socket; clone it freely. It closes when
/// [`close`](Self::close) is called or the last handle is dropped, and then
/// nothing of it keeps running.
pub struct HostedClient<C: Drive> {
    inner: GenericClient<C>,
}

impl<C: Drive + Clone> Clone for HostedClient<C> {
    fn clone(&self) -> Self {
        HostedClient {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Drive + std::fmt::Debug> std::fmt::Debug for HostedClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedClient")
            .field("conn", self.inner.connection())
            .finish()
    }
}

impl<C> HostedClient<C>
where
    C: Drive<Machine = Session, Router = Broadcast<HostedEvent>>,
{
    /// Starts connecting and returns at once; [`events`](Self::events) sees the
    /// first attempt, [`connected`](Self::connected) waits for its outcome.
    pub fn spawn(config: &HostedClientConfig, tokens: TokenProvider) -> Result<Self, ConnectError> {
        let session = config.session(tokens, Instant::now())?;
        let inner = GenericClient::<C>::spawn(session, config.url(), &config.transport)?;
        Ok(HostedClient { inner })
    }

    /// Connects and returns once the socket is open (open = connected, S10),
    /// or fails with the stop reason; on failure nothing keeps running (D1).
    pub fn connect(
        config: &HostedClientConfig,
        tokens: TokenProvider,
    ) -> C::Wait<'static, Result<Self, ConnectError>> {
        let session = match config.session(tokens, Instant::now()) {
            Ok(session) => session,
            Err(e) => return C::ready(Err(e.into())),
        };
        C::map(
            GenericClient::<C>::connect(session, config.url(), &config.transport),
            |r: Result<GenericClient<C>, ConnectError>| r.map(|inner| HostedClient { inner }),
        )
    }

    /// Waits for the first connect's outcome; `Ok` at once after it.
    pub fn connected(&self) -> C::Wait<'_, Result<(), ConnectError>> {
        self.inner.connected()
    }

    /// Sends a control request with a fresh `request_id`, which it returns (S7).
    pub fn send_control_request(&self, request: Value) -> C::Wait<'_, Result<String, HostedCallError>> {
        C::map(
            self.inner.with(move |s, _| s.send_control_request(request)),
            |r| Ok(r??),
        )
    }

    /// Sends a control response as it is (S10).
    pub fn send_control_response(&self, response: Value) -> C::Wait<'_, Result<(), HostedCallError>> {
        C::map(
            self.inner.with(move |s, _| s.send_control_response(response)),
            |r| Ok(r??),
        )
    }

    /// Messages and lifecycle news (after `spawn` the first call's receiver
    /// from the start; after `connect` returns, and later ones, from now on);
    /// ends after the close.
    pub fn events(&self) -> Receiver<HostedEvent> {
        self.inner.events()
    }

    /// The status; `Open` is connected.
    pub fn status(&self) -> C::Status {
        self.inner.status()
    }

    /// Waits until the status satisfies `pred`, at most `timeout`.
    pub fn wait_status(
        &self,
        pred: impl Fn(Status) -> bool + Send + Sync + 'static,
        timeout: Duration,
    ) -> C::Wait<'_, Option<Status>> {
        self.inner.wait_status(pred, timeout)
    }

    /// The socket counters: write queue depth and overflows, messages, flushes.
    pub fn io_stats(&self) -> C::Wait<'_, Result<IoStats, HostedCallError>> {
        C::map(self.inner.connection().io_stats(), |r| Ok(r?))
    }

    /// Forces a fresh connection after 500 ms, counters reset (S5).
    pub fn reconnect(&self) -> C::Wait<'_, Result<(), HostedCallError>> {
        C::map(self.inner.connection().reconnect(), |r| Ok(r?))
    }

    /// Closes for good (L11); idempotent.
    pub fn close(&self) -> C::Wait<'_, ()> {
        self.inner.connection().close()
    }
}
