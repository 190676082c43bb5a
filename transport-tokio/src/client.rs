//! The mesh client: a thin typed layer over the generic [`Connection`].
//!
//! Every send and request goes through one path ([`Client::op`]): the session
//! accepts it on the driver task and files a waiter that the router resolves
//! when the session says so (X3); the verbs only name the request and the
//! reply they expect.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;
use serde_json::Value;
use tether_host::{
    replied, replies, sent, ClientError, ClientEvent, ConnectError, Fanout, IoStats, MeshRouter, Receiver,
    Sent,
};
use tether_proto::lifecycle::Status;
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{Command, OpId, OpResult, Outgoing, Request, Session, SessionStats};
use tether_proto::mesh::wire::{MemoryRow, Peer, Priority, Reply, Skill, SkillSummary, StateRow};
use tether_proto::Now;
use tokio::sync::{oneshot, watch};

use crate::config::ClientConfig;
use crate::connection::Connection;

/// A handle to one broker connection; clone it freely. The connection closes
/// when [`Client::close`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct Client {
    conn: Connection<Session, MeshRouter>,
    pushes: Arc<Fanout<Arc<Push>>>,
    events: Arc<Fanout<ClientEvent>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.conn.id())
            .field("status", &*self.conn.status().borrow())
            .finish()
    }
}

/// Builds a [`Client`]: `Client::builder(url).identity_file(path)?.connect().await`.
pub type ClientBuilder = tether_host::ClientBuilder<Client>;

/// What [`ClientBuilder::connect`] returns: the connect, to be awaited.
pub type Connecting = Pin<Box<dyn Future<Output = Result<Client, ConnectError>> + Send>>;

impl tether_host::StartMesh for Client {
    type Connecting = Connecting;

    fn start(config: Result<ClientConfig, ConnectError>, wait: bool) -> Connecting {
        Box::pin(async move {
            let config = config?;
            if wait {
                Client::connect(config).await
            } else {
                Client::spawn(config)
            }
        })
    }
}

impl Client {
    /// A builder with the seeds' defaults for the broker at `url`; see
    /// [`ClientBuilder`](tether_host::ClientBuilder) for every setting.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Connects and resolves on the broker's first hello ack, or fails with the
    /// broker's reason (L8). On failure nothing keeps running (D1).
    pub async fn connect(config: ClientConfig) -> Result<Client, ConnectError> {
        let client = Client::spawn(config)?;
        client.conn.first_open().await?;
        // The first attempt is over and nobody subscribed to see it.
        client.events.release_first();
        client.pushes.release_first();
        Ok(client)
    }

    /// Starts connecting and returns at once, so [`events`](Self::events) and
    /// [`subscribe`](Self::subscribe) see the first attempt;
    /// [`connected`](Self::connected) waits for its outcome. Sends made
    /// meanwhile wait in the session's outbound queue (B3).
    pub fn spawn(config: ClientConfig) -> Result<Client, ConnectError> {
        let parts = config.start(Instant::now())?;
        let conn = Connection::spawn(parts.session, parts.router, config.url(), &config.transport)?;
        Ok(Client {
            conn,
            pushes: parts.pushes,
            events: parts.events,
        })
    }

    /// Waits for the first connect's outcome (L8); `Ok` at once after it.
    pub async fn connected(&self) -> Result<(), ConnectError> {
        self.conn.connected().await
    }

    /// The generic connection underneath.
    pub fn connection(&self) -> &Connection<Session, MeshRouter> {
        &self.conn
    }

