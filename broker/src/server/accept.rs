//! Binding, the accept loop, and each new connection's TLS and WebSocket handshakes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::actor::{Counters, Event};
use super::connection;
use super::error::ServerError;
use crate::core::ConnId;

/// Binds with SO_REUSEADDR so a restarted broker can take its old port at once,
/// even while the previous connections sit in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let fail = |source| ServerError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(1024).map_err(fail)
}

/// What every connection task needs, shared.
pub(crate) struct ConnSetup {
    pub events: mpsc::Sender<Event>,
    pub counters: Arc<Counters>,
    pub ws_config: WebSocketConfig,
    pub handshake_timeout: Duration,
    pub outbound_capacity: usize,
    pub close_linger: Duration,
    pub write_timeout: Duration,
}

/// Accepts until `shutdown` flips (or its sender is gone), then releases the port and
/// gives the connections a moment to finish their close handshakes.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    setup: Arc<ConnSetup>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let conn = ConnId(next_id);
                    next_id += 1;
                    setup.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%conn, %peer, "accepted");
                    tasks.spawn(handshake(stream, conn, tls.clone(), setup.clone()));
                }
                Err(error) => {
                    // Typically out of file descriptors: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let grace = setup.close_linger + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.shutdown().await;
}

async fn handshake(stream: TcpStream, conn: ConnId, tls: Option<TlsAcceptor>, setup: Arc<ConnSetup>) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return upgrade(stream, conn, setup).await;
    };
    match tokio::time::timeout(setup.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => upgrade(stream, conn, setup).await,
        Ok(Err(error)) => {
            setup.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%conn, %error, "TLS handshake failed");
        }
        Err(_) => {
            setup.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%conn, "TLS handshake timed out");
        }
    }
}

async fn upgrade<S>(stream: S, conn: ConnId, setup: Arc<ConnSetup>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let accepted = tokio_tungstenite::accept_async_with_config(stream, Some(setup.ws_config));
    let ws = match tokio::time::timeout(setup.handshake_timeout, accepted).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => {
            setup.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return tracing::info!(%conn, %error, "WebSocket handshake failed");
        }
        Err(_) => {
            setup.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return tracing::info!(%conn, "WebSocket handshake timed out");
        }
    };
    let (outbound, commands) = mpsc::channel(setup.outbound_capacity);
    let (kill, killed) = oneshot::channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let open = Event::Open {
        conn,
        outbound,
        kill,
        queued_bytes: queued_bytes.clone(),
    };
    if setup.events.send(open).await.is_err() {
        return;
    }
    let wiring = connection::Wiring {
        conn,
        events: setup.events.clone(),
        commands,
        kill: killed,
        queued_bytes,
        counters: setup.counters.clone(),
        linger: setup.close_linger,
        write_timeout: setup.write_timeout,
    };
    connection::serve(ws, wiring).await;
}
