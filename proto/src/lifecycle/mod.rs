//! The generic connection lifecycle: connect → hello → ack deadline → open →
//! watchdog → close policy → backoff → reconnect (`seeds/ws-lifecycle.ts`,
//! `seeds/sessions-websocket.ts`), with no sockets and no timers.
//!
//! Feed it with [`Lifecycle::handle`]; drain [`Lifecycle::poll_action`] until it
//! returns `None` after every call; sleep until [`Lifecycle::next_deadline`], then
//! feed [`Event::Tick`]. Everything that decides — which close is permanent, how
//! long to wait, when a silent socket is dead — happens inside `handle`, never
//! while polling.
//!
//! The [`Handshake`] is the only protocol knowledge: it builds each attempt's
//! headers and hello and decodes and classifies frames. Everything else here is
//! the same for every broker.

mod action;
mod config;
pub mod contract;
mod event;
mod failure;
mod handshake;
mod stats;
mod timer;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use action::{Action, DropReason, Io, Notification, Status};
pub(crate) use config::check_bound;
pub use config::{
    Config, ConfigError, FirstConnect, DEFAULT_FORCE_RECONNECT_DELAY, DEFAULT_HELLO_ACK_TIMEOUT,
    DEFAULT_MAX_RETRY_AFTER, DEFAULT_OPEN_TIMEOUT, DEFAULT_PING_INTERVAL, DEFAULT_PROBE_TIMEOUT,
    DEFAULT_STABILITY_WINDOW, DEFAULT_STALE_AFTER, DEFAULT_SUSPEND_GAP,
};
pub use contract::{ContractCheck, ContractViolation};
pub use event::{Event, Frame, SocketId};
pub use failure::{ConnectFailureKind, Failure, FailureClass, PeerClose, Rejection, StopReason};
pub use handshake::{Handshake, HelloError, PreOpen};
pub use stats::Stats;
use stats::Tally;
pub use timer::Timer;

use crate::policy::{LimitDelay, Verdict};
use crate::rng::Rng;
use crate::time::{deadline_after, Now};
use timer::TimerTable;

/// The action type of a lifecycle driven by handshake `H`.
pub type LifecycleAction<H> = Action<<H as Handshake>::Message, <H as Handshake>::DecodeError>;

/// Caller misuse: the input was refused and nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The lifecycle is closed for good; create a new one to connect again.
    #[error("the connection is closed for good")]
    Closed,
}

/// A frame refused because the connection is not open (L10); the frame is
/// handed back so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot send while the connection is {}", status.name())]
pub struct NotOpen {
    /// The status at the time of the call.
    pub status: Status,
    /// The refused frame.
    pub text: String,
}

/// How the machine leaves the current socket when an attempt ends.
enum SocketEnd {
    /// The socket is already gone (the host reported it).
    Gone,
    /// Close it with a close frame.
    Close(&'static str),
    /// Drop it without a handshake.
    Terminate,
}

#[derive(Debug)]
enum Phase {
    /// The socket was requested and has not opened yet.
    Opening,
    /// The hello was sent; a rejection seen so far waits for the close behind it.
    AwaitingAck { rejection: Option<Rejection> },
}

#[derive(Debug)]
enum State {
    Idle,
    Connecting {
        socket: SocketId,
        requested_at: Instant,
        phase: Phase,
    },
    Open {
        socket: SocketId,
        opened_at: Instant,
        last_activity: Instant,
        ping_sent_at: Option<Instant>,
    },
    Reconnecting,
    Closed,
}

/// The pure connection lifecycle. See the [module docs](self).
#[derive(Debug)]
pub struct Lifecycle<H: Handshake> {
    /// Shared, never changed: every connection made from one configuration
    /// reads the same copy (as quinn's connections share an
    /// `Arc<TransportConfig>`), so a connection holds a pointer, not 264 bytes.
    config: Arc<Config>,
    handshake: H,
    rng: Rng,
    state: State,
    status: Status,
    status_since: Instant,
    now: Instant,
    timers: TimerTable,
    actions: VecDeque<LifecycleAction<H>>,
    next_socket: u64,
    /// Attempts made so far; the current attempt's number.
    attempt: u64,
    /// Index into the backoff schedule for the next delay.
    backoff_step: u32,
    /// Retries used per limited rule, indexed like the policy's rules; only as
    /// long as the highest rule used so far (most connections never use one,
    /// and a slot per rule of the table was 100 bytes each).
    limited_used: Vec<u32>,
    /// Reconnects since the connection was last stably open (S4 budget).
    reconnects_since_open: u32,
    /// Since when the connection has been down (X11 budget).
    outage_since: Option<Instant>,
    ever_opened: bool,
    /// Whether the last ending was a frame over the size limit (a poison frame
    /// the broker re-pushes after every reconnect).
    last_too_large: bool,
    /// Boxed: set once, at the very end, and 120 bytes inline for every
    /// connection's whole life otherwise (memory per idle connection counts).
    stop_reason: Option<Box<StopReason>>,
    stats: Tally,
}

impl<H: Handshake> Lifecycle<H> {
    /// A machine in `Idle`, its jitter drawn from `seed`.
    ///
    /// `config` is a [`Config`] or an `Arc` of one: machines given clones of
    /// one `Arc` share it.
    pub fn new(
        config: impl Into<Arc<Config>>,
        handshake: H,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let config = config.into();
        config.validate()?;
        Ok(Lifecycle {
            config,
            handshake,
            rng: Rng::new(seed),
            state: State::Idle,
            status: Status::Idle,
            status_since: now,
            now,
            timers: TimerTable::default(),
            actions: VecDeque::new(),
            next_socket: 0,
            attempt: 0,
            backoff_step: 0,
            limited_used: Vec::new(),
            reconnects_since_open: 0,
            outage_since: None,
            ever_opened: false,
            last_too_large: false,
            stop_reason: None,
            stats: Tally::default(),
        })
    }

