//! What a host gives a protocol's client: one handle to one driven machine,
//! and how to wait for it. Every client type ([`MeshClient`](crate::MeshClient),
//! [`HostedClient`](crate::HostedClient), [`GenericClient`](crate::GenericClient))
//! is written once over it; the two hosts differ only in how they wait.
//!
//! tether-tokio's `Connection` waits with futures ([`Drive::Wait`] is a boxed
//! future), tether-mio's blocks ([`Drive::Wait`] is the value itself). Either
//! way a call runs on the host's task or thread with the machine at hand, which
//! is drained right after, and its caller waits for one [`Answer`]: filled by
//! the call itself, or later by a waiter it filed (a mesh send's ack).

use std::time::Duration;

use tether_proto::lifecycle::{Event, LifecycleError, Status};
use tether_proto::{Machine, Now};

use crate::error::{ConnectError, Shutdown};
use crate::oneshot::{answer, Answer};
use crate::queue::IoStats;
use crate::router::Router;
use crate::transport::Transport;

/// How both hosts' connection handles print, `Connection { id, status }`:
/// which connection and where its lifecycle is now, so a log line or a test
/// failure reads the same whichever host wrote it.
pub fn fmt_connection(
    f: &mut std::fmt::Formatter<'_>,
    id: &dyn std::fmt::Display,
    status: Status,
) -> std::fmt::Result {
    f.debug_struct("Connection")
        .field("id", &format_args!("{id}"))
        .field("status", &status)
        .finish()
}

/// One connection driven by a host, seen by the client layer above it: the one
/// call path ([`run`](Self::run)), the first connect, close, and the status.
pub trait Drive: Sized + Send + Sync + 'static {
    /// The machine driven.
    type Machine: Machine + Send + 'static;
    /// Where its events go.
    type Router: Router<Self::Machine>;
    /// What a call gives back: the value itself on a blocking host, a future
    /// of it on an async one.
    type Wait<'a, T: Send + 'a>;
    /// The status as this host shows it: a snapshot (blocking), a watch (async).
    type Status;
    /// Whether calls block. A blocking mesh client has no stream to poll, so it
    /// keeps one push receiver from the start for `recv_push`.
    const BLOCKING: bool;

    /// Starts driving `machine` at once; `router` receives its news from the
    /// first attempt on. `url` decides whether TLS is set up (`wss:`, any case).
    fn spawn(
        machine: Self::Machine,
        router: Self::Router,
        url: &str,
        transport: &Transport,
    ) -> Result<Self, ConnectError>;

    /// Queues `f` for the host's task or thread, where it runs with the
    /// machine, its router and the time, and the machine is drained after it;
    /// then waits for `answer` (which `f`, or a waiter it files, fills) and
    /// hands the value to `finish`: the one call path of every protocol's
    /// client. One answer per call, so a caller is woken once. If the host has
    /// ended, `f` is dropped unrun and the answer is [`Shutdown`].
    fn run<T: Send + 'static, U: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Self::Machine, &mut Self::Router, Now) + Send + 'static,
        answer: Answer<T>,
        finish: impl FnOnce(Result<T, Shutdown>) -> U + Send + 'static,
    ) -> Self::Wait<'_, U>;

    /// A value already known, as a call's result.
    fn ready<'a, T: Send + 'a>(value: T) -> Self::Wait<'a, T>;

    /// `f` applied to what `wait` gives.
    fn map<'a, T: Send + 'a, U: Send + 'a>(
        wait: Self::Wait<'a, T>,
        f: impl FnOnce(T) -> U + Send + 'a,
    ) -> Self::Wait<'a, U>;

    /// Waits for the first connect's outcome (L8): `Ok` on the first open, the
    /// stop reason if the machine closed first; `Ok` at once after it.
    fn connected(&self) -> Self::Wait<'_, Result<(), ConnectError>>;

    /// Waits for the first open and hands the connection back; on failure it
    /// closes and waits until the host's task or thread has ended, so nothing
    /// outlives the error (D1). Every client's `connect`.
    fn opened(self) -> Self::Wait<'static, Result<Self, ConnectError>>;

    /// Closes for good and waits until the task or thread has finished the close
    /// handshake (or given up on it) and ended (L11). Idempotent.
    fn close(&self) -> Self::Wait<'_, ()>;

    /// The connection status.
    fn status(&self) -> Self::Status;

    /// The socket counters: write queue depth and overflows, messages,
    /// flushes, counted by tether-host's one rule on both hosts.
    fn io_stats(&self) -> Self::Wait<'_, Result<IoStats, Shutdown>>;

    /// Waits until the status satisfies `pred`, at most `timeout`; the status
    /// then, or `None` on timeout.
    fn wait_status(
        &self,
        pred: impl Fn(Status) -> bool + Send + Sync + 'static,
        timeout: Duration,
    ) -> Self::Wait<'_, Option<Status>>;

    /// Runs `f` with the machine (send a frame, read a counter …); the machine
    /// is drained right after.
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Self::Machine, Now) -> T + Send + 'static,
    ) -> Self::Wait<'_, Result<T, Shutdown>> {
        call(self, move |m, _, now| f(m, now), |r| r)
    }

    /// Feeds a lifecycle input: `Close`, `Reconnect`, `RetryNow`, `Connect`.
    fn control(&self, event: Event) -> Self::Wait<'_, Result<Result<(), LifecycleError>, Shutdown>> {
        self.with(move |m, now| m.handle(now, event))
    }

    /// "The network is back": reset the backoff and connect now (X11).
    fn retry_now(&self) -> Self::Wait<'_, Result<(), Shutdown>> {
        lifecycle_input(self, Event::RetryNow)
    }

    /// Forces a fresh connection after a short delay (S5).
    fn reconnect(&self) -> Self::Wait<'_, Result<(), Shutdown>> {
        lifecycle_input(self, Event::Reconnect)
    }
}

/// A lifecycle input whose refusal means the machine is closed for good.
fn lifecycle_input<C: Drive>(conn: &C, event: Event) -> C::Wait<'_, Result<(), Shutdown>> {
    call(
        conn,
        move |m, _, now| m.handle(now, event),
        |r| r?.map_err(|_| Shutdown),
    )
}

/// Runs `f` on the host's task or thread and waits for what it returns.
pub(crate) fn call<C: Drive, T: Send + 'static, U: Send + 'static>(
    conn: &C,
    f: impl FnOnce(&mut C::Machine, &mut C::Router, Now) -> T + Send + 'static,
    finish: impl FnOnce(Result<T, Shutdown>) -> U + Send + 'static,
) -> C::Wait<'_, U> {
    let (promise, answer) = answer();
    conn.run(move |m, r, now| promise.give(f(m, r, now)), answer, finish)
}

/// A blocking host's connection: what `recv_push` and other calls that wait on
/// the caller's thread need.
pub trait Blocking: Drive {}

#[cfg(test)]
mod tests {
    use super::*;

    struct Handle(&'static str, Status);

    impl std::fmt::Debug for Handle {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            fmt_connection(f, &self.0, self.1)
        }
    }

    #[test]
    fn a_connection_prints_its_id_as_displayed_and_its_status() {
        // Both hosts print through this: tokio's numeric id and mio's `r1.c0.0`
        // (whose Debug would be `ConnId(r1.c0.0)`) read the same way.
        assert_eq!(
            format!("{:?}", Handle("r1.c0.0", Status::Open)),
            "Connection { id: r1.c0.0, status: Open }"
        );
    }
}
