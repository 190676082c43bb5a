//! The event loop: one mio `Poll` drives any number of connections in one
//! thread (X6), each its own pure machine, of any protocol: mesh sessions
//! beside hosted sessions beside a protocol of your own.
//!
//! A turn sleeps until a socket is ready, a handle or the resolver wakes it, or
//! the earliest deadline comes (a `BTreeSet` of `(deadline, slot)`, so finding
//! it is O(log n) whatever the number of connections); then it drives the ready
//! sockets, runs queued commands, feeds `Tick` to every machine whose deadline
//! passed, and hands each connection's writes of the turn to its socket in one
//! batch. Every input is followed by the drain rule.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use tether_host::{Router, TlsError, TlsOptions, Transport};
use tether_proto::lifecycle::{Event, Status};
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{
    Command, OpId, OpResult, Outgoing, Request, Session, SessionEvent, SessionStats,
};
use tether_proto::{Machine, Now};

use crate::config::ConnConfig;
use crate::conn::{Conn, Ctx, Driven};
use crate::dns::Resolver;
use crate::error::{AddError, HandleError, ReactorError};
use tether_host::IoStats;

/// What runs when a send or request resolves, on the reactor thread.
type Callback = Box<dyn FnOnce(OpResult) + Send>;

/// The events of the mesh connections added with [`Reactor::add`], shared with
/// their routers.
type MeshEvents = Arc<Mutex<VecDeque<(ConnId, SessionEvent)>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The router of a mesh connection added with [`Reactor::add`]: results to
/// their callbacks when one was given, everything else to the reactor's queue.
pub(crate) struct MeshQueue {
    conn: ConnId,
    events: MeshEvents,
    /// Keyed by ids this process issues; nothing a peer chooses, so a
    /// fixed-seed hash is safe, and faster than SipHash on every call.
    callbacks: HashMap<OpId, Callback, foldhash::fast::FixedState>,
}

impl Router<Session> for MeshQueue {
    fn route(&mut self, event: SessionEvent) {
        if let SessionEvent::Resolved { id, result } = event {
            match self.callbacks.remove(&id) {
                Some(done) => done(result),
                None => lock(&self.events).push_back((self.conn, SessionEvent::Resolved { id, result })),
            }
            return;
        }
        lock(&self.events).push_back((self.conn, event));
    }

    fn closed(&mut self) {
        // Close resolved every operation; this only drops what could be left.
        self.callbacks.clear();
    }
}

/// Commands queued by handles before they block their caller.
pub const DEFAULT_HANDLE_CAPACITY: usize = 1024;
/// Readiness events taken from the OS per turn.
pub const DEFAULT_EVENTS_PER_TURN: usize = 1024;

const WAKER: Token = Token(usize::MAX);
/// Handle commands run per turn, so a flood of them cannot starve the sockets.
const COMMANDS_PER_TURN: usize = 1024;

/// Names one connection of one reactor; never reused for another connection,
/// and never equal to an id of another reactor of the process, so two clients'
/// ids print differently and an id handed to the wrong reactor is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    reactor: u32,
    index: u32,
    generation: u32,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}.c{}.{}", self.reactor, self.index, self.generation)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({self})")
    }
}

/// A command a handle runs on the reactor thread.
type Cmd = Box<dyn FnOnce(&mut Reactor) + Send>;

/// Sizes of a reactor's queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReactorOptions {
    /// Commands queued by [`ReactorHandle`]s before `execute` blocks.
    pub handle_capacity: usize,
    /// Readiness events taken from the OS per turn (more wait for the next turn).
    pub events_per_turn: usize,
}

impl Default for ReactorOptions {
    fn default() -> Self {
        ReactorOptions {
            handle_capacity: DEFAULT_HANDLE_CAPACITY,
            events_per_turn: DEFAULT_EVENTS_PER_TURN,
        }
    }
}

struct Slot {
    generation: u32,
    conn: Option<Box<dyn Driven>>,
}

