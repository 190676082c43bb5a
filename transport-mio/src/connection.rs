//! One connection of any protocol on a reactor thread of its own, behind
//! blocking calls: the generic handle every blocking client is a thin layer over.

use std::marker::PhantomData;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tether_host::{Broadcast, ConnectError, Fanout, Receiver, Router, Shutdown, Transport};
use tether_proto::lifecycle::{Event, LifecycleError, Notification, Status};
use tether_proto::{Machine, Now};
use tracing::error;

use crate::reactor::{ConnId, Reactor, ReactorHandle};
use tether_host::IoStats;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct StatusCell {
    status: Mutex<Status>,
    changed: Condvar,
}

impl StatusCell {
    fn set(&self, status: Status) {
        *lock(&self.status) = status;
        self.changed.notify_all();
    }
}

/// The protocol's router, with the status and the first connect's outcome
/// taken off the notifications on the way.
pub struct Watched<R> {
    inner: R,
    status: Arc<StatusCell>,
    first: Option<SyncSender<Result<(), ConnectError>>>,
}

impl<M: Machine, R: Router<M>> Router<M> for Watched<R> {
    fn route(&mut self, event: M::Event) {
        if let Some(note) = M::notification(&event) {
            if let Notification::StatusChanged { to, .. } = note {
                self.status.set(*to);
            }
            if let Some(outcome) = tether_host::first_connect(note) {
                if let Some(first) = self.first.take() {
                    let _ = first.send(outcome);
                }
            }
        }
        self.inner.route(event);
    }

    fn closed(&mut self) {
        self.inner.closed();
    }
}

struct Inner {
    handle: ReactorHandle,
    conn: ConnId,
    status: Arc<StatusCell>,
    first: Mutex<Option<mpsc::Receiver<Result<(), ConnectError>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A blocking handle to one connection of any [`Machine`], driven by a
/// reactor on a thread of its own; clone it freely, use it from any thread.
/// The connection closes when [`close`](Self::close) is called or the last
/// clone is dropped, and then its thread is gone.
pub struct Connection<M, R> {
    inner: Arc<Inner>,
    _types: PhantomData<fn() -> (M, R)>,
}

impl<M, R> Clone for Connection<M, R> {
    fn clone(&self) -> Self {
        Connection {
            inner: Arc::clone(&self.inner),
            _types: PhantomData,
        }
    }
}

impl<M, R> std::fmt::Debug for Connection<M, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("conn", &self.inner.conn)
            .field("status", &*lock(&self.inner.status.status))
            .finish()
    }
}

impl<M, R> Connection<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    /// Starts the reactor thread: it connects at once and keeps the machine's
    /// connection alive; `router` takes its news from the first attempt on, on
    /// that thread. `url` decides whether TLS is set up (`wss:`, any case).
    pub fn spawn(machine: M, router: R, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let status = Arc::new(StatusCell {
            status: Mutex::new(machine.status()),
            changed: Condvar::new(),
        });
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let router = Watched {
            inner: router,
            status: Arc::clone(&status),
            first: Some(first_tx),
        };
        let mut reactor = Reactor::new()?;
        // Added on this thread, so a bad configuration is refused here.
        let conn = reactor.add_machine(machine, router, url, transport)?;
        let handle = reactor.handle();
        let cell = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name(format!("tether-mio-{conn}"))
            .spawn(move || run(reactor, conn, &cell))?;
        Ok(Connection {
            inner: Arc::new(Inner {
                handle,
                conn,
                status,
                first: Mutex::new(Some(first_rx)),
                thread: Mutex::new(Some(thread)),
            }),
            _types: PhantomData,
        })
    }

    /// Waits for the first connect's outcome (L8): `Ok` on the first open, the
    /// stop reason if the machine closed first; `Ok` at once after it.
    pub fn connected(&self) -> Result<(), ConnectError> {
        let mut first = lock(&self.inner.first);
        let Some(rx) = first.as_ref() else {
            return Ok(());
        };
        let result = rx.recv().unwrap_or(Err(ConnectError::Shutdown));
        *first = None;
        result
    }

    /// Waits for the first open; on failure closes and joins the thread
    /// first, so nothing outlives the error (D1). Every client's `connect`.
    pub(crate) fn first_open(&self) -> Result<(), ConnectError> {
        let result = self.connected();
        if result.is_err() {
            self.close();
        }
        result
    }

    /// Runs `f` on the reactor thread with the machine, its router and the
    /// time, then drains the machine, and waits for the answer: the one call
    /// path of every protocol's blocking client.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, &mut R, Now) -> T + Send + 'static,
    ) -> Result<T, Shutdown> {
        let (tx, rx) = mpsc::sync_channel(1);
        let conn = self.inner.conn;
        self.inner
            .handle
            .execute(move |r| {
                if let Ok(out) = r.call(conn, |m: &mut M, w: &mut Watched<R>, now| f(m, &mut w.inner, now)) {
                    let _ = tx.send(out);
                }
            })
            .map_err(|_| Shutdown)?;
        rx.recv().map_err(|_| Shutdown)
    }

    /// Feeds a lifecycle input: `Close`, `Reconnect`, `RetryNow`, `Connect`.
    pub fn control(&self, event: Event) -> Result<Result<(), LifecycleError>, Shutdown> {
        self.call(move |m, _, now| m.handle(now, event))
    }

    /// "The network is back": reset the backoff and connect now (X11).
    pub fn retry_now(&self) -> Result<(), Shutdown> {
        self.control(Event::RetryNow)?.map_err(|_| Shutdown)
    }

    /// Forces a fresh connection after a short delay (S5).
    pub fn reconnect(&self) -> Result<(), Shutdown> {
        self.control(Event::Reconnect)?.map_err(|_| Shutdown)
    }

    /// The socket counters: write queue depth and overflows, messages, flushes.
    pub fn io_stats(&self) -> Result<IoStats, Shutdown> {
        let (tx, rx) = mpsc::sync_channel(1);
        let conn = self.inner.conn;
        self.inner
            .handle
            .execute(move |r| {
                if let Some(stats) = r.io_stats(conn) {
                    let _ = tx.send(stats);
                }
            })
            .map_err(|_| Shutdown)?;
        rx.recv().map_err(|_| Shutdown)
    }
}

