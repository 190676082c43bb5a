//! The one task that owns the socket and the session.
//!
//! It maps tungstenite messages to proto events and proto's `Io` back to
//! tungstenite, sleeps until the session's next deadline, and decides nothing:
//! every retry, timeout and give-up is the session's.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{Sink, Stream};
use tether_proto::lifecycle::{Event, Failure, Frame, Io, LifecycleError, Notification, SocketId, Status};
use tether_proto::mesh::session::{
    Command, OpId, OpResult, Outgoing, Request, RequestError, SendError, Session, SessionAction,
    SessionEvent, SessionStats,
};
use tether_proto::mesh::wire::{DecodeError, PushFrame};
use tether_proto::Now;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};

use tether_host::{ClientEvent, ConnectError};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Ws, tungstenite::Error>> + Send>>;

/// A request from a handle to the driver.
pub(crate) enum Cmd {
    Send(Outgoing, oneshot::Sender<Result<OpResult, SendError>>),
    Request(Request, oneshot::Sender<Result<OpResult, RequestError>>),
    Command(Command, oneshot::Sender<Result<(), RequestError>>),
    Control(Event, oneshot::Sender<Result<(), LifecycleError>>),
    Stats(oneshot::Sender<SessionStats>),
    DrainHistory(oneshot::Sender<Vec<Arc<PushFrame>>>),
}

enum Waiter {
    Send(oneshot::Sender<Result<OpResult, SendError>>),
    Request(oneshot::Sender<Result<OpResult, RequestError>>),
}

/// What the handles share with the driver.
#[derive(Clone)]
pub(crate) struct Shared {
    pub status: watch::Sender<Status>,
    pub pushes: broadcast::Sender<Arc<PushFrame>>,
    pub events: broadcast::Sender<ClientEvent>,
}

/// The open socket. Reads and writes are driven from this one task, through one
/// poll, so the socket needs no lock between a read half and a write half.
struct Live {
    id: SocketId,
    ws: Ws,
    /// Frames the session wrote that the socket has not taken yet; bounded.
    out: VecDeque<Message>,
    /// `out` or the socket's buffer holds something not yet flushed.
    dirty: bool,
}

/// What the open socket did.
enum SocketIo {
    /// A message arrived, or the stream ended (`None`).
    Read(Option<Result<Message, tungstenite::Error>>),
    /// Writing failed; the socket is dead.
    WriteFailed(tungstenite::Error),
}

/// Most commands taken from the handles in one go before the socket gets a turn:
/// enough to batch a pipelined burst into one write, few enough to stay fair.
const CMD_BATCH: usize = 64;

pub(crate) struct Driver {
    session: Session,
    cmds: mpsc::Receiver<Cmd>,
    shared: Shared,
    /// Keyed by the session's own sequential ids: nothing a peer chooses, so a
    /// fixed-seed hash is safe, and SipHash was measurable per call.
    waiters: HashMap<OpId, Waiter, foldhash::fast::FixedState>,
    socket: Option<Live>,
    /// The session's next deadline, armed once; see `arm`.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// When `timer` fires, if it is armed at all.
    armed: Option<Instant>,
    connecting: Option<(SocketId, Connecting)>,
    /// Sockets being closed: their close frame is still on its way out.
    closing: Vec<JoinHandle<()>>,
    first: Option<oneshot::Sender<Result<(), ConnectError>>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    ws_config: WebSocketConfig,
    write_queue: usize,
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now() -> Now {
    Now::new(Instant::now(), unix_ms())
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        session: Session,
        cmds: mpsc::Receiver<Cmd>,
        shared: Shared,
        first: oneshot::Sender<Result<(), ConnectError>>,
        tls: Option<Arc<rustls::ClientConfig>>,
        ws_config: WebSocketConfig,
        write_queue: usize,
    ) -> Self {
        Driver {
            session,
            cmds,
            shared,
            waiters: HashMap::default(),
            socket: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            connecting: None,
            closing: Vec::new(),
            first: Some(first),
            tls,
            ws_config,
            write_queue,
        }
    }

