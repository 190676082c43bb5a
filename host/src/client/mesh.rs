//! The mesh client, written once for both hosts: every send and request goes
//! through one path ([`MeshClient::op`]): the session accepts it on the host's
//! task or thread and files a waiter that the router resolves when the session
//! says so (X3); the verbs only name the request and the reply they expect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_proto::lifecycle::Status;
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{Command, OpId, OpResult, Outgoing, Request, Session, SessionStats};
use tether_proto::mesh::wire::{MemoryRow, Peer, Priority, Reply, Skill, SkillSummary, StateRow};
use tether_proto::Now;

use crate::builder::{ClientBuilder, StartMesh};
use crate::drive::{Blocking, Drive};
use crate::error::{replied, sent, ClientError, ClientEvent, ConnectError, Sent};
use crate::fanout::{Fanout, Receiver};
use crate::mesh::MeshConfig;
use crate::oneshot::answer;
use crate::queue::IoStats;
use crate::replies;
use crate::router::MeshRouter;

/// A handle to one broker connection; clone it freely (on the blocking host,
/// use it from any thread). The connection closes when [`close`](Self::close)
/// is called or the last clone is dropped, and then nothing of it keeps running.
pub struct MeshClient<C: Drive> {
    conn: C,
    pushes: Arc<Fanout<Arc<Push>>>,
    events: Arc<Fanout<ClientEvent>>,
    /// The pushes `recv_push` takes on a blocking host, subscribed before the
    /// first attempt; `None` on an async host, which streams them instead.
    inbox: Option<Arc<Receiver<Arc<Push>>>>,
}

impl<C: Drive + Clone> Clone for MeshClient<C> {
    fn clone(&self) -> Self {
        MeshClient {
            conn: self.conn.clone(),
            pushes: Arc::clone(&self.pushes),
            events: Arc::clone(&self.events),
            inbox: self.inbox.clone(),
        }
    }
}

impl<C: Drive + std::fmt::Debug> std::fmt::Debug for MeshClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClient").field("conn", &self.conn).finish()
    }
}

/// A mesh connection of some host.
pub trait MeshDrive: Drive<Machine = Session, Router = MeshRouter> {}
impl<C: Drive<Machine = Session, Router = MeshRouter>> MeshDrive for C {}

impl<C: MeshDrive> StartMesh for MeshClient<C> {
    type Connecting = C::Wait<'static, Result<Self, ConnectError>>;

    fn start(config: Result<MeshConfig, ConnectError>, wait: bool) -> Self::Connecting {
        match config {
            Ok(config) if wait => Self::connect(config),
            Ok(config) => C::ready(Self::spawn(config)),
            Err(e) => C::ready(Err(e)),
        }
    }
}

impl<C: MeshDrive> MeshClient<C> {
    /// A builder with the seeds' defaults for the broker at `url`; see
    /// [`ClientBuilder`] for every setting.
    pub fn builder(url: impl Into<String>) -> ClientBuilder<Self> {
        ClientBuilder::new(url)
    }