    /// Feeds one input. Drain [`poll_action`](Self::poll_action) afterwards.
    ///
    /// Only caller misuse is an `Err` (and then nothing changed); whatever the peer
    /// or the transport does is reported through actions.
    pub fn handle(&mut self, now: Now, event: Event) -> Result<(), LifecycleError> {
        // Refuse before anything moves, the clock included: a refusal changes nothing.
        if matches!(self.state, State::Closed)
            && matches!(event, Event::Connect | Event::Reconnect | Event::RetryNow)
        {
            return Err(LifecycleError::Closed);
        }
        let now = Now::new(self.advance(now.instant), now.unix_ms);
        match event {
            Event::Connect => match self.state {
                State::Idle => {
                    self.outage_since = Some(now.instant);
                    self.start_attempt(now);
                }
                State::Closed => return Err(LifecycleError::Closed),
                _ => {}
            },
            Event::Opened { socket } => {
                if self.is_current(socket, true) {
                    self.on_opened(now, socket);
                }
            }
            Event::Frame { socket, frame } => {
                if self.is_current(socket, false) {
                    self.on_frame(now.instant, frame);
                }
            }
            Event::Closed { socket, code, reason } => {
                if self.is_current(socket, false) {
                    self.on_closed(now.instant, PeerClose { code, reason });
                }
            }
            Event::ConnectFailed { socket, kind, reason } => {
                if self.is_current(socket, false) {
                    let failure = match self.state {
                        State::Connecting {
                            phase: Phase::Opening,
                            ..
                        } => Failure::ConnectFailed { kind, reason },
                        _ => Failure::Closed(PeerClose { code: 1006, reason }),
                    };
                    self.end_attempt(now.instant, failure, SocketEnd::Gone);
                }
            }
            Event::Tick => self.on_tick(now),
            Event::Close => self.close(now.instant),
            Event::Reconnect => self.force_reconnect(now)?,
            Event::RetryNow => self.retry_now(now)?,
        }
        Ok(())
    }

    /// Sends an application frame; refused unless open (L10).
    pub fn send(&mut self, text: String) -> Result<(), NotOpen> {
        match self.state {
            State::Open { socket, .. } => {
                self.stats.frames_out += 1;
                self.io(Io::SendText { socket, text });
                Ok(())
            }
            _ => Err(NotOpen {
                status: self.status,
                text,
            }),
        }
    }

    /// The next action, in order; `None` when drained.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<LifecycleAction<H>> {
        let action = self.actions.pop_front();
        if action.is_none() {
            crate::queue::trim_drained(&mut self.actions, crate::queue::KEEP_LIFECYCLE);
        }
        action
    }

