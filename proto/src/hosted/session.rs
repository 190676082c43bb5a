//! The hosted session: the lifecycle with the hosted handshake and policy, and
//! the control requests and responses an application sends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::handshake::{subscribe_url, HostedHandshake, Message, MessageError, TokenProvider, UrlError};
use crate::lifecycle::{
    Action, Config, ConfigError, Event, FirstConnect, Lifecycle, LifecycleError, Notification, Stats, Status,
    StopReason, Timer,
};
use crate::machine::{Machine, Output};
use crate::policy::{Backoff, ClosePolicy};
use crate::rng::Rng;
use crate::time::Now;

/// Consecutive failed attempts after an open connection before the session
/// gives up (`MAX_RECONNECT_ATTEMPTS`, sessions-websocket.ts; S4, D10).
pub const HOSTED_RECONNECT_ATTEMPTS: u32 = 5;

/// Delays between those attempts: the seed's `RECONNECT_DELAY_MS` (2 s) first,
/// then doubling, so a server that is down is not hammered five times in 10 s.
pub const HOSTED_BACKOFF: [Duration; 5] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(30),
];

/// Where a hosted session connects and how it retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostedConfig {
    /// The lifecycle settings, the subscribe URL among them; [`HostedConfig::new`]
    /// sets the hosted policy, which may be changed here.
    pub lifecycle: Config,
    /// The `anthropic-version` header.
    pub version: String,
}

impl HostedConfig {
    /// The seed's settings for session `session_id` of `organization` on `base`
    /// (e.g. `https://api.anthropic.com`): no reconnect unless a connection had
    /// been open, then up to [`HOSTED_RECONNECT_ATTEMPTS`] attempts in a row
    /// with [`HOSTED_BACKOFF`], pings every 30 s with the liveness watchdog.
    pub fn new(base: &str, session_id: &str, organization: &str) -> Result<Self, UrlError> {
        let url = subscribe_url(base, session_id, organization)?;
        Ok(HostedConfig::for_url(url))
    }

    /// The same settings for an explicit subscribe URL (a test server, a proxy).
    pub fn for_url(url: impl Into<String>) -> Self {
        let mut lifecycle = Config::new(url);
        // D10: after an open connection, a run of failed attempts backs off up to
        // the budget; the seed ended at the first failed reconnect.
        lifecycle.first_connect = FirstConnect::FailFast;
        lifecycle.budget.only_after_open = false;
        lifecycle.budget.max_attempts = Some(HOSTED_RECONNECT_ATTEMPTS);
        if let Some(backoff) = Backoff::new(HOSTED_BACKOFF.to_vec()) {
            lifecycle.backoff = backoff;
        }
        lifecycle.policy = ClosePolicy::hosted();
        HostedConfig {
            lifecycle,
            version: super::ANTHROPIC_VERSION.to_owned(),
        }
    }
}

/// News of a hosted session for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum HostedEvent {
    /// Connected, reconnecting (with the close and the delay), closed for good,
    /// frames dropped … (S6, L14).
    Lifecycle(Notification<Infallible, MessageError>),
    /// A message from the session, unchanged (S10).
    Message(Message),
}

/// A control request or response refused; nothing was sent and nothing changed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HostedError {
    /// Not connected (S7); the refused payload is handed back.
    #[error("cannot send while the session is {}", status.name())]
    NotConnected {
        /// The status at the time of the call.
        status: Status,
        /// What was to be sent.
        payload: Box<Value>,
    },
    /// A control response must be a JSON object.
    #[error("a control response must be a JSON object")]
    NotAnObject(Box<Value>),
}

/// The pure hosted session. See the [module docs](super).
#[derive(Debug)]
pub struct Session {
    lc: Lifecycle<HostedHandshake>,
    rng: Rng,
    outputs: VecDeque<Output<HostedEvent>>,
    control_requests: u64,
}

impl Session {
    /// A session in `Idle`; `tokens` gives each attempt's bearer token, `seed`
    /// fixes its jitter and request ids.
    pub fn new(
        config: HostedConfig,
        tokens: TokenProvider,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let mut seeder = Rng::new(seed);
        let handshake = HostedHandshake::new(tokens).with_version(config.version);
        let lc = Lifecycle::new(config.lifecycle, handshake, seeder.next_u64(), now)?;
        Ok(Session {
            lc,
            rng: Rng::new(seeder.next_u64()),
            outputs: VecDeque::new(),
            control_requests: 0,
        })
    }