    /// Connects and resolves on the broker's first hello ack, or fails with the
    /// broker's reason (L8). On failure nothing keeps running (D1).
    pub fn connect(config: MeshConfig) -> C::Wait<'static, Result<Self, ConnectError>> {
        match Self::spawn(config) {
            Ok(client) => {
                let MeshClient {
                    conn,
                    pushes,
                    events,
                    inbox,
                } = client;
                C::map(conn.opened(), move |r| {
                    // The first attempt is over and nobody subscribed to see it.
                    events.release_first();
                    pushes.release_first();
                    r.map(|conn| MeshClient {
                        conn,
                        pushes,
                        events,
                        inbox,
                    })
                })
            }
            Err(e) => C::ready(Err(e)),
        }
    }

    /// Starts connecting and returns at once, so [`events`](Self::events) and
    /// [`subscribe`](Self::subscribe) see the first attempt;
    /// [`connected`](Self::connected) waits for its outcome. Sends made
    /// meanwhile wait in the session's outbound queue (B3).
    pub fn spawn(config: MeshConfig) -> Result<Self, ConnectError> {
        let parts = config.start(Instant::now())?;
        let inbox = C::BLOCKING.then(|| Arc::new(parts.pushes.subscribe()));
        let conn = C::spawn(parts.session, parts.router, config.url(), &config.transport)?;
        Ok(MeshClient {
            conn,
            pushes: parts.pushes,
            events: parts.events,
            inbox,
        })
    }

    /// Waits for the first connect's outcome (L8); `Ok` at once after it.
    pub fn connected(&self) -> C::Wait<'_, Result<(), ConnectError>> {
        self.conn.connected()
    }

    /// The connection underneath.
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// Starts an operation on the host's task or thread and waits for its one
    /// result (X3), which `finish` reads. One answer carries either the
    /// refusal or the result, so the caller waits (and is woken) once.
    fn op<T: Send + 'static>(
        &self,
        start: impl FnOnce(&mut Session, Now) -> Result<OpId, ClientError> + Send + 'static,
        finish: impl FnOnce(OpResult) -> Result<T, ClientError> + Send + 'static,
    ) -> C::Wait<'_, Result<T, ClientError>> {
        let (promise, answer) = answer();
        self.conn.run(
            move |session, router, now| match start(session, now) {
                Ok(id) => router.on_resolved(id, Box::new(move |result| promise.give(Ok(result)))),
                Err(refused) => promise.give(Err(refused)),
            },
            answer,
            move |r| finish(r??),
        )
    }

    /// Runs `f` with the session; its refusal is the call's error.
    fn call<T: Send + 'static, E: Into<ClientError> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session, Now) -> Result<T, E> + Send + 'static,
    ) -> C::Wait<'_, Result<T, ClientError>> {
        C::map(self.conn.with(f), |r| r?.map_err(Into::into))
    }

    /// Sends `body` to `target` and waits for the broker's ack (B1); queued while
    /// reconnecting (B3).
    pub fn send(
        &self,
        target: &str,
        body: &str,
        priority: Priority,
    ) -> C::Wait<'_, Result<Sent, ClientError>> {
        self.send_message(Outgoing::new(target, body).priority(priority))
    }

    /// Sends with every option of [`Outgoing`] (idempotency id, offline policy, resend).
    pub fn send_message(&self, outgoing: Outgoing) -> C::Wait<'_, Result<Sent, ClientError>> {
        self.op(move |s, now| Ok(s.send(now, outgoing)?), sent)
    }

    /// Sends a request (B8) and takes the reply `pick` expects.
    pub fn ask<T: Send + 'static>(
        &self,
        request: Request,
        pick: fn(Reply) -> Option<T>,
    ) -> C::Wait<'_, Result<T, ClientError>> {
        self.op(
            move |s, now| Ok(s.request(now, request)?),
            move |r| replied(r, pick),
        )
    }

    /// Lists the mesh's peers, control-plane ones included (filter with
    /// [`Peer::is_user_facing`], B11).
    pub fn list_peers(&self) -> C::Wait<'_, Result<Vec<Peer>, ClientError>> {
        self.ask(Request::ListPeers, replies::peers)
    }

    /// Reads one shared state key; `None` when absent.
    pub fn get_state(&self, key: &str) -> C::Wait<'_, Result<Option<StateRow>, ClientError>> {
        self.ask(Request::GetState { key: key.into() }, replies::state)
    }

    /// Lists every shared state row.
    pub fn list_state(&self) -> C::Wait<'_, Result<Vec<StateRow>, ClientError>> {
        self.ask(Request::ListState, replies::state_list)
    }

    /// Stores a memory; returns its id when the broker gives one.
    pub fn remember(
        &self,
        content: &str,
        tags: Option<Vec<String>>,
    ) -> C::Wait<'_, Result<Option<String>, ClientError>> {
        let request = Request::Remember {
            content: content.into(),
            tags,
        };
        self.ask(request, replies::remembered)
    }

    /// Searches memories.
    pub fn recall(&self, query: &str) -> C::Wait<'_, Result<Vec<MemoryRow>, ClientError>> {
        self.ask(Request::Recall { query: query.into() }, replies::recalled)
    }

    /// Lists published skills, optionally filtered.
    pub fn list_skills(&self, query: Option<&str>) -> C::Wait<'_, Result<Vec<SkillSummary>, ClientError>> {
        let request = Request::ListSkills {
            query: query.map(Into::into),
        };
        self.ask(request, replies::skills)
    }

    /// Fetches one skill; `None` when not found.
    pub fn get_skill(&self, name: &str) -> C::Wait<'_, Result<Option<Skill>, ClientError>> {
        self.ask(Request::GetSkill { name: name.into() }, replies::skill)
    }

    /// Sends a fire-and-forget command; refused unless open (B9).
    pub fn command(&self, command: Command) -> C::Wait<'_, Result<(), ClientError>> {
        self.call(move |s, now| s.command(now, command))
    }

    /// Sets a shared state value (others receive `state_change`).
    pub fn set_state(&self, key: &str, value: Value) -> C::Wait<'_, Result<(), ClientError>> {
        self.command(Command::SetState {
            key: key.into(),
            value,
        })
    }

    /// Deletes a memory.
    pub fn forget(&self, memory_id: &str) -> C::Wait<'_, Result<(), ClientError>> {
        self.command(Command::Forget {
            memory_id: memory_id.into(),
        })
    }

    /// Sets this peer's summary line.
    pub fn set_summary(&self, summary: &str) -> C::Wait<'_, Result<(), ClientError>> {
        self.command(Command::SetSummary {
            summary: summary.into(),
        })
    }

    /// Sets this peer's status (`idle`, `working`, `dnd`).
    pub fn set_status(&self, status: &str) -> C::Wait<'_, Result<(), ClientError>> {
        self.command(Command::SetStatus {
            status: status.into(),
        })
    }

    /// Shows or hides this peer in peer lists.
    pub fn set_visible(&self, visible: bool) -> C::Wait<'_, Result<(), ClientError>> {
        self.command(Command::SetVisible { visible })
    }

    /// Updates this peer's profile.
    pub fn set_profile(
        &self,
        avatar: Option<String>,
        title: Option<String>,
        bio: Option<String>,
        capabilities: Option<Vec<String>>,
    ) -> C::Wait<'_, Result<(), ClientError>> {
        self.command(Command::SetProfile {
            avatar,
            title,
            bio,
            capabilities,
        })
    }

    /// A receiver of every push from now on (B7): `recv().await` or a
    /// `Stream` in async code, `recv_timeout` in blocking code; it ends after
    /// the close. One that falls more than the configured capacity behind
    /// misses the oldest, counted by its `missed()` (X4).
    pub fn subscribe(&self) -> Receiver<Arc<Push>> {
        self.pushes.subscribe()
    }

    /// Lifecycle news and unconsumed frames (L14): after [`spawn`](Self::spawn)
    /// the first call's receiver has everything since the client started;
    /// after [`connect`](Self::connect) returns, and for later calls, from now
    /// on. It ends after the close. A receiver more than the configured capacity
    /// behind loses the oldest.
    pub fn events(&self) -> Receiver<ClientEvent> {
        self.events.subscribe()
    }

    /// The connection status (a snapshot on the blocking host; a watch on the
    /// async one, whose `changed()` fails once the connection has shut down).
    pub fn status(&self) -> C::Status {
        self.conn.status()
    }

    /// Waits until the status satisfies `pred`, at most `timeout`; the status
    /// then, or `None` on timeout.
    pub fn wait_status(
        &self,
        pred: impl Fn(Status) -> bool + Send + Sync + 'static,
        timeout: Duration,
    ) -> C::Wait<'_, Option<Status>> {
        self.conn.wait_status(pred, timeout)
    }

    /// Takes the pushes buffered in the session's history (B7).
    pub fn drain_history(&self) -> C::Wait<'_, Result<Vec<Arc<Push>>, ClientError>> {
        C::map(self.conn.with(|s, _| s.drain_history()), |r| Ok(r?))
    }

    /// A metrics snapshot (X12).
    pub fn stats(&self) -> C::Wait<'_, Result<SessionStats, ClientError>> {
        C::map(self.conn.with(|s, _| s.stats(Instant::now())), |r| Ok(r?))
    }

    /// The socket counters: write queue depth and overflows, messages, flushes.
    pub fn io_stats(&self) -> C::Wait<'_, Result<IoStats, ClientError>> {
        C::map(self.conn.io_stats(), |r| Ok(r?))
    }

    /// "The network is back": reset the backoff and connect now (X11).
    pub fn retry_now(&self) -> C::Wait<'_, Result<(), ClientError>> {
        C::map(self.conn.retry_now(), |r| Ok(r?))
    }

    /// Forces a fresh connection after a short delay (S5).
    pub fn reconnect(&self) -> C::Wait<'_, Result<(), ClientError>> {
        C::map(self.conn.reconnect(), |r| Ok(r?))
    }

    /// Closes for good and waits until the host has finished the close
    /// handshake and ended (L11). Idempotent.
    pub fn close(&self) -> C::Wait<'_, ()> {
        self.conn.close()
    }
}

impl<C: MeshDrive + Blocking> MeshClient<C> {
    /// The next push (B7), waiting at most `timeout`; `None` on timeout or once
    /// the client has shut down. A buffer that overflows loses its oldest
    /// pushes, counted by [`missed_pushes`](Self::missed_pushes); they stay in
    /// the history.
    pub fn recv_push(&self, timeout: Duration) -> Option<Arc<Push>> {
        self.inbox.as_ref()?.recv_timeout(timeout)
    }

    /// Pushes dropped because [`recv_push`](Self::recv_push) fell behind (X4).
    pub fn missed_pushes(&self) -> u64 {
        self.inbox.as_ref().map_or(0, |inbox| inbox.missed())
    }
}
