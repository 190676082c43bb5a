//! One client API over both hosts, so every end-to-end scenario is written once
//! and run on tether-tokio and tether-mio (X1: identical observable behaviour is
//! a test, not a claim). Blocking calls of the mio host run on tokio's blocking
//! pool so scenarios stay async.

use std::sync::Arc;

use tether_proto::lifecycle::{Status, StopReason};
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::Presence;
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{OpFailure, RequestError, SendRefusal, SessionConfig, SessionStats};
use tether_proto::mesh::wire::{MemoryRow, Peer, Priority, StateRow};

use crate::e2e::PATIENCE;

/// Runs each named scenario (an `async fn(Host)`) once per host, as two tests
/// `name::tokio` and `name::mio`.
#[macro_export]
macro_rules! on_both_hosts {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tokio() {
                super::$name($crate::hosts::Host::Tokio).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mio() {
                super::$name($crate::hosts::Host::Mio).await
            }
        }
    )*};
}

/// Which host drives the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// tether-tokio: one task per connection.
    Tokio,
    /// tether-mio: a reactor thread behind a blocking facade.
    Mio,
}

/// What a scenario asks of a client configuration; both hosts get the same.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Session and lifecycle settings (URL included).
    pub session: SessionConfig,
    /// Who connects.
    pub credentials: Credentials,
    /// Presence fields.
    pub presence: Presence,
    /// The socket side: TLS roots and client certificate, proxy, sizes.
    pub transport: tether_tokio::Transport,
    /// Seed of jitter and ids.
    pub seed: u64,
}

/// A lifecycle notification or an unconsumed frame: both hosts report the same
/// type (tether-host's `ClientEvent`).
pub type HostEvent = tether_tokio::ClientEvent;

/// Why a connect failed, from either host.
#[derive(Debug)]
pub struct ConnectFailure {
    /// The session's stop reason, when the broker or the attempt decided.
    pub reason: Option<StopReason>,
    /// The error as displayed.
    pub text: String,
    /// Whether retrying cannot help.
    pub permanent: bool,
}

/// Why a call failed, from either host.
#[derive(Debug)]
pub enum CallError {
    /// A send refused at the call.
    Refused(SendRefusal, String),
    /// A request or command refused at the call.
    NotAccepted(RequestError),
    /// Accepted, then failed.
    Failed(OpFailure),
    /// Anything else (shutdown, unexpected reply).
    Other(String),
}

macro_rules! call_error_from {
    ($t:ty) => {
        impl From<$t> for CallError {
            fn from(e: $t) -> Self {
                use $t as E;
                match e {
                    E::Refused(r) => {
                        let text = r.to_string();
                        CallError::Refused(r.reason, text)
                    }
                    E::NotAccepted(r) => CallError::NotAccepted(r),
                    E::Failed(f) => CallError::Failed(f),
                    other => CallError::Other(other.to_string()),
                }
            }
        }
    };
}
// One error type for both hosts (tether-host).
call_error_from!(tether_tokio::ClientError);

enum Inner {
    Tokio(tether_tokio::Client, tether_tokio::Subscription),
    Mio(tether_mio::BlockingClient),
}

/// A connected client on either host.
pub struct AnyClient {
    inner: Inner,
    /// Both hosts hand out tether-host's one receiver type.
    events: tether_tokio::Receiver<HostEvent>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) => panic!("a blocking call panicked: {e}"),
    }
}

impl AnyClient {
    /// Wraps a tether-tokio client made some other way (its builder).
    pub fn from_tokio(client: tether_tokio::Client) -> AnyClient {
        let events = client.events();
        let pushes = client.subscribe();
        AnyClient {
            inner: Inner::Tokio(client, pushes),
            events,
        }
    }

    /// Wraps a tether-mio client made some other way (its builder).
    pub fn from_mio(client: tether_mio::BlockingClient) -> AnyClient {
        let events = client.events();
        AnyClient {
            inner: Inner::Mio(client),
            events,
        }
    }

    /// Waits for the first connect's outcome (L8).
    pub async fn connected(&self) -> Result<(), tether_tokio::ConnectError> {
        match &self.inner {
            Inner::Tokio(c, _) => c.connected().await,
            Inner::Mio(c) => {
                let c = c.clone();
                blocking(move || c.connected()).await
            }
        }
    }