    /// When the host must feed the next [`Event::Tick`], and for which timer.
    #[must_use]
    pub fn next_deadline(&self) -> Option<(Instant, Timer)> {
        self.timers.next()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The socket the machine currently owns, if any.
    pub fn socket(&self) -> Option<SocketId> {
        match self.state {
            State::Connecting { socket, .. } | State::Open { socket, .. } => Some(socket),
            _ => None,
        }
    }

    /// Attempts made so far (the current attempt's number).
    pub fn attempt(&self) -> u64 {
        self.attempt
    }

    /// Why the machine closed, once it has.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.stop_reason.as_deref()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The handshake.
    pub fn handshake(&self) -> &H {
        &self.handshake
    }

    /// The handshake, mutably (to refresh credentials between attempts).
    pub fn handshake_mut(&mut self) -> &mut H {
        &mut self.handshake
    }

    /// A metrics snapshot at `now` (X12).
    pub fn stats(&self, now: Instant) -> Stats {
        let mut stats = self.stats.snapshot();
        let now = now.max(self.now);
        let current = &mut stats.time_in_status[self.status as usize];
        *current = current.saturating_add(now.saturating_duration_since(self.status_since));
        stats
    }

    fn advance(&mut self, instant: Instant) -> Instant {
        // Time never goes backwards inside the machine, whatever the host says.
        if instant > self.now {
            self.now = instant;
        }
        self.now
    }

    /// Whether `socket` is the one the machine owns; counts the ones it does not.
    fn is_current(&mut self, socket: SocketId, opening_only: bool) -> bool {
        let current = match self.state {
            State::Connecting {
                socket: s, ref phase, ..
            } => s == socket && (!opening_only || matches!(phase, Phase::Opening)),
            State::Open { socket: s, .. } => s == socket && !opening_only,
            _ => false,
        };
        if !current {
            self.stats.stale_socket_events += 1;
        }
        current
    }

    fn set_status(&mut self, now: Instant, to: Status) {
        if self.status == to {
            return;
        }
        let from = self.status;
        self.stats.time_in_status[from as usize].add(now.saturating_duration_since(self.status_since));
        self.status = to;
        self.status_since = now;
        self.notify(Notification::StatusChanged { from, to });
    }

    fn io(&mut self, io: Io) {
        self.actions.push_back(Action::Io(io));
    }

    fn notify(&mut self, n: Notification<H::Message, H::DecodeError>) {
        self.actions.push_back(Action::Notify(n));
    }

    fn start_attempt(&mut self, now: Now) {
        self.timers.clear_all();
        self.attempt += 1;
        self.stats.attempts += 1;
        self.next_socket += 1;
        let socket = SocketId(self.next_socket);
        self.state = State::Connecting {
            socket,
            requested_at: now.instant,
            phase: Phase::Opening,
        };
        self.set_status(now.instant, Status::Connecting);
        match self.handshake.headers(self.attempt, now.unix_ms) {
            Ok(headers) => {
                self.io(Io::OpenSocket {
                    socket,
                    url: self.config.url.clone(),
                    headers,
                });
                if let Some(limit) = self.config.open_timeout {
                    self.timers.set(Timer::Open, deadline_after(now.instant, limit));
                }
            }
            Err(e) => {
                // No socket was requested, so there is none to close (L13).
                let failure = Failure::HelloBuild { reason: e.0 };
                self.end_attempt(now.instant, failure, SocketEnd::Gone);
            }
        }
    }

    fn on_opened(&mut self, now: Now, socket: SocketId) {
        self.timers.clear(Timer::Open);
        self.notify(Notification::SocketOpened {
            attempt: self.attempt,
        });
        match self.handshake.hello(self.attempt, now.unix_ms) {
            Err(e) => {
                // D2: the seeds left this socket open with no deadline, forever.
                let failure = Failure::HelloBuild { reason: e.0 };
                self.end_attempt(now.instant, failure, SocketEnd::Close("hello_build_failed"));
            }
            Ok(None) => self.become_open(now.instant),
            Ok(Some(text)) => {
                self.stats.frames_out += 1;
                self.io(Io::SendText { socket, text });
                if let State::Connecting { phase, .. } = &mut self.state {
                    *phase = Phase::AwaitingAck { rejection: None };
                }
                let deadline = deadline_after(now.instant, self.config.hello_ack_timeout);
                self.timers.set(Timer::HelloAck, deadline);
                self.notify(Notification::HelloSent {
                    attempt: self.attempt,
                });
            }
        }
    }

    fn become_open(&mut self, now: Instant) {
        let (socket, requested_at) = match self.state {
            State::Connecting {
                socket, requested_at, ..
            } => (socket, requested_at),
            _ => return,
        };
        let handshake = now.saturating_duration_since(requested_at);
        self.stats.connects += 1;
        self.stats.last_handshake.set(handshake);
        self.stats.total_handshake.add(handshake);
        self.timers.clear(Timer::HelloAck);
        self.timers.clear(Timer::Open);
        self.state = State::Open {
            socket,
            opened_at: now,
            last_activity: now,
            ping_sent_at: None,
        };
        let first = !self.ever_opened;
        self.ever_opened = true;
        self.set_status(now, Status::Open);
        self.notify(Notification::Connected {
            attempt: self.attempt,
            first,
            handshake,
        });
        self.timers
            .set(Timer::Watchdog, deadline_after(now, self.config.ping_interval));
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) {
        let open = match &mut self.state {
            State::Open {
                last_activity,
                ping_sent_at,
                ..
            } => {
                *last_activity = now;
                if matches!(frame, Frame::Pong) {
                    if let Some(sent) = ping_sent_at.take() {
                        let rtt = now.saturating_duration_since(sent);
                        self.stats.last_ping_rtt.set(rtt);
                        let max = self.stats.max_ping_rtt.get().map_or(rtt, |m| m.max(rtt));
                        self.stats.max_ping_rtt.set(max);
                    }
                }
                // Any sign of life answers a post-suspend probe.
                self.timers.clear(Timer::Probe);
                true
            }
            State::Connecting {
                phase: Phase::AwaitingAck { .. },
                ..
            } => false,
            // A frame on a socket that has not reported open: the host is confused;
            // counting it is all that is safe.
            _ => {
                self.stats.stale_socket_events += 1;
                return;
            }
        };
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary(bytes) => {
                self.stats.frames_dropped += 1;
                self.notify(Notification::FrameDropped(DropReason::Binary {
                    len: bytes.len(),
                }));
                return;
            }
            Frame::Ping | Frame::Pong => return,
        };
        self.stats.frames_in += 1;
        let message = match self.handshake.decode(text) {
            Ok(m) => m,
            Err(e) => {
                self.stats.frames_dropped += 1;
                self.notify(Notification::FrameDropped(DropReason::Undecodable(e)));
                return;
            }
        };
        if open {
            self.notify(Notification::Message(message));
            return;
        }
        match self.handshake.classify(&message) {
            PreOpen::Ack => {
                self.become_open(now);
                // The ack itself goes up too: it carries what the broker knows of us.
                self.notify(Notification::Message(message));
            }
            PreOpen::Rejection(r) => {
                if let State::Connecting {
                    phase: Phase::AwaitingAck { rejection },
                    ..
                } = &mut self.state
                {
                    // The first refusal is the reason; the close that follows it
                    // completes the story.
                    rejection.get_or_insert(r);
                }
            }
            PreOpen::Other => self.notify(Notification::Message(message)),
        }
    }