/// One thread's event loop over many connections (X6), each its own session.
///
/// A turn sleeps until a socket is ready, a handle or the resolver wakes it, or
/// the earliest session deadline comes; then it drives the ready sockets, runs
/// queued commands and ticks every session whose deadline passed.
///
/// Feed it with [`add`](Self::add), [`send`](Self::send) and friends, turn it
/// with [`run_once`](Self::run_once), and take what happened with
/// [`poll_event`](Self::poll_event) after every turn: the queue of events is
/// not capped, because dropping one would break exactly-once resolution (X3).
/// Other threads reach it through a [`ReactorHandle`]. Dropping the reactor
/// drops every socket without a close frame; [`close_all`](Self::close_all) first.
pub struct Reactor {
    /// This reactor's number in the process (tether_host::next_serial).
    number: u32,
    poll: Poll,
    ready: Events,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    timers: BTreeSet<(Instant, u32)>,
    events: MeshEvents,
    dns: Resolver,
    waker: Arc<Waker>,
    cmd_tx: SyncSender<Cmd>,
    cmd_rx: Receiver<Cmd>,
    /// Connections to drive next turn without waiting for readiness.
    again: Vec<u32>,
    /// Connections that wrote this turn: flushed once, at the end of it.
    unflushed: Vec<u32>,
    /// The other halves of `again` and `unflushed`: each list is swapped with
    /// its spare while it is worked through, so neither gives its capacity
    /// back and a steady-state turn allocates nothing.
    again_spare: Vec<u32>,
    unflushed_spare: Vec<u32>,
    scratch: Vec<u32>,
    more_commands: bool,
    tls_configs: Vec<(TlsOptions, Arc<rustls::ClientConfig>)>,
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("number", &self.number)
            .field("connections", &self.live)
            .field("events", &lock(&self.events).len())
            .finish_non_exhaustive()
    }
}

impl Reactor {
    /// A reactor with the default queue sizes.
    pub fn new() -> io::Result<Reactor> {
        Reactor::with_options(ReactorOptions::default())
    }