impl<M, R> Connection<M, R> {
    /// This connection's id on its reactor, unique in the process.
    pub fn id(&self) -> ConnId {
        self.inner.conn
    }

    /// The connection status now.
    pub fn status(&self) -> Status {
        *lock(&self.inner.status.status)
    }

    /// Waits until the status satisfies `pred`, at most `timeout`; the status
    /// then, or `None` on timeout.
    pub fn wait_status(&self, pred: impl Fn(Status) -> bool, timeout: Duration) -> Option<Status> {
        let cell = &self.inner.status;
        let guard = lock(&cell.status);
        let (guard, _) = cell
            .changed
            .wait_timeout_while(guard, timeout, |s| !pred(*s))
            .unwrap_or_else(PoisonError::into_inner);
        pred(*guard).then_some(*guard)
    }

    /// Closes for good and waits until the thread has finished the close
    /// handshake (or given up on it) and ended (L11). Idempotent.
    pub fn close(&self) {
        self.inner.close();
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
                let guard = lock(&self.status.status);
                drop(
                    self.status
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

/// The reactor thread: turns until the machine has closed and its last socket
/// finished its close handshake, then removes it (ending every subscriber).
fn run(mut reactor: Reactor, conn: ConnId, status: &StatusCell) {
    loop {
        let closed = reactor.status(conn).is_none_or(|s| s == Status::Closed);
        if closed && !reactor.lingering(conn) {
            break;
        }
        if let Err(e) = reactor.run_once(None) {
            error!(target: "tether", %conn, error = %e, "the reactor failed");
            break;
        }
    }
    reactor.remove(conn);
    // Joins the resolver threads before anyone learns the thread is done.
    drop(reactor);
    status.set(Status::Closed);
}

/// A blocking connection whose every event goes to every subscriber: the whole
/// client of a protocol of your own (a bare `Lifecycle` with your `Handshake`,
/// or a session layer of your own).
pub struct GenericClient<M: Machine> {
    conn: Connection<M, Broadcast<M::Event>>,
    events: Arc<Fanout<M::Event>>,
}

impl<M: Machine> Clone for GenericClient<M> {
    fn clone(&self) -> Self {
        GenericClient {
            conn: self.conn.clone(),
            events: Arc::clone(&self.events),
        }
    }
}

impl<M: Machine> std::fmt::Debug for GenericClient<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.conn.fmt(f)
    }
}

impl<M> GenericClient<M>
where
    M: Machine + Send + 'static,
    M::Event: Clone + Send + 'static,
{
    /// Starts driving `machine` at once; subscribe with [`events`](Self::events)
    /// before [`connected`](Connection::connected) to see the first attempt.
    pub fn spawn(machine: M, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let (router, events) = Broadcast::with_fanout(transport.subscriber_capacity);
        let conn = Connection::spawn(machine, router, url, transport)?;
        Ok(GenericClient { conn, events })
    }

    /// Starts and waits for the first open (L8); on failure the thread is gone (D1).
    pub fn connect(machine: M, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let client = GenericClient::spawn(machine, url, transport)?;
        client.first_open()?;
        Ok(client)
    }

    /// Waits for the first open; on failure nothing is left running (D1), on
    /// success the first attempt's news is let go unless someone subscribed.
    pub(crate) fn first_open(&self) -> Result<(), ConnectError> {
        self.conn.first_open()?;
        self.events.release_first();
        Ok(())
    }

    /// Every event of the machine (after `spawn` the first call's receiver
    /// from the start; after `connect` returns, and later ones, from now on);
    /// ends after the close.
    pub fn events(&self) -> Receiver<M::Event> {
        self.events.subscribe()
    }

    /// Runs `f` on the reactor thread with the machine (send a frame, read a
    /// counter …); the machine is drained right after.
    pub fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, Now) -> T + Send + 'static,
    ) -> Result<T, Shutdown> {
        self.conn.call(move |m, _, now| f(m, now))
    }
}

impl<M: Machine> std::ops::Deref for GenericClient<M> {
    type Target = Connection<M, Broadcast<M::Event>>;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}
