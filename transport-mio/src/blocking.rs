//! The one-connection mesh client without async: a thin typed layer over the
//! generic blocking [`Connection`], the mesh session on a reactor thread of its
//! own, each call blocking until that thread answers.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_host::{
    replied, replies, sent, ClientError, ClientEvent, ConnectError, Fanout, MeshRouter, Receiver, Sent,
};
use tether_proto::lifecycle::Status;
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{Command, OpId, OpResult, Outgoing, Request, Session, SessionStats};
use tether_proto::mesh::wire::{MemoryRow, Peer, Priority, Reply, Skill, SkillSummary, StateRow};
use tether_proto::Now;

use crate::config::ConnConfig;
use crate::connection::Connection;
use tether_host::IoStats;

/// A blocking handle to one broker connection; clone it freely, use it from any
/// thread. The connection closes when [`BlockingClient::close`] is called or the
/// last clone is dropped, and then its thread is gone.
#[derive(Clone)]
pub struct BlockingClient {
    conn: Connection<Session, MeshRouter>,
    events: Arc<Fanout<ClientEvent>>,
    pushes: Arc<Fanout<Arc<Push>>>,
    /// The pushes `recv_push` takes, subscribed before the first attempt.
    inbox: Arc<Receiver<Arc<Push>>>,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient")
            .field("conn", &self.conn.id())
            .field("status", &self.status())
            .finish()
    }
}

/// Builds a [`BlockingClient`]: `BlockingClient::builder(url).identity_file(path)?.connect()`.
pub type ClientBuilder = tether_host::ClientBuilder<BlockingClient>;

impl tether_host::StartMesh for BlockingClient {
    type Connecting = Result<BlockingClient, ConnectError>;

    fn start(config: Result<ConnConfig, ConnectError>, wait: bool) -> Self::Connecting {
        let config = config?;
        if wait {
            BlockingClient::connect(config)
        } else {
            BlockingClient::spawn(config)
        }
    }
}

impl BlockingClient {
    /// A builder with the seeds' defaults for the broker at `url`; see
    /// [`ClientBuilder`](tether_host::ClientBuilder) for every setting.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Connects and returns on the broker's first hello ack, or fails with the
    /// broker's reason (L8). On failure no thread is left running (D1).
    pub fn connect(config: ConnConfig) -> Result<BlockingClient, ConnectError> {
        let client = BlockingClient::spawn(config)?;
        client.conn.first_open()?;
        // The first attempt is over and nobody subscribed to see it.
        client.events.release_first();
        Ok(client)
    }

    /// Starts connecting on a thread of its own and returns at once, so
    /// [`events`](Self::events) sees the first attempt; [`connected`](Self::connected)
    /// waits for its outcome.
    pub fn spawn(config: ConnConfig) -> Result<BlockingClient, ConnectError> {
        let parts = config.start(Instant::now())?;
        let inbox = Arc::new(parts.pushes.subscribe());
        let conn = Connection::spawn(parts.session, parts.router, config.url(), &config.transport)?;
        Ok(BlockingClient {
            conn,
            events: parts.events,
            pushes: parts.pushes,
            inbox,
        })
    }

    /// Waits for the first connect's outcome (L8); `Ok` at once after it.
    pub fn connected(&self) -> Result<(), ConnectError> {
        self.conn.connected()
    }

    /// The generic connection underneath.
    pub fn connection(&self) -> &Connection<Session, MeshRouter> {
        &self.conn
    }

    /// Starts an operation on the reactor thread and waits for its one result (X3).
    fn op(
        &self,
        start: impl FnOnce(&mut Session, Now) -> Result<OpId, ClientError> + Send + 'static,
    ) -> Result<OpResult, ClientError> {
        let rx = self.conn.call(move |session, router, now| {
            let id = start(session, now)?;
            let (tx, rx) = mpsc::sync_channel(1);
            router.on_resolved(
                id,
                Box::new(move |result| {
                    let _ = tx.send(result);
                }),
            );
            Ok::<_, ClientError>(rx)
        })??;
        rx.recv().map_err(|_| ClientError::Shutdown)
    }

    /// Sends `body` to `target` and waits for the broker's ack (B1); queued while
    /// reconnecting (B3).
    pub fn send(&self, target: &str, body: &str, priority: Priority) -> Result<Sent, ClientError> {
        self.send_message(Outgoing::new(target, body).priority(priority))
    }

    /// Sends with every option of [`Outgoing`] (idempotency id, offline policy, resend).
    pub fn send_message(&self, outgoing: Outgoing) -> Result<Sent, ClientError> {
        sent(self.op(move |s, now| Ok(s.send(now, outgoing)?))?)
    }

    /// Sends a request (B8) and takes the reply `pick` expects.
    pub fn ask<T>(&self, request: Request, pick: fn(Reply) -> Option<T>) -> Result<T, ClientError> {
        replied(self.op(move |s, now| Ok(s.request(now, request)?))?, pick)
    }

    /// Lists the mesh's peers, control-plane ones included (filter with
    /// [`Peer::is_user_facing`], B11).
    pub fn list_peers(&self) -> Result<Vec<Peer>, ClientError> {
        self.ask(Request::ListPeers, replies::peers)
    }

    /// Reads one shared state key; `None` when absent.
    pub fn get_state(&self, key: &str) -> Result<Option<StateRow>, ClientError> {
        self.ask(Request::GetState { key: key.into() }, replies::state)
    }

