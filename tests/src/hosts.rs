//! One client API over both hosts, so every end-to-end scenario is written once
//! and run on tether-tokio and tether-mio (X1: identical observable behaviour is
//! a test, not a claim).
//!
//! The clients themselves are tether-host's, written once over `Drive`
//! (`MeshClient`, `HostedClient`); the hosts differ only in how a call is
//! waited for: tokio's returns a future, mio's blocks and returns the value.
//! So each verb here is one call of the shared API, written once, and
//! `call!` waits for it as its host needs: awaited on tokio, run on tokio's
//! blocking pool on mio, so scenarios stay async either way.

use std::sync::Arc;

use tether_proto::lifecycle::{Status, StopReason};
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{OpFailure, Outgoing, RequestError, SendRefusal, SessionStats};
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

/// One protocol's client on either host: tether-host's client type over
/// tether-tokio's connection (`T`) or tether-mio's (`M`).
#[derive(Clone, Debug)]
enum OnHost<T, M> {
    Tokio(T),
    Mio(M),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) => panic!("a blocking call panicked: {e}"),
    }
}

/// Waits for one call of the shared client API, `$call` over the client `$c`,
/// on whichever host holds it: tokio's call is a future to await, mio's blocks
/// and so runs on tokio's blocking pool (with a clone of the client and what
/// `$call` captures moved in). The call is written once and compiled per host,
/// since the two hosts' `Drive::Wait` types differ.
macro_rules! call {
    ($client:expr, |$c:ident| $call:expr) => {
        match $client {
            OnHost::Tokio($c) => $call.await,
            OnHost::Mio($c) => {
                let $c = $c.clone();
                blocking(move || {
                    let $c = &$c;
                    $call
                })
                .await
            }
        }
    };
}

/// `$get` over the client `$c` on either host, for what neither host waits for
/// (receivers, the status).
macro_rules! get {
    ($client:expr, |$c:ident| $get:expr) => {
        match $client {
            OnHost::Tokio($c) => $get,
            OnHost::Mio($c) => $get,
        }
    };
}

/// The status now, from either host's form of it: tokio's watch, mio's snapshot.
trait StatusNow {
    fn now(self) -> Status;
}

impl StatusNow for Status {
    fn now(self) -> Status {
        self
    }
}

impl StatusNow for tokio::sync::watch::Receiver<Status> {
    fn now(self) -> Status {
        *self.borrow()
    }
}

/// What a scenario asks of a mesh client configuration: the one configuration
/// type of both hosts (tether-tokio's `ClientConfig`, tether-mio's
/// `ConnConfig`), so both get the same.
pub type Spec = tether_tokio::ClientConfig;

/// A lifecycle notification or an unconsumed frame: both hosts report the same
/// type (tether-host's `ClientEvent`).
pub type HostEvent = tether_tokio::ClientEvent;

/// A push subscription on either host (tether-host's one receiver type):
/// pushes from its creation on, in order, the oldest lost (and counted) when
/// it falls behind.
pub type AnySubscription = tether_tokio::Receiver<Arc<Push>>;

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

