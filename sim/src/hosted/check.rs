//! The hosted session's invariants, checked output by output: the lifecycle's
//! contract, plus an independent model of the hosted retry rules (S2–S5, D10),
//! the request ids (S7) and the messages handed up (S10).
//!
//! The model keeps its own copy of the counters the rules speak of — failed
//! attempts since the connection was last stably open, the backoff step, the
//! 4001 retries — and predicts, for every disconnection, the one decision the
//! rules allow: a reconnect within the bounds of a named delay, or a stop for
//! a named reason. The machine must make exactly that decision.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tether_proto::hosted::{HostedError, HostedEvent, HOSTED_BACKOFF, HOSTED_RECONNECT_ATTEMPTS};
use tether_proto::lifecycle::{
    ContractCheck, DropReason, Failure, Io, Notification, SocketId, Status, StopReason,
};
use tether_proto::policy::{Jitter, SESSION_NOT_FOUND_RETRIES, SESSION_NOT_FOUND_STEP};

use crate::check::Violation;

/// The decision the rules allow after a disconnection.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    /// A reconnect after a delay within these bounds.
    Reconnect { lo: Duration, hi: Duration, why: String },
    /// A stop for this reason (named like `StopReason`'s variants).
    Stop(&'static str),
}

/// What the frame being delivered must become.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameExpect {
    /// This object, unchanged (S10).
    Message(Value),
    /// A dropped frame (not an object with a string `type`, L5).
    Dropped,
}

/// The hosted client's timings the model needs.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// Jitter on every delay.
    pub jitter: Jitter,
    /// Open time after which the counters restart (X7).
    pub stability: Duration,
    /// Delay of `reconnect()` (S5).
    pub force: Duration,
}

/// One hosted session's checker.
#[derive(Debug)]
pub struct HostedCheck {
    contract: ContractCheck,
    t: Timings,
    ever_open: bool,
    opened_at: Option<Duration>,
    reconnects: u32,
    backoff_step: u32,
    not_found: u32,
    decision: Option<Decision>,
    forced: bool,
    closing: bool,
    next_attempt_at: Option<Duration>,
    /// Attempts started (status → connecting).
    pub attempts: u64,
    request_ids: BTreeSet<String>,
    request_due: Option<(String, Value)>,
    pending: BTreeSet<String>,
    /// Control requests answered.
    pub answered: u64,
    /// Control requests whose connection ended first (their typed failure is
    /// that connection's `Disconnected`).
    pub failed: u64,
    frame: Option<(FrameExpect, bool)>,
    /// Server control requests handed up, for the application to answer.
    pub server_requests: Vec<String>,
}

fn fail<T>(what: impl Into<String>) -> Result<T, Violation> {
    Err(Violation(what.into()))
}

impl HostedCheck {
    /// A checker for a session in `Idle`, made with the configuration whose
    /// contract is `contract` (`ContractCheck::for_config`, no hello): the
    /// delays it allows are the configuration's, and the order in which they
    /// come is checked here against the seed's rules, written out apart.
    pub fn new(t: Timings, contract: ContractCheck) -> Self {
        HostedCheck {
            contract,
            t,
            ever_open: false,
            opened_at: None,
            reconnects: 0,
            backoff_step: 0,
            not_found: 0,
            decision: None,
            forced: false,
            closing: false,
            next_attempt_at: None,
            attempts: 0,
            request_ids: BTreeSet::new(),
            request_due: None,
            pending: BTreeSet::new(),
            answered: 0,
            failed: 0,
            frame: None,
            server_requests: Vec::new(),
        }
    }

    /// The status reported so far.
    pub fn status(&self) -> Status {
        self.contract.status()
    }

    /// Whether the session reported closed for good.
    pub fn stopped(&self) -> bool {
        self.contract.stopped()
    }

    /// Control requests sent and neither answered nor failed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The host lost `socket`.
    pub fn socket_gone(&mut self, socket: SocketId) {
        self.contract.socket_gone(socket);
    }

    fn reset(&mut self) {
        self.reconnects = 0;
        self.backoff_step = 0;
        self.not_found = 0;
    }

    /// The application is about to call `reconnect()`.
    pub fn reconnect_fed(&mut self) {
        if !self.stopped() {
            self.reset();
            self.forced = true;
            self.next_attempt_at = None;
        }
    }

    /// The application is about to call "retry now".
    pub fn retry_now_fed(&mut self) {
        match self.status() {
            Status::Idle | Status::Reconnecting => {
                self.reset();
                self.next_attempt_at = None;
            }
            Status::Connecting | Status::Open => self.backoff_step = 0,
            Status::Closed => {}
        }
    }

    /// The application is about to close the session.
    pub fn close_fed(&mut self) {
        self.closing = true;
    }