    /// Lists every shared state row.
    pub fn list_state(&self) -> Result<Vec<StateRow>, ClientError> {
        self.ask(Request::ListState, replies::state_list)
    }

    /// Stores a memory; returns its id when the broker gives one.
    pub fn remember(&self, content: &str, tags: Option<Vec<String>>) -> Result<Option<String>, ClientError> {
        let request = Request::Remember {
            content: content.into(),
            tags,
        };
        self.ask(request, replies::remembered)
    }

    /// Searches memories.
    pub fn recall(&self, query: &str) -> Result<Vec<MemoryRow>, ClientError> {
        self.ask(Request::Recall { query: query.into() }, replies::recalled)
    }

    /// Lists published skills, optionally filtered.
    pub fn list_skills(&self, query: Option<&str>) -> Result<Vec<SkillSummary>, ClientError> {
        let request = Request::ListSkills {
            query: query.map(Into::into),
        };
        self.ask(request, replies::skills)
    }

    /// Fetches one skill; `None` when not found.
    pub fn get_skill(&self, name: &str) -> Result<Option<Skill>, ClientError> {
        self.ask(Request::GetSkill { name: name.into() }, replies::skill)
    }

    /// Sends a fire-and-forget command; refused unless open (B9).
    pub fn command(&self, command: Command) -> Result<(), ClientError> {
        Ok(self.conn.call(move |s, _, now| s.command(now, command))??)
    }

    /// Sets a shared state value (others receive `state_change`).
    pub fn set_state(&self, key: &str, value: Value) -> Result<(), ClientError> {
        self.command(Command::SetState {
            key: key.into(),
            value,
        })
    }

    /// Deletes a memory.
    pub fn forget(&self, memory_id: &str) -> Result<(), ClientError> {
        self.command(Command::Forget {
            memory_id: memory_id.into(),
        })
    }

    /// Sets this peer's summary line.
    pub fn set_summary(&self, summary: &str) -> Result<(), ClientError> {
        self.command(Command::SetSummary {
            summary: summary.into(),
        })
    }

    /// Sets this peer's status (`idle`, `working`, `dnd`).
    pub fn set_status(&self, status: &str) -> Result<(), ClientError> {
        self.command(Command::SetStatus {
            status: status.into(),
        })
    }

    /// Shows or hides this peer in peer lists.
    pub fn set_visible(&self, visible: bool) -> Result<(), ClientError> {
        self.command(Command::SetVisible { visible })
    }

    /// Updates this peer's profile.
    pub fn set_profile(
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
    }

    /// The next push (B7), waiting at most `timeout`; `None` on timeout or once
    /// the client has shut down. A buffer that overflows loses its oldest
    /// pushes, counted by [`missed_pushes`](Self::missed_pushes); they stay in
    /// the history.
    pub fn recv_push(&self, timeout: Duration) -> Option<Arc<Push>> {
        self.inbox.recv_timeout(timeout)
    }

    /// Pushes dropped because [`recv_push`](Self::recv_push) fell behind (X4).
    pub fn missed_pushes(&self) -> u64 {
        self.inbox.missed()
    }

    /// A receiver of every push from now on, besides `recv_push`'s (B7).
    pub fn subscribe(&self) -> Receiver<Arc<Push>> {
        self.pushes.subscribe()
    }

    /// Lifecycle news and unconsumed frames (L14): after [`spawn`](Self::spawn)
    /// the first call's receiver has everything since the client started, after
    /// [`connect`](Self::connect) returns and for later calls from now on. A receiver that
    /// falls more than the configured capacity behind loses the oldest; it
    /// ends when the client shuts down.
    pub fn events(&self) -> Receiver<ClientEvent> {
        self.events.subscribe()
    }

    /// The connection status now.
    pub fn status(&self) -> Status {
        self.conn.status()
    }

    /// Waits until the status satisfies `pred`, at most `timeout`; the status
    /// then, or `None` on timeout.
    pub fn wait_status(&self, pred: impl Fn(Status) -> bool, timeout: Duration) -> Option<Status> {
        self.conn.wait_status(pred, timeout)
    }

    /// Takes the pushes buffered in the session's history (B7).
    pub fn drain_history(&self) -> Result<Vec<Arc<Push>>, ClientError> {
        Ok(self.conn.call(|s, _, _| s.drain_history())?)
    }

    /// A metrics snapshot (X12).
    pub fn stats(&self) -> Result<SessionStats, ClientError> {
        Ok(self.conn.call(|s, _, _| s.stats(Instant::now()))?)
    }

    /// The socket counters: write queue depth and overflows, messages, flushes.
    pub fn io_stats(&self) -> Result<IoStats, ClientError> {
        Ok(self.conn.io_stats()?)
    }

    /// "The network is back": reset the backoff and connect now (X11).
    pub fn retry_now(&self) -> Result<(), ClientError> {
        Ok(self.conn.retry_now()?)
    }

    /// Forces a fresh connection after a short delay (S5).
    pub fn reconnect(&self) -> Result<(), ClientError> {
        Ok(self.conn.reconnect()?)
    }

    /// Closes for good and waits until the thread has finished the close
    /// handshake and ended (L11). Idempotent.
    pub fn close(&self) {
        self.conn.close();
    }
}