    fn on_closed(&mut self, now: Instant, close: PeerClose) {
        let failure = match &mut self.state {
            State::Connecting {
                phase: Phase::AwaitingAck { rejection },
                ..
            } => match rejection.take() {
                Some(rejection) => Failure::Rejected {
                    rejection,
                    close: Some(close),
                },
                None => Failure::Closed(close),
            },
            _ => Failure::Closed(close),
        };
        let failure = match failure {
            Failure::Closed(close) if close.code == 1009 => Failure::TooLarge(close),
            other => other,
        };
        self.end_attempt(now, failure, SocketEnd::Gone);
    }

    fn on_tick(&mut self, now: Now) {
        let mut fired = [false; Timer::COUNT];
        while let Some((due, timer)) = self.timers.pop_expired(now.instant, &mut fired) {
            match timer {
                Timer::Open => self.end_attempt(now.instant, Failure::OpenTimeout, SocketEnd::Terminate),
                Timer::HelloAck => {
                    let failure = match &mut self.state {
                        State::Connecting {
                            phase: Phase::AwaitingAck { rejection },
                            ..
                        } => match rejection.take() {
                            Some(rejection) => Failure::Rejected {
                                rejection,
                                close: None,
                            },
                            None => Failure::HelloAckTimeout,
                        },
                        _ => Failure::HelloAckTimeout,
                    };
                    self.end_attempt(now.instant, failure, SocketEnd::Close("hello_ack_timeout"));
                }
                Timer::Reconnect => self.start_attempt(now),
                Timer::Watchdog => self.on_watchdog(now.instant, due),
                Timer::Probe => {
                    let idle = self.idle(now.instant);
                    self.end_attempt(now.instant, Failure::Stale { idle }, SocketEnd::Terminate);
                }
            }
        }
    }

