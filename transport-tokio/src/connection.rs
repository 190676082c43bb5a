//! The generic handle to one driver task: the one call path every protocol's
//! client goes through.

use std::sync::Arc;

use tether_host::{ConnectError, Fanout, IoStats, Receiver, Shutdown, Transport};
use tether_proto::lifecycle::{Event, LifecycleError, Status};
use tether_proto::{Machine, Now};
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use crate::driver::{Cmd, Driver, Parts};
use tether_host::{Broadcast, Router};

/// Commands buffered from handles to the driver task.
pub const DEFAULT_COMMAND_CAPACITY: usize = 256;

type FirstOutcome = oneshot::Receiver<Result<(), ConnectError>>;

/// A handle to one connection driven by its own task, for any [`Machine`];
/// clone it freely. The connection closes when [`close`](Self::close) is called
/// or the last handle is dropped.
pub struct Connection<M: Machine, R> {
    /// Unique in the process (tether_host::next_serial), so two clients print apart.
    id: u64,
    cmds: mpsc::Sender<Cmd<M, R>>,
    status: watch::Receiver<Status>,
    /// The first connect's outcome, taken by the first `connected()` to ask.
    first: Arc<Mutex<Option<FirstOutcome>>>,
}

impl<M: Machine, R> Clone for Connection<M, R> {
    fn clone(&self) -> Self {
        Connection {
            id: self.id,
            cmds: self.cmds.clone(),
            status: self.status.clone(),
            first: Arc::clone(&self.first),
        }
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
        let (cmd_tx, cmd_rx) = mpsc::channel(DEFAULT_COMMAND_CAPACITY);
        let (status_tx, status_rx) = watch::channel(machine.status());
        let (first_tx, first_rx) = oneshot::channel();
        let driver = Box::new(Driver::new(Parts {
            machine,
            router,
            cmds: cmd_rx,
            status: status_tx,
            first: first_tx,
            tls,
            transport: transport.clone(),
        }));
        tokio::spawn(driver.run());
        Ok(Connection {
            id: tether_host::next_serial(),
            cmds: cmd_tx,
            status: status_rx,
            first: Arc::new(Mutex::new(Some(first_rx))),
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
        let mut first = self.first.lock().await;
        match first.as_mut() {
            None => Ok(()),
            Some(rx) => {
                let result = rx.await.unwrap_or(Err(ConnectError::Shutdown));
                *first = None;
                result
            }
        }
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
        let cmd: Cmd<M, R> = Cmd::Call(Box::new(move |m, r, now| {
            let _ = tx.send(f(m, r, now));
        }));
        self.cmds.send(cmd).await.map_err(|_| Shutdown)?;
        rx.await.map_err(|_| Shutdown)
    }

    /// The socket counters: write queue depth and overflows, messages, flushes
    /// (the same counters, counted the same way, as tether-mio's).
    pub async fn io_stats(&self) -> Result<IoStats, Shutdown> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::IoStats(tx)).await.map_err(|_| Shutdown)?;
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
        // The task ends once closed; its channel closing is the signal.
        self.cmds.closed().await;
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
        client.conn.first_open().await?;
        Ok(client)
    }

    /// Every event of the machine (the first call's receiver from the start,
    /// later ones from now on); ends after the close.
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