    /// A reactor with these queue sizes.
    pub fn with_options(options: ReactorOptions) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (cmd_tx, cmd_rx) = mpsc::sync_channel(options.handle_capacity.max(1));
        Ok(Reactor {
            number: u32::try_from(tether_host::next_serial()).unwrap_or(u32::MAX),
            ready: Events::with_capacity(options.events_per_turn.max(1)),
            poll,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: BTreeSet::new(),
            events: MeshEvents::default(),
            dns: Resolver::new(Arc::clone(&waker)),
            waker,
            cmd_tx,
            cmd_rx,
            again: Vec::new(),
            unflushed: Vec::new(),
            again_spare: Vec::new(),
            unflushed_spare: Vec::new(),
            scratch: Vec::new(),
            more_commands: false,
            tls_configs: Vec::new(),
        })
    }

    /// A handle for other threads; clone it freely.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle {
            tx: self.cmd_tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Adds a mesh connection and starts connecting it at once; its events
    /// come out of [`poll_event`](Self::poll_event).
    pub fn add(&mut self, config: ConnConfig) -> Result<ConnId, AddError> {
        let session = config.session(Instant::now())?;
        let (index, id) = self.free_slot();
        let router = MeshQueue {
            conn: id,
            events: Arc::clone(&self.events),
            callbacks: HashMap::default(),
        };
        self.install(index, id, session, router, config.url(), &config.transport)
    }

    /// Adds a connection of any protocol — a bare `Lifecycle` with a
    /// `Handshake` of your own, a hosted session, a session layer of your own —
    /// and starts connecting it at once; `router` takes its events on this
    /// thread as they come (X14). `url` decides whether TLS is set up.
    pub fn add_machine<M, R>(
        &mut self,
        machine: M,
        router: R,
        url: &str,
        transport: &Transport,
    ) -> Result<ConnId, AddError>
    where
        M: Machine + Send + 'static,
        R: Router<M>,
    {
        let (index, id) = self.free_slot();
        self.install(index, id, machine, router, url, transport)
    }

    fn free_slot(&mut self) -> (u32, ConnId) {
        let index = match self.free.last() {
            Some(&index) => index,
            None => {
                // Slot numbers are tokens; u32 is far beyond any fd limit.
                let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                self.free.push(index);
                index
            }
        };
        let generation = self.slots[index as usize].generation;
        let reactor = self.number;
        (
            index,
            ConnId {
                reactor,
                index,
                generation,
            },
        )
    }

    fn install<M, R>(
        &mut self,
        index: u32,
        id: ConnId,
        machine: M,
        router: R,
        url: &str,
        transport: &Transport,
    ) -> Result<ConnId, AddError>
    where
        M: Machine + Send + 'static,
        R: Router<M>,
    {
        let tls = if tether_host::is_secure(url) {
            Some(self.tls_config(&transport.tls)?)
        } else {
            None
        };
        // The slot stays free until now, so a refusal above leaves nothing behind.
        self.free.retain(|&i| i != index);
        self.slots[index as usize].conn = Some(Box::new(Conn::new(id, machine, router, tls, transport)));
        self.live += 1;
        self.with_conn(index, |conn, ctx| {
            // Refused only by a closed machine, which a new one is not.
            let _ = conn.control(ctx, Event::Connect);
        });
        Ok(id)
    }

    /// Closes a connection for good (its close frame goes out when the socket
    /// takes it) and forgets it; its last events stay in the queue. False when
    /// there was no such connection.
    pub fn remove(&mut self, id: ConnId) -> bool {
        let Ok(index) = self.index_of(id) else {
            return false;
        };
        self.with_conn(index, |conn, ctx| {
            let _ = conn.control(ctx, Event::Close);
            conn.flush_now(ctx);
            conn.shut(ctx);
        });
        let slot = &mut self.slots[index as usize];
        if let Some(at) = slot.conn.take().and_then(|mut conn| *conn.filed()) {
            self.timers.remove(&(at, index));
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.unflushed.retain(|&i| i != index);
        self.live -= 1;
        true
    }

    /// Closes every connection for good; they stay until removed.
    pub fn close_all(&mut self) {
        for index in 0..self.slots.len() {
            if let Ok(index) = u32::try_from(index) {
                self.with_conn(index, |conn, ctx| {
                    let _ = conn.control(ctx, Event::Close);
                });
            }
        }
    }

    /// Sends a message; its result comes out as [`SessionEvent::Resolved`] (X3).
    pub fn send(&mut self, id: ConnId, outgoing: Outgoing) -> Result<OpId, ReactorError> {
        self.send_inner(id, outgoing, None)
    }

    /// Sends a message; `done` runs on the reactor thread with its result, in place
    /// of a `Resolved` event, if the send was accepted.
    pub fn send_with(
        &mut self,
        id: ConnId,
        outgoing: Outgoing,
        done: impl FnOnce(OpResult) + Send + 'static,
    ) -> Result<OpId, ReactorError> {
        self.send_inner(id, outgoing, Some(Box::new(done)))
    }

    fn send_inner(
        &mut self,
        id: ConnId,
        outgoing: Outgoing,
        done: Option<Callback>,
    ) -> Result<OpId, ReactorError> {
        self.start_op(id, done, |s, now| {
            s.send(now, outgoing)
                .map_err(|e| ReactorError::Refused(Box::new(e)))
        })
    }

    /// Starts an operation on connection `id`'s mesh session and files `done`
    /// for its result before the drain that might already resolve it.
    fn start_op(
        &mut self,
        id: ConnId,
        done: Option<Callback>,
        start: impl FnOnce(&mut Session, Now) -> Result<OpId, ReactorError>,
    ) -> Result<OpId, ReactorError> {
        self.call(id, |s: &mut Session, q: &mut MeshQueue, now| {
            let op = start(s, now)?;
            if let Some(done) = done {
                q.callbacks.insert(op, done);
            }
            Ok(op)
        })?
    }

    /// Sends a request; its reply comes out as [`SessionEvent::Resolved`] (B8).
    pub fn request(&mut self, id: ConnId, request: Request) -> Result<OpId, ReactorError> {
        self.request_inner(id, request, None)
    }

    /// Sends a request; `done` runs on the reactor thread with its result, in
    /// place of a `Resolved` event, if the request was accepted.
    pub fn request_with(
        &mut self,
        id: ConnId,
        request: Request,
        done: impl FnOnce(OpResult) + Send + 'static,
    ) -> Result<OpId, ReactorError> {
        self.request_inner(id, request, Some(Box::new(done)))
    }

    fn request_inner(
        &mut self,
        id: ConnId,
        request: Request,
        done: Option<Callback>,
    ) -> Result<OpId, ReactorError> {
        self.start_op(id, done, |s, now| Ok(s.request(now, request)?))
    }

    /// Sends a fire-and-forget command; refused unless open (B9).
    pub fn command(&mut self, id: ConnId, command: Command) -> Result<(), ReactorError> {
        Ok(self.call(id, |s: &mut Session, _: &mut MeshQueue, now| {
            s.command(now, command)
        })??)
    }

    /// Runs `f` on connection `id`'s machine and router, then drains the
    /// machine: the one call path of every protocol. Refused when there is no
    /// such connection or it runs another protocol than `M` with router `R`.
    pub fn call<M, R, T>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut M, &mut R, Now) -> T,
    ) -> Result<T, ReactorError>
    where
        M: Machine + Send + 'static,
        R: Router<M>,
    {
        let index = self.index_of(id)?;
        self.with_conn(index, |conn, ctx| {
            let conn = conn.as_any_mut().downcast_mut::<Conn<M, R>>()?;
            Some(conn.call(ctx, f))
        })
        .flatten()
        .ok_or(ReactorError::OtherProtocol(id))
    }

    /// Connection `id`'s machine, read-only, if it is an `M` routed by `R`.
    pub fn machine<M, R>(&self, id: ConnId) -> Option<&M>
    where
        M: Machine + Send + 'static,
        R: Router<M>,
    {
        let conn = self.conn(id)?.as_any().downcast_ref::<Conn<M, R>>()?;
        Some(conn.machine())
    }

    /// Feeds a lifecycle input: meant for `Close`, `Reconnect`, `RetryNow` and
    /// `Connect`; socket events are the reactor's own and a forged one about a
    /// socket the session does not know is ignored by it.
    pub fn control(&mut self, id: ConnId, event: Event) -> Result<(), ReactorError> {
        let index = self.index_of(id)?;
        Ok(self
            .with_conn(index, |conn, ctx| conn.control(ctx, event))
            .ok_or(ReactorError::UnknownConnection(id))??)
    }

    /// The connection's status; `None` for an unknown connection.
    pub fn status(&self, id: ConnId) -> Option<Status> {
        self.conn(id).map(|c| c.status())
    }

    /// The mesh session's metrics snapshot (X12).
    pub fn stats(&self, id: ConnId) -> Option<SessionStats> {
        self.session(id).map(|s| s.stats(Instant::now()))
    }

    /// The connection's socket counters.
    pub fn io_stats(&self, id: ConnId) -> Option<IoStats> {
        self.conn(id).map(|c| c.io_stats())
    }

    /// The mesh session of a connection added with [`add`](Self::add),
    /// read-only: every input goes through the reactor.
    pub fn session(&self, id: ConnId) -> Option<&Session> {
        self.machine::<Session, MeshQueue>(id)
    }

    /// Takes the pushes buffered in the mesh session's history (B7).
    pub fn drain_history(&mut self, id: ConnId) -> Option<Vec<Arc<Push>>> {
        self.call(id, |s: &mut Session, _: &mut MeshQueue, _| s.drain_history())
            .ok()
    }

    /// The connections, in slot order.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.is_some())
            .filter_map(|(i, s)| {
                Some(ConnId {
                    reactor: self.number,
                    index: u32::try_from(i).ok()?,
                    generation: s.generation,
                })
            })
    }

    /// True while a connection's last socket waits for the peer's answer to
    /// our close frame.
    pub fn lingering(&self, id: ConnId) -> bool {
        self.conn(id).is_some_and(|c| c.lingering())
    }

    /// How many connections there are.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True without connections.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The earliest deadline of all sessions: when the next turn wakes at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// The next event of any mesh connection added with [`add`](Self::add),
    /// oldest first.
    pub fn poll_event(&mut self) -> Option<(ConnId, SessionEvent)> {
        lock(&self.events).pop_front()
    }

    /// Every queued mesh event, oldest first.
    pub fn drain_events(&mut self) -> std::collections::vec_deque::IntoIter<(ConnId, SessionEvent)> {
        std::mem::take(&mut *lock(&self.events)).into_iter()
    }

    /// One turn: waits for readiness, a wake-up or the earliest deadline (at most
    /// `timeout`), then handles all of them. Sub-millisecond waits round up, so a
    /// turn never wakes before the deadline it waited for.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // What was written since the last turn (calls made between turns) goes
        // out before the wait.
        self.flush_all();
        let wait = if !self.again.is_empty() || self.more_commands {
            Some(Duration::ZERO)
        } else {
            let until = self
                .next_deadline()
                .map(|at| ceil_ms(at.saturating_duration_since(Instant::now())));
            match (timeout, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        if let Err(e) = self.poll.poll(&mut self.ready, wait) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let mut leftovers = std::mem::take(&mut self.again_spare);
        std::mem::swap(&mut leftovers, &mut self.again);
        let mut woke = self.more_commands;
        self.scratch.clear();
        for event in self.ready.iter() {
            if event.token() == WAKER {
                woke = true;
            } else if let Ok(index) = u32::try_from(event.token().0) {
                self.scratch.push(index);
            }
        }
        let ready = std::mem::take(&mut self.scratch);
        for &index in ready.iter().chain(&leftovers) {
            self.drive(index);
        }
        self.scratch = ready;
        leftovers.clear();
        self.again_spare = leftovers;
        if woke {
            self.on_wake();
        }
        self.fire_timers();
        self.flush_all();
        Ok(())
    }

    /// Hands each connection's writes of the turn to its socket: one batch,
    /// one write per connection per turn.
    fn flush_all(&mut self) {
        while !self.unflushed.is_empty() {
            let mut listed = std::mem::take(&mut self.unflushed_spare);
            std::mem::swap(&mut listed, &mut self.unflushed);
            for &index in &listed {
                self.with_conn(index, |conn, ctx| conn.flush_now(ctx));
            }
            listed.clear();
            self.unflushed_spare = listed;
        }
    }

    /// Runs turns until `done` (asked before every turn, with the reactor at hand
    /// to take events) says so, or `timeout` passes; true when `done` said so.
    pub fn run_until(
        &mut self,
        timeout: Option<Duration>,
        mut done: impl FnMut(&mut Reactor) -> bool,
    ) -> io::Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if done(self) {
                return Ok(true);
            }
            let left = match deadline {
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(false),
                },
                None => None,
            };
            self.run_once(left)?;
        }
    }

    fn drive(&mut self, index: u32) {
        if self.with_conn(index, |conn, ctx| conn.ready(ctx)) == Some(true) {
            self.again.push(index);
        }
    }

    fn on_wake(&mut self) {
        let finished: Vec<_> = self.dns.finished().collect();
        for done in finished {
            let Ok(index) = self.index_of(done.conn) else {
                continue;
            };
            let more = self.with_conn(index, |conn, ctx| conn.resolved(ctx, done.socket, done.result));
            if more == Some(true) {
                self.again.push(index);
            }
        }
        self.more_commands = false;
        for _ in 0..COMMANDS_PER_TURN {
            match self.cmd_rx.try_recv() {
                Ok(cmd) => cmd(self),
                Err(_) => return,
            }
        }
        self.more_commands = true;
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        self.scratch.clear();
        self.scratch.extend(
            self.timers
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|&(_, index)| index),
        );
        let due = std::mem::take(&mut self.scratch);
        for &index in &due {
            self.with_conn(index, |conn, ctx| conn.tick(ctx));
        }
        self.scratch = due;
    }

    fn index_of(&self, id: ConnId) -> Result<u32, ReactorError> {
        match self.slots.get(id.index as usize) {
            Some(slot)
                if id.reactor == self.number && slot.generation == id.generation && slot.conn.is_some() =>
            {
                Ok(id.index)
            }
            _ => Err(ReactorError::UnknownConnection(id)),
        }
    }

    fn conn(&self, id: ConnId) -> Option<&dyn Driven> {
        let index = self.index_of(id).ok()?;
        self.slots.get(index as usize)?.conn.as_deref()
    }

    /// Runs `f` on a connection, then refiles its deadline and lists it for
    /// the end-of-turn flush if it wrote.
    fn with_conn<T>(&mut self, index: u32, f: impl FnOnce(&mut dyn Driven, &mut Ctx<'_>) -> T) -> Option<T> {
        let conn = self.slots.get_mut(index as usize)?.conn.as_deref_mut()?;
        let mut ctx = Ctx {
            registry: self.poll.registry(),
            token: Token(index as usize),
            dns: &mut self.dns,
        };
        let result = f(conn, &mut ctx);
        let due = conn.deadline();
        let filed = conn.filed();
        if due != *filed {
            if let Some(old) = *filed {
                self.timers.remove(&(old, index));
            }
            if let Some(at) = due {
                self.timers.insert((at, index));
            }
            *filed = due;
        }
        if conn.take_recheck() {
            self.again.push(index);
        }
        if conn.take_dirty() {
            self.unflushed.push(index);
        }
        Some(result)
    }

    fn tls_config(&mut self, options: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        if let Some((_, config)) = self.tls_configs.iter().find(|(o, _)| o == options) {
            return Ok(Arc::clone(config));
        }
        let config = options.client_config()?;
        self.tls_configs.push((options.clone(), Arc::clone(&config)));
        Ok(config)
    }
}

