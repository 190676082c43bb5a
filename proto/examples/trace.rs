//! Drives the pure lifecycle through a scripted story and prints its timeline:
//! connect, ack, a broker that goes silent, the watchdog's stale terminate,
//! jittered backoff, and a permanent rejection that stops for good.
//!
//! `cargo run -p tether-proto --example trace`
//!
//! Nothing here sleeps: the clock jumps to each `next_deadline()`, which is what
//! makes the machine testable and simulatable.

use std::time::{Duration, Instant};

use tether_proto::lifecycle::{
    Action, Config, Event, Frame, Handshake, HelloError, Io, Lifecycle, LifecycleAction, Notification,
    PreOpen, Rejection, SocketId,
};
use tether_proto::Now;

/// A minimal JSON handshake: `hello_ack` opens, `error` rejects.
struct Json;

impl Handshake for Json {
    type Message = serde_json::Value;
    type DecodeError = serde_json::Error;

    fn hello(&mut self, attempt: u64, unix_ms: u64) -> Result<Option<String>, HelloError> {
        Ok(Some(format!(
            r#"{{"type":"hello","attempt":{attempt},"timestamp":{unix_ms}}}"#
        )))
    }

    fn decode(&mut self, text: String) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&text)
    }

    fn classify(&mut self, m: &serde_json::Value) -> PreOpen {
        match m["type"].as_str() {
            Some("hello_ack") => PreOpen::Ack,
            Some("error") => PreOpen::Rejection(Rejection {
                code: m["code"].as_str().unwrap_or_default().into(),
                message: m["message"].as_str().unwrap_or_default().into(),
                retry_after: None,
            }),
            _ => PreOpen::Other,
        }
    }
}

struct Story {
    lc: Lifecycle<Json>,
    t0: Instant,
    now: Instant,
}

impl Story {
    fn at(&self) -> Now {
        Now::new(
            self.now,
            1_700_000_000_000 + (self.now - self.t0).as_millis() as u64,
        )
    }

    fn feed(&mut self, event: Event) -> Option<SocketId> {
        if let Err(e) = self.lc.handle(self.at(), event) {
            println!("{:>9}  refused: {e}", self.stamp());
        }
        let mut opened = None;
        while let Some(action) = self.lc.poll_action() {
            if let Action::Io(Io::OpenSocket { socket, .. }) = action {
                opened = Some(socket);
            }
            self.print(&action);
        }
        opened
    }

    fn after(&mut self, d: Duration) {
        self.now += d;
    }

    fn until_deadline(&mut self) -> Option<SocketId> {
        let (at, timer) = self.lc.next_deadline()?;
        self.now = self.now.max(at);
        println!("{:>9}  ⏰ {} timer fires", self.stamp(), timer.name());
        self.feed(Event::Tick)
    }

    fn stamp(&self) -> String {
        format!("{:.3}s", (self.now - self.t0).as_secs_f64())
    }

    fn print(&self, action: &LifecycleAction<Json>) {
        let what = match action {
            Action::Io(Io::OpenSocket { socket, url, .. }) => format!("→ open socket #{} to {url}", socket.0),
            Action::Io(Io::SendText { text, .. }) => format!("→ send {text}"),
            Action::Io(Io::SendPing { .. }) => "→ ping".into(),
            Action::Io(Io::CloseSocket { code, reason, .. }) => format!("→ close socket ({code} {reason})"),
            Action::Io(Io::TerminateSocket { .. }) => "→ terminate socket".into(),
            Action::Notify(n) => match n {
                Notification::StatusChanged { from, to } => format!("status {} → {}", from.name(), to.name()),
                Notification::SocketOpened { attempt } => format!("socket open (attempt {attempt})"),
                Notification::HelloSent { attempt } => format!("hello sent (attempt {attempt})"),
                Notification::Connected { handshake, first, .. } => {
                    format!("hello acked in {} ms (first: {first})", handshake.as_millis())
                }
                Notification::Message(m) => format!("message {m}"),
                Notification::FrameDropped(r) => format!("dropped frame: {r:?}"),
                Notification::Disconnected {
                    failure, was_open, ..
                } => {
                    format!("attempt ended (was open: {was_open}): {failure}")
                }
                Notification::ReconnectScheduled { attempt, delay } => {
                    format!("reconnect #{attempt} scheduled in {} ms", delay.as_millis())
                }
                Notification::SuspendDetected { late_by } => {
                    format!("suspend detected, {} ms late", late_by.as_millis())
                }
                Notification::Closed { reason } => format!("CLOSED for good: {reason}"),
            },
        };
        println!("{:>9}  {what}", self.stamp());
    }
}

fn main() {
    let t0 = Instant::now();
    let lc = Lifecycle::new(Config::new("wss://broker.example/ws"), Json, 2024, t0)
        .expect("default config is valid");
    let mut s = Story { lc, t0, now: t0 };
    let text = |socket, t: &str| Event::Frame {
        socket,
        frame: Frame::Text(t.into()),
    };

    println!("— connect, hello, ack —");
    let sock = s.feed(Event::Connect).expect("first socket");
    s.after(Duration::from_millis(35));
    s.feed(Event::Opened { socket: sock });
    s.after(Duration::from_millis(12));
    s.feed(text(sock, r#"{"type":"hello_ack","presenceId":"p-1"}"#));

    println!("— the broker goes silent (half-open socket) —");
    for _ in 0..3 {
        s.until_deadline();
    }

    println!("— backoff, then the broker refuses us for good —");
    let mut next = None;
    while next.is_none() {
        next = s.until_deadline();
    }
    let sock = next.expect("a reconnect socket");
    s.after(Duration::from_millis(30));
    s.feed(Event::Opened { socket: sock });
    s.after(Duration::from_millis(8));
    s.feed(text(
        sock,
        r#"{"type":"error","code":"revoked","message":"key revoked by mesh admin"}"#,
    ));
    s.feed(Event::Closed {
        socket: sock,
        code: 4002,
        reason: "banned".into(),
    });

    println!("— nothing is left running —");
    assert!(s.lc.next_deadline().is_none());
    s.feed(Event::Connect);
    let stats = s.lc.stats(s.now);
    println!(
        "attempts {}, connects {}, pings answered {:?}, time open {:.1}s",
        stats.attempts,
        stats.connects,
        stats.last_ping_rtt,
        stats.time_in(tether_proto::lifecycle::Status::Open).as_secs_f64()
    );
}
