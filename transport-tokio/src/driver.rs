//! The one task that owns a socket and a machine, for any [`Machine`].
//!
//! It maps tungstenite messages to machine events and the machine's `Io` back
//! to tungstenite (both through tether-host), sleeps until the machine's next
//! deadline, and decides nothing: every retry, timeout and give-up is the
//! machine's. What the socket work itself produces (an open that fails at once,
//! a write queue that overflows) is fed after the drain, never during it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Sink, Stream};
use tether_host::{AttemptSettings, IoStats, ProxyUrl, Target, Tunnel, Wants, WriteQueue, CLOSE_LINGER};
use tether_proto::lifecycle::{Event, Io, Notification, SocketId, Status};
use tether_proto::{Machine, Now, Output};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use tether_host::Router;

use crate::handoff::Handoff;
use crate::stream::Socket;

type Ws = WebSocketStream<Socket>;
type Connecting = Pin<Box<dyn Future<Output = Result<Ws, tungstenite::Error>> + Send>>;

/// Work a handle runs on the driver task, with the machine and its router at
/// hand; the driver drains the machine right after (the one call path).
pub(crate) type Call<M, R> = Box<dyn FnOnce(&mut M, &mut R, Now) + Send>;

/// What a handle asks of the driver task.
pub(crate) enum Cmd<M, R> {
    /// Run work on the machine, then drain it.
    Call(Call<M, R>),
    /// Report the socket counters.
    IoStats(oneshot::Sender<IoStats>),
}

/// The open socket. Reads and writes are driven from this one task, through one
/// poll, so the socket needs no lock between a read half and a write half.
struct Live {
    id: SocketId,
    ws: Ws,
    /// Frames the machine wrote that the socket has not taken yet; bounded.
    out: WriteQueue,
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

/// What the handles of one connection share with its driver.
pub(crate) struct Parts<M: Machine, R> {
    pub machine: M,
    pub router: R,
    pub handoff: Arc<Handoff<Cmd<M, R>>>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub settings: AttemptSettings,
}

pub(crate) struct Driver<M: Machine, R> {
    machine: M,
    router: R,
    handoff: Arc<Handoff<Cmd<M, R>>>,
    /// The commands being run; trades buffers with the hand-off's queue.
    batch: VecDeque<Cmd<M, R>>,
    /// Nobody waits for the first connect's outcome any more.
    first_told: bool,
    socket: Option<Live>,
    /// Socket news produced while draining, fed once the drain is done.
    inbox: VecDeque<Event>,
    /// The machine's next deadline, armed once; see `arm`.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// When `timer` fires, if it is armed at all.
    armed: Option<Instant>,
    /// Which source the next turn looks at first (see `poll_turn`).
    next_source: u8,
    connecting: Option<(SocketId, Connecting)>,
    /// Sockets being closed: their close frame is still on its way out, or the
    /// peer's answer on its way in.
    closing: Vec<JoinHandle<()>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    settings: AttemptSettings,
    /// Counted across sockets, by tether-host's rules, as tether-mio counts them.
    stats: IoStats,
}

impl<M, R> Driver<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    pub(crate) fn new(parts: Parts<M, R>) -> Self {
        Driver {
            machine: parts.machine,
            router: parts.router,
            handoff: parts.handoff,
            batch: VecDeque::new(),
            first_told: false,
            socket: None,
            inbox: VecDeque::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            next_source: 0,
            connecting: None,
            closing: Vec::new(),
            tls: parts.tls,
            settings: parts.settings,
            stats: IoStats::default(),
        }
    }

    /// The task that drives the connection until the machine is closed for good.
    ///
    /// A future written by hand rather than an `async fn` with a `select!`:
    /// its whole state is the boxed driver and two flags, where the async
    /// version kept every branch's future (160 bytes) and pushed tokio's task
    /// cell, aligned to 128 bytes, from 256 to 384 (memory per idle
    /// connection counts). The driver is boxed, so the machine is never
    /// copied into the task twice.
    pub(crate) fn run(self: Box<Self>) -> Running<M, R> {
        Running {
            driver: self,
            started: false,
            finishing: false,
            ended: false,
        }
    }