    pub(crate) async fn run(mut self) {
        // Connect is refused only by a closed session, which a new one is not.
        let _ = self.session.handle(now(), Event::Connect);
        loop {
            self.perform();
            if self.session.status() == Status::Closed {
                break;
            }
            let deadline = self.session.next_deadline().map(|(at, _)| at);
            // Trust the clock, not the sleep: a deadline already due is handled now.
            if deadline.is_some_and(|at| at <= Instant::now()) {
                let _ = self.session.handle(now(), Event::Tick);
                continue;
            }
            self.arm(deadline);
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => {
                        self.on_cmd(cmd);
                        for _ in 1..CMD_BATCH {
                            match self.cmds.try_recv() {
                                Ok(cmd) => self.on_cmd(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                    // Every handle is gone: nobody can use the connection any more.
                    None => {
                        let _ = self.session.handle(now(), Event::Close);
                    }
                },
                // Written in this task, not handed to another: no extra wake-up
                // per frame. The socket's own backpressure parks only the writes.
                (socket, io) = socket_io(&mut self.socket) => match io {
                    SocketIo::Read(msg) => self.on_message(socket, msg),
                    SocketIo::WriteFailed(e) => self.on_write_failed(socket, e),
                },
                res = connected(&mut self.connecting) => self.on_connected(res),
                () = &mut self.timer, if self.armed.is_some() => {
                    self.armed = None;
                    let _ = self.session.handle(now(), Event::Tick);
                }
            }
        }
        self.finish().await;
    }

    /// Arms the timer for `deadline` unless it is already armed no later.
    ///
    /// Re-arming costs a trip through tokio's timer wheel, and the session's
    /// earliest deadline moves with every send and ack. A timer armed too early
    /// only wakes the loop for a tick that finds nothing due, after which it is
    /// armed for the real deadline: one spare wake-up instead of a re-arm per frame.
    fn arm(&mut self, deadline: Option<Instant>) {
        let Some(at) = deadline else { return };
        if self.armed.is_none_or(|armed| at < armed) {
            self.timer.as_mut().reset(tokio::time::Instant::from_std(at));
            self.armed = Some(at);
        }
    }

    /// Lets the closing sockets put their close frame on the wire, briefly.
    async fn finish(&mut self) {
        self.drop_socket();
        self.connecting = None;
        for closing in self.closing.drain(..) {
            let _ = closing.await;
        }
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(ConnectError::Shutdown));
        }
    }