// One connect error type for both hosts (tether-host's).
impl From<tether_tokio::ConnectError> for ConnectFailure {
    fn from(e: tether_tokio::ConnectError) -> Self {
        ConnectFailure {
            permanent: e.is_permanent(),
            text: e.to_string(),
            reason: match e {
                tether_tokio::ConnectError::Failed(r) => Some(r),
                _ => None,
            },
        }
    }
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

// One call error type for both hosts (tether-host's).
impl From<tether_tokio::ClientError> for CallError {
    fn from(e: tether_tokio::ClientError) -> Self {
        use tether_tokio::ClientError as E;
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

/// The first item of `events` that `pick` takes; panics after [`PATIENCE`] or
/// if the receiver ends first.
pub async fn wait_for<E, T>(
    events: &mut tether_tokio::Receiver<E>,
    what: &str,
    mut pick: impl FnMut(&E) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = events.recv().await {
            if let Some(t) = pick(&event) {
                return Some(t);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    found.unwrap_or_else(|| panic!("gave up waiting for {what}"))
}

/// A mesh client on either host, with a push subscription and an event
/// receiver of its own taken when it was made.
pub struct AnyClient {
    client: OnHost<tether_tokio::Client, tether_mio::BlockingClient>,
    pushes: AnySubscription,
    events: tether_tokio::Receiver<HostEvent>,
}

impl AnyClient {
    fn new(client: OnHost<tether_tokio::Client, tether_mio::BlockingClient>) -> AnyClient {
        let (events, pushes) = get!(&client, |c| (c.events(), c.subscribe()));
        AnyClient {
            client,
            pushes,
            events,
        }
    }

    /// Wraps a tether-tokio client made some other way (its builder).
    pub fn from_tokio(client: tether_tokio::Client) -> AnyClient {
        AnyClient::new(OnHost::Tokio(client))
    }

    /// Wraps a tether-mio client made some other way (its builder).
    pub fn from_mio(client: tether_mio::BlockingClient) -> AnyClient {
        AnyClient::new(OnHost::Mio(client))
    }

    /// Connects on `host`, returning on the first ack or the failure (L8).
    pub async fn connect(host: Host, spec: Spec) -> Result<AnyClient, ConnectFailure> {
        let client = match host {
            Host::Tokio => OnHost::Tokio(tether_tokio::Client::connect(spec).await?),
            Host::Mio => OnHost::Mio(blocking(move || tether_mio::BlockingClient::connect(spec)).await?),
        };
        Ok(AnyClient::new(client))
    }

    /// Starts connecting on `host` and returns at once; [`wait_for`](Self::wait_for)
    /// sees the first attempt's events, [`connected`](Self::connected) waits
    /// for its outcome.
    pub async fn spawn(host: Host, spec: Spec) -> Result<AnyClient, ConnectFailure> {
        let client = match host {
            Host::Tokio => OnHost::Tokio(tether_tokio::Client::spawn(spec)?),
            Host::Mio => OnHost::Mio(blocking(move || tether_mio::BlockingClient::spawn(spec)).await?),
        };
        Ok(AnyClient::new(client))
    }

    /// Waits for the first connect's outcome (L8).
    pub async fn connected(&self) -> Result<(), tether_tokio::ConnectError> {
        call!(&self.client, |c| c.connected())
    }

    /// Sends and waits for the ack: the broker's message id.
    pub async fn send(&self, target: &str, body: &str, priority: Priority) -> Result<String, CallError> {
        let (target, body) = (target.to_owned(), body.to_owned());
        Ok(call!(&self.client, |c| c.send(&target, &body, priority))?.message_id)
    }

    /// Sends with every option of `Outgoing` and waits for its result.
    pub async fn send_message(&self, outgoing: Outgoing) -> Result<String, CallError> {
        Ok(call!(&self.client, |c| c.send_message(outgoing))?.message_id)
    }

    /// Lists peers.
    pub async fn list_peers(&self) -> Result<Vec<Peer>, CallError> {
        Ok(call!(&self.client, |c| c.list_peers())?)
    }

    /// Reads a state key.
    pub async fn get_state(&self, key: &str) -> Result<Option<StateRow>, CallError> {
        let key = key.to_owned();
        Ok(call!(&self.client, |c| c.get_state(&key))?)
    }

    /// Lists state.
    pub async fn list_state(&self) -> Result<Vec<StateRow>, CallError> {
        Ok(call!(&self.client, |c| c.list_state())?)
    }

    /// Stores a memory.
    pub async fn remember(&self, content: &str) -> Result<Option<String>, CallError> {
        let content = content.to_owned();
        Ok(call!(&self.client, |c| c.remember(&content, None))?)
    }

    /// Searches memories.
    pub async fn recall(&self, query: &str) -> Result<Vec<MemoryRow>, CallError> {
        let query = query.to_owned();
        Ok(call!(&self.client, |c| c.recall(&query))?)
    }

    /// Lists skills and fetches one by name: both empty on the test broker.
    pub async fn skills(&self) -> Result<(usize, bool), CallError> {
        let listed = call!(&self.client, |c| c.list_skills(None))?;
        let found = call!(&self.client, |c| c.get_skill("nope"))?;
        Ok((listed.len(), found.is_some()))
    }

    /// Sets a state key (fire-and-forget).
    pub async fn set_state(&self, key: &str, value: serde_json::Value) -> Result<(), CallError> {
        let key = key.to_owned();
        Ok(call!(&self.client, |c| c.set_state(&key, value))?)
    }

    /// Sets summary, status and visibility (fire-and-forget).
    pub async fn set_presence(&self, summary: &str, status: &str) -> Result<(), CallError> {
        let (summary, status) = (summary.to_owned(), status.to_owned());
        call!(&self.client, |c| c.set_summary(&summary))?;
        call!(&self.client, |c| c.set_status(&status))?;
        Ok(call!(&self.client, |c| c.set_visible(true))?)
    }

    /// The next push on this client's own subscription, or `None` after [`PATIENCE`].
    pub async fn next_push(&mut self) -> Option<Arc<Push>> {
        tokio::time::timeout(PATIENCE, self.pushes.recv())
            .await
            .ok()
            .flatten()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        get!(&self.client, |c| c.status().now())
    }

    /// Waits until the status satisfies `pred`; panics after [`PATIENCE`].
    pub async fn wait_status(
        &self,
        what: &str,
        pred: impl Fn(Status) -> bool + Send + Sync + 'static,
    ) -> Status {
        let got = call!(&self.client, |c| c.wait_status(pred, PATIENCE));
        got.unwrap_or_else(|| panic!("gave up waiting for the status to be {what}"))
    }

    /// A metrics snapshot.
    pub async fn stats(&self) -> SessionStats {
        call!(&self.client, |c| c.stats()).unwrap_or_else(|e| panic!("no stats: {e}"))
    }

    /// Waits for the first event `pred` picks on this client's own receiver;
    /// panics after [`PATIENCE`].
    pub async fn wait_for<T>(&mut self, what: &str, pred: impl FnMut(&HostEvent) -> Option<T>) -> T {
        wait_for(&mut self.events, what, pred).await
    }

    /// Closes for good, keeping this handle to call on afterwards.
    pub async fn close_keeping_handle(&self) {
        call!(&self.client, |c| c.close())
    }

    /// A new push subscription, from now on.
    pub fn subscribe(&self) -> AnySubscription {
        get!(&self.client, |c| c.subscribe())
    }

    /// A new receiver of lifecycle events and unconsumed frames, from now on.
    pub fn events(&self) -> tether_tokio::Receiver<HostEvent> {
        get!(&self.client, |c| c.events())
    }

    /// Closes for good.
    pub async fn close(self) {
        self.close_keeping_handle().await
    }
}

/// A hosted session's event receiver, the same type on both hosts.
pub type HostedEvents = tether_tokio::Receiver<tether_proto::hosted::HostedEvent>;

/// A hosted session client on either host; clone it freely. Both hosts hand
/// out the same event receiver, so scenarios wait on events the same way.
#[derive(Clone, Debug)]
pub struct AnyHosted(OnHost<tether_tokio::HostedClient, tether_mio::HostedClient>);

impl AnyHosted {
    /// Starts connecting on `host` and returns at once with a receiver that sees
    /// the first attempt; `connected` then waits for its outcome.
    pub async fn spawn(
        host: Host,
        config: tether_tokio::HostedClientConfig,
        tokens: tether_proto::hosted::TokenProvider,
    ) -> Result<(AnyHosted, HostedEvents), tether_tokio::ConnectError> {
        let client = match host {
            Host::Tokio => OnHost::Tokio(tether_tokio::HostedClient::spawn(&config, tokens)?),
            Host::Mio => {
                OnHost::Mio(blocking(move || tether_mio::HostedClient::spawn(&config, tokens)).await?)
            }
        };
        let events = get!(&client, |c| c.events());
        Ok((AnyHosted(client), events))
    }

    /// Waits for the first connect's outcome.
    pub async fn connected(&self) -> Result<(), tether_tokio::ConnectError> {
        call!(&self.0, |c| c.connected())
    }

    /// Sends a control request; its `request_id`.
    pub async fn send_control_request(
        &self,
        request: serde_json::Value,
    ) -> Result<String, tether_tokio::HostedCallError> {
        call!(&self.0, |c| c.send_control_request(request))
    }

    /// Sends a control response.
    pub async fn send_control_response(
        &self,
        response: serde_json::Value,
    ) -> Result<(), tether_tokio::HostedCallError> {
        call!(&self.0, |c| c.send_control_response(response))
    }

    /// The socket counters (write queue overflows, messages, flushes).
    pub async fn io_stats(&self) -> Result<tether_tokio::IoStats, tether_tokio::HostedCallError> {
        call!(&self.0, |c| c.io_stats())
    }

    /// Forces a fresh connection after 500 ms (S5).
    pub async fn reconnect(&self) -> Result<(), tether_tokio::HostedCallError> {
        call!(&self.0, |c| c.reconnect())
    }

    /// The status now.
    pub fn status(&self) -> Status {
        get!(&self.0, |c| c.status().now())
    }

    /// Closes for good.
    pub async fn close(self) {
        call!(&self.0, |c| c.close())
    }
}
