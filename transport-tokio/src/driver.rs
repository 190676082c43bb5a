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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, StreamExt};
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

/// The read half of the open socket.
struct Live {
    id: SocketId,
    stream: SplitStream<Ws>,
}

/// The write half of the open socket, driven from the same task as the reads.
struct Writer {
    id: SocketId,
    sink: SplitSink<Ws, Message>,
    /// Frames the session wrote that the socket has not taken yet; bounded.
    out: VecDeque<Message>,
    /// `out` or the sink's buffer holds something not yet flushed.
    dirty: bool,
}

pub(crate) struct Driver {
    session: Session,
    cmds: mpsc::Receiver<Cmd>,
    shared: Shared,
    waiters: HashMap<OpId, Waiter>,
    socket: Option<Live>,
    writer: Option<Writer>,
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
        max_message_size: usize,
        write_queue: usize,
    ) -> Self {
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(max_message_size))
            .max_frame_size(Some(max_message_size));
        Driver {
            session,
            cmds,
            shared,
            waiters: HashMap::new(),
            socket: None,
            writer: None,
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
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.on_cmd(cmd),
                    // Every handle is gone: nobody can use the connection any more.
                    None => {
                        let _ = self.session.handle(now(), Event::Close);
                    }
                },
                msg = next_message(&mut self.socket) => self.on_message(msg),
                // Written in this task, not handed to another: no extra wake-up
                // per frame. The socket's own backpressure parks only this branch.
                res = flush(&mut self.writer), if self.writer.as_ref().is_some_and(|w| w.dirty) => {
                    self.on_flushed(res)
                }
                res = connected(&mut self.connecting) => self.on_connected(res),
                () = sleep => {
                    let _ = self.session.handle(now(), Event::Tick);
                }
            }
        }
        self.finish().await;
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
                if let Some(mut writer) = self.writer.take_if(|w| w.id == socket) {
                    // The session is done with this socket; what it wrote last and
                    // the close frame still go out, in a task of their own, briefly.
                    writer.out.push_back(Message::Close(Some(frame)));
                    self.closing.push(tokio::spawn(async move {
                        let mut slot = Some(writer);
                        let _ = tokio::time::timeout(Duration::from_secs(1), flush(&mut slot)).await;
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
        self.writer = None;
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
        let Some(live) = self.writer.as_mut().filter(|w| w.id == socket) else {
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

    fn on_flushed(&mut self, (socket, result): (SocketId, Result<(), tungstenite::Error>)) {
        match result {
            Ok(()) => {
                if let Some(w) = self.writer.as_mut().filter(|w| w.id == socket) {
                    w.dirty = !w.out.is_empty();
                }
            }
            Err(e) => {
                // The read side will see the same failure; report it once, now.
                if self.socket.as_ref().is_some_and(|l| l.id == socket) {
                    self.drop_socket();
                    let reason = e.to_string();
                    let _ = self.session.handle(
                        now(),
                        Event::Closed {
                            socket,
                            code: 1006,
                            reason,
                        },
                    );
                }
            }
        }
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
                let (sink, stream) = ws.split();
                self.socket = Some(Live { id: socket, stream });
                self.writer = Some(Writer {
                    id: socket,
                    sink,
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

    fn on_message(&mut self, (socket, msg): (SocketId, Option<Result<Message, tungstenite::Error>>)) {
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

async fn next_message(socket: &mut Option<Live>) -> (SocketId, Option<Result<Message, tungstenite::Error>>) {
    match socket {
        Some(live) => (live.id, live.stream.next().await),
        None => std::future::pending().await,
    }
}

async fn connected(
    connecting: &mut Option<(SocketId, Connecting)>,
) -> (SocketId, Result<Ws, tungstenite::Error>) {
    match connecting {
        Some((id, fut)) => (*id, fut.await),
        None => std::future::pending().await,
    }
}

/// Hands every queued frame to the socket and flushes; completes when all is on
/// the wire. Cancel-safe: what is not yet taken stays queued.
async fn flush(writer: &mut Option<Writer>) -> (SocketId, Result<(), tungstenite::Error>) {
    let Some(live) = writer else {
        return std::future::pending().await;
    };
    let id = live.id;
    let result = std::future::poll_fn(|cx| {
        while !live.out.is_empty() {
            std::task::ready!(Pin::new(&mut live.sink).poll_ready(cx))?;
            if let Some(message) = live.out.pop_front() {
                Pin::new(&mut live.sink).start_send(message)?;
            }
        }
        Pin::new(&mut live.sink).poll_flush(cx)
    })
    .await;
    (id, result)
}
