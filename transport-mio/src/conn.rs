//! One connection: a machine of any protocol, and the socket of the current
//! attempt taken through resolving → connecting → TLS → WebSocket upgrade →
//! open, one readiness event at a time, never blocking.
//!
//! The mapping is the async host's, both through tether-host: WebSocket
//! messages become machine events, the machine's `Io` becomes tungstenite
//! calls. Nothing here decides when to retry or give up; a socket that hangs
//! in any stage is ended by the machine's open timer like any other.

use std::any::Any;
use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use tether_host::{
    now, AttemptSettings, IoStats, Router, Target as Request, Transport, Tunnel, WriteQueue, CLOSE_LINGER,
};
use tether_proto::lifecycle::{ConnectFailureKind, Event, Io, LifecycleError, SocketId, Status};
use tether_proto::{Machine, Now, Output};
use tracing::debug;
use tungstenite::handshake::client::{ClientHandshake, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use crate::dns::Resolver;
use crate::reactor::ConnId;
use crate::stream::{Recording, Stream, TlsStream};

/// Messages read from one socket per turn, so a chatty peer cannot starve the
/// other connections of the reactor; the rest are read on the next turn.
const READ_BUDGET: usize = 64;

/// The parts of the reactor a connection touches while it works.
pub(crate) struct Ctx<'a> {
    pub registry: &'a Registry,
    pub token: Token,
    pub dns: &'a mut Resolver,
}

