//! The hosted session client: a thin typed layer over [`GenericClient`].

use std::time::Instant;

use serde_json::Value;
use tether_host::{ConnectError, HostedCallError, HostedClientConfig, IoStats, Receiver};
use tether_proto::hosted::{HostedEvent, Session, TokenProvider};
use tether_proto::lifecycle::Status;
use tokio::sync::watch;

use crate::connection::GenericClient;

/// A handle to one hosted session socket (`sessions-websocket.ts`); clone it
/// freely. It closes when [`close`](Self::close) is called or the last handle
/// is dropped.
#[derive(Clone, Debug)]
pub struct HostedClient {
    inner: GenericClient<Session>,
}

impl HostedClient {
    /// Starts connecting and returns at once; [`events`](Self::events) sees the
    /// first attempt, [`connected`](Self::connected) waits for its outcome.
    pub fn spawn(config: &HostedClientConfig, tokens: TokenProvider) -> Result<Self, ConnectError> {
        let session = config.session(tokens, Instant::now())?;
        let inner = GenericClient::spawn(session, config.url(), &config.transport)?;
        Ok(HostedClient { inner })
    }

    /// Connects and returns once the socket is open (open = connected, S10),
    /// or fails with the stop reason; on failure nothing keeps running (D1).
    pub async fn connect(config: &HostedClientConfig, tokens: TokenProvider) -> Result<Self, ConnectError> {
        let client = HostedClient::spawn(config, tokens)?;
        client.inner.first_open().await?;
        Ok(client)
    }

    /// Waits for the first connect's outcome; `Ok` at once after it.
    pub async fn connected(&self) -> Result<(), ConnectError> {
        self.inner.connected().await
    }

    /// Sends a control request with a fresh `request_id`, which it returns (S7).
    pub async fn send_control_request(&self, request: Value) -> Result<String, HostedCallError> {
        Ok(self
            .inner
            .with(move |s, _| s.send_control_request(request))
            .await??)
    }

    /// Sends a control response as it is (S10).
    pub async fn send_control_response(&self, response: Value) -> Result<(), HostedCallError> {
        Ok(self
            .inner
            .with(move |s, _| s.send_control_response(response))
            .await??)
    }

    /// Messages and lifecycle news (after `spawn` the first call's receiver
    /// from the start; after `connect` returns, and later ones, from now on);
    /// ends after the close.
    pub fn events(&self) -> Receiver<HostedEvent> {
        self.inner.events()
    }

    /// The status; `Open` is connected.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.inner.status()
    }

    /// The socket counters: write queue depth and overflows, messages, flushes.
    pub async fn io_stats(&self) -> Result<IoStats, HostedCallError> {
        Ok(self.inner.io_stats().await?)
    }

    /// Forces a fresh connection after 500 ms, counters reset (S5).
    pub async fn reconnect(&self) -> Result<(), HostedCallError> {
        Ok(self.inner.reconnect().await?)
    }

    /// Closes for good (L11); idempotent.
    pub async fn close(&self) {
        self.inner.close().await;
    }
}