    /// One turn of the loop: the first source that has something, starting
    /// from a different one each turn so that none can starve the others
    /// (as `select!`'s random order did).
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<Turn> {
        let start = self.next_source;
        self.next_source = (start + 1) % SOURCES;
        for k in 0..SOURCES {
            let turn = match (start + k) % SOURCES {
                0 => self.handoff.poll_work(cx).map(|()| Turn::Work),
                // Written in this task, not handed to another: no extra wake-up
                // per frame. The socket's own backpressure parks only the writes.
                1 => poll_socket(&mut self.socket, &mut self.stats, cx).map(|(s, io)| Turn::Socket(s, io)),
                2 => match &mut self.connecting {
                    Some((id, fut)) => fut.as_mut().poll(cx).map(|res| Turn::Connected(*id, res)),
                    None => Poll::Pending,
                },
                _ if self.armed.is_some() => self.timer.as_mut().poll(cx).map(|()| Turn::Timer),
                _ => Poll::Pending,
            };
            if turn.is_ready() {
                return turn;
            }
        }
        Poll::Pending
    }

    fn on_turn(&mut self, turn: Turn) {
        match turn {
            Turn::Work => self.on_work(),
            Turn::Socket(socket, SocketIo::Read(msg)) => self.on_message(socket, msg),
            Turn::Socket(socket, SocketIo::WriteFailed(e)) => {
                // The read side would see the same failure; report it once, now.
                self.socket = None;
                self.feed(tether_host::closed_by(socket, &e));
            }
            Turn::Connected(socket, res) => self.on_connected((socket, res)),
            Turn::Timer => {
                self.armed = None;
                self.feed(Event::Tick);
            }
        }
    }

    /// Feeds one input and drains everything it leads to.
    fn feed(&mut self, event: Event) {
        // Refused only once the machine is closed for good, when it is moot.
        let _ = self.machine.handle(tether_host::now(), event);
        self.drain();
    }

    /// Runs every queued command; closes once every handle is gone and
    /// nothing they sent is left.
    fn on_work(&mut self) {
        let handles = self.handoff.take(&mut self.batch);
        while let Some(cmd) = self.batch.pop_front() {
            self.on_cmd(cmd);
        }
        if !handles {
            // Nobody can use the connection any more.
            self.feed(Event::Close);
        }
    }

    fn on_cmd(&mut self, cmd: Cmd<M, R>) {
        match cmd {
            Cmd::Call(call) => {
                call(&mut self.machine, &mut self.router, tether_host::now());
                self.drain();
            }
            Cmd::IoStats(reply) => {
                let mut stats = self.stats;
                stats.queued = self.socket.as_ref().map_or(0, |live| live.out.len());
                let _ = reply.send(stats);
            }
        }
    }

    /// The drain rule: act on every output, then feed what the socket work
    /// produced, until nothing is left.
    fn drain(&mut self) {
        loop {
            while let Some(output) = self.machine.poll_output() {
                match output {
                    Output::Io(io) => self.io(io),
                    Output::Event(event) => self.dispatch(event),
                }
            }
            let Some(event) = self.inbox.pop_front() else {
                break;
            };
            let _ = self.machine.handle(tether_host::now(), event);
        }
        self.closing.retain(|w| !w.is_finished());
    }

    /// Arms the timer for `deadline` unless it is already armed no later.
    ///
    /// Re-arming costs a trip through tokio's timer wheel, and a session's
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

