//! The lifecycle's contract as a checker: what every machine's outputs must
//! respect, whatever the protocol and whatever its peer does.
//!
//! The lifecycle's own property tests, the simulator's mesh clients and its
//! hosted sessions all feed their outputs through one [`ContractCheck`], so
//! the rules are written once. A host author can run it over a recorded trace
//! too. It is pure bookkeeping: it decides nothing for the machine.

use std::time::Duration;

use super::{Config, Io, Notification, SocketId, Status};
use crate::policy::{is_sendable_close_code, Jitter, Limit, LimitDelay, Verdict};

/// A broken rule of the contract, said in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContractViolation(pub String);

/// Recognises the one frame a protocol may write before its connection is open.
pub type HelloTest = fn(&str) -> bool;

/// Follows one machine's outputs and refuses any that break the contract:
/// status changes legal and in order, sockets asked for only while connecting
/// and one at a time, nothing written before open but the hello, pings only
/// while open, sendable close codes, reconnect delays within their bounds, no
/// stall while open or reconnecting, nothing after the stop.
#[derive(Clone, Debug)]
pub struct ContractCheck {
    status: Status,
    live: Option<SocketId>,
    texts_before_open: u32,
    hello: Option<HelloTest>,
    stopped: bool,
    delays: Vec<(Duration, Duration)>,
    /// Limited-retry rules whose n-th retry waits `step × n` (n from 1 to the
    /// limit), with their jitter.
    linear: Vec<(Duration, u32, Jitter)>,
    /// How a peer's retry-after becomes a delay: the jitter spreading it
    /// upwards and the cap cutting it (X10); no cap unless from a configuration.
    retry_after: (Jitter, Duration),
}

fn fail<T>(what: String) -> Result<T, ContractViolation> {
    Err(ContractViolation(what))
}

/// Whether the lifecycle may go from `from` to `to` (its transition table).
pub fn legal_transition(from: Status, to: Status) -> bool {
    matches!(
        (from, to),
        (
            Status::Idle,
            Status::Connecting | Status::Reconnecting | Status::Closed
        ) | (
            Status::Connecting,
            Status::Open | Status::Reconnecting | Status::Closed
        ) | (Status::Open, Status::Reconnecting | Status::Closed)
            | (Status::Reconnecting, Status::Connecting | Status::Closed)
    )
}

impl ContractCheck {
    /// A checker for a machine in `Idle`. `hello` recognises the one frame its
    /// protocol writes before open; `None` for a protocol without a hello,
    /// which may write nothing before open.
    pub fn new(hello: Option<HelloTest>) -> Self {
        ContractCheck {
            status: Status::Idle,
            live: None,
            texts_before_open: 0,
            hello,
            stopped: false,
            delays: Vec::new(),
            linear: Vec::new(),
            retry_after: (Jitter::NONE, Duration::MAX),
        }
    }

    /// A checker that allows exactly the reconnect delays a machine made with
    /// `config` can schedule: each step of its backoff, its forced-reconnect
    /// delay and each retry of its policy's limited rules, within its jitter.
    /// A peer's retry-after hints are the caller's to add
    /// ([`add_retry_after`](Self::add_retry_after)): only it knows which it sent.
    pub fn for_config(config: &Config, hello: Option<HelloTest>) -> Self {
        let jitter = config.jitter;
        let mut check = ContractCheck::new(hello).allow_delay(config.force_reconnect_delay, jitter);
        check.retry_after = (jitter, config.max_retry_after);
        for &step in config.backoff.steps() {
            check = check.allow_delay(step, jitter);
        }
        let verdicts = config.policy.rules().iter().map(|rule| rule.verdict);
        for verdict in verdicts.chain([config.policy.unmatched]) {
            if let Verdict::Limited(Limit {
                max_retries,
                delay: LimitDelay::Linear(step),
            }) = verdict
            {
                if max_retries > 0 && !check.linear.contains(&(step, max_retries, jitter)) {
                    check.linear.push((step, max_retries, jitter));
                }
            }
        }
        check
    }

    /// Allows reconnect delays within the jitter bounds of `nominal`.
    pub fn allow_delay(mut self, nominal: Duration, jitter: Jitter) -> Self {
        self.delays.push(jitter.bounds(nominal));
        self
    }

    /// Allows a peer's retry-after `hint`, as the machine treats it: cut to the
    /// configuration's cap, then spread only upwards by its jitter. Called while
    /// checking, when the peer has sent it.
    pub fn add_retry_after(&mut self, hint: Duration) {
        let (jitter, cap) = self.retry_after;
        self.add_floor(hint.min(cap), jitter);
    }

    /// Allows reconnect delays from `floor` up to its upper jitter bound.
    pub fn add_floor(&mut self, floor: Duration, jitter: Jitter) {
        let (_, hi) = jitter.bounds(floor);
        if !self.delays.contains(&(floor, hi)) {
            self.delays.push((floor, hi));
        }
    }

