//! The one-connection case without async: a reactor on its own thread and a
//! handle with the async client's operations, each call blocking until the
//! reactor thread answers.

use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tether_proto::lifecycle::{Event, Notification, Status};
use tether_proto::mesh::session::{Command, OpResult, Outgoing, Request, SessionEvent, SessionStats};
use tether_proto::mesh::wire::{MemoryRow, Peer, Priority, PushFrame, Reply, Skill, SkillSummary, StateRow};
use tracing::error;

use crate::config::ConnConfig;
use crate::conn::IoStats;
use crate::error::ReactorError;
use crate::reactor::{ConnId, Reactor, ReactorHandle};
use tether_host::{replied, replies, sent, ClientError, ClientEvent, ConnectError, Fanout, Receiver, Sent};

/// What the reactor thread shares with the handles.
struct Shared {
    status: Mutex<Status>,
    changed: Condvar,
    events: Fanout<ClientEvent>,
    pushes: Fanout<Arc<PushFrame>>,
}

struct Inner {
    handle: ReactorHandle,
    conn: ConnId,
    shared: Arc<Shared>,
    /// The pushes `recv_push` takes, subscribed before the first attempt.
    pushes: Receiver<Arc<PushFrame>>,
    first: Mutex<Option<mpsc::Receiver<Result<(), ConnectError>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A blocking handle to one broker connection; clone it freely, use it from any
/// thread. The connection closes when [`BlockingClient::close`] is called or the
/// last clone is dropped, and then its thread is gone.
#[derive(Clone)]
pub struct BlockingClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient")
            .field("conn", &self.inner.conn)
            .field("status", &self.status())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlockingClient {
    /// Connects and returns on the broker's first hello ack, or fails with the
    /// broker's reason (L8). On failure no thread is left running (D1).
    pub fn connect(config: ConnConfig) -> Result<BlockingClient, ConnectError> {
        let client = BlockingClient::spawn(config)?;
        match client.connected() {
            Ok(()) => Ok(client),
            Err(e) => {
                // The session is closed for good (or the thread died): wait for
                // the thread so nothing outlives the error.
                client.close();
                Err(e)
            }
        }
    }

    /// Starts connecting on a thread of its own and returns at once, so
    /// [`events`](Self::events) sees the first attempt; [`connected`](Self::connected)
    /// waits for its outcome.
    pub fn spawn(config: ConnConfig) -> Result<BlockingClient, ConnectError> {
        let capacity = config.transport.subscriber_capacity;
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::Idle),
            changed: Condvar::new(),
            events: Fanout::new(capacity),
            pushes: Fanout::new(capacity),
        });
        let pushes = shared.pushes.subscribe();
        let mut reactor = Reactor::new()?;
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let mut host = Host {
            conn: None,
            shared: Arc::clone(&shared),
            first: Some(first_tx),
        };
        // Added on this thread, so a bad configuration is refused here; its
        // first events wait in the reactor for the thread to route them.
        let conn = reactor.add(config)?;
        host.conn = Some(conn);
        let handle = reactor.handle();
        let thread = std::thread::Builder::new()
            .name(format!("tether-mio-{conn}"))
            .spawn(move || host.run(reactor))?;
        Ok(BlockingClient {
            inner: Arc::new(Inner {
                handle,
                conn,
                shared,
                pushes,
                first: Mutex::new(Some(first_rx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Waits for the first connect's outcome (L8); `Ok` at once after it.
    pub fn connected(&self) -> Result<(), ConnectError> {
        let mut first = lock(&self.inner.first);
        let Some(rx) = first.as_ref() else {
            return Ok(());
        };
        let result = rx.recv().unwrap_or(Err(ConnectError::Shutdown));
        *first = None;
        result
    }

    /// Sends `body` to `target` and waits for the broker's ack (B1); queued while
    /// reconnecting (B3).
    pub fn send(&self, target: &str, body: &str, priority: Priority) -> Result<Sent, ClientError> {
        self.send_message(Outgoing::new(target, body).priority(priority))
    }

    /// Sends with every option of [`Outgoing`] (idempotency id, offline policy, resend).
    pub fn send_message(&self, outgoing: Outgoing) -> Result<Sent, ClientError> {
        let conn = self.inner.conn;
        sent(self.wait_op(move |r, done| r.send_with(conn, outgoing, done).map(|_| ()))?)
    }

    /// Sends a request (B8) and takes the reply `pick` expects.
    pub fn ask<T>(&self, request: Request, pick: fn(Reply) -> Option<T>) -> Result<T, ClientError> {
        let conn = self.inner.conn;
        replied(
            self.wait_op(move |r, done| r.request_with(conn, request, done).map(|_| ()))?,
            pick,
        )
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
        let conn = self.inner.conn;
        Ok(self.call(move |r| r.command(conn, command))??)
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
    pub fn recv_push(&self, timeout: Duration) -> Option<Arc<PushFrame>> {
        self.inner.pushes.recv_timeout(timeout)
    }

    /// Pushes dropped because [`recv_push`](Self::recv_push) fell behind (X4).
    pub fn missed_pushes(&self) -> u64 {
        self.inner.pushes.missed()
    }

    /// A receiver of every push from now on, besides `recv_push`'s (B7).
    pub fn subscribe(&self) -> Receiver<Arc<PushFrame>> {
        self.inner.shared.pushes.subscribe()
    }

    /// Lifecycle news and unconsumed frames from now on (L14). A receiver that
    /// falls more than the configured capacity behind loses the oldest; it
    /// ends when the client shuts down.
    pub fn events(&self) -> Receiver<ClientEvent> {
        self.inner.shared.events.subscribe()
    }

    /// The connection status now.
    pub fn status(&self) -> Status {
        *lock(&self.inner.shared.status)
    }

    /// Waits until the status satisfies `pred`, at most `timeout`; the status
    /// then, or `None` on timeout.
    pub fn wait_status(&self, pred: impl Fn(Status) -> bool, timeout: Duration) -> Option<Status> {
        let shared = &self.inner.shared;
        let guard = lock(&shared.status);
        let (guard, _) = shared
            .changed
            .wait_timeout_while(guard, timeout, |s| !pred(*s))
            .unwrap_or_else(PoisonError::into_inner);
        pred(*guard).then_some(*guard)
    }

    /// Takes the pushes buffered in the session's history (B7).
    pub fn drain_history(&self) -> Result<Vec<Arc<PushFrame>>, ClientError> {
        let conn = self.inner.conn;
        self.call(move |r| r.drain_history(conn))?
            .ok_or(ClientError::Shutdown)
    }

    /// A metrics snapshot (X12).
    pub fn stats(&self) -> Result<SessionStats, ClientError> {
        let conn = self.inner.conn;
        self.call(move |r| r.stats(conn))?.ok_or(ClientError::Shutdown)
    }

    /// The socket counters: write queue depth and overflows, messages in and out.
    pub fn io_stats(&self) -> Result<IoStats, ClientError> {
        let conn = self.inner.conn;
        self.call(move |r| r.io_stats(conn))?.ok_or(ClientError::Shutdown)
    }

    /// "The network is back": reset the backoff and connect now (X11).
    pub fn retry_now(&self) -> Result<(), ClientError> {
        self.control(Event::RetryNow)
    }

    /// Forces a fresh connection after a short delay (S5).
    pub fn reconnect(&self) -> Result<(), ClientError> {
        self.control(Event::Reconnect)
    }

    /// Closes for good and waits until the thread has put the close frame on the
    /// wire and ended (L11). Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    fn control(&self, event: Event) -> Result<(), ClientError> {
        let conn = self.inner.conn;
        self.call(move |r| r.control(conn, event))?
            .map_err(|_| ClientError::Shutdown)
    }

    /// Runs `f` on the reactor thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Reactor) -> T + Send + 'static,
    ) -> Result<T, ClientError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.inner
            .handle
            .execute(move |r| {
                let _ = tx.send(f(r));
            })
            .map_err(|_| ClientError::Shutdown)?;
        rx.recv().map_err(|_| ClientError::Shutdown)
    }

    /// Starts an operation on the reactor thread and waits for its resolution,
    /// which the session guarantees (X3); a dropped reactor answers `Shutdown`.
    fn wait_op(
        &self,
        start: impl FnOnce(&mut Reactor, Box<dyn FnOnce(OpResult) + Send>) -> Result<(), ReactorError>
            + Send
            + 'static,
    ) -> Result<OpResult, ClientError> {
        let (tx, rx) = mpsc::sync_channel::<Result<OpResult, ReactorError>>(1);
        self.inner
            .handle
            .execute(move |r| {
                let resolved = tx.clone();
                let done = Box::new(move |result| {
                    let _ = resolved.send(Ok(result));
                });
                if let Err(e) = start(r, done) {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|_| ClientError::Shutdown)?;
        Ok(rx.recv().map_err(|_| ClientError::Shutdown)??)
    }
}

impl Inner {
    fn close(&self) {
        let conn = self.conn;
        // Gone already is fine: the thread only ends once closed.
        let _ = self.handle.execute(move |r| {
            let _ = r.control(conn, Event::Close);
        });
        let thread = lock(&self.thread).take();
        match thread {
            Some(thread) => {
                let _ = thread.join();
            }
            // Another caller is joining it; its end is marked by `Closed`.
            None => {
                let shared = &self.shared;
                let guard = lock(&shared.status);
                drop(
                    shared
                        .changed
                        .wait_while(guard, |s| *s != Status::Closed)
                        .unwrap_or_else(PoisonError::into_inner),
                );
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// The reactor thread's side: routes the session's news to the handles.
struct Host {
    conn: Option<ConnId>,
    shared: Arc<Shared>,
    first: Option<SyncSender<Result<(), ConnectError>>>,
}

impl Host {
    fn run(mut self, mut reactor: Reactor) {
        let Some(conn) = self.conn else { return };
        loop {
            while let Some((_, event)) = reactor.poll_event() {
                self.dispatch(event);
            }
            if reactor.status(conn).is_none_or(|s| s == Status::Closed) {
                break;
            }
            if let Err(e) = reactor.run_once(None) {
                error!(target: "tether", %conn, error = %e, "the reactor failed");
                break;
            }
        }
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(ConnectError::Shutdown));
        }
        // Joins the resolver threads before anyone learns the thread is done.
        drop(reactor);
        // Ends every receiver once it has taken what is buffered.
        self.shared.events.close();
        self.shared.pushes.close();
        self.set_status(Status::Closed);
    }

    fn set_status(&self, status: Status) {
        *lock(&self.shared.status) = status;
        self.shared.changed.notify_all();
    }

    fn dispatch(&mut self, event: SessionEvent) {
        match event {
            // Operations of this client resolve through their callbacks.
            SessionEvent::Resolved { .. } => {}
            SessionEvent::Push(push) => self.shared.pushes.publish(push),
            SessionEvent::Inbound(frame) => self.shared.events.publish(ClientEvent::Inbound(frame)),
            SessionEvent::Lifecycle(note) => {
                if let Notification::StatusChanged { to, .. } = &note {
                    self.set_status(*to);
                }
                if let Some(outcome) = tether_host::first_connect(&note) {
                    if let Some(first) = self.first.take() {
                        let _ = first.send(outcome);
                    }
                }
                self.shared.events.publish(ClientEvent::Lifecycle(note));
            }
        }
    }
}
