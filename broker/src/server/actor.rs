//! The one task that owns the core: it turns events into core inputs, core outputs
//! into connection commands, and sleeps until the core's next deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tether_proto::Now;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::core::{Breach, Broker, BrokerStats, ConnId, Fault, Notice, OutputKind};

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum Command {
    Send(String),
    Ping,
    Close { code: u16, reason: String },
    Abort,
    Silence,
}

/// What reaches the actor.
#[derive(Debug)]
pub(crate) enum Event {
    Open {
        conn: ConnId,
        outbound: mpsc::Sender<Command>,
        kill: oneshot::Sender<()>,
        queued_bytes: Arc<AtomicUsize>,
    },
    Frame {
        conn: ConnId,
        text: String,
    },
    Activity {
        conn: ConnId,
    },
    Breach {
        conn: ConnId,
        breach: Breach,
    },
    Closed {
        conn: ConnId,
    },
    Fault {
        fault: Fault,
        done: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<(BrokerStats, u64)>,
    },
    Shutdown {
        code: u16,
        reason: String,
        done: oneshot::Sender<()>,
    },
    Exit,
}

/// Server-level counters, shared with the accept loop and the handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub write_timeouts: AtomicU64,
    /// Times memory was given back to the system after a wave of connections.
    pub memory_trims: AtomicU64,
    /// The most bytes ever queued for one connection.
    pub peak_queued_bytes: AtomicU64,
}

/// The way to one connection task.
struct Link {
    outbound: mpsc::Sender<Command>,
    kill: oneshot::Sender<()>,
    queued_bytes: Arc<AtomicUsize>,
}

pub(crate) struct Actor {
    broker: Broker,
    trim: super::trim::WaveTrim,
    /// Bytes queued per connection before it is dropped as a slow consumer.
    max_queued_bytes: usize,
    links: HashMap<ConnId, Link>,
    counters: Arc<Counters>,
    /// Set by a shutdown: connections that finish their handshake afterwards are closed at once.
    closing: Option<(u16, String)>,
}

/// The clocks are read here and nowhere in the core.
pub(crate) fn now() -> Now {
    Now::new(Instant::now(), unix_ms())
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Actor {
    pub fn new(broker: Broker, counters: Arc<Counters>, max_queued_bytes: usize) -> Self {
        Actor {
            broker,
            trim: super::trim::WaveTrim::default(),
            max_queued_bytes,
            links: HashMap::new(),
            counters,
            closing: None,
        }
    }

    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        loop {
            let deadline = self.broker.next_deadline();
            let wake = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
            tokio::select! {
                event = events.recv() => match event {
                    None | Some(Event::Exit) => break,
                    Some(event) => self.handle(event),
                },
                () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                    self.broker.handle_tick(now());
                }
            }
            self.flush();
        }
    }

    fn handle(&mut self, event: Event) {
        let now = now();
        match event {
            Event::Open {
                conn,
                outbound,
                kill,
                queued_bytes,
            } => {
                if let Some((code, reason)) = &self.closing {
                    let _ = outbound.try_send(Command::Close {
                        code: *code,
                        reason: reason.clone(),
                    });
                    return;
                }
                self.trim.observe(self.links.len() + 1);
                self.links.insert(
                    conn,
                    Link {
                        outbound,
                        kill,
                        queued_bytes,
                    },
                );
                self.broker.handle_open(conn, now);
            }
            Event::Frame { conn, text } => self.broker.handle_frame(conn, &text, now),
            Event::Activity { conn } => self.broker.handle_activity(conn, now),
            Event::Breach { conn, breach } => self.broker.handle_breach(conn, breach, now),
            Event::Closed { conn } => {
                if self.links.remove(&conn).is_some() {
                    tracing::debug!(%conn, "connection lost");
                }
                self.broker.handle_closed(conn, now);
                if self.trim.observe(self.links.len()) {
                    self.counters.memory_trims.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::Fault { fault, done } => {
                tracing::info!(?fault, "fault switch");
                self.broker.handle_fault(fault, now);
                let _ = done.send(());
            }
            Event::Stats { reply } => {
                let queued = self
                    .links
                    .values()
                    .map(|l| l.queued_bytes.load(Ordering::Relaxed) as u64)
                    .sum();
                let _ = reply.send((self.broker.stats(), queued));
            }
            Event::Shutdown { code, reason, done } => {
                self.closing = Some((code, reason.clone()));
                self.broker.handle_fault(Fault::DropAll { code, reason }, now);
                self.flush();
                let _ = done.send(());
            }
            Event::Exit => {}
        }
    }

    /// Carries out every output of the core, in order.
    fn flush(&mut self) {
        while let Some(output) = self.broker.poll_output() {
            let conn = output.conn;
            let command = match output.kind {
                OutputKind::Notice(notice) => {
                    log_notice(conn, &notice);
                    continue;
                }
                OutputKind::Send(text) => Command::Send(text),
                OutputKind::Ping => Command::Ping,
                OutputKind::Close { code, reason } => {
                    tracing::info!(%conn, code, %reason, "closing connection");
                    Command::Close { code, reason }
                }
                OutputKind::Abort => {
                    tracing::info!(%conn, "dropping connection");
                    Command::Abort
                }
                OutputKind::Silence => Command::Silence,
            };
            let last = matches!(command, Command::Close { .. } | Command::Abort);
            let Some(link) = self.links.get(&conn) else {
                continue;
            };
            // Bounded in bytes as well as frames: a few huge pushes must not pin memory.
            let len = match &command {
                Command::Send(text) => text.len(),
                _ => 0,
            };
            let queued = link.queued_bytes.load(Ordering::Relaxed);
            let sent = if queued.saturating_add(len) > self.max_queued_bytes && len > 0 {
                Err(TrySendError::Full(command))
            } else {
                // Counted before it is handed over: the connection task may take
                // it and subtract its length before `try_send` even returns, and
                // counting after would underflow the counter (then overflow it).
                let now_queued = link
                    .queued_bytes
                    .fetch_add(len, Ordering::Relaxed)
                    .wrapping_add(len);
                let sent = link.outbound.try_send(command);
                if sent.is_err() {
                    link.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                } else if len > 0 {
                    self.counters
                        .peak_queued_bytes
                        .fetch_max(now_queued as u64, Ordering::Relaxed);
                }
                sent
            };
            match sent {
                Ok(()) if last => {
                    self.links.remove(&conn);
                }
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.counters.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%conn, "slow consumer: outbound queue full, disconnecting");
                    if let Some(link) = self.links.remove(&conn) {
                        let _ = link.kill.send(());
                    }
                    if !last {
                        self.broker.handle_closed(conn, now());
                    }
                }
                Err(TrySendError::Closed(_)) => {
                    self.links.remove(&conn);
                    if !last {
                        self.broker.handle_closed(conn, now());
                    }
                }
            }
        }
    }
}

fn log_notice(conn: ConnId, notice: &Notice) {
    match notice {
        Notice::HelloAccepted { mesh_id, pubkey } => {
            tracing::info!(%conn, %mesh_id, %pubkey, "hello accepted");
        }
        Notice::HelloRejected { code } => tracing::info!(%conn, %code, "hello rejected"),
    }
}
