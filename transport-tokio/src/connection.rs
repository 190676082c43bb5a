//! The generic handle to one driver task: the one call path every protocol's
//! client goes through.

use std::sync::Arc;

use tether_host::{ConnectError, Fanout, IoStats, Receiver, Shutdown, Transport};
use tether_proto::lifecycle::{Event, LifecycleError, Status};
use tether_proto::{Machine, Now};
use tokio::sync::{oneshot, watch};

use crate::driver::{Cmd, Driver, Parts};
use crate::handoff::Handoff;
use tether_host::{Broadcast, Router};

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
    status: watch::Receiver<Status>,
}

impl<M: Machine, R> Clone for Connection<M, R> {
    fn clone(&self) -> Self {
        self.handoff.add_handle();
        Connection {
            id: self.id,
            handoff: Arc::clone(&self.handoff),
            status: self.status.clone(),
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
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl<M, R> Connection<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    /// Starts the driver task: it connects at once and keeps the machine's
    /// connection alive; `router` receives its news from the first attempt on.
    /// `url` decides whether TLS is set up (`wss:`, any case). Call it from
    /// within a tokio runtime.
    pub fn spawn(machine: M, router: R, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let tls = transport.tls_for(url)?;
        let handoff = Arc::new(Handoff::new(DEFAULT_COMMAND_CAPACITY));
        let (status_tx, status_rx) = watch::channel(machine.status());
        let driver = Box::new(Driver::new(Parts {
            machine,
            router,
            handoff: Arc::clone(&handoff),
            status: status_tx,
            tls,
            transport: transport.clone(),
        }));
        tokio::spawn(driver.run());
        Ok(Connection {
            id: tether_host::next_serial(),
            handoff,
            status: status_rx,
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

    /// Waits for the first open; on failure closes and waits for the task's
    /// end first, so nothing keeps running (D1). Every client's `connect`.
    pub(crate) async fn first_open(&self) -> Result<(), ConnectError> {
        let result = self.connected().await;
        if result.is_err() {
            self.close().await;
        }
        result
    }

    /// Runs `f` on the driver task with the machine, its router and the time,
    /// then drains the machine: the one call path of every protocol's client.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, &mut R, Now) -> T + Send + 'static,
    ) -> Result<T, Shutdown> {
        let (tx, rx) = oneshot::channel();
        self.run(move |m, r, now| {
            let _ = tx.send(f(m, r, now));
        })
        .await?;
        rx.await.map_err(|_| Shutdown)
    }

    /// Queues `f` to run on the driver task (then the machine is drained),
    /// without waiting for it to run: for a caller whose answer comes some
    /// other way (a mesh op's result through its waiter).
    pub(crate) async fn run(
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

    /// Feeds a lifecycle input: `Close`, `Reconnect`, `RetryNow`, `Connect`.
    pub async fn control(&self, event: Event) -> Result<Result<(), LifecycleError>, Shutdown> {
        self.call(move |m, _, now| m.handle(now, event)).await
    }

    /// The connection status; `changed()` ends with an error once the
    /// connection has shut down.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// "The network is back": reset the backoff and connect now (X11).
    pub async fn retry_now(&self) -> Result<(), Shutdown> {
        self.control(Event::RetryNow).await?.map_err(|_| Shutdown)
    }

    /// Forces a fresh connection after a short delay (S5).
    pub async fn reconnect(&self) -> Result<(), Shutdown> {
        self.control(Event::Reconnect).await?.map_err(|_| Shutdown)
    }

    /// Closes for good and waits until the task has finished the close
    /// handshake (or given up on it) and ended (L11). Idempotent.
    pub async fn close(&self) {
        let _ = self.control(Event::Close).await;
        self.handoff.ended().await;
    }
}

/// A connection whose every event goes to every subscriber: the whole client
/// of a protocol of your own (a bare [`Lifecycle`](tether_proto::lifecycle::Lifecycle)
/// with your `Handshake`, or a session layer of your own).
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
    /// before awaiting [`connected`](Connection::connected) to see the first attempt.
    pub fn spawn(machine: M, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let (router, events) = Broadcast::with_fanout(transport.subscriber_capacity);
        let conn = Connection::spawn(machine, router, url, transport)?;
        Ok(GenericClient { conn, events })
    }

    /// Starts and waits for the first open (L8); on failure the task is gone (D1).
    pub async fn connect(machine: M, url: &str, transport: &Transport) -> Result<Self, ConnectError> {
        let client = GenericClient::spawn(machine, url, transport)?;
        client.first_open().await?;
        Ok(client)
    }

    /// Waits for the first open; on failure nothing is left running (D1), on
    /// success the first attempt's news is let go unless someone subscribed.
    pub(crate) async fn first_open(&self) -> Result<(), ConnectError> {
        self.conn.first_open().await?;
        self.events.release_first();
        Ok(())
    }

    /// Every event of the machine (after `spawn` the first call's receiver
    /// from the start; after `connect` returns, and later ones, from now on);
    /// ends after the close.
    pub fn events(&self) -> Receiver<M::Event> {
        self.events.subscribe()
    }

    /// Runs `f` on the driver task with the machine (send a frame, read a
    /// counter …); the driver drains it right after.
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, Now) -> T + Send + 'static,
    ) -> Result<T, Shutdown> {
        self.conn.call(move |m, _, now| f(m, now)).await
    }

    /// The generic connection underneath (status, control, close).
    pub fn connection(&self) -> &Connection<M, Broadcast<M::Event>> {
        &self.conn
    }
}

impl<M: Machine> std::ops::Deref for GenericClient<M> {
    type Target = Connection<M, Broadcast<M::Event>>;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}
