//! The handle a test or program holds on a running broker: address, fault switches,
//! stats, stop and restart.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::accept::{accept_loop, bind, ConnSetup};
use super::actor::{unix_ms, Actor, Counters, Event};
use super::error::ServerError;
use super::ServerConfig;
use crate::core::{Broker, BrokerStats, ConnSelector, Fault, Refusal, SHUTTING_DOWN};

/// Events queued to the actor before connection tasks wait on it.
const EVENT_QUEUE: usize = 4096;

/// Counters of the core and of the server around it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// The core's counters and gauges.
    pub core: BrokerStats,
    /// TCP connections accepted.
    pub accepted: u64,
    /// Connections that failed or timed out in the TLS or WebSocket handshake.
    pub handshake_failures: u64,
    /// Connections dropped because they did not drain their outbound queue.
    pub slow_consumers: u64,
    /// Connections closed because one write did not finish within `write_timeout`.
    pub write_timeouts: u64,
    /// Times memory was given back to the system after a wave of connections.
    pub memory_trims: u64,
    /// Gauge: bytes queued for all connections and not yet written.
    pub outbound_queued_bytes: u64,
    /// The most bytes ever queued for one connection (bounded by `max_outbound_bytes`).
    pub peak_outbound_bytes: u64,
}

/// A running broker; clones share it. After [`BrokerHandle::stop`] it is inert.
#[derive(Clone)]
pub struct BrokerHandle {
    inner: Arc<Inner>,
}

struct Inner {
    local_addr: SocketAddr,
    config: ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    events: mpsc::Sender<Event>,
    shutdown: watch::Sender<bool>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    actor_task: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerHandle")
            .field("local_addr", &self.inner.local_addr)
            .field("tls", &self.inner.tls.is_some())
            .finish()
    }
}