    /// Lets the closing sockets finish their close handshake, briefly, then
    /// ends every subscriber.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.socket = None;
        self.connecting = None;
        while let Some(closing) = self.closing.last_mut() {
            // Each lingers at most CLOSE_LINGER; its result says nothing more.
            let _ = std::task::ready!(Pin::new(closing).poll(cx));
            self.closing.pop();
        }
        self.router.closed();
        self.handoff.end();
        Poll::Ready(())
    }

    fn io(&mut self, io: Io) {
        let io = match tether_host::outbound(io) {
            Ok((socket, message)) => return self.write(socket, message),
            Err(io) => io,
        };
        match io {
            Io::OpenSocket { socket, url, headers } => {
                tether_host::log_open(&"", &url, socket.0);
                match self.open(&url, &headers) {
                    Ok(fut) => self.connecting = Some((socket, fut)),
                    Err(reason) => self.inbox.push_back(tether_host::misconfigured(socket, reason)),
                }
            }
            Io::CloseSocket { socket, code, reason } => {
                if let Some(mut live) = self.socket.take_if(|l| l.id == socket) {
                    // The machine is done with this socket; what it wrote last and
                    // the close frame still go out, and the peer's answer is
                    // awaited, in a task of their own, briefly.
                    live.out.push_close(tether_host::close_message(code, reason));
                    live.dirty = true;
                    self.stats.flushes += 1;
                    self.linger(live);
                }
                self.forget(socket);
            }
            Io::TerminateSocket { socket } => {
                if self.socket.as_ref().is_some_and(|l| l.id == socket) {
                    debug!(target: "tether", socket = socket.0, "terminating socket");
                }
                self.forget(socket);
            }
            Io::SendText { .. } | Io::SendPing { .. } => {}
        }
    }

    fn linger(&mut self, mut live: Live) {
        self.closing.push(tokio::spawn(async move {
            let _ = tokio::time::timeout(CLOSE_LINGER, close_handshake(&mut live)).await;
        }));
    }

    fn forget(&mut self, socket: SocketId) {
        if self.socket.as_ref().is_some_and(|l| l.id == socket) {
            self.socket = None;
        }
        if self.connecting.as_ref().is_some_and(|(id, _)| *id == socket) {
            self.connecting = None;
        }
    }

    fn write(&mut self, socket: SocketId, message: Message) {
        let Some(live) = self.socket.as_mut().filter(|l| l.id == socket) else {
            return;
        };
        match tether_host::queue_write(&mut live.out, &mut self.stats, &"", socket, message) {
            Ok(()) => live.dirty = true,
            // The one overflow rule (tether-host): this socket is dead, say so.
            Err(closed) => {
                self.socket = None;
                self.inbox.push_back(closed);
            }
        }
    }

    fn open(&self, url: &str, headers: &[(String, String)]) -> Result<Connecting, String> {
        let target = Target::new(url, headers)?;
        let proxy = self.settings.proxy_for(&target).map_err(|e| e.to_string())?;
        let tls = match (target.secure, &self.tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(Arc::clone(tls)),
            (true, None) => return Err("wss:// needs a TLS configuration".into()),
        };
        let config = self.settings.ws_config();
        Ok(Box::pin(async move {
            let tcp = match proxy {
                Some(proxy) => tunnelled(&proxy, &target.host, target.port).await?,
                None => Socket::tcp(&target.host, target.port).await?,
            };
            let stream = Socket::secure(tcp, &target.host, tls).await?;
            tokio_tungstenite::client_async_with_config(target.request, stream, Some(config))
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
                    out: self.settings.write_queue(),
                    dirty: false,
                });
                self.feed(Event::Opened { socket });
            }
            Err(e) => self.feed(tether_host::connect_failed(socket, &e)),
        }
    }

    fn on_message(&mut self, socket: SocketId, msg: Option<Result<Message, tungstenite::Error>>) {
        self.stats.messages_in += u64::from(matches!(msg, Some(Ok(_))));
        let event = match msg {
            Some(Ok(message)) => match tether_host::inbound(socket, message) {
                Some(event) => event,
                None => return,
            },
            Some(Err(e)) => {
                self.socket = None;
                tether_host::closed_by(socket, &e)
            }
            None => {
                self.socket = None;
                tether_host::stream_ended(socket)
            }
        };
        if matches!(event, Event::Closed { .. }) {
            if let Some(mut live) = self.socket.take() {
                // tungstenite queued the answer to the peer's close frame:
                // put it on the wire, so the peer sees its own code echoed.
                live.dirty = true;
                self.linger(live);
            }
        }
        self.feed(event);
    }

    fn dispatch(&mut self, event: M::Event) {
        if let Some(note) = M::notification(&event) {
            tether_host::log_step(&"", note);
            if let Notification::StatusChanged { to, .. } = note {
                self.handoff.set_status(*to);
            }
            if !self.first_told {
                if let Some(outcome) = tether_host::first_connect(note) {
                    self.first_told = true;
                    self.handoff.set_first(outcome);
                }
            }
        }
        self.router.route(event);
    }
}

/// The driver task's future ([`Driver::run`]).
pub(crate) struct Running<M: Machine, R: Router<M>> {
    driver: Box<Driver<M, R>>,
    /// The first attempt was asked for.
    started: bool,
    /// The machine is closed; the lingering sockets are being waited for.
    finishing: bool,
    /// Subscribers and the hand-off have been ended.
    ended: bool,
}

impl<M: Machine, R: Router<M>> Drop for Running<M, R> {
    /// A task dropped before it finished (its runtime shut down) still ends
    /// its subscribers and its hand-off, so a handle used from another runtime
    /// or thread gets `Shutdown` instead of waiting for a driver that is gone.
    fn drop(&mut self) {
        if !self.ended {
            self.driver.router.closed();
            self.driver.handoff.end();
        }
    }
}