    /// Connects on `host`, returning on the first ack or the failure (L8).
    pub async fn connect(host: Host, spec: Spec) -> Result<AnyClient, ConnectFailure> {
        match host {
            Host::Tokio => {
                let mut c = tether_tokio::ClientConfig::new(
                    spec.session.lifecycle.url.clone(),
                    spec.credentials,
                    spec.presence,
                );
                c.session = spec.session;
                c.transport = spec.transport;
                c.seed = Some(spec.seed);
                match tether_tokio::Client::connect(c).await {
                    Ok(client) => {
                        let events = client.events();
                        let pushes = client.subscribe();
                        Ok(AnyClient {
                            inner: Inner::Tokio(client, pushes),
                            events,
                        })
                    }
                    Err(e) => Err(ConnectFailure {
                        permanent: e.is_permanent(),
                        text: e.to_string(),
                        reason: match e {
                            tether_tokio::ConnectError::Failed(r) => Some(r),
                            _ => None,
                        },
                    }),
                }
            }
            Host::Mio => {
                let mut c = tether_mio::ConnConfig::new(
                    spec.session.lifecycle.url.clone(),
                    spec.credentials,
                    spec.presence,
                );
                c.session = spec.session;
                c.transport = spec.transport;
                c.seed = Some(spec.seed);
                match blocking(move || tether_mio::BlockingClient::connect(c)).await {
                    Ok(client) => {
                        let events = client.events();
                        Ok(AnyClient {
                            inner: Inner::Mio(client),
                            events,
                        })
                    }
                    Err(e) => Err(ConnectFailure {
                        permanent: e.is_permanent(),
                        text: e.to_string(),
                        reason: match e {
                            tether_mio::ConnectError::Failed(r) => Some(r),
                            _ => None,
                        },
                    }),
                }
            }
        }
    }