    fn idle(&self, now: Instant) -> Duration {
        match self.state {
            State::Open { last_activity, .. } => now.saturating_duration_since(last_activity),
            _ => Duration::ZERO,
        }
    }

    fn on_watchdog(&mut self, now: Instant, due: Instant) {
        let late_by = now.saturating_duration_since(due);
        self.timers
            .set(Timer::Watchdog, deadline_after(now, self.config.ping_interval));
        if late_by >= self.config.suspend_gap {
            // X13: the host slept through our deadlines; the silence says nothing
            // about the peer, so ask it instead of terminating.
            self.stats.suspends += 1;
            self.notify(Notification::SuspendDetected { late_by });
            self.timers
                .set(Timer::Probe, deadline_after(now, self.config.probe_timeout));
            self.ping(now);
            return;
        }
        let idle = self.idle(now);
        if idle > self.config.stale_after {
            self.end_attempt(now, Failure::Stale { idle }, SocketEnd::Terminate);
        } else {
            self.ping(now);
        }
    }

    fn ping(&mut self, now: Instant) {
        if let State::Open {
            socket, ping_sent_at, ..
        } = &mut self.state
        {
            ping_sent_at.get_or_insert(now);
            let socket = *socket;
            self.io(Io::SendPing { socket });
        }
    }

    /// Ends the current attempt or connection and decides what comes next.
    fn end_attempt(&mut self, now: Instant, failure: Failure, end: SocketEnd) {
        let (socket, opened_at) = match self.state {
            State::Connecting { socket, .. } => (Some(socket), None),
            State::Open {
                socket, opened_at, ..
            } => (Some(socket), Some(opened_at)),
            _ => (None, None),
        };
        if let Some(socket) = socket {
            match end {
                SocketEnd::Gone => {}
                SocketEnd::Close(reason) => self.io(Io::CloseSocket {
                    socket,
                    code: 1000,
                    reason,
                }),
                SocketEnd::Terminate => self.io(Io::TerminateSocket { socket }),
            }
        }
        self.timers.clear_all();
        self.state = State::Reconnecting;
        self.stats.failures[failure.class() as usize] += 1;
        let was_open = opened_at.is_some();
        self.notify(Notification::Disconnected {
            attempt: self.attempt,
            failure: failure.clone(),
            was_open,
        });
        if let Some(opened_at) = opened_at {
            // X7: only a connection that stayed up proves the path healthy; a
            // connect → ack → kicked loop keeps backing off.
            if now.saturating_duration_since(opened_at) >= self.config.stability_window {
                self.reset_counters();
            }
        }
        let outage_since = *self.outage_since.get_or_insert(now);
        self.decide(now, failure, was_open, outage_since);
    }

    fn decide(&mut self, now: Instant, failure: Failure, was_open: bool, outage_since: Instant) {
        let class = self.config.policy.classify(&failure);
        let too_large = matches!(failure, Failure::TooLarge(_));
        let repeated_too_large = too_large && self.last_too_large;
        self.last_too_large = too_large;
        if class.verdict == Verdict::Stop {
            return self.stop(now, StopReason::Permanent { failure });
        }
        // A limited rule (timestamp_skew, the attestation codes) is a refusal that
        // fresh material may fix: the next hello carries a new timestamp and a
        // re-minted attestation, so even a first connect spends the rule's small
        // budget. Anything else fails a first connect fast (L8, D1).
        let limited = matches!(class.verdict, Verdict::Limited(_));
        if !self.ever_opened && self.config.first_connect == FirstConnect::FailFast && !limited {
            return self.stop(now, StopReason::FirstConnectFailed { failure });
        }
        let nominal = match (class.verdict, class.rule) {
            (Verdict::Limited(limit), Some(rule)) => {
                if self.limited_used.len() <= rule {
                    self.limited_used.resize(rule + 1, 0);
                }
                let used = &mut self.limited_used[rule];
                *used += 1;
                if *used > limit.max_retries {
                    let retries = limit.max_retries;
                    return self.stop(now, StopReason::RetriesExhausted { failure, retries });
                }
                match limit.delay {
                    LimitDelay::Backoff => self.next_backoff(),
                    LimitDelay::Linear(step) => step.saturating_mul(*used),
                }
            }
            _ => {
                if self.config.budget.only_after_open && !was_open {
                    return self.stop(now, StopReason::NeverOpened { failure });
                }
                let nominal = self.next_backoff();
                if repeated_too_large {
                    // The same poison frame again: reconnecting quickly only
                    // fetches it again. Wait the longest delay of the schedule.
                    self.config.backoff.max()
                } else {
                    nominal
                }
            }
        };
        self.reconnects_since_open = self.reconnects_since_open.saturating_add(1);
        let elapsed = now.saturating_duration_since(outage_since);
        let budget = self.config.budget;
        let over_attempts = budget
            .max_attempts
            .is_some_and(|max| self.reconnects_since_open > max);
        let over_time = budget.max_elapsed.is_some_and(|max| elapsed >= max);
        if over_attempts || over_time {
            let attempts = self.reconnects_since_open - 1;
            return self.stop(
                now,
                StopReason::BudgetExhausted {
                    failure,
                    attempts,
                    elapsed,
                },
            );
        }
        let mut delay = self.config.jitter.apply(nominal, &mut self.rng);
        if let Some(mut hint) = class.retry_after {
            // A peer's wish, capped: a hostile or broken broker must not park us
            // for ever with a huge hint (X10).
            if hint > self.config.max_retry_after {
                hint = self.config.max_retry_after;
                self.stats.retry_after_capped += 1;
            }
            // X10: honour the broker's floor, jittered upwards only, so clients
            // told the same number still spread out.
            delay = delay.max(self.config.jitter.apply_above(hint, &mut self.rng));
        }
        self.schedule(now, delay);
    }