pub(crate) async fn start(
    config: ServerConfig,
    listen: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<BrokerHandle, ServerError> {
    let listener = bind(listen)?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr: listen, source })?;
    let counters = Arc::new(Counters::default());
    let (events, events_rx) = mpsc::channel(EVENT_QUEUE);

    // Reseeded per start so a restarted broker never reissues an old message id.
    let mut core_config = config.broker.clone();
    core_config.seed ^= unix_ms().rotate_left(17) ^ u64::from(local_addr.port());
    let actor = Actor::new(
        Broker::new(core_config),
        counters.clone(),
        config.max_outbound_bytes,
    );
    let actor_task = tokio::spawn(actor.run(events_rx));

    let ws_config = WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_size)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    let setup = Arc::new(ConnSetup {
        events: events.clone(),
        counters: counters.clone(),
        ws_config,
        handshake_timeout: config.handshake_timeout,
        outbound_capacity: config.outbound_capacity.max(1),
        close_linger: config.close_linger,
        write_timeout: config.write_timeout,
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let acceptor = tls.clone().map(TlsAcceptor::from);
    let accept_task = tokio::spawn(accept_loop(listener, acceptor, setup, shutdown_rx));
    tracing::info!(%local_addr, tls = tls.is_some(), "broker listening");

    Ok(BrokerHandle {
        inner: Arc::new(Inner {
            local_addr,
            config,
            tls,
            events,
            shutdown,
            accept_task: Mutex::new(Some(accept_task)),
            actor_task: Mutex::new(Some(actor_task)),
            counters,
        }),
    })
}

impl BrokerHandle {
    /// The address the broker listens on (the real port when it was started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// `ws://HOST:PORT/ws` or `wss://…`; an unspecified address is shown as loopback.
    pub fn url(&self) -> String {
        let mut addr = self.inner.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let scheme = if self.inner.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{addr}/ws")
    }

    /// Applies any core fault; returns once the broker has applied it.
    pub async fn fault(&self, fault: Fault) {
        let (done, applied) = oneshot::channel();
        if self.inner.events.send(Event::Fault { fault, done }).await.is_ok() {
            let _ = applied.await;
        }
    }

    /// Refuses every hello for `duration` with `code`, closing as PROTOCOL.md's table says.
    pub async fn refuse_hellos(&self, code: &str, duration: Duration) {
        let refusal = Refusal::for_code(code, format!("{code}: refused by the broker's fault switch"));
        self.refuse_hellos_with(refusal, Some(duration)).await;
    }

    /// Refuses every hello with `refusal`, for `duration` or until [`BrokerHandle::allow_hellos`].
    pub async fn refuse_hellos_with(&self, refusal: Refusal, duration: Option<Duration>) {
        let until = duration.map(|d| tether_proto::deadline_after(Instant::now(), d));
        self.fault(Fault::RefuseHellos { refusal, until }).await;
    }

    /// Stops refusing hellos.
    pub async fn allow_hellos(&self) {
        self.fault(Fault::AllowHellos).await;
    }

    /// While on, hellos get no answer at all.
    pub async fn stall_hellos(&self, on: bool) {
        self.fault(Fault::StallHellos(on)).await;
    }

    /// Holds each send's `ack` back by `delay` (zero turns it off); pushes are not delayed.
    pub async fn delay_acks(&self, delay: Duration) {
        self.fault(Fault::DelayAcks(delay)).await;
    }

    /// Makes the selected connections half-open: nothing sent, pings unanswered.
    pub async fn go_silent(&self, who: ConnSelector) {
        self.fault(Fault::GoSilent(who)).await;
    }

    /// Sends `text` (typically not JSON) as a frame to the selected connections.
    pub async fn send_garbage(&self, to: ConnSelector, text: impl Into<String>) {
        let text = text.into();
        self.fault(Fault::SendGarbage { to, text }).await;
    }

    /// Closes every connection with `code` and `reason` (1006 drops without a close
    /// frame); the listener stays open.
    pub async fn drop_all(&self, code: u16, reason: impl Into<String>) {
        let reason = reason.into();
        self.fault(Fault::DropAll { code, reason }).await;
    }

    /// The current counters.
    pub async fn stats(&self) -> ServerStats {
        let (reply, answer) = oneshot::channel();
        let (core, outbound_queued_bytes) = if self.inner.events.send(Event::Stats { reply }).await.is_ok() {
            answer.await.unwrap_or_default()
        } else {
            (BrokerStats::default(), 0)
        };
        let counters = &self.inner.counters;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        ServerStats {
            core,
            accepted: load(&counters.accepted),
            handshake_failures: load(&counters.handshake_failures),
            slow_consumers: load(&counters.slow_consumers),
            write_timeouts: load(&counters.write_timeouts),
            memory_trims: load(&counters.memory_trims),
            outbound_queued_bytes,
            peak_outbound_bytes: load(&counters.peak_queued_bytes),
        }
    }

    /// Graceful stop: everyone is closed with 1001 `shutting down`, the port released.
    pub async fn stop(&self) {
        self.shutdown(SHUTTING_DOWN.0, SHUTTING_DOWN.1).await;
    }

    /// Stops with a chosen close code and reason; a second call does nothing.
    pub async fn shutdown(&self, code: u16, reason: &str) {
        let (done, closed) = oneshot::channel();
        let reason = reason.to_owned();
        if self
            .inner
            .events
            .send(Event::Shutdown { code, reason, done })
            .await
            .is_ok()
        {
            let _ = closed.await;
        }
        let _ = self.inner.shutdown.send(true);
        let accept = take(&self.inner.accept_task);
        if let Some(task) = accept {
            let _ = task.await;
        }
        let _ = self.inner.events.send(Event::Exit).await;
        let actor = take(&self.inner.actor_task);
        if let Some(task) = actor {
            let _ = task.await;
            tracing::info!(addr = %self.inner.local_addr, "broker stopped");
        }
    }

    /// Stops this broker and starts a fresh one (empty state, same settings, same
    /// address and TLS); use the returned handle from then on.
    pub async fn restart(&self) -> Result<BrokerHandle, ServerError> {
        self.stop().await;
        start(
            self.inner.config.clone(),
            self.inner.local_addr,
            self.inner.tls.clone(),
        )
        .await
    }
}

fn take(slot: &Mutex<Option<JoinHandle<()>>>) -> Option<JoinHandle<()>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}