    /// The next frame fed is this (or nothing must come of it, with `None`).
    pub fn expect_frame(&mut self, expect: Option<FrameExpect>) {
        self.frame = expect.map(|e| (e, false));
    }

    /// Checks what `send_control_request(payload)` returned while `status`.
    pub fn control_request(
        &mut self,
        status: Status,
        payload: &Value,
        result: &Result<String, HostedError>,
    ) -> Result<(), Violation> {
        match result {
            Ok(id) => {
                if status != Status::Open {
                    return fail(format!("a control request was accepted while {status:?} (S7)"));
                }
                if !self.request_ids.insert(id.clone()) {
                    return fail(format!("request_id {id} handed out twice (S7)"));
                }
                self.request_due = Some((id.clone(), payload.clone()));
            }
            Err(HostedError::NotConnected {
                status: said,
                payload: back,
            }) => {
                if status == Status::Open || *said != status {
                    return fail(format!("a control request refused as {said:?} while {status:?}"));
                }
                if **back != *payload {
                    return fail("a refused control request lost its payload");
                }
            }
            Err(other) => return fail(format!("a control request refused with {other:?}")),
        }
        Ok(())
    }

    /// Checks one piece of socket work.
    pub fn io(&mut self, io: &Io) -> Result<(), Violation> {
        self.contract.io(io).map_err(|e| Violation(e.0))?;
        if let Io::SendText { text, .. } = io {
            let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            match value["type"].as_str() {
                Some("control_request") => {
                    let Some((id, payload)) = self.request_due.take() else {
                        return fail(format!("wrote a control request nobody asked for: {text}"));
                    };
                    if value["request_id"] != id.as_str() || value["request"] != payload {
                        return fail(format!("control request {id} went out as {text}"));
                    }
                    self.pending.insert(id);
                }
                Some("control_response") => {}
                _ => return fail(format!("wrote a frame the application never sent: {text}")),
            }
        }
        Ok(())
    }

    /// Checks one event for the application at virtual time `now`.
    pub fn event(&mut self, now: Duration, event: &HostedEvent) -> Result<(), Violation> {
        match event {
            HostedEvent::Message(m) => {
                match &mut self.frame {
                    Some((FrameExpect::Message(v), seen)) if !*seen && v == m.value() => *seen = true,
                    _ => {
                        return fail(format!(
                            "handed up {:?}, which is not the frame delivered",
                            m.value()
                        ))
                    }
                }
                match m.kind() {
                    "control_response" => {
                        let id = m.value()["response"]["request_id"].as_str().unwrap_or_default();
                        if !self.pending.remove(id) {
                            return fail(format!("an answer to {id:?}, which is not a pending request"));
                        }
                        self.answered += 1;
                    }
                    "control_request" => {
                        let id = m.value()["request_id"].as_str().unwrap_or_default().to_owned();
                        self.server_requests.push(id);
                    }
                    _ => {}
                }
                Ok(())
            }
            HostedEvent::Lifecycle(note) => {
                if let Notification::FrameDropped(DropReason::Undecodable(_)) = note {
                    match &mut self.frame {
                        Some((FrameExpect::Dropped, seen)) if !*seen => *seen = true,
                        _ => return fail("dropped a frame that is an object with a string type (L5, S10)"),
                    }
                }
                self.contract.notification(note).map_err(|e| Violation(e.0))?;
                self.lifecycle(now, note)
            }
        }
    }