    fn next_backoff(&mut self) -> Duration {
        let nominal = self.config.backoff.nominal(self.backoff_step);
        self.backoff_step = self.backoff_step.saturating_add(1);
        nominal
    }

    fn reset_counters(&mut self) {
        self.backoff_step = 0;
        self.limited_used.iter_mut().for_each(|n| *n = 0);
        self.reconnects_since_open = 0;
        self.outage_since = None;
    }

    fn schedule(&mut self, now: Instant, delay: Duration) {
        self.timers.clear_all();
        self.state = State::Reconnecting;
        self.set_status(now, Status::Reconnecting);
        self.timers.set(Timer::Reconnect, deadline_after(now, delay));
        self.notify(Notification::ReconnectScheduled {
            attempt: self.attempt + 1,
            delay,
        });
    }

    fn stop(&mut self, now: Instant, reason: StopReason) {
        self.timers.clear_all();
        self.state = State::Closed;
        self.set_status(now, Status::Closed);
        self.stop_reason = Some(Box::new(reason.clone()));
        self.notify(Notification::Closed { reason });
    }

    fn close(&mut self, now: Instant) {
        match self.state {
            State::Closed => {}
            State::Connecting { socket, .. } | State::Open { socket, .. } => {
                self.io(Io::CloseSocket {
                    socket,
                    code: 1000,
                    reason: "client_closed",
                });
                self.stop(now, StopReason::User);
            }
            State::Idle | State::Reconnecting => self.stop(now, StopReason::User),
        }
    }

    fn force_reconnect(&mut self, now: Now) -> Result<(), LifecycleError> {
        match self.state {
            State::Closed => return Err(LifecycleError::Closed),
            State::Connecting { socket, .. } | State::Open { socket, .. } => {
                let was_open = matches!(self.state, State::Open { .. });
                self.io(Io::CloseSocket {
                    socket,
                    code: 1000,
                    reason: "reconnect",
                });
                self.stats.failures[FailureClass::Forced as usize] += 1;
                self.notify(Notification::Disconnected {
                    attempt: self.attempt,
                    failure: Failure::Forced,
                    was_open,
                });
            }
            State::Idle | State::Reconnecting => {}
        }
        self.reset_counters();
        self.outage_since = Some(now.instant);
        let delay = self
            .config
            .jitter
            .apply(self.config.force_reconnect_delay, &mut self.rng);
        self.schedule(now.instant, delay);
        Ok(())
    }

    fn retry_now(&mut self, now: Now) -> Result<(), LifecycleError> {
        match self.state {
            State::Closed => return Err(LifecycleError::Closed),
            State::Idle | State::Reconnecting => {
                self.reset_counters();
                self.outage_since = Some(now.instant);
                self.start_attempt(now);
            }
            // Already trying or open: only the counters restart.
            State::Connecting { .. } | State::Open { .. } => self.backoff_step = 0,
        }
        Ok(())
    }
}