    /// The longest reconnect delay this checker allows: what a test bounds
    /// the time to the next attempt by.
    pub fn longest_delay(&self) -> Duration {
        let listed = self.delays.iter().map(|&(_, hi)| hi);
        let linear = self
            .linear
            .iter()
            .map(|&(step, max, jitter)| jitter.bounds(step.saturating_mul(max)).1);
        listed.chain(linear).max().unwrap_or_default()
    }

    fn delay_allowed(&self, delay: Duration) -> bool {
        let listed = self.delays.iter().any(|(lo, hi)| delay >= *lo && delay <= *hi);
        listed
            || self
                .linear
                .iter()
                .any(|&(step, max, jitter)| linear_allows(step, max, jitter, delay))
    }

    /// The status reported so far.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the machine reported closed for good.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The socket the machine asked for and has not given up.
    pub fn live(&self) -> Option<SocketId> {
        self.live
    }

    /// The host lost `socket` (it reported a close or a failed connect).
    pub fn socket_gone(&mut self, socket: SocketId) {
        if self.live == Some(socket) {
            self.live = None;
        }
    }

    /// Checks one piece of socket work the machine asked for.
    pub fn io(&mut self, io: &Io) -> Result<(), ContractViolation> {
        if self.stopped {
            return fail(format!("asked for socket work after it stopped: {io:?}"));
        }
        match io {
            Io::OpenSocket { socket, .. } => {
                if self.status != Status::Connecting {
                    return fail(format!("asked for {socket:?} while {:?}", self.status));
                }
                if let Some(live) = self.live {
                    return fail(format!("opened {socket:?} while {live:?} was alive"));
                }
                self.live = Some(*socket);
                self.texts_before_open = 0;
            }
            Io::CloseSocket { socket, code, .. } => {
                if !is_sendable_close_code(*code) {
                    return fail(format!("sent the local-only close code {code}"));
                }
                self.give_up(*socket)?;
            }
            Io::TerminateSocket { socket } => self.give_up(*socket)?,
            Io::SendText { socket, text } => {
                if self.live != Some(*socket) {
                    return fail(format!("wrote on {socket:?}, which is not its socket"));
                }
                if self.status != Status::Open {
                    let hello = self.hello.is_some_and(|is_hello| is_hello(text));
                    if !hello || self.texts_before_open > 0 {
                        return fail(format!(
                            "wrote before open something other than one hello: {text}"
                        ));
                    }
                    self.texts_before_open += 1;
                }
            }
            Io::SendPing { socket } => {
                if self.status != Status::Open || self.live != Some(*socket) {
                    return fail(format!("pinged {socket:?} while {:?}", self.status));
                }
            }
        }
        Ok(())
    }

    fn give_up(&mut self, socket: SocketId) -> Result<(), ContractViolation> {
        if self.live != Some(socket) {
            return fail(format!("closed {socket:?}, which is not its socket"));
        }
        self.live = None;
        Ok(())
    }

    /// Checks one notification for the application.
    pub fn notification<M, E>(&mut self, note: &Notification<M, E>) -> Result<(), ContractViolation> {
        match note {
            Notification::StatusChanged { from, to } => {
                if *from != self.status {
                    return fail(format!(
                        "status change from {from:?} reported while {:?}",
                        self.status
                    ));
                }
                if !legal_transition(*from, *to) {
                    return fail(format!("illegal transition {from:?} → {to:?}"));
                }
                self.status = *to;
            }
            Notification::ReconnectScheduled { delay, .. } if !self.delay_allowed(*delay) => {
                return fail(format!("reconnect delay {delay:?} outside every allowed bound"));
            }
            Notification::Closed { .. } if self.stopped => {
                return fail("closed for good twice".into());
            }
            Notification::Closed { .. } => self.stopped = true,
            _ => {}
        }
        Ok(())
    }

    /// Checks the machine's state after a drain: the status it reports is the
    /// one it announced, a stopped machine holds no timer and no socket, and an
    /// open or reconnecting one has a timer armed (or nothing would ever move it).
    pub fn after_drain(
        &self,
        status: Status,
        has_deadline: bool,
        socket: Option<SocketId>,
    ) -> Result<(), ContractViolation> {
        if status != self.status {
            return fail(format!("status is {status:?}, announced {:?}", self.status));
        }
        if self.stopped && (has_deadline || socket.is_some() || self.live.is_some()) {
            return fail("a timer or a socket survived the stop".into());
        }
        if matches!(status, Status::Open | Status::Reconnecting) && !has_deadline {
            return fail(format!("{status:?} with no timer armed"));
        }
        Ok(())
    }
}