impl<M, R> Future for Running<M, R>
where
    M: Machine + Send + 'static,
    R: Router<M>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Unpin: the driver is behind a box.
        let this = self.get_mut();
        let driver = &mut *this.driver;
        if !this.started {
            this.started = true;
            // Connect is refused only by a closed machine, which a new one is not.
            driver.feed(Event::Connect);
        }
        loop {
            if this.finishing {
                std::task::ready!(driver.poll_finish(cx));
                this.ended = true;
                return Poll::Ready(());
            }
            if driver.machine.status() == Status::Closed {
                this.finishing = true;
                continue;
            }
            // One unit of tokio's task budget per turn. `select!` gave way when
            // the budget was spent; without this a handle on another worker
            // that keeps queueing commands would keep this loop turning while
            // the socket (which does obey the budget) never flushes, until the
            // write queue overflows into a spurious 1006. Undone if the turn
            // finds nothing.
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            let deadline = driver.machine.next_deadline().map(|(at, _)| at);
            // Trust the clock, not the sleep: a deadline already due is handled now.
            if deadline.is_some_and(|at| at <= Instant::now()) {
                coop.made_progress();
                driver.feed(Event::Tick);
                continue;
            }
            driver.arm(deadline);
            let turn = std::task::ready!(driver.poll_turn(cx));
            coop.made_progress();
            driver.on_turn(turn);
        }
    }
}

/// The sources the driver waits on: commands, the socket, the connect, the timer.
const SOURCES: u8 = 4;

/// What one turn of the driver found.
// Lives on the stack for one turn only; boxing the new socket would cost an
// allocation per connect for nothing.
#[allow(clippy::large_enum_variant)]
enum Turn {
    /// Handles queued commands, or the last one went.
    Work,
    /// The open socket read something or failed to write.
    Socket(SocketId, SocketIo),
    /// The connect finished.
    Connected(SocketId, Result<Ws, tungstenite::Error>),
    /// The deadline came.
    Timer,
}

/// A TCP connection to `proxy`, tunnelled by CONNECT to `host:port` (S8);
/// TLS and the upgrade then run through it as over a direct connection.
async fn tunnelled(proxy: &ProxyUrl, host: &str, port: u16) -> Result<TcpStream, tungstenite::Error> {
    debug!(target: "tether", %proxy, host, port, "connecting through proxy");
    let tcp = Socket::tcp(proxy.host(), proxy.port()).await?;
    let mut tunnel = Tunnel::new(proxy, host, port);
    // tether-host's one exchange, over tokio's non-blocking socket calls.
    while let Some(wants) = tunnel.drive(&mut TryIo(&tcp))? {
        match wants {
            Wants::Write => tcp.writable().await?,
            Wants::Read => tcp.readable().await?,
        }
    }
    Ok(tcp)
}

/// std's `Read`/`Write` over a tokio socket's `try_` calls: `WouldBlock` when
/// the socket is not ready, as with any non-blocking socket.
struct TryIo<'a>(&'a TcpStream);

impl std::io::Read for TryIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl std::io::Write for TryIo<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Flushes what is queued and polls for the next message; ready with a
/// message or a write failure. What is not yet written stays queued.
fn poll_socket(
    socket: &mut Option<Live>,
    stats: &mut IoStats,
    cx: &mut Context<'_>,
) -> Poll<(SocketId, SocketIo)> {
    let Some(live) = socket else {
        // A socket appears only through this task's own turns.
        return Poll::Pending;
    };
    if live.dirty {
        match poll_flush(live, cx) {
            Poll::Ready(Ok(())) => {
                live.dirty = false;
                stats.flushes += 1;
            }
            Poll::Ready(Err(e)) => return Poll::Ready((live.id, SocketIo::WriteFailed(e))),
            // Backpressure holds the writes only; reads go on.
            Poll::Pending => {}
        }
    }
    Pin::new(&mut live.ws)
        .poll_next(cx)
        .map(|msg| (live.id, SocketIo::Read(msg)))
}

/// Hands every queued frame to the socket and flushes; ready when all is on the
/// wire.
fn poll_flush(live: &mut Live, cx: &mut Context<'_>) -> Poll<Result<(), tungstenite::Error>> {
    while !live.out.is_empty() {
        std::task::ready!(Pin::new(&mut live.ws).poll_ready(cx))?;
        if let Some(message) = live.out.pop() {
            Pin::new(&mut live.ws).start_send(message)?;
        }
    }
    Pin::new(&mut live.ws).poll_flush(cx)
}