/// Rounds up to whole milliseconds: waking a hair early would only find the
/// deadline not yet due and spin.
fn ceil_ms(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Reaches a [`Reactor`] from other threads: commands queue in a bounded channel
/// and wake the reactor, which runs them on its own thread in order.
///
/// Calls block while the channel is full, so never call them from the reactor
/// thread itself (from a `send_with` callback, say).
#[derive(Clone)]
pub struct ReactorHandle {
    tx: SyncSender<Cmd>,
    waker: Arc<Waker>,
}

impl fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorHandle").finish_non_exhaustive()
    }
}

impl ReactorHandle {
    /// Runs `f` on the reactor thread during its next turn.
    pub fn execute(&self, f: impl FnOnce(&mut Reactor) + Send + 'static) -> Result<(), HandleError> {
        self.tx.send(Box::new(f)).map_err(|_| HandleError::Gone)?;
        self.waker.wake().map_err(HandleError::Wake)
    }

    /// Adds a connection; `done` learns its id or why it was refused.
    pub fn add(
        &self,
        config: ConnConfig,
        done: impl FnOnce(Result<ConnId, AddError>) + Send + 'static,
    ) -> Result<(), HandleError> {
        self.execute(move |r| done(r.add(config)))
    }

    /// Closes and forgets a connection.
    pub fn remove(&self, id: ConnId) -> Result<(), HandleError> {
        self.execute(move |r| {
            r.remove(id);
        })
    }