    /// Starts an operation on the driver task and waits for its one result (X3).
    ///
    /// One reply channel carries either the refusal or the result, so the
    /// caller waits (and is woken) once per operation, not once for the
    /// acceptance and again for the result.
    async fn op(
        &self,
        start: impl FnOnce(&mut Session, Now) -> Result<OpId, ClientError> + Send + 'static,
    ) -> Result<OpResult, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.conn
            .run(move |session, router, now| match start(session, now) {
                Ok(id) => router.on_resolved(
                    id,
                    Box::new(move |result| {
                        let _ = tx.send(Ok(result));
                    }),
                ),
                Err(refused) => {
                    let _ = tx.send(Err(refused));
                }
            })
            .await?;
        rx.await.map_err(|_| ClientError::Shutdown)?
    }

    /// Sends `body` to `target` and waits for the broker's ack (B1); queued while
    /// reconnecting (B3).
    pub async fn send(&self, target: &str, body: &str, priority: Priority) -> Result<Sent, ClientError> {
        self.send_message(Outgoing::new(target, body).priority(priority))
            .await
    }

    /// Sends with every option of [`Outgoing`] (idempotency id, offline policy, resend).
    pub async fn send_message(&self, outgoing: Outgoing) -> Result<Sent, ClientError> {
        sent(self.op(move |s, now| Ok(s.send(now, outgoing)?)).await?)
    }

    /// Sends a request (B8) and takes the reply `pick` expects.
    pub async fn ask<T>(&self, request: Request, pick: fn(Reply) -> Option<T>) -> Result<T, ClientError> {
        replied(self.op(move |s, now| Ok(s.request(now, request)?)).await?, pick)
    }

    /// Lists the mesh's peers, control-plane ones included (filter with
    /// [`Peer::is_user_facing`], B11).
    pub async fn list_peers(&self) -> Result<Vec<Peer>, ClientError> {
        self.ask(Request::ListPeers, replies::peers).await
    }

    /// Reads one shared state key; `None` when absent.
    pub async fn get_state(&self, key: &str) -> Result<Option<StateRow>, ClientError> {
        self.ask(Request::GetState { key: key.into() }, replies::state)
            .await
    }

    /// Lists every shared state row.
    pub async fn list_state(&self) -> Result<Vec<StateRow>, ClientError> {
        self.ask(Request::ListState, replies::state_list).await
    }

    /// Stores a memory; returns its id when the broker gives one.
    pub async fn remember(
        &self,
        content: &str,
        tags: Option<Vec<String>>,
    ) -> Result<Option<String>, ClientError> {
        let request = Request::Remember {
            content: content.into(),
            tags,
        };
        self.ask(request, replies::remembered).await
    }

    /// Searches memories.
    pub async fn recall(&self, query: &str) -> Result<Vec<MemoryRow>, ClientError> {
        self.ask(Request::Recall { query: query.into() }, replies::recalled)
            .await
    }

    /// Lists published skills, optionally filtered.
    pub async fn list_skills(&self, query: Option<&str>) -> Result<Vec<SkillSummary>, ClientError> {
        let request = Request::ListSkills {
            query: query.map(Into::into),
        };
        self.ask(request, replies::skills).await
    }

    /// Fetches one skill; `None` when not found.
    pub async fn get_skill(&self, name: &str) -> Result<Option<Skill>, ClientError> {
        self.ask(Request::GetSkill { name: name.into() }, replies::skill)
            .await
    }

    /// Sends a fire-and-forget command; refused unless open (B9).
    pub async fn command(&self, command: Command) -> Result<(), ClientError> {
        Ok(self.conn.call(move |s, _, now| s.command(now, command)).await??)
    }

    /// Sets a shared state value (others receive `state_change`).
    pub async fn set_state(&self, key: &str, value: Value) -> Result<(), ClientError> {
        self.command(Command::SetState {
            key: key.into(),
            value,
        })
        .await
    }

    /// Deletes a memory.
    pub async fn forget(&self, memory_id: &str) -> Result<(), ClientError> {
        self.command(Command::Forget {
            memory_id: memory_id.into(),
        })
        .await
    }

    /// Sets this peer's summary line.
    pub async fn set_summary(&self, summary: &str) -> Result<(), ClientError> {
        self.command(Command::SetSummary {
            summary: summary.into(),
        })
        .await
    }

    /// Sets this peer's status (`idle`, `working`, `dnd`).
    pub async fn set_status(&self, status: &str) -> Result<(), ClientError> {
        self.command(Command::SetStatus {
            status: status.into(),
        })
        .await
    }

    /// Shows or hides this peer in peer lists.
    pub async fn set_visible(&self, visible: bool) -> Result<(), ClientError> {
        self.command(Command::SetVisible { visible }).await
    }

    /// Updates this peer's profile.
    pub async fn set_profile(
        &self,
        avatar: Option<String>,
        title: Option<String>,
        bio: Option<String>,
        capabilities: Option<Vec<String>>,
    ) -> Result<(), ClientError> {
        self.command(Command::SetProfile {
            avatar,
            title,
            bio,
            capabilities,
        })
        .await
    }

    /// A stream of every push from now on (B7); it ends after the close.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            inner: self.pushes.subscribe(),
        }
    }

    /// Lifecycle news and unconsumed frames (L14): after [`spawn`](Self::spawn)
    /// the first call's receiver has everything since the client started, after
    /// [`connect`](Self::connect) returns and for later calls from now on; `recv()` gives
    /// `None` after the close. A receiver more than the configured capacity
    /// behind loses the oldest.
    pub fn events(&self) -> Receiver<ClientEvent> {
        self.events.subscribe()
    }

    /// The connection status; `changed().await` waits for the next change and
    /// fails once the connection has shut down.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.conn.status()
    }

    /// Takes the pushes buffered in the session's history (B7).
    pub async fn drain_history(&self) -> Result<Vec<Arc<Push>>, ClientError> {
        Ok(self.conn.call(|s, _, _| s.drain_history()).await?)
    }

    /// A metrics snapshot (X12).
    pub async fn stats(&self) -> Result<SessionStats, ClientError> {
        Ok(self.conn.call(|s, _, _| s.stats(Instant::now())).await?)
    }

    /// The socket counters: write queue depth and overflows, messages, flushes.
    pub async fn io_stats(&self) -> Result<IoStats, ClientError> {
        Ok(self.conn.io_stats().await?)
    }

    /// "The network is back": reset the backoff and connect now (X11).
    pub async fn retry_now(&self) -> Result<(), ClientError> {
        Ok(self.conn.retry_now().await?)
    }

    /// Forces a fresh connection after a short delay (S5).
    pub async fn reconnect(&self) -> Result<(), ClientError> {
        Ok(self.conn.reconnect().await?)
    }

    /// Closes for good and waits until the task has finished the close
    /// handshake (L11). Idempotent.
    pub async fn close(&self) {
        self.conn.close().await;
    }
}

/// A stream of pushes. A subscriber that falls more than the configured capacity
/// behind misses the oldest ones; [`Subscription::missed`] counts them (X4).
#[derive(Debug)]
pub struct Subscription {
    inner: Receiver<Arc<Push>>,
}

impl Subscription {
    /// Pushes this subscriber missed by lagging.
    pub fn missed(&self) -> u64 {
        self.inner.missed()
    }

    /// The next push; `None` once the client has shut down.
    pub async fn recv(&mut self) -> Option<Arc<Push>> {
        self.inner.recv().await
    }
}

impl Stream for Subscription {
    type Item = Arc<Push>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_recv(cx)
    }
}