    fn perform(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                SessionAction::Io(io) => self.io(io),
                SessionAction::Event(event) => self.dispatch(event),
            }
        }
        self.closing.retain(|w| !w.is_finished());
    }

    fn io(&mut self, io: Io) {
        match io {
            Io::OpenSocket { socket, url, headers } => {
                info!(target: "tether", event = "ws_open_attempt", %url, socket = socket.0);
                match self.open(&url, &headers) {
                    Ok(fut) => self.connecting = Some((socket, fut)),
                    Err(reason) => {
                        let _ = self
                            .session
                            .handle(now(), Event::ConnectFailed { socket, reason });
                    }
                }
            }
            Io::SendText { socket, text } => self.write(socket, Message::Text(text.into())),
            Io::SendPing { socket } => self.write(socket, Message::Ping(Default::default())),
            Io::CloseSocket { socket, code, reason } => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                if let Some(mut live) = self.socket.take_if(|l| l.id == socket) {
                    // The session is done with this socket; what it wrote last and
                    // the close frame still go out, in a task of their own, briefly.
                    live.out.push_back(Message::Close(Some(frame)));
                    self.closing.push(tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(1), flush(&mut live)).await;
                    }));
                }
                self.forget(socket);
            }
            Io::TerminateSocket { socket } => {
                if let Some(live) = self.socket.as_ref().filter(|l| l.id == socket) {
                    debug!(target: "tether", socket = live.id.0, "terminating socket");
                }
                self.forget(socket);
            }
        }
    }

    fn drop_socket(&mut self) {
        self.socket = None;
    }

    fn forget(&mut self, socket: SocketId) {
        if self.socket.as_ref().is_some_and(|l| l.id == socket) {
            self.drop_socket();
        }
        if self.connecting.as_ref().is_some_and(|(id, _)| *id == socket) {
            self.connecting = None;
        }
    }

    fn write(&mut self, socket: SocketId, message: Message) {
        let Some(live) = self.socket.as_mut().filter(|l| l.id == socket) else {
            return;
        };
        if live.out.len() >= self.write_queue {
            // The peer stopped reading long ago; this socket is dead, say so.
            warn!(target: "tether", socket = socket.0, "write queue full, dropping the socket");
            self.drop_socket();
            let reason = "write queue full".to_owned();
            let _ = self.session.handle(
                now(),
                Event::Closed {
                    socket,
                    code: 1006,
                    reason,
                },
            );
            return;
        }
        live.out.push_back(message);
        live.dirty = true;
    }

    fn on_write_failed(&mut self, socket: SocketId, error: tungstenite::Error) {
        // The read side would see the same failure; report it once, now.
        self.drop_socket();
        let _ = self.session.handle(
            now(),
            Event::Closed {
                socket,
                code: 1006,
                reason: error.to_string(),
            },
        );
    }

    fn open(&self, url: &str, headers: &[(String, String)]) -> Result<Connecting, String> {
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("bad header name {name}: {e}"))?;
            let value =
                HeaderValue::from_str(value).map_err(|e| format!("bad header value for {name}: {e}"))?;
            request.headers_mut().insert(name, value);
        }
        let connector = if url.starts_with("wss:") {
            match &self.tls {
                Some(tls) => Connector::Rustls(Arc::clone(tls)),
                None => return Err("wss:// needs a TLS configuration".into()),
            }
        } else {
            Connector::Plain
        };
        let config = self.ws_config;
        Ok(Box::pin(async move {
            tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, Some(connector))
                .await
                .map(|(ws, _response)| ws)
        }))
    }

    fn on_connected(&mut self, (socket, result): (SocketId, Result<Ws, tungstenite::Error>)) {
        self.connecting = None;
        match result {
            Ok(ws) => {
                self.socket = Some(Live {
                    id: socket,
                    ws,
                    out: VecDeque::new(),
                    dirty: false,
                });
                let _ = self.session.handle(now(), Event::Opened { socket });
            }
            Err(e) => {
                let reason = e.to_string();
                let _ = self
                    .session
                    .handle(now(), Event::ConnectFailed { socket, reason });
            }
        }
    }

    fn on_message(&mut self, socket: SocketId, msg: Option<Result<Message, tungstenite::Error>>) {
        let event = match msg {
            Some(Ok(Message::Text(text))) => Event::Frame {
                socket,
                frame: Frame::Text(text.as_str().to_owned()),
            },
            Some(Ok(Message::Binary(bytes))) => Event::Frame {
                socket,
                frame: Frame::Binary(bytes.to_vec()),
            },
            Some(Ok(Message::Ping(_))) => Event::Frame {
                socket,
                frame: Frame::Ping,
            },
            Some(Ok(Message::Pong(_))) => Event::Frame {
                socket,
                frame: Frame::Pong,
            },
            Some(Ok(Message::Frame(_))) => return,
            Some(Ok(Message::Close(frame))) => {
                self.drop_socket();
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                });
                Event::Closed { socket, code, reason }
            }
            Some(Err(e)) => {
                self.drop_socket();
                let code = match e {
                    tungstenite::Error::Capacity(_) => 1009,
                    _ => 1006,
                };
                Event::Closed {
                    socket,
                    code,
                    reason: e.to_string(),
                }
            }
            None => {
                self.drop_socket();
                Event::Closed {
                    socket,
                    code: 1006,
                    reason: String::new(),
                }
            }
        };
        let _ = self.session.handle(now(), event);
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Send(outgoing, reply) => match self.session.send(now(), outgoing) {
                Ok(id) => {
                    self.waiters.insert(id, Waiter::Send(reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::Request(request, reply) => match self.session.request(now(), request) {
                Ok(id) => {
                    self.waiters.insert(id, Waiter::Request(reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::Command(command, reply) => {
                let _ = reply.send(self.session.command(now(), command));
            }
            Cmd::Control(event, reply) => {
                let _ = reply.send(self.session.handle(now(), event));
            }
            Cmd::Stats(reply) => {
                let _ = reply.send(self.session.stats(Instant::now()));
            }
            Cmd::DrainHistory(reply) => {
                let _ = reply.send(self.session.drain_history());
            }
        }
    }

    fn dispatch(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Resolved { id, result } => match self.waiters.remove(&id) {
                Some(Waiter::Send(tx)) => {
                    let _ = tx.send(Ok(result));
                }
                Some(Waiter::Request(tx)) => {
                    let _ = tx.send(Ok(result));
                }
                None => {}
            },
            SessionEvent::Push(push) => {
                // No subscriber is fine: the push is also in the history buffer.
                let _ = self.shared.pushes.send(push);
            }
            SessionEvent::Inbound(frame) => {
                let _ = self.shared.events.send(ClientEvent::Inbound(frame));
            }
            SessionEvent::Lifecycle(note) => {
                log(&note);
                match &note {
                    Notification::StatusChanged { to, .. } => {
                        self.shared.status.send_replace(*to);
                    }
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
                let _ = self.shared.events.send(ClientEvent::Lifecycle(note));
            }
        }
    }
}

/// Logs a step under the seeds' log-line names (L14).
fn log(note: &Notification<Infallible, DecodeError>) {
    let name = note.log_name();
    match note {
        Notification::StatusChanged { from, to } => {
            debug!(target: "tether", event = name, from = from.name(), to = to.name())
        }
        Notification::SocketOpened { attempt } | Notification::HelloSent { attempt } => {
            info!(target: "tether", event = name, attempt)
        }
        Notification::Connected {
            attempt, handshake, ..
        } => {
            info!(target: "tether", event = name, attempt, handshake_ms = handshake.as_millis() as u64)
        }
        Notification::Disconnected {
            failure, was_open, ..
        } => match failure {
            Failure::Closed(c) => {
                warn!(target: "tether", event = name, code = c.code, reason = %c.reason, was_open)
            }
            other => {
                warn!(target: "tether", event = name, code = other.close_code(), reason = %other, was_open)
            }
        },
        Notification::ReconnectScheduled { attempt, delay } => {
            info!(target: "tether", event = name, attempt, wait_ms = delay.as_millis() as u64)
        }
        Notification::SuspendDetected { late_by } => {
            warn!(target: "tether", event = name, late_ms = late_by.as_millis() as u64)
        }
        Notification::FrameDropped(reason) => warn!(target: "tether", event = name, reason = ?reason),
        Notification::Closed { reason } => warn!(target: "tether", event = name, reason = %reason),
        Notification::Message(never) => match *never {},
    }
}

/// Flushes what is queued and waits for the next message; completes with a
/// message or a write failure. Cancel-safe: what is not yet written stays queued.
async fn socket_io(socket: &mut Option<Live>) -> (SocketId, SocketIo) {
    let Some(live) = socket else {
        return std::future::pending().await;
    };
    let id = live.id;
    let io = std::future::poll_fn(|cx| {
        if live.dirty {
            match poll_flush(live, cx) {
                Poll::Ready(Ok(())) => live.dirty = false,
                Poll::Ready(Err(e)) => return Poll::Ready(SocketIo::WriteFailed(e)),
                // Backpressure holds the writes only; reads go on.
                Poll::Pending => {}
            }
        }
        Pin::new(&mut live.ws).poll_next(cx).map(SocketIo::Read)
    })
    .await;
    (id, io)
}

async fn connected(
    connecting: &mut Option<(SocketId, Connecting)>,
) -> (SocketId, Result<Ws, tungstenite::Error>) {
    match connecting {
        Some((id, fut)) => (*id, fut.await),
        None => std::future::pending().await,
    }
}

/// Hands every queued frame to the socket and flushes; ready when all is on the
/// wire.
fn poll_flush(live: &mut Live, cx: &mut Context<'_>) -> Poll<Result<(), tungstenite::Error>> {
    while !live.out.is_empty() {
        std::task::ready!(Pin::new(&mut live.ws).poll_ready(cx))?;
        if let Some(message) = live.out.pop_front() {
            Pin::new(&mut live.ws).start_send(message)?;
        }
    }
    Pin::new(&mut live.ws).poll_flush(cx)
}

/// Writes everything queued on a socket being closed; cancel-safe.
async fn flush(live: &mut Live) -> Result<(), tungstenite::Error> {
    std::future::poll_fn(|cx| poll_flush(live, cx)).await
}