    fn lifecycle<M, E>(&mut self, now: Duration, note: &Notification<M, E>) -> Result<(), Violation> {
        match note {
            Notification::StatusChanged { from, to } if *to == Status::Connecting => {
                self.attempts += 1;
                if let Some(at) = self.next_attempt_at.take() {
                    if *from == Status::Reconnecting && now != at {
                        return fail(format!("the attempt started at {now:?}, it was due at {at:?}"));
                    }
                }
            }
            Notification::Connected { .. } => {
                self.ever_open = true;
                self.opened_at = Some(now);
            }
            Notification::Disconnected {
                failure, was_open, ..
            } => {
                let opened_at = self.opened_at.take();
                if *was_open != opened_at.is_some() {
                    return fail(format!(
                        "was_open {was_open}, but the model says {}",
                        opened_at.is_some()
                    ));
                }
                // Whatever was in flight on this connection fails with it.
                self.failed += self.pending.len() as u64;
                self.pending.clear();
                if *failure == Failure::Forced {
                    return Ok(());
                }
                if opened_at.is_some_and(|at| now.saturating_sub(at) >= self.t.stability) {
                    self.reset();
                }
                self.decision = Some(self.decide(failure));
            }
            Notification::ReconnectScheduled { delay, .. } => {
                let (lo, hi, why) = if std::mem::take(&mut self.forced) {
                    let (lo, hi) = self.t.jitter.bounds(self.t.force);
                    (lo, hi, "reconnect()".to_owned())
                } else {
                    match self.decision.take() {
                        Some(Decision::Reconnect { lo, hi, why }) => (lo, hi, why),
                        Some(Decision::Stop(reason)) => {
                            return fail(format!(
                                "scheduled a reconnect where the rules say stop: {reason}"
                            ))
                        }
                        None => return fail("scheduled a reconnect nobody decided"),
                    }
                };
                if *delay < lo || *delay > hi {
                    return fail(format!(
                        "reconnect delay {delay:?} for {why} outside [{lo:?}, {hi:?}]"
                    ));
                }
                self.next_attempt_at = Some(now + *delay);
            }
            Notification::Closed { reason } => {
                // A close by the application ends its requests with it.
                self.failed += self.pending.len() as u64;
                self.pending.clear();
                let name = stop_name(reason);
                if let StopReason::NeverOpened { .. } = reason {
                    if self.ever_open {
                        return fail("stopped as never opened after a connection had been open (D10)");
                    }
                }
                match self.decision.take() {
                    Some(Decision::Stop(expected)) if expected == name => self.check_counts(reason)?,
                    Some(d) => return fail(format!("stopped ({reason:?}) where the rules say {d:?}")),
                    None if name == "User" && self.closing => {}
                    None => return fail(format!("stopped ({reason:?}) with nothing to decide")),
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_counts(&self, reason: &StopReason) -> Result<(), Violation> {
        match reason {
            StopReason::BudgetExhausted { attempts, .. } if *attempts != HOSTED_RECONNECT_ATTEMPTS => fail(format!(
                "gave up after {attempts} failed attempts, the budget is {HOSTED_RECONNECT_ATTEMPTS} (S4, D10)"
            )),
            StopReason::RetriesExhausted { retries, .. } if *retries != SESSION_NOT_FOUND_RETRIES => {
                fail(format!("4001 retried {retries} times, not {SESSION_NOT_FOUND_RETRIES} (S3)"))
            }
            _ => Ok(()),
        }
    }

    /// The one decision the hosted rules allow for `failure` (S2–S4, D10).
    fn decide(&mut self, failure: &Failure) -> Decision {
        let close = match failure {
            Failure::Closed(c) => Some(c.code),
            _ => None,
        };
        if close == Some(4003) {
            return Decision::Stop("Permanent");
        }
        let (nominal, why) = if close == Some(4001) {
            self.not_found += 1;
            if self.not_found > SESSION_NOT_FOUND_RETRIES {
                return Decision::Stop("RetriesExhausted");
            }
            (
                SESSION_NOT_FOUND_STEP * self.not_found,
                format!("4001 retry {}", self.not_found),
            )
        } else {
            if !self.ever_open {
                return Decision::Stop("FirstConnectFailed");
            }
            let step = usize::try_from(self.backoff_step).unwrap_or(usize::MAX);
            self.backoff_step += 1;
            let nominal = HOSTED_BACKOFF[step.min(HOSTED_BACKOFF.len() - 1)];
            (nominal, format!("backoff step {step} after {}", failure.tag()))
        };
        self.reconnects += 1;
        if self.reconnects > HOSTED_RECONNECT_ATTEMPTS {
            return Decision::Stop("BudgetExhausted");
        }
        let (lo, hi) = self.t.jitter.bounds(nominal);
        Decision::Reconnect { lo, hi, why }
    }

    /// Checks the end of a drain: every decision made, every accepted request
    /// written, the frame handled, one token fetched per attempt (S1).
    pub fn after_drain(
        &mut self,
        status: Status,
        has_deadline: bool,
        socket: Option<SocketId>,
        tokens_fetched: u64,
    ) -> Result<(), Violation> {
        self.contract
            .after_drain(status, has_deadline, socket)
            .map_err(|e| Violation(e.0))?;
        if let Some(d) = self.decision.take() {
            return fail(format!("disconnected, and then nothing: the rules say {d:?}"));
        }
        if let Some((id, _)) = self.request_due.take() {
            return fail(format!("control request {id} was accepted but never written"));
        }
        if let Some((expect, false)) = self.frame.take() {
            return fail(format!("a delivered frame vanished: expected {expect:?}"));
        }
        if tokens_fetched != self.attempts {
            return fail(format!(
                "{tokens_fetched} tokens fetched for {} attempts (S1: one fresh token per attempt)",
                self.attempts
            ));
        }
        Ok(())
    }
}

fn stop_name(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::User => "User",
        StopReason::Permanent { .. } => "Permanent",
        StopReason::RetriesExhausted { .. } => "RetriesExhausted",
        StopReason::BudgetExhausted { .. } => "BudgetExhausted",
        StopReason::NeverOpened { .. } => "NeverOpened",
        StopReason::FirstConnectFailed { .. } => "FirstConnectFailed",
    }
}
