//! One connection of any protocol on a reactor thread of its own, behind
//! blocking calls: the generic handle every blocking client is a thin layer over,
//! and how the clients of tether-host wait on it (blocking).

use std::marker::PhantomData;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tether_host::oneshot::Answer;
use tether_host::{Blocking, Broadcast, ConnectError, Drive, Router, Shutdown, Transport};
use tether_proto::lifecycle::{Event, Notification, Status};
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
        tether_host::fmt_connection(f, &self.inner.conn, self.status())
    }
}

impl<M, R> Connection<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    /// [`Drive::spawn`] here: a reactor thread of its own, on which `router`
    /// takes the machine's news.
    fn start(machine: M, router: R, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
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
/// or a session layer of your own); tether-host's one
/// [`GenericClient`](tether_host::GenericClient), each call blocking here.
pub type GenericClient<M> = tether_host::GenericClient<Connection<M, Broadcast<<M as Machine>::Event>>>;

impl<M, R> Drive for Connection<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    type Machine = M;
    type Router = R;
    type Wait<'a, T: Send + 'a> = T;
    type Status = Status;
    const BLOCKING: bool = true;

    fn spawn(machine: M, router: R, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        Connection::start(machine, router, url, transport)
    }

    fn run<T: Send + 'static, U: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, &mut R, Now) + Send + 'static,
        answer: Answer<T>,
        finish: impl FnOnce(Result<T, Shutdown>) -> U + Send + 'static,
    ) -> U {
        let conn = self.inner.conn;
        let posted = self.inner.handle.execute(move |r| {
            // A connection already gone drops `f`, and with it the promise:
            // the answer is then `Shutdown`.
            let _ = r.call(conn, |m: &mut M, w: &mut Watched<R>, now| f(m, &mut w.inner, now));
        });
        finish(match posted {
            Ok(()) => answer.wait(),
            Err(_) => Err(Shutdown),
        })
    }

    fn ready<'a, T: Send + 'a>(value: T) -> T {
        value
    }

    fn map<'a, T: Send + 'a, U: Send + 'a>(wait: T, f: impl FnOnce(T) -> U + Send + 'a) -> U {
        f(wait)
    }

    fn connected(&self) -> Result<(), ConnectError> {
        Connection::connected(self)
    }

    fn opened(self) -> Result<Self, ConnectError> {
        let result = Connection::connected(&self);
        if result.is_err() {
            Connection::close(&self);
        }
        result.map(|()| self)
    }

    fn close(&self) {
        Connection::close(self);
    }

    fn status(&self) -> Status {
        Connection::status(self)
    }

    fn io_stats(&self) -> Result<IoStats, Shutdown> {
        Connection::io_stats(self)
    }

    fn wait_status(
        &self,
        pred: impl Fn(Status) -> bool + Send + Sync + 'static,
        timeout: Duration,
    ) -> Option<Status> {
        Connection::wait_status(self, pred, timeout)
    }
}

impl<M, R> Blocking for Connection<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
}