/// Whether the n-th retry of a linear rule, for some n in `1..=max`, may wait
/// `delay`. A jittered `step × n` widens with n, so the one n to try is the
/// first whose upper bound reaches `delay`: any earlier ends below it, and any
/// later starts no lower.
fn linear_allows(step: Duration, max: u32, jitter: Jitter, delay: Duration) -> bool {
    let hi = |n: u32| jitter.bounds(step.saturating_mul(n)).1;
    if hi(max) < delay {
        return false;
    }
    let (mut lo_n, mut hi_n) = (1u32, max);
    while lo_n < hi_n {
        let mid = lo_n + (hi_n - lo_n) / 2;
        if hi(mid) >= delay {
            hi_n = mid;
        } else {
            lo_n = mid + 1;
        }
    }
    jitter.bounds(step.saturating_mul(lo_n)).0 <= delay
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ClosePolicy, Match, Rule};

    const T: Duration = Duration::from_secs(1);

    fn open_io(socket: u64) -> Io {
        Io::OpenSocket {
            socket: SocketId(socket),
            url: "ws://x".into(),
            headers: Vec::new(),
        }
    }

    fn status(check: &mut ContractCheck, from: Status, to: Status) {
        let note = Notification::<(), ()>::StatusChanged { from, to };
        check.notification(&note).unwrap_or_else(|e| panic!("{e}"));
    }

    fn scheduled(check: &mut ContractCheck, delay: Duration) -> Result<(), ContractViolation> {
        check.notification(&Notification::<(), ()>::ReconnectScheduled { attempt: 2, delay })
    }

    #[test]
    fn a_config_allows_its_own_delays_and_no_others() {
        let mut config = Config::new("ws://x");
        config.jitter = Jitter::NONE;
        config.policy = ClosePolicy::new(
            vec![Rule {
                on: Match::Close(4001),
                verdict: Verdict::Limited(Limit {
                    max_retries: 1_000_000,
                    delay: LimitDelay::Linear(Duration::from_secs(2)),
                }),
            }],
            Verdict::Reconnect,
        );
        let mut check = ContractCheck::for_config(&config, None);
        for &step in config.backoff.steps() {
            assert_eq!(scheduled(&mut check, step), Ok(()), "{step:?}");
        }
        assert_eq!(scheduled(&mut check, config.force_reconnect_delay), Ok(()));
        // Every retry of the linear rule, however many it allows, and nothing between.
        for n in [1u32, 2, 3, 999_999, 1_000_000] {
            assert_eq!(
                scheduled(&mut check, Duration::from_secs(2) * n),
                Ok(()),
                "retry {n}"
            );
        }
        assert!(scheduled(&mut check, Duration::from_secs(2) * 1_000_001).is_err());
        assert!(scheduled(&mut check, Duration::from_millis(3_001)).is_err());
        assert_eq!(
            check.longest_delay(),
            Duration::from_secs(2) * 1_000_000,
            "the last retry is the longest wait"
        );
        // A retry-after floor the peer sent joins while checking.
        let hint = Duration::from_millis(12_345);
        assert!(scheduled(&mut check, hint).is_err());
        check.add_retry_after(hint);
        assert_eq!(scheduled(&mut check, hint), Ok(()));
    }

    #[test]
    fn a_jittered_linear_retry_is_allowed_anywhere_in_its_bounds() {
        let jitter = Jitter::from_permille_saturating(500);
        let mut check = ContractCheck::new(None);
        check.linear.push((T, 3, jitter));
        // Retry 3 spans 1.5 s to 4.5 s, retry 1 0.5 s to 1.5 s.
        for ms in [500, 1_499, 1_500, 4_500] {
            assert_eq!(
                scheduled(&mut check, Duration::from_millis(ms)),
                Ok(()),
                "{ms} ms"
            );
        }
        for ms in [499, 4_501] {
            assert!(
                scheduled(&mut check, Duration::from_millis(ms)).is_err(),
                "{ms} ms"
            );
        }
    }

    #[test]
    fn a_socket_is_asked_for_only_while_connecting() {
        let mut check = ContractCheck::new(None);
        assert!(check.io(&open_io(1)).is_err(), "asked for while idle");
        status(&mut check, Status::Idle, Status::Connecting);
        assert_eq!(check.io(&open_io(1)), Ok(()));
        status(&mut check, Status::Connecting, Status::Reconnecting);
        check.socket_gone(SocketId(1));
        assert!(check.io(&open_io(2)).is_err(), "asked for while reconnecting");
    }

    #[test]
    fn an_open_or_reconnecting_machine_without_a_timer_has_stalled() {
        let mut check = ContractCheck::new(None);
        status(&mut check, Status::Idle, Status::Connecting);
        assert_eq!(check.after_drain(Status::Connecting, false, None), Ok(()));
        status(&mut check, Status::Connecting, Status::Reconnecting);
        assert!(check.after_drain(Status::Reconnecting, false, None).is_err());
        assert_eq!(check.after_drain(Status::Reconnecting, true, None), Ok(()));
    }
}