    /// Sends and waits for the ack: the broker's message id.
    pub async fn send(&self, target: &str, body: &str, priority: Priority) -> Result<String, CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.send(target, body, priority).await?.message_id),
            Inner::Mio(c) => {
                let (c, t, b) = (c.clone(), target.to_owned(), body.to_owned());
                Ok(blocking(move || c.send(&t, &b, priority)).await?.message_id)
            }
        }
    }

    /// Sends with every option of `Outgoing` and waits for its result.
    pub async fn send_message(
        &self,
        outgoing: tether_proto::mesh::session::Outgoing,
    ) -> Result<String, CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.send_message(outgoing).await?.message_id),
            Inner::Mio(c) => {
                let c = c.clone();
                Ok(blocking(move || c.send_message(outgoing)).await?.message_id)
            }
        }
    }

    /// Lists peers.
    pub async fn list_peers(&self) -> Result<Vec<Peer>, CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.list_peers().await?),
            Inner::Mio(c) => {
                let c = c.clone();
                Ok(blocking(move || c.list_peers()).await?)
            }
        }
    }

    /// Reads a state key.
    pub async fn get_state(&self, key: &str) -> Result<Option<StateRow>, CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.get_state(key).await?),
            Inner::Mio(c) => {
                let (c, k) = (c.clone(), key.to_owned());
                Ok(blocking(move || c.get_state(&k)).await?)
            }
        }
    }

    /// Lists state.
    pub async fn list_state(&self) -> Result<Vec<StateRow>, CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.list_state().await?),
            Inner::Mio(c) => {
                let c = c.clone();
                Ok(blocking(move || c.list_state()).await?)
            }
        }
    }

    /// Stores a memory.
    pub async fn remember(&self, content: &str) -> Result<Option<String>, CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.remember(content, None).await?),
            Inner::Mio(c) => {
                let (c, t) = (c.clone(), content.to_owned());
                Ok(blocking(move || c.remember(&t, None)).await?)
            }
        }
    }

    /// Searches memories.
    pub async fn recall(&self, query: &str) -> Result<Vec<MemoryRow>, CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.recall(query).await?),
            Inner::Mio(c) => {
                let (c, q) = (c.clone(), query.to_owned());
                Ok(blocking(move || c.recall(&q)).await?)
            }
        }
    }

    /// Lists skills and fetches one by name: both empty on the test broker.
    pub async fn skills(&self) -> Result<(usize, bool), CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok((
                c.list_skills(None).await?.len(),
                c.get_skill("nope").await?.is_some(),
            )),
            Inner::Mio(c) => {
                let c = c.clone();
                blocking(move || Ok((c.list_skills(None)?.len(), c.get_skill("nope")?.is_some()))).await
            }
        }
    }

    /// Sets a state key (fire-and-forget).
    pub async fn set_state(&self, key: &str, value: serde_json::Value) -> Result<(), CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => Ok(c.set_state(key, value).await?),
            Inner::Mio(c) => {
                let (c, k) = (c.clone(), key.to_owned());
                Ok(blocking(move || c.set_state(&k, value)).await?)
            }
        }
    }

    /// Sets summary, status and visibility (fire-and-forget).
    pub async fn set_presence(&self, summary: &str, status: &str) -> Result<(), CallError> {
        match &self.inner {
            Inner::Tokio(c, _) => {
                c.set_summary(summary).await?;
                c.set_status(status).await?;
                Ok(c.set_visible(true).await?)
            }
            Inner::Mio(c) => {
                let (c, su, st) = (c.clone(), summary.to_owned(), status.to_owned());
                blocking(move || {
                    c.set_summary(&su)?;
                    c.set_status(&st)?;
                    Ok(c.set_visible(true)?)
                })
                .await
            }
        }
    }

    /// The next push, or `None` after [`PATIENCE`].
    pub async fn next_push(&mut self) -> Option<Arc<Push>> {
        match &mut self.inner {
            Inner::Tokio(_, sub) => tokio::time::timeout(PATIENCE, sub.recv()).await.ok().flatten(),
            Inner::Mio(c) => {
                let c = c.clone();
                blocking(move || c.recv_push(PATIENCE)).await
            }
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        match &self.inner {
            Inner::Tokio(c, _) => *c.status().borrow(),
            Inner::Mio(c) => c.status(),
        }
    }

    /// Waits until the status satisfies `pred`; panics after [`PATIENCE`].
    pub async fn wait_status(
        &self,
        what: &str,
        pred: impl Fn(Status) -> bool + Send + Sync + 'static,
    ) -> Status {
        let got = match &self.inner {
            Inner::Tokio(c, _) => {
                let mut rx = c.status();
                tokio::time::timeout(PATIENCE, rx.wait_for(|s| pred(*s)))
                    .await
                    .ok()
                    .and_then(|r| r.ok().map(|s| *s))
            }
            Inner::Mio(c) => {
                let c = c.clone();
                blocking(move || c.wait_status(pred, PATIENCE)).await
            }
        };
        match got {
            Some(s) => s,
            None => panic!("gave up waiting for the status to be {what}"),
        }
    }

    /// A metrics snapshot.
    pub async fn stats(&self) -> SessionStats {
        let stats = match &self.inner {
            Inner::Tokio(c, _) => c.stats().await.map_err(|e| e.to_string()),
            Inner::Mio(c) => {
                let c = c.clone();
                blocking(move || c.stats().map_err(|e| e.to_string())).await
            }
        };
        match stats {
            Ok(s) => s,
            Err(e) => panic!("no stats: {e}"),
        }
    }

    /// Waits for the first event `pred` picks; panics after [`PATIENCE`].
    pub async fn wait_for<T: Send + 'static>(
        &mut self,
        what: &str,
        pred: impl FnMut(&HostEvent) -> Option<T> + Send + 'static,
    ) -> T {
        let mut pred = pred;
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(event) = self.events.recv().await {
                if let Some(t) = pred(&event) {
                    return Some(t);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        match found {
            Some(t) => t,
            None => panic!("gave up waiting for {what}"),
        }
    }

    /// Closes for good, keeping this handle to call on afterwards.
    pub async fn close_keeping_handle(&self) {
        match &self.inner {
            Inner::Tokio(c, _) => c.close().await,
            Inner::Mio(c) => {
                let c = c.clone();
                blocking(move || c.close()).await
            }
        }
    }

    /// A new push subscription, from now on.
    pub fn subscribe(&self) -> AnySubscription {
        match &self.inner {
            Inner::Tokio(c, _) => AnySubscription::Tokio(c.subscribe()),
            Inner::Mio(c) => AnySubscription::Mio(c.subscribe()),
        }
    }

    /// A new receiver of lifecycle events and unconsumed frames, from now on.
    pub fn events(&self) -> tether_tokio::Receiver<HostEvent> {
        match &self.inner {
            Inner::Tokio(c, _) => c.events(),
            Inner::Mio(c) => c.events(),
        }
    }

    /// Closes for good.
    pub async fn close(self) {
        match self.inner {
            Inner::Tokio(c, _) => c.close().await,
            Inner::Mio(c) => blocking(move || c.close()).await,
        }
    }
}

/// A push subscription on either host: pushes from its creation on, in order,
/// the oldest lost (and counted) when it falls behind.
pub enum AnySubscription {
    /// tether-tokio's `Subscription`.
    Tokio(tether_tokio::Subscription),
    /// tether-mio's receiver.
    Mio(tether_tokio::Receiver<Arc<Push>>),
}

impl AnySubscription {
    /// The next push; `None` once the client is closed.
    pub async fn recv(&mut self) -> Option<Arc<Push>> {
        match self {
            AnySubscription::Tokio(s) => s.recv().await,
            AnySubscription::Mio(r) => r.recv().await,
        }
    }

    /// Pushes this subscriber lost by falling behind.
    pub fn missed(&self) -> u64 {
        match self {
            AnySubscription::Tokio(s) => s.missed(),
            AnySubscription::Mio(r) => r.missed(),
        }
    }
}

/// A hosted session client on either host; both hand out the same event
/// receiver, so scenarios wait on events the same way.
pub enum AnyHosted {
    /// tether-tokio's `HostedClient`.
    Tokio(tether_tokio::HostedClient),
    /// tether-mio's blocking `HostedClient`.
    Mio(tether_mio::HostedClient),
}

/// A hosted session's event receiver, the same type on both hosts.
pub type HostedEvents = tether_tokio::Receiver<tether_proto::hosted::HostedEvent>;

impl AnyHosted {
    /// Starts connecting on `host` and returns at once with a receiver that sees
    /// the first attempt; `connected` then waits for its outcome.
    pub async fn spawn(
        host: Host,
        config: tether_tokio::HostedClientConfig,
        tokens: tether_proto::hosted::TokenProvider,
    ) -> Result<(AnyHosted, HostedEvents), tether_tokio::ConnectError> {
        match host {
            Host::Tokio => {
                let c = tether_tokio::HostedClient::spawn(&config, tokens)?;
                let events = c.events();
                Ok((AnyHosted::Tokio(c), events))
            }
            Host::Mio => {
                let c = blocking(move || tether_mio::HostedClient::spawn(&config, tokens)).await?;
                let events = c.events();
                Ok((AnyHosted::Mio(c), events))
            }
        }
    }

    /// Waits for the first connect's outcome.
    pub async fn connected(&self) -> Result<(), tether_tokio::ConnectError> {
        match self {
            AnyHosted::Tokio(c) => c.connected().await,
            AnyHosted::Mio(c) => {
                let c = c.clone();
                blocking(move || c.connected()).await
            }
        }
    }

    /// Sends a control request; its `request_id`.
    pub async fn send_control_request(
        &self,
        request: serde_json::Value,
    ) -> Result<String, tether_tokio::HostedCallError> {
        match self {
            AnyHosted::Tokio(c) => c.send_control_request(request).await,
            AnyHosted::Mio(c) => {
                let c = c.clone();
                blocking(move || c.send_control_request(request)).await
            }
        }
    }

    /// Sends a control response.
    pub async fn send_control_response(
        &self,
        response: serde_json::Value,
    ) -> Result<(), tether_tokio::HostedCallError> {
        match self {
            AnyHosted::Tokio(c) => c.send_control_response(response).await,
            AnyHosted::Mio(c) => {
                let c = c.clone();
                blocking(move || c.send_control_response(response)).await
            }
        }
    }

    /// The socket counters (write queue overflows, messages, flushes).
    pub async fn io_stats(&self) -> Result<tether_tokio::IoStats, tether_tokio::HostedCallError> {
        match self {
            AnyHosted::Tokio(c) => c.io_stats().await,
            AnyHosted::Mio(c) => {
                let c = c.clone();
                blocking(move || c.io_stats()).await
            }
        }
    }

    /// Forces a fresh connection after 500 ms (S5).
    pub async fn reconnect(&self) -> Result<(), tether_tokio::HostedCallError> {
        match self {
            AnyHosted::Tokio(c) => c.reconnect().await,
            AnyHosted::Mio(c) => {
                let c = c.clone();
                blocking(move || c.reconnect()).await
            }
        }
    }

    /// The status now.
    pub fn status(&self) -> Status {
        match self {
            AnyHosted::Tokio(c) => *c.status().borrow(),
            AnyHosted::Mio(c) => c.status(),
        }
    }

    /// Closes for good.
    pub async fn close(self) {
        match self {
            AnyHosted::Tokio(c) => c.close().await,
            AnyHosted::Mio(c) => blocking(move || c.close()).await,
        }
    }
}