/// A connection of any protocol, as the reactor holds it.
pub(crate) trait Driven: Any + Send {
    fn ready(&mut self, ctx: &mut Ctx<'_>) -> bool;
    fn resolved(
        &mut self,
        ctx: &mut Ctx<'_>,
        socket: SocketId,
        result: Result<Vec<SocketAddr>, String>,
    ) -> bool;
    fn control(&mut self, ctx: &mut Ctx<'_>, event: Event) -> Result<(), LifecycleError>;
    fn tick(&mut self, ctx: &mut Ctx<'_>);
    fn flush_now(&mut self, ctx: &mut Ctx<'_>);
    fn shut(&mut self, ctx: &mut Ctx<'_>);
    fn deadline(&self) -> Option<Instant>;
    fn status(&self) -> Status;
    fn lingering(&self) -> bool;
    fn io_stats(&self) -> IoStats;
    fn take_recheck(&mut self) -> bool;
    fn take_dirty(&mut self) -> bool;
    fn filed(&mut self) -> &mut Option<Instant>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// One connection of a reactor: a machine, where its news goes, its socket.
pub(crate) struct Conn<M, R> {
    id: ConnId,
    machine: M,
    router: R,
    socket: Option<Socket>,
    /// A socket the machine closed, kept until the peer answers our close
    /// frame or [`CLOSE_LINGER`] passes.
    closing: Option<(Open, Instant)>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The socket settings of every attempt: limits, write queue bounds, proxy.
    settings: AttemptSettings,
    /// The deadline under which the reactor's timer table files this connection.
    filed: Option<Instant>,
    /// Frames were written since the last flush.
    dirty: bool,
    /// The reactor has this connection on its list to flush.
    flush_listed: bool,
    /// A TLS write outside a readiness event may have pulled socket data into
    /// rustls, where no readiness edge will announce it: read again soon.
    recheck: bool,
    stats: IoStats,
}

struct Socket {
    id: SocketId,
    stage: Stage,
}

// Open is where a connection spends its life, so it stays inline and the short
// stages are boxed: an idle connection pays for no extra allocation.
#[allow(clippy::large_enum_variant)]
enum Stage {
    /// Waiting for the resolver threads.
    Resolving(Box<Target>),
    /// TCP connect in flight.
    Connecting(TcpStream, Box<Target>),
    /// CONNECT to the proxy in flight (S8).
    Tunnelling(TcpStream, Box<Target>),
    /// TLS handshake in flight.
    Tls(Box<TlsStream>, Box<Target>),
    /// WebSocket upgrade in flight.
    Upgrading(Box<MidHandshake<ClientHandshake<Recording>>>),
    /// Frames flow.
    Open(Open),
}

/// The socket's id and its open stage, if it has one.
fn open_socket(socket: &mut Option<Socket>) -> Option<(SocketId, &mut Open)> {
    match socket {
        Some(Socket {
            id,
            stage: Stage::Open(open),
        }) => Some((*id, open)),
        _ => None,
    }
}

/// Where an attempt is going; only alive until the socket opens.
struct Target {
    request: tungstenite::handshake::client::Request,
    tls_name: Option<ServerName<'static>>,
    /// The CONNECT exchange to run first, when the attempt goes through a proxy.
    tunnel: Option<Box<Tunnel>>,
    /// Addresses not tried yet, in the resolver's order.
    addrs: VecDeque<SocketAddr>,
    last_error: Option<Fail>,
}

struct Open {
    ws: WebSocket<Stream>,
    /// Frames written since the last flush, or behind a blocked socket
    /// (tungstenite holds at most one more).
    queue: WriteQueue,
    blocked: bool,
}

/// The outcome of driving a stage.
enum Step {
    /// Nothing more until the socket is ready again.
    Wait(Stage),
    /// Moved on; try the next stage at once.
    Next(Stage),
    /// The attempt failed, with the kind and reason the session gets.
    Failed(Fail),
}

/// Why an attempt failed: the kind the policy decides on, and the text.
type Fail = (ConnectFailureKind, String);

/// A failure of the attempt's own set-up (URL, TLS, server name).
fn misconfigured(reason: impl Into<String>) -> Fail {
    (ConnectFailureKind::Configuration, reason.into())
}

impl<M, R> Conn<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    pub(crate) fn new(
        id: ConnId,
        machine: M,
        router: R,
        tls: Option<Arc<rustls::ClientConfig>>,
        transport: &Transport,
    ) -> Self {
        Conn {
            id,
            machine,
            router,
            socket: None,
            closing: None,
            tls,
            settings: transport.attempt_settings(),
            filed: None,
            dirty: false,
            flush_listed: false,
            recheck: false,
            stats: IoStats::default(),
        }
    }

    pub(crate) fn machine(&self) -> &M {
        &self.machine
    }

    /// Runs `f` on the machine and its router, then drains the machine: the
    /// one call path of every protocol's client.
    pub(crate) fn call<T>(&mut self, ctx: &mut Ctx<'_>, f: impl FnOnce(&mut M, &mut R, Now) -> T) -> T {
        let result = f(&mut self.machine, &mut self.router, now());
        self.settle(ctx, VecDeque::new());
        result
    }

    /// Socket news: refused only once the machine is closed for good, when it is moot.
    fn feed(&mut self, ctx: &mut Ctx<'_>, event: Event) {
        let _ = self.machine.handle(now(), event);
        self.settle(ctx, VecDeque::new());
    }

    /// The drain rule: act on every output, then feed what the socket work
    /// produced (a failed open, a dead socket), until nothing is left. Writes
    /// wait in the queue for the reactor's flush at the end of the turn.
    fn settle(&mut self, ctx: &mut Ctx<'_>, mut inbox: VecDeque<Event>) {
        loop {
            while let Some(output) = self.machine.poll_output() {
                match output {
                    Output::Io(io) => self.io(ctx, io, &mut inbox),
                    Output::Event(event) => self.dispatch(event),
                }
            }
            let Some(event) = inbox.pop_front() else {
                return;
            };
            let _ = self.machine.handle(now(), event);
        }
    }

    fn dispatch(&mut self, event: M::Event) {
        if let Some(note) = M::notification(&event) {
            tether_host::log_step(&self.id, note);
        }
        self.router.route(event);
    }

    fn io(&mut self, ctx: &mut Ctx<'_>, io: Io, inbox: &mut VecDeque<Event>) {
        let io = match tether_host::outbound(io) {
            Ok((socket, message)) => return self.write(ctx, socket, message, inbox),
            Err(io) => io,
        };
        match io {
            Io::OpenSocket { socket, url, headers } => {
                tether_host::log_open(&self.id, &url, socket.0);
                // The session ends a socket before it asks for the next; this only
                // guards against leaking one if it ever did not.
                self.drop_socket(ctx);
                match self.open(ctx, socket, &url, &headers) {
                    Ok(stage) => self.socket = Some(Socket { id: socket, stage }),
                    Err((kind, reason)) => inbox.push_back(Event::ConnectFailed { socket, kind, reason }),
                }
            }
            Io::SendText { .. } | Io::SendPing { .. } => {}
            Io::CloseSocket { socket, code, reason } => {
                if !self.is_current(socket) {
                    return;
                }
                match self.socket.take() {
                    Some(Socket {
                        stage: Stage::Open(mut open),
                        ..
                    }) => {
                        // What the machine wrote last, then the close frame; the
                        // socket stays until the peer answers or the linger ends.
                        open.queue.push_close(tether_host::close_message(code, reason));
                        self.stats.flushes += 1;
                        if open.pump().is_ok() {
                            if let Some((mut old, _)) = self.closing.take() {
                                let _ = ctx.registry.deregister(old.ws.get_mut().tcp_mut());
                            }
                            self.closing = Some((open, now().instant + CLOSE_LINGER));
                        } else {
                            let _ = ctx.registry.deregister(open.ws.get_mut().tcp_mut());
                        }
                    }
                    other => {
                        self.socket = other;
                        self.drop_socket(ctx);
                    }
                }
            }
            Io::TerminateSocket { socket } => {
                if self.is_current(socket) {
                    debug!(target: "tether", conn = %self.id, socket = socket.0, "terminating socket");
                    self.drop_socket(ctx);
                }
            }
        }
    }

    /// Queues a frame; the flush after the drain hands the whole batch to the
    /// socket in one write.
    fn write(&mut self, ctx: &mut Ctx<'_>, socket: SocketId, message: Message, inbox: &mut VecDeque<Event>) {
        // Not open (yet or any more): the session never writes before the open,
        // and a socket it has left is gone.
        let Some((id, open)) = open_socket(&mut self.socket) else {
            return;
        };
        if id != socket {
            return;
        }
        match tether_host::queue_write(&mut open.queue, &mut self.stats, &self.id, socket, message) {
            Ok(()) => self.dirty = true,
            // The one overflow rule (tether-host): this socket is dead, say so.
            Err(closed) => {
                self.drop_socket(ctx);
                inbox.push_back(closed);
            }
        }
    }

    /// Pushes out whatever the turn wrote, in one batch.
    fn flush(&mut self, ctx: &mut Ctx<'_>, inbox: &mut VecDeque<Event>) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let Some((socket, open)) = open_socket(&mut self.socket) else {
            return;
        };
        self.recheck |= open.ws.get_ref().is_tls();
        self.stats.flushes += 1;
        if let Err(e) = open.pump() {
            self.drop_socket(ctx);
            inbox.push_back(tether_host::closed_by(socket, &e));
        }
    }

    fn is_current(&self, socket: SocketId) -> bool {
        self.socket.as_ref().is_some_and(|s| s.id == socket)
    }

    fn drop_socket(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(mut socket) = self.socket.take() {
            if let Some(tcp) = socket.stage.tcp_mut() {
                // Closing the socket would unregister it too; saying so keeps a
                // later socket on the same token free of its leftovers.
                let _ = ctx.registry.deregister(tcp);
            }
        }
    }

    /// Starts an attempt: parses the URL, then connects to a literal address or
    /// hands the name to the resolver threads.
    fn open(
        &mut self,
        ctx: &mut Ctx<'_>,
        socket: SocketId,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Stage, Fail> {
        let target = Request::new(url, headers).map_err(misconfigured)?;
        let proxy = self
            .settings
            .proxy_for(&target)
            .map_err(|e| misconfigured(e.to_string()))?;
        let Request {
            request,
            secure,
            host,
            port,
        } = target;
        let tls_name = if secure {
            if self.tls.is_none() {
                return Err(misconfigured("wss:// needs a TLS configuration"));
            }
            let name = ServerName::try_from(host.clone())
                .map_err(|e| misconfigured(format!("bad server name {host}: {e}")))?;
            Some(name)
        } else {
            None
        };
        // Through a proxy, the socket goes to the proxy and the tunnel to the target.
        let (tunnel, host, port) = match proxy {
            Some(proxy) => {
                debug!(target: "tether", conn = %self.id, %proxy, host, port, "connecting through proxy");
                let tunnel = Box::new(Tunnel::new(&proxy, &host, port));
                (Some(tunnel), proxy.host().to_owned(), proxy.port())
            }
            None => (None, host, port),
        };
        let mut target = Box::new(Target {
            request,
            tls_name,
            tunnel,
            addrs: VecDeque::new(),
            last_error: None,
        });
        if let Ok(ip) = host.parse::<IpAddr>() {
            target.addrs.push_back(SocketAddr::new(ip, port));
            return match connect_next(ctx, target) {
                Step::Wait(stage) | Step::Next(stage) => Ok(stage),
                Step::Failed(fail) => Err(fail),
            };
        }
        // Only the resolver threads themselves can fail here (they stopped, or
        // could not start): a local condition, not the name's.
        ctx.dns
            .resolve(self.id, socket, &host, port)
            .map_err(|reason| (ConnectFailureKind::Network, reason))?;
        Ok(Stage::Resolving(target))
    }

    /// A lookup for `socket` finished.
    fn on_resolved(
        &mut self,
        ctx: &mut Ctx<'_>,
        socket: SocketId,
        result: Result<Vec<SocketAddr>, String>,
    ) -> bool {
        if !matches!(&self.socket, Some(Socket { id, stage: Stage::Resolving(_) }) if *id == socket) {
            // An answer for a socket the session has already given up on.
            return false;
        }
        let Some(Socket {
            stage: Stage::Resolving(mut target),
            ..
        }) = self.socket.take()
        else {
            return false;
        };
        let step = match result {
            Ok(addrs) => {
                target.addrs = addrs.into();
                connect_next(ctx, target)
            }
            // The resolver's own answer: the name did not resolve.
            Err(reason) => Step::Failed((ConnectFailureKind::Dns, reason)),
        };
        self.apply(ctx, socket, step) && self.drive_socket(ctx)
    }

    /// The socket is ready (or may be): moves the attempt on as far as it goes
    /// without blocking. True when there is more to read on a later turn.
    fn drive_socket(&mut self, ctx: &mut Ctx<'_>) -> bool {
        loop {
            let Some(Socket { id, stage }) = self.socket.take() else {
                return false;
            };
            let step = match stage {
                Stage::Open(open) => {
                    self.socket = Some(Socket {
                        id,
                        stage: Stage::Open(open),
                    });
                    return self.serve(ctx);
                }
                Stage::Resolving(target) => Step::Wait(Stage::Resolving(target)),
                Stage::Connecting(tcp, target) => self.connected(ctx, tcp, target),
                Stage::Tunnelling(tcp, target) => self.tunnel(ctx, tcp, target),
                Stage::Tls(tls, target) => self.tls_handshake(tls, target),
                Stage::Upgrading(mid) => upgraded(mid.handshake(), &self.settings),
            };
            if !self.apply(ctx, id, step) {
                return false;
            }
        }
    }

    /// Installs a step's outcome; true when it moved on.
    fn apply(&mut self, ctx: &mut Ctx<'_>, id: SocketId, step: Step) -> bool {
        match step {
            Step::Wait(stage) => {
                self.socket = Some(Socket { id, stage });
                false
            }
            Step::Next(stage) => {
                let opened = matches!(stage, Stage::Open(_));
                self.socket = Some(Socket { id, stage });
                if opened {
                    self.feed(ctx, Event::Opened { socket: id });
                }
                true
            }
            Step::Failed((kind, reason)) => {
                self.feed(
                    ctx,
                    Event::ConnectFailed {
                        socket: id,
                        kind,
                        reason,
                    },
                );
                false
            }
        }
    }

    fn connected(&self, ctx: &mut Ctx<'_>, mut tcp: TcpStream, mut target: Box<Target>) -> Step {
        // mio's recipe for a non-blocking connect: an error, else a peer address.
        let error = match tcp.take_error() {
            Ok(Some(e)) | Err(e) => e,
            Ok(None) => match tcp.peer_addr() {
                Ok(_) => {
                    // Frames are small and latency matters more than packet count.
                    let _ = tcp.set_nodelay(true);
                    if target.tunnel.is_some() {
                        return Step::Next(Stage::Tunnelling(tcp, target));
                    }
                    return self.secure(tcp, target);
                }
                Err(e) if matches!(e.kind(), ErrorKind::NotConnected | ErrorKind::WouldBlock) => {
                    return Step::Wait(Stage::Connecting(tcp, target));
                }
                Err(e) => e,
            },
        };
        let _ = ctx.registry.deregister(&mut tcp);
        drop(tcp);
        target.last_error = Some(io_reason(error));
        connect_next(ctx, target)
    }

    /// The CONNECT exchange with the proxy, then TLS and the upgrade through it.
    fn tunnel(&self, ctx: &mut Ctx<'_>, mut tcp: TcpStream, mut target: Box<Target>) -> Step {
        let Some(tunnel) = target.tunnel.as_mut() else {
            return self.secure(tcp, target);
        };
        match tunnel.drive(&mut tcp) {
            Ok(None) => {
                target.tunnel = None;
                self.secure(tcp, target)
            }
            Ok(Some(_)) => Step::Wait(Stage::Tunnelling(tcp, target)),
            Err(e) => {
                let _ = ctx.registry.deregister(&mut tcp);
                Step::Failed(io_reason(e))
            }
        }
    }

    fn secure(&self, tcp: TcpStream, mut target: Box<Target>) -> Step {
        let Some(name) = target.tls_name.take() else {
            return upgraded(
                tungstenite::client::client_with_config(
                    target.request,
                    Recording::new(Stream::Plain(tcp)),
                    Some(self.settings.ws_config()),
                ),
                &self.settings,
            );
        };
        let Some(config) = &self.tls else {
            return Step::Failed(misconfigured("wss:// needs a TLS configuration"));
        };
        match ClientConnection::new(Arc::clone(config), name) {
            Ok(conn) => Step::Next(Stage::Tls(Box::new(StreamOwned::new(conn, tcp)), target)),
            Err(e) => Step::Failed((ConnectFailureKind::Tls, format!("TLS error: {e}"))),
        }
    }

    fn tls_handshake(&self, mut tls: Box<TlsStream>, target: Box<Target>) -> Step {
        while tls.conn.is_handshaking() {
            let tls = &mut *tls;
            match tls.conn.complete_io(&mut tls.sock) {
                // rustls can do nothing more now; the next readiness will tell.
                Ok((0, 0)) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Step::Failed(io_reason(e)),
            }
        }
        if tls.conn.is_handshaking() {
            return Step::Wait(Stage::Tls(tls, target));
        }
        upgraded(
            tungstenite::client::client_with_config(
                target.request,
                Recording::new(Stream::Tls(tls)),
                Some(self.settings.ws_config()),
            ),
            &self.settings,
        )
    }

    /// Open: move queued frames on (a writable edge may be what woke us), then read.
    fn serve(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if let Some((socket, open)) = open_socket(&mut self.socket) {
            if let Err(e) = open.pump() {
                self.drop_socket(ctx);
                self.feed(ctx, tether_host::closed_by(socket, &e));
                return false;
            }
        }
        self.read(ctx)
    }

    /// Reads until the socket has nothing more, or the budget is spent (then
    /// true: edge-triggered readiness will not say so again).
    fn read(&mut self, ctx: &mut Ctx<'_>) -> bool {
        for _ in 0..READ_BUDGET {
            let Some(Socket {
                id,
                stage: Stage::Open(open),
            }) = &mut self.socket
            else {
                return false;
            };
            let socket = *id;
            let event = match open.ws.read() {
                Ok(message) => match tether_host::inbound(socket, message) {
                    Some(event @ Event::Closed { .. }) => {
                        // Put tungstenite's answer to the close frame on the wire
                        // before the socket goes, so the peer sees its code echoed.
                        let _ = open.ws.flush();
                        self.drop_socket(ctx);
                        event
                    }
                    Some(event) => event,
                    None => continue,
                },
                Err(e) if would_block(&e) => return false,
                Err(e) => {
                    self.drop_socket(ctx);
                    tether_host::closed_by(socket, &e)
                }
            };
            self.stats.messages_in += 1;
            self.feed(ctx, event);
        }
        true
    }

    /// Moves a closing socket on: the peer's answer to our close frame ends
    /// it, and so does the linger's end.
    fn drive_closing(&mut self, ctx: &mut Ctx<'_>) {
        let Some((open, until)) = &mut self.closing else {
            return;
        };
        let done = now().instant >= *until
            || open.pump().is_err()
            || loop {
                match open.ws.read() {
                    Ok(tungstenite::Message::Close(_)) => {
                        let _ = open.ws.flush();
                        break true;
                    }
                    Ok(_) => {}
                    Err(e) if would_block(&e) => break false,
                    Err(_) => break true,
                }
            };
        if done {
            if let Some((mut open, _)) = self.closing.take() {
                let _ = ctx.registry.deregister(open.ws.get_mut().tcp_mut());
            }
        }
    }
}

impl<M, R> Driven for Conn<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    fn ready(&mut self, ctx: &mut Ctx<'_>) -> bool {
        self.drive_closing(ctx);
        self.drive_socket(ctx)
    }

    fn resolved(
        &mut self,
        ctx: &mut Ctx<'_>,
        socket: SocketId,
        result: Result<Vec<SocketAddr>, String>,
    ) -> bool {
        self.on_resolved(ctx, socket, result)
    }

    fn control(&mut self, ctx: &mut Ctx<'_>, event: Event) -> Result<(), LifecycleError> {
        let result = self.machine.handle(now(), event);
        self.settle(ctx, VecDeque::new());
        result
    }

    fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.drive_closing(ctx);
        if self
            .machine
            .next_deadline()
            .is_some_and(|(at, _)| at <= Instant::now())
        {
            self.feed(ctx, Event::Tick);
        }
    }

    fn flush_now(&mut self, ctx: &mut Ctx<'_>) {
        self.flush_listed = false;
        let mut inbox = VecDeque::new();
        self.flush(ctx, &mut inbox);
        if !inbox.is_empty() {
            self.settle(ctx, inbox);
        }
    }

    fn shut(&mut self, ctx: &mut Ctx<'_>) {
        self.router.closed();
        self.drop_socket(ctx);
        if let Some((mut open, _)) = self.closing.take() {
            let _ = ctx.registry.deregister(open.ws.get_mut().tcp_mut());
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let machine = self.machine.next_deadline().map(|(at, _)| at);
        let linger = self.closing.as_ref().map(|(_, until)| *until);
        match (machine, linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn status(&self) -> Status {
        self.machine.status()
    }

    fn lingering(&self) -> bool {
        self.closing.is_some()
    }

    fn io_stats(&self) -> IoStats {
        let mut stats = self.stats;
        if let Some(Socket {
            stage: Stage::Open(open),
            ..
        }) = &self.socket
        {
            stats.queued = open.queue.len();
        }
        stats
    }

    fn take_recheck(&mut self) -> bool {
        std::mem::take(&mut self.recheck)
    }

    /// True (once per flush) when the turn wrote and the reactor must list
    /// this connection for its end-of-turn flush.
    fn take_dirty(&mut self) -> bool {
        if self.dirty && !self.flush_listed {
            self.flush_listed = true;
            return true;
        }
        false
    }

    fn filed(&mut self) -> &mut Option<Instant> {
        &mut self.filed
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Stage {
    fn tcp_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stage::Resolving(_) => None,
            Stage::Connecting(tcp, _) | Stage::Tunnelling(tcp, _) => Some(tcp),
            Stage::Tls(tls, _) => Some(&mut tls.sock),
            Stage::Upgrading(mid) => Some(mid.get_mut().get_mut().stream.tcp_mut()),
            Stage::Open(open) => Some(open.ws.get_mut().tcp_mut()),
        }
    }
}

impl Open {
    fn new(ws: WebSocket<Stream>, queue: WriteQueue) -> Self {
        Open {
            ws,
            queue,
            blocked: false,
        }
    }

    /// Hands queued frames to tungstenite's buffer and flushes it: one write
    /// for the whole batch, as far as the socket takes it.
    fn pump(&mut self) -> Result<(), tungstenite::Error> {
        loop {
            if !self.blocked {
                while let Some(message) = self.queue.pop() {
                    match self.ws.write(message) {
                        Ok(()) => {}
                        // tungstenite keeps the frame in its buffer; the next
                        // pump sends it on.
                        Err(e) if would_block(&e) => {
                            self.blocked = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            match self.ws.flush() {
                Ok(()) => self.blocked = false,
                Err(e) if would_block(&e) => {
                    self.blocked = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            if self.queue.is_empty() {
                return Ok(());
            }
        }
    }
}

/// Tries the next address of the attempt; fails with the last error when none is left.
fn connect_next(ctx: &mut Ctx<'_>, mut target: Box<Target>) -> Step {
    while let Some(addr) = target.addrs.pop_front() {
        let registered = TcpStream::connect(addr).and_then(|mut tcp| {
            // Edge-triggered and both ways for the socket's whole life: the
            // writable edge announces the connect and, later, room after a blocked
            // write; while idle neither edge fires, so the interest costs nothing.
            ctx.registry
                .register(&mut tcp, ctx.token, Interest::READABLE | Interest::WRITABLE)
                .map(|()| tcp)
        });
        match registered {
            Ok(tcp) => return Step::Wait(Stage::Connecting(tcp, target)),
            Err(e) => target.last_error = Some(io_reason(e)),
        }
    }
    Step::Failed(target.last_error.take().unwrap_or_else(|| {
        let reason = "IO error: no address to connect to".to_owned();
        (ConnectFailureKind::Dns, reason)
    }))
}

fn upgraded(
    result: Result<(WebSocket<Recording>, Response), HandshakeError<ClientHandshake<Recording>>>,
    settings: &AttemptSettings,
) -> Step {
    match result {
        Ok((ws, _response)) => {
            // Rebuilt around what followed the response, so the socket reads
            // into a buffer of the configured size, not the handshake's 4 KiB.
            let Recording { stream, read } = ws.into_inner();
            let Some(tail) = tether_host::after_headers(&read) else {
                // tungstenite parsed a whole response out of these very bytes.
                let reason = "WebSocket protocol error: incomplete upgrade response".to_owned();
                return Step::Failed((ConnectFailureKind::Upgrade, reason));
            };
            let ws = WebSocket::from_partially_read(
                stream,
                tail.to_vec(),
                Role::Client,
                Some(settings.ws_config()),
            );
            Step::Next(Stage::Open(Open::new(ws, settings.write_queue())))
        }
        Err(HandshakeError::Interrupted(mid)) => Step::Wait(Stage::Upgrading(Box::new(mid))),
        Err(HandshakeError::Failure(e)) => {
            Step::Failed((tether_host::connect_failure_kind(&e), e.to_string()))
        }
    }
}

/// The same kind and text the async host reports for an IO error (tungstenite's).
fn io_reason(e: io::Error) -> Fail {
    let error = tungstenite::Error::Io(e);
    (tether_host::connect_failure_kind(&error), error.to_string())
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == ErrorKind::WouldBlock)
}
