//! The generic handle to one driver task: the one call path every protocol's
//! client goes through, and how the clients of tether-host wait on it (async).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tether_host::oneshot::Answer;
use tether_host::{Broadcast, ConnectError, Drive, IoStats, Router, Shutdown, Transport};
use tether_proto::lifecycle::{Event, Status};
use tether_proto::{Machine, Now};
use tokio::sync::{oneshot, watch};

use crate::driver::{Cmd, Driver, Parts};
use crate::handoff::Handoff;

/// Commands buffered from handles to the driver task.
pub const DEFAULT_COMMAND_CAPACITY: usize = 256;

/// A handle to one connection driven by its own task, for any [`Machine`];
/// clone it freely. The connection closes when [`close`](Self::close) is called
/// or the last handle is dropped.
pub struct Connection<M: Machine, R> {
    /// Unique in the process (tether_host::next_serial), so two clients print apart.
    id: u64,
    /// Commands to the driver, the first connect's outcome, the driver's end.
    handoff: Arc<Handoff<Cmd<M, R>>>,
}

impl<M: Machine, R> Clone for Connection<M, R> {
    fn clone(&self) -> Self {
        self.handoff.add_handle();
        Connection {
            id: self.id,
            handoff: Arc::clone(&self.handoff),
        }
    }
}

impl<M: Machine, R> Drop for Connection<M, R> {
    fn drop(&mut self) {
        self.handoff.drop_handle();
    }
}

impl<M: Machine, R> std::fmt::Debug for Connection<M, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tether_host::fmt_connection(f, &self.id, self.handoff.status())
    }
}

impl<M, R> Connection<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    /// [`Drive::spawn`] here: the driver is a task, so call it from within a
    /// tokio runtime.
    fn start(machine: M, router: R, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let tls = transport.tls_for(url)?;
        let handoff = Arc::new(Handoff::new(DEFAULT_COMMAND_CAPACITY, machine.status()));
        let driver = Box::new(Driver::new(Parts {
            machine,
            router,
            handoff: Arc::clone(&handoff),
            tls,
            settings: transport.attempt_settings(),
        }));
        tokio::spawn(driver.run());
        Ok(Connection {
            id: tether_host::next_serial(),
            handoff,
        })
    }

    /// This connection's number, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Waits for the first connect's outcome: `Ok` on the first open (L8), the
    /// stop reason if the machine closed first. Later calls answer at once
    /// (`Ok` once it has connected).
    pub async fn connected(&self) -> Result<(), ConnectError> {
        self.handoff.first_outcome().await
    }

    /// Runs `f` on the driver task with the machine, its router and the time,
    /// then drains the machine: the one call path of every protocol's client.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, &mut R, Now) -> T + Send + 'static,
    ) -> Result<T, Shutdown> {
        let (tx, rx) = oneshot::channel();
        self.post(move |m, r, now| {
            let _ = tx.send(f(m, r, now));
        })
        .await?;
        rx.await.map_err(|_| Shutdown)
    }

    /// Queues `f` to run on the driver task (then the machine is drained),
    /// without waiting for it to run: for a caller whose answer comes some
    /// other way (a mesh op's result through its waiter).
    pub(crate) async fn post(
        &self,
        f: impl FnOnce(&mut M, &mut R, Now) + Send + 'static,
    ) -> Result<(), Shutdown> {
        self.handoff.send(Cmd::Call(Box::new(f))).await
    }

    /// The socket counters: write queue depth and overflows, messages, flushes
    /// (the same counters, counted the same way, as tether-mio's).
    pub async fn io_stats(&self) -> Result<IoStats, Shutdown> {
        let (tx, rx) = oneshot::channel();
        self.handoff.send(Cmd::IoStats(tx)).await?;
        rx.await.map_err(|_| Shutdown)
    }

    /// The connection status; `changed()` ends with an error once the
    /// connection has shut down.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.handoff.watch_status()
    }

    /// The status now, without a receiver to wait on.
    pub fn status_now(&self) -> Status {
        self.handoff.status()
    }

    /// Closes for good and waits until the task has finished the close
    /// handshake (or given up on it) and ended (L11). Idempotent.
    pub async fn close(&self) {
        let _ = self.call(|m, _, now| m.handle(now, Event::Close)).await;
        self.handoff.ended().await;
    }
}

/// A connection whose every event goes to every subscriber: the whole client
/// of a protocol of your own (a bare [`Lifecycle`](tether_proto::lifecycle::Lifecycle)
/// with your `Handshake`, or a session layer of your own); tether-host's one
/// [`GenericClient`](tether_host::GenericClient), each call a future here.
pub type GenericClient<M> = tether_host::GenericClient<Connection<M, Broadcast<<M as Machine>::Event>>>;

impl<M, R> Drive for Connection<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    type Machine = M;
    type Router = R;
    type Wait<'a, T: Send + 'a> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
    type Status = watch::Receiver<Status>;
    const BLOCKING: bool = false;

    fn spawn(machine: M, router: R, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        Connection::start(machine, router, url, transport)
    }

    fn run<T: Send + 'static, U: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, &mut R, Now) + Send + 'static,
        answer: Answer<T>,
        finish: impl FnOnce(Result<T, Shutdown>) -> U + Send + 'static,
    ) -> Self::Wait<'_, U> {
        Box::pin(async move {
            let value = match self.post(f).await {
                Ok(()) => answer.await,
                Err(e) => Err(e),
            };
            finish(value)
        })
    }

    fn ready<'a, T: Send + 'a>(value: T) -> Self::Wait<'a, T> {
        Box::pin(std::future::ready(value))
    }

    fn map<'a, T: Send + 'a, U: Send + 'a>(
        wait: Self::Wait<'a, T>,
        f: impl FnOnce(T) -> U + Send + 'a,
    ) -> Self::Wait<'a, U> {
        Box::pin(async move { f(wait.await) })
    }

    fn connected(&self) -> Self::Wait<'_, Result<(), ConnectError>> {
        Box::pin(Connection::connected(self))
    }

    fn opened(self) -> Self::Wait<'static, Result<Self, ConnectError>> {
        Box::pin(async move {
            let result = Connection::connected(&self).await;
            if result.is_err() {
                Connection::close(&self).await;
            }
            result.map(|()| self)
        })
    }

    fn close(&self) -> Self::Wait<'_, ()> {
        Box::pin(Connection::close(self))
    }

    fn status(&self) -> watch::Receiver<Status> {
        Connection::status(self)
    }

    fn io_stats(&self) -> Self::Wait<'_, Result<IoStats, Shutdown>> {
        Box::pin(Connection::io_stats(self))
    }

    fn wait_status(
        &self,
        pred: impl Fn(Status) -> bool + Send + Sync + 'static,
        timeout: Duration,
    ) -> Self::Wait<'_, Option<Status>> {
        let mut status = Connection::status(self);
        Box::pin(async move {
            let found = match tokio::time::timeout(timeout, status.wait_for(|s| pred(*s))).await {
                Ok(Ok(s)) => Some(*s),
                Ok(Err(_)) | Err(_) => None,
            };
            // Shut down: the last status is what it stays.
            found.or_else(|| Some(*status.borrow()).filter(|s| pred(*s)))
        })
    }
}
