//! The one-connection case without async: a reactor on its own thread and a
//! handle with the async client's operations, each call blocking until the
//! reactor thread answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tether_proto::lifecycle::{Event, Notification, Status};
use tether_proto::mesh::session::{
    Command, OpResult, Outcome, Outgoing, Request, SessionEvent, SessionStats,
};
use tether_proto::mesh::wire::{MemoryRow, Peer, Priority, PushFrame, Reply, Skill, SkillSummary, StateRow};
use tracing::error;

use crate::config::ConnConfig;
use crate::conn::IoStats;
use crate::error::ReactorError;
use crate::reactor::{ConnId, Reactor, ReactorHandle};
use tether_host::{ClientError, ClientEvent, ConnectError, Sent};

/// What the reactor thread shares with the handles.
struct Shared {
    status: Mutex<Status>,
    changed: Condvar,
    subscribers: Mutex<Vec<SyncSender<ClientEvent>>>,
    missed_pushes: AtomicU64,
}

struct Inner {
    handle: ReactorHandle,
    conn: ConnId,
    shared: Arc<Shared>,
    pushes: Mutex<Receiver<Arc<PushFrame>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    subscriber_capacity: usize,
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
        let capacity = config.subscriber_capacity.max(1);
        let mut reactor = Reactor::new()?;
        let conn = reactor.add(config)?;
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::Idle),
            changed: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            missed_pushes: AtomicU64::new(0),
        });
        let (push_tx, push_rx) = mpsc::sync_channel(capacity);
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let handle = reactor.handle();
        let host = Host {
            conn,
            shared: Arc::clone(&shared),
            pushes: push_tx,
            first: Some(first_tx),
        };
        let thread = std::thread::Builder::new()
            .name(format!("tether-mio-{conn}"))
            .spawn(move || host.run(reactor))?;
        match first_rx.recv() {
            Ok(Ok(())) => Ok(BlockingClient {
                inner: Arc::new(Inner {
                    handle,
                    conn,
                    shared,
                    pushes: Mutex::new(push_rx),
                    thread: Mutex::new(Some(thread)),
                    subscriber_capacity: capacity,
                }),
            }),
            failed => {
                // The session is closed for good (or the thread died): the thread
                // is on its way out; wait for it so nothing outlives the error.
                let _ = thread.join();
                Err(failed
                    .unwrap_or(Err(ConnectError::Shutdown))
                    .err()
                    .unwrap_or(ConnectError::Shutdown))
            }
        }
    }

    /// Sends `body` to `target` and waits for the broker's ack (B1); queued while
    /// reconnecting (B3).
    pub fn send(&self, target: &str, body: &str, priority: Priority) -> Result<Sent, ClientError> {
        self.send_message(Outgoing::new(target, body).priority(priority))
    }

    /// Sends with every option of [`Outgoing`] (idempotency id, offline policy, resend).
    pub fn send_message(&self, outgoing: Outgoing) -> Result<Sent, ClientError> {
        let conn = self.inner.conn;
        let result = self.wait_op(move |r, done| r.send_with(conn, outgoing, done).map(|_| ()))?;
        match result {
            Ok(Outcome::Sent { message_id, queued }) => Ok(Sent { message_id, queued }),
            Ok(Outcome::Reply(_)) => Err(ClientError::UnexpectedReply),
            Err(failure) => Err(ClientError::Failed(failure)),
        }
    }

    fn request(&self, request: Request) -> Result<Reply, ClientError> {
        let conn = self.inner.conn;
        let result = self.wait_op(move |r, done| r.request_with(conn, request, done).map(|_| ()))?;
        match result {
            Ok(Outcome::Reply(reply)) => Ok(reply),
            Ok(Outcome::Sent { .. }) => Err(ClientError::UnexpectedReply),
            Err(failure) => Err(ClientError::Failed(failure)),
        }
    }

    /// Lists the mesh's peers, control-plane ones included (filter with
    /// [`Peer::is_user_facing`], B11).
    pub fn list_peers(&self) -> Result<Vec<Peer>, ClientError> {
        match self.request(Request::ListPeers)? {
            Reply::Peers(p) => Ok(p),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Reads one shared state key; `None` when absent.
    pub fn get_state(&self, key: &str) -> Result<Option<StateRow>, ClientError> {
        match self.request(Request::GetState { key: key.into() })? {
            Reply::State(row) => Ok(row),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Lists every shared state row.
    pub fn list_state(&self) -> Result<Vec<StateRow>, ClientError> {
        match self.request(Request::ListState)? {
            Reply::StateList(rows) => Ok(rows),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Stores a memory; returns its id when the broker gives one.
    pub fn remember(&self, content: &str, tags: Option<Vec<String>>) -> Result<Option<String>, ClientError> {
        let request = Request::Remember {
            content: content.into(),
            tags,
        };
        match self.request(request)? {
            Reply::Remembered(id) => Ok(id),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Searches memories.
    pub fn recall(&self, query: &str) -> Result<Vec<MemoryRow>, ClientError> {
        match self.request(Request::Recall { query: query.into() })? {
            Reply::Recalled(rows) => Ok(rows),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Lists published skills, optionally filtered.
    pub fn list_skills(&self, query: Option<&str>) -> Result<Vec<SkillSummary>, ClientError> {
        let request = Request::ListSkills {
            query: query.map(Into::into),
        };
        match self.request(request)? {
            Reply::Skills(s) => Ok(s),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Fetches one skill; `None` when not found.
    pub fn get_skill(&self, name: &str) -> Result<Option<Skill>, ClientError> {
        match self.request(Request::GetSkill { name: name.into() })? {
            Reply::Skill(s) => Ok(s.map(|s| *s)),
            _ => Err(ClientError::UnexpectedReply),
        }
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
    /// the client has shut down. Pushes that arrive while this buffer is full are
    /// counted by [`missed_pushes`](Self::missed_pushes) and stay in the history.
    pub fn recv_push(&self, timeout: Duration) -> Option<Arc<PushFrame>> {
        lock(&self.inner.pushes).recv_timeout(timeout).ok()
    }

    /// Pushes dropped because [`recv_push`](Self::recv_push) fell behind (X4).
    pub fn missed_pushes(&self) -> u64 {
        self.inner.shared.missed_pushes.load(Ordering::Relaxed)
    }

    /// Lifecycle news and unconsumed frames from now on (L14). A receiver that
    /// falls more than the configured capacity behind misses the newest ones;
    /// the channel ends when the client shuts down.
    pub fn events(&self) -> Receiver<ClientEvent> {
        let (tx, rx) = mpsc::sync_channel(self.inner.subscriber_capacity);
        lock(&self.inner.shared.subscribers).push(tx);
        rx
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
    conn: ConnId,
    shared: Arc<Shared>,
    pushes: SyncSender<Arc<PushFrame>>,
    first: Option<SyncSender<Result<(), ConnectError>>>,
}

impl Host {
    fn run(mut self, mut reactor: Reactor) {
        loop {
            if let Err(e) = reactor.run_once(None) {
                error!(target: "tether", conn = %self.conn, error = %e, "the reactor failed");
                break;
            }
            while let Some((_, event)) = reactor.poll_event() {
                self.dispatch(event);
            }
            if reactor.status(self.conn).is_none_or(|s| s == Status::Closed) {
                break;
            }
        }
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(ConnectError::Shutdown));
        }
        // Dropping the senders ends every `events()` receiver.
        lock(&self.shared.subscribers).clear();
        // Joins the resolver threads before anyone learns the thread is done.
        drop(reactor);
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
            SessionEvent::Push(push) => match self.pushes.try_send(push) {
                Err(TrySendError::Full(_)) => {
                    self.shared.missed_pushes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            },
            SessionEvent::Inbound(frame) => self.publish(ClientEvent::Inbound(frame)),
            SessionEvent::Lifecycle(note) => {
                match &note {
                    Notification::StatusChanged { to, .. } => self.set_status(*to),
                    Notification::Connected { first: true, .. } => {
                        if let Some(first) = self.first.take() {
                            let _ = first.send(Ok(()));
                        }
                    }
                    Notification::Closed { reason } => {
                        if let Some(first) = self.first.take() {
                            let _ = first.send(Err(ConnectError::Failed(reason.clone())));
                        }
                    }
                    _ => {}
                }
                self.publish(ClientEvent::Lifecycle(note));
            }
        }
    }

    fn publish(&self, event: ClientEvent) {
        lock(&self.shared.subscribers).retain(|tx| match tx.try_send(event.clone()) {
            // A slow receiver misses this one; a dropped one is forgotten.
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}