    /// Sends a message; `done` runs on the reactor thread, once, with the refusal
    /// or the result.
    pub fn send(
        &self,
        id: ConnId,
        outgoing: Outgoing,
        done: impl FnOnce(Result<OpResult, ReactorError>) + Send + 'static,
    ) -> Result<(), HandleError> {
        self.execute(move |r| {
            let (now, later) = once(done);
            if let Err(e) = r.send_with(id, outgoing, move |res| later(Ok(res))) {
                now(Err(e));
            }
        })
    }

    /// Sends a request; `done` runs on the reactor thread, once, with the refusal
    /// or the result.
    pub fn request(
        &self,
        id: ConnId,
        request: Request,
        done: impl FnOnce(Result<OpResult, ReactorError>) + Send + 'static,
    ) -> Result<(), HandleError> {
        self.execute(move |r| {
            let (now, later) = once(done);
            if let Err(e) = r.request_with(id, request, move |res| later(Ok(res))) {
                now(Err(e));
            }
        })
    }

    /// Sends a fire-and-forget command; a refusal is logged and otherwise lost.
    pub fn command(&self, id: ConnId, command: Command) -> Result<(), HandleError> {
        self.execute(move |r| {
            if let Err(e) = r.command(id, command) {
                tracing::debug!(target: "tether", conn = %id, error = %e, "command refused");
            }
        })
    }

    /// Feeds a lifecycle input (`Close`, `Reconnect`, `RetryNow`, `Connect`).
    pub fn control(&self, id: ConnId, event: Event) -> Result<(), HandleError> {
        self.execute(move |r| {
            let _ = r.control(id, event);
        })
    }
}

/// Two callers of one `FnOnce`, of which only the first call runs it: the
/// refusal path and the resolution path of a handle's send.
fn once<T: 'static>(
    f: impl FnOnce(T) + Send + 'static,
) -> (impl FnOnce(T) + Send + 'static, impl FnOnce(T) + Send + 'static) {
    let slot = Arc::new(Mutex::new(Some(f)));
    let other = Arc::clone(&slot);
    let take = |slot: &Mutex<Option<_>>| slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    let a = move |v| {
        if let Some(f) = take(&slot) {
            f(v)
        }
    };
    let b = move |v| {
        if let Some(f) = take(&other) {
            f(v)
        }
    };
    (a, b)
}

// The blocking client moves its reactor onto its own thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Reactor>();
    send::<ReactorHandle>();
};