/// Writes everything queued on a socket being closed, then reads until the
/// peer's close frame (or the end of the stream) arrives.
async fn close_handshake(live: &mut Live) {
    if std::future::poll_fn(|cx| poll_flush(live, cx)).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = futures_util::StreamExt::next(&mut live.ws).await {
        if matches!(message, Message::Close(_)) {
            // tungstenite answered or completed the handshake; flush that.
            let _ = std::future::poll_fn(|cx| Pin::new(&mut live.ws).poll_flush(cx)).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::FutureExt;
    use tether_host::{Broadcast, Transport};
    use tether_proto::lifecycle::{Config, Handshake, HelloError, Lifecycle, PreOpen};

    /// The bare protocol of the crate docs: the open socket is the handshake.
    struct Bare;

    impl Handshake for Bare {
        type Message = String;
        type DecodeError = std::convert::Infallible;
        fn hello(&mut self, _: u64, _: u64) -> Result<Option<String>, HelloError> {
            Ok(None)
        }
        fn decode(&mut self, text: String) -> Result<String, Self::DecodeError> {
            Ok(text)
        }
        fn classify(&mut self, _: &String) -> PreOpen {
            PreOpen::Other
        }
    }

    type M = Lifecycle<Bare>;
    type R = Broadcast<<M as Machine>::Event>;

    /// A command that queues another like it, `left` more times: a handle that
    /// never stops sending, as one on another worker thread can.
    fn again(handoff: &Hand, turns: &Arc<AtomicUsize>, left: usize) -> Cmd<M, R> {
        let (handoff, turns) = (Arc::clone(handoff), Arc::clone(turns));
        Cmd::Call(Box::new(move |_, _, _| {
            turns.fetch_add(1, Ordering::Relaxed);
            if left > 0 {
                let next = again(&handoff, &turns, left - 1);
                // The queue has room: the one before was just taken.
                assert!(handoff.send(next).now_or_never().is_some());
            }
        }))
    }

    type Events = Arc<tether_host::Fanout<<M as Machine>::Event>>;
    type Hand = Arc<Handoff<Cmd<M, R>>>;

    /// A driver of the bare protocol for `url`, not yet running, with its
    /// hand-off and event fanout; made inside a runtime (its timer needs one).
    fn driver(url: &str) -> (Box<Driver<M, R>>, Hand, Events) {
        let machine =
            Lifecycle::new(Config::new(url), Bare, 1, Instant::now()).unwrap_or_else(|e| panic!("{e}"));
        let (router, events) = Broadcast::with_fanout(4);
        let handoff = Arc::new(Handoff::new(4, machine.status()));
        let driver = Box::new(Driver::new(Parts {
            machine,
            router,
            handoff: Arc::clone(&handoff),
            tls: None,
            settings: Transport::default().attempt_settings(),
        }));
        (driver, handoff, events)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_poll_of_the_driver_spends_at_most_the_task_budget() {
        // proves X1: the tokio host, like mio's reactor, lets its socket (and
        // the runtime's other tasks) run while commands keep coming
        let (driver, handoff, _events) = driver("ws://127.0.0.1:9/ws");
        let turns = Arc::new(AtomicUsize::new(0));
        let endless = again(&handoff, &turns, 10_000);
        handoff.send(endless).await.unwrap_or_else(|e| panic!("{e}"));
        let mut running = driver.run();
        std::future::poll_fn(|cx| {
            // Gives way and asks to be polled again, as select! did.
            assert!(Pin::new(&mut running).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let one_poll = turns.load(Ordering::Relaxed);
        // tokio's budget is 128 units per poll of a task.
        assert!(
            (1..=128).contains(&one_poll),
            "{one_poll} commands run in one poll"
        );
    }

    #[test]
    fn a_driver_dropped_with_its_runtime_ends_its_handles() {
        // proves X3: a runtime shut down under a connection leaves its
        // handles answered (refused), not waiting forever
        // A peer that accepts the TCP connection and never answers the upgrade:
        // the first connect's outcome stays unknown while the driver lives.
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let url = format!("ws://{}/ws", peer.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let first = runtime();
        let (handoff, events) = first.block_on(async {
            let (driver, handoff, events) = driver(&url);
            tokio::spawn(driver.run());
            tokio::task::yield_now().await;
            (handoff, events)
        });
        drop(first);
        runtime().block_on(async {
            let mut sub = events.subscribe();
            // A guard against a hang, not a timing: the answer is immediate.
            let within = std::time::Duration::from_secs(30);
            let first = tokio::time::timeout(within, handoff.first_outcome()).await;
            assert!(
                matches!(first, Ok(Err(tether_host::ConnectError::Shutdown))),
                "{first:?}"
            );
            let turns = Arc::new(AtomicUsize::new(0));
            assert!(
                handoff.send(again(&handoff, &turns, 0)).await.is_err(),
                "refused, not queued"
            );
            // The first attempt's events come first (kept for the first
            // subscriber), then the end.
            let end = tokio::time::timeout(within, async { while sub.recv().await.is_some() {} }).await;
            assert!(end.is_ok(), "the event stream ends");
        });
    }
}