    /// Feeds one lifecycle input (connect, socket news, tick, close, reconnect …).
    pub fn handle(&mut self, now: Now, event: Event) -> Result<(), LifecycleError> {
        self.lc.handle(now, event)?;
        self.pump();
        Ok(())
    }

    /// Sends `{type: "control_request", request_id, request}` with a fresh
    /// `request_id`, which it returns (S7); refused unless connected.
    pub fn send_control_request(&mut self, request: Value) -> Result<String, HostedError> {
        if self.lc.status() != Status::Open {
            return Err(HostedError::NotConnected {
                status: self.lc.status(),
                payload: Box::new(request),
            });
        }
        let request_id = self.fresh_request_id();
        let frame = json!({
            "type": "control_request",
            "request_id": request_id,
            "request": request,
        });
        match self.lc.send(frame.to_string()) {
            Ok(()) => {
                self.control_requests += 1;
                self.pump();
                Ok(request_id)
            }
            Err(refused) => Err(HostedError::NotConnected {
                status: refused.status,
                payload: Box::new(frame["request"].clone()),
            }),
        }
    }

    /// Sends a control response (an object, e.g. `{type: "control_response", …}`)
    /// as it is; refused unless connected (S10).
    pub fn send_control_response(&mut self, response: Value) -> Result<(), HostedError> {
        if !response.is_object() {
            return Err(HostedError::NotAnObject(Box::new(response)));
        }
        if self.lc.status() != Status::Open {
            return Err(HostedError::NotConnected {
                status: self.lc.status(),
                payload: Box::new(response),
            });
        }
        let text = response.to_string();
        self.lc.send(text).map_err(|refused| HostedError::NotConnected {
            status: refused.status,
            payload: Box::new(response),
        })?;
        self.pump();
        Ok(())
    }

    /// The next output, in order; `None` when drained.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<HostedEvent>> {
        let output = self.outputs.pop_front();
        if output.is_none() {
            crate::queue::trim_drained(&mut self.outputs, crate::queue::KEEP_SESSION);
        }
        output
    }

    /// When to feed the next tick, and for which timer.
    #[must_use]
    pub fn next_deadline(&self) -> Option<(Instant, Timer)> {
        self.lc.next_deadline()
    }

    /// The connection status; `Open` is the seed's `connected`.
    pub fn status(&self) -> Status {
        self.lc.status()
    }

    /// Why the session closed, once it has.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.lc.stop_reason()
    }

    /// The lifecycle underneath (read-only: every input goes through the session).
    pub fn lifecycle(&self) -> &Lifecycle<HostedHandshake> {
        &self.lc
    }

    /// The lifecycle's metrics at `now` (X12).
    pub fn stats(&self, now: Instant) -> Stats {
        self.lc.stats(now)
    }

    /// Control requests sent so far.
    pub fn control_requests(&self) -> u64 {
        self.control_requests
    }

    /// A version-4-shaped UUID from the session's seeded generator: unique per
    /// session and seed, and in the format the seed's `randomUUID()` sends.
    fn fresh_request_id(&mut self) -> String {
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
        let a = (a & !0xf000) | 0x4000;
        let b = (b & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn pump(&mut self) {
        while let Some(action) = self.lc.poll_action() {
            self.outputs.push_back(match action {
                Action::Io(io) => Output::Io(io),
                Action::Notify(note) => match note.into_message() {
                    Ok(message) => Output::Event(HostedEvent::Message(message)),
                    Err(note) => Output::Event(HostedEvent::Lifecycle(note)),
                },
            });
        }
    }
}

impl Machine for Session {
    type Event = HostedEvent;
    type Message = Infallible;
    type DecodeError = MessageError;
    type Timer = Timer;

    fn handle(&mut self, now: Now, input: Event) -> Result<(), LifecycleError> {
        Session::handle(self, now, input)
    }

    fn poll_output(&mut self) -> Option<Output<HostedEvent>> {
        Session::poll_output(self)
    }

    fn next_deadline(&self) -> Option<(Instant, Timer)> {
        Session::next_deadline(self)
    }

    fn status(&self) -> Status {
        Session::status(self)
    }

    fn notification(event: &HostedEvent) -> Option<&Notification<Infallible, MessageError>> {
        match event {
            HostedEvent::Lifecycle(note) => Some(note),
            HostedEvent::Message(_) => None,
        }
    }
}
