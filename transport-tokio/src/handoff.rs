//! What a connection's handles share with its driver task, in one allocation:
//! the bounded queue of commands, the first connect's outcome, the status, how
//! many handles are alive, and whether the driver has ended.
//!
//! A tokio `mpsc` channel would do the queue's job, but it sets up a block of
//! 32 slots for every connection before the first command, a `oneshot` plus a
//! `Mutex` for the first outcome cost three more allocations, and a `watch`
//! channel for the status 350 bytes; an idle connection pays for none of that
//! here (the status `watch` is made when a handle first asks for one). The driver is woken only when the
//! queue goes from empty to not empty, and takes the whole queue at once, so a
//! pipelined burst of commands costs one wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use futures_util::task::AtomicWaker;

use tether_host::{ConnectError, Shutdown};
use tether_proto::lifecycle::Status;
use tokio::sync::{watch, Notify};

/// Where the first connect's outcome is.
enum First {
    /// Not known yet.
    Pending,
    /// Known, not yet asked for; boxed, as a connection keeps this slot for
    /// its whole life and the error is large.
    Known(Result<(), Box<ConnectError>>),
    /// Handed to the first `connected()` that asked.
    Taken,
}

struct State<C> {
    cmds: VecDeque<C>,
    /// A sender found the queue full and waits for room.
    full: bool,
    handles: usize,
    first: First,
    status: Status,
    /// The status for handles that wait on its changes, once one asked.
    status_tx: Option<watch::Sender<Status>>,
    ended: bool,
}

/// The shared part; handles and the driver each hold an `Arc` of it.
pub(crate) struct Handoff<C> {
    state: Mutex<State<C>>,
    capacity: usize,
    /// Set when the driver has work: the queue went from empty to not empty,
    /// or the last handle went.
    work: AtomicBool,
    /// The driver task, woken when `work` is set. One waiter only, so a
    /// registration is two atomic steps, not a `Notify`'s locked waiter list
    /// on every turn of the driver's loop.
    driver: AtomicWaker,
    /// Wakes handles: room in the queue, the first outcome, the driver's end.
    news: Notify,
}

impl<C> Handoff<C> {
    /// A hand-off for one handle, holding at most `capacity` commands (at least one).
    pub(crate) fn new(capacity: usize, status: Status) -> Self {
        Handoff {
            state: Mutex::new(State {
                cmds: VecDeque::new(),
                full: false,
                handles: 1,
                first: First::Pending,
                status,
                status_tx: None,
                ended: false,
            }),
            capacity: capacity.max(1),
            work: AtomicBool::new(false),
            driver: AtomicWaker::new(),
            news: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // --- the handles' side ---

    /// Queues `cmd` for the driver, waiting while the queue is full; refused
    /// once the driver has ended.
    pub(crate) async fn send(&self, cmd: C) -> Result<(), Shutdown> {
        let mut cmd = cmd;
        loop {
            // Created before the check, so a notification between the check
            // and the wait is not lost.
            let room = self.news.notified();
            match self.try_send(cmd) {
                Ok(()) => return Ok(()),
                Err(Full::Ended) => return Err(Shutdown),
                Err(Full::Queue(back)) => cmd = back,
            }
            room.await;
        }
    }

    fn try_send(&self, cmd: C) -> Result<(), Full<C>> {
        let mut state = self.lock();
        if state.ended {
            return Err(Full::Ended);
        }
        if state.cmds.len() >= self.capacity {
            state.full = true;
            return Err(Full::Queue(cmd));
        }
        state.cmds.push_back(cmd);
        let first_in = state.cmds.len() == 1;
        drop(state);
        // A queue that was not empty has a wake-up pending already, and the
        // driver takes the whole queue when it comes.
        if first_in {
            self.wake_driver();
        }
        Ok(())
    }

    /// One more handle.
    pub(crate) fn add_handle(&self) {
        self.lock().handles += 1;
    }

    /// One handle fewer; the last one gone wakes the driver to close.
    pub(crate) fn drop_handle(&self) {
        let mut state = self.lock();
        state.handles = state.handles.saturating_sub(1);
        let last = state.handles == 0;
        drop(state);
        if last {
            self.wake_driver();
        }
    }

    /// The first connect's outcome: the first caller gets it, later ones `Ok`
    /// at once; `Shutdown` if the driver ended without one.
    pub(crate) async fn first_outcome(&self) -> Result<(), ConnectError> {
        loop {
            let news = self.news.notified();
            {
                let mut state = self.lock();
                match std::mem::replace(&mut state.first, First::Taken) {
                    First::Known(outcome) => return outcome.map_err(|e| *e),
                    First::Taken => return Ok(()),
                    First::Pending if state.ended => {
                        return Err(ConnectError::Shutdown);
                    }
                    First::Pending => state.first = First::Pending,
                }
            }
            news.await;
        }
    }

    /// The status now.
    pub(crate) fn status(&self) -> Status {
        self.lock().status
    }

    /// A receiver of the status and its changes; `changed()` fails once the
    /// driver has ended.
    pub(crate) fn watch_status(&self) -> watch::Receiver<Status> {
        let mut state = self.lock();
        let status = state.status;
        if state.ended {
            // Its sender gone at once: `changed()` says the connection is over.
            return watch::channel(status).1;
        }
        state
            .status_tx
            .get_or_insert_with(|| watch::channel(status).0)
            .subscribe()
    }

    /// Waits until the driver has ended.
    pub(crate) async fn ended(&self) {
        loop {
            let news = self.news.notified();
            if self.lock().ended {
                return;
            }
            news.await;
        }
    }

    fn wake_driver(&self) {
        self.work.store(true, Ordering::Release);
        self.driver.wake();
    }

    // --- the driver's side ---

    /// Ready once there is work (a command queued or the last handle gone);
    /// the driver task is woken when there is.
    pub(crate) fn poll_work(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        // Registered before the check: a wake between the two is not lost.
        self.driver.register(cx.waker());
        if self.work.swap(false, Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits until there is work ([`Handoff::poll_work`]), for the tests.
    #[cfg(test)]
    pub(crate) async fn work(&self) {
        std::future::poll_fn(|cx| self.poll_work(cx)).await;
    }

    /// Moves every queued command into `batch` (empty, its buffer reused: the
    /// two buffers trade places, so a steady stream allocates nothing) and
    /// says whether any handle is left.
    pub(crate) fn take(&self, batch: &mut VecDeque<C>) -> bool {
        let mut state = self.lock();
        std::mem::swap(&mut state.cmds, batch);
        let handles = state.handles > 0;
        let someone_waits = std::mem::take(&mut state.full);
        drop(state);
        if someone_waits {
            self.news.notify_waiters();
        }
        handles
    }

    /// Records a status change, for `status()` and every status receiver.
    pub(crate) fn set_status(&self, status: Status) {
        let mut state = self.lock();
        state.status = status;
        if let Some(tx) = &state.status_tx {
            tx.send_replace(status);
        }
    }

    /// Records the first connect's outcome, unless one is known already.
    pub(crate) fn set_first(&self, outcome: Result<(), ConnectError>) {
        let mut state = self.lock();
        if matches!(state.first, First::Pending) {
            state.first = First::Known(outcome.map_err(Box::new));
            drop(state);
            self.news.notify_waiters();
        }
    }

    /// The driver has ended: later commands are refused, the queued ones are
    /// dropped (their callers see `Shutdown`), every waiter is woken.
    pub(crate) fn end(&self) {
        let left = {
            let mut state = self.lock();
            state.ended = true;
            if matches!(state.first, First::Pending) {
                state.first = First::Known(Err(Box::new(ConnectError::Shutdown)));
            }
            (std::mem::take(&mut state.cmds), state.status_tx.take())
        };
        // Dropped outside the lock: a command's drop wakes its caller, the
        // status sender's ends every `changed()`.
        drop(left);
        self.news.notify_waiters();
    }
}

enum Full<C> {
    Ended,
    Queue(C),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_burst_wakes_the_driver_once_and_is_taken_whole() {
        let h = Handoff::new(8, Status::Idle);
        for i in 0..5 {
            h.send(i).await.unwrap_or_else(|e| panic!("{e}"));
        }
        // One stored wake-up for the five: the first `work()` returns at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), h.work())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut batch = VecDeque::new();
        assert!(h.take(&mut batch));
        assert_eq!(batch, [0, 1, 2, 3, 4]);
        // No second wake-up is stored.
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), h.work()).await;
        assert!(again.is_err(), "a burst is one wake-up");
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_sender_wait_for_room() {
        // proves X4: the command queue is bounded
        let h = Arc::new(Handoff::new(2, Status::Idle));
        h.send(1).await.unwrap_or_else(|e| panic!("{e}"));
        h.send(2).await.unwrap_or_else(|e| panic!("{e}"));
        let sender = {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.send(3).await })
        };
        tokio::task::yield_now().await;
        assert!(!sender.is_finished(), "the third waits for room");
        let mut batch = VecDeque::new();
        h.take(&mut batch);
        assert_eq!(batch, [1, 2]);
        sender
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        batch.clear();
        h.take(&mut batch);
        assert_eq!(batch, [3]);
    }

    #[tokio::test]
    async fn after_the_end_commands_are_refused() {
        let h = Handoff::new(4, Status::Idle);
        h.send(1).await.unwrap_or_else(|e| panic!("{e}"));
        h.end();
        assert!(h.send(2).await.is_err(), "refused, not queued");
        assert!(matches!(h.first_outcome().await, Err(ConnectError::Shutdown)));
        h.ended().await;
    }

    #[tokio::test]
    async fn the_first_outcome_goes_to_the_first_asker() {
        let h = Arc::new(Handoff::<()>::new(4, Status::Idle));
        let asker = {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.first_outcome().await })
        };
        tokio::task::yield_now().await;
        h.set_first(Err(ConnectError::NoCredentials));
        let first = asker.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(first, Err(ConnectError::NoCredentials)));
        assert!(h.first_outcome().await.is_ok(), "later askers: at once");
    }

    #[tokio::test]
    async fn status_receivers_see_changes_and_end_with_the_driver() {
        let h = Handoff::<()>::new(4, Status::Idle);
        h.set_status(Status::Connecting);
        let mut rx = h.watch_status();
        assert_eq!(*rx.borrow(), Status::Connecting, "made with the status now");
        h.set_status(Status::Open);
        rx.changed().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*rx.borrow_and_update(), Status::Open);
        h.end();
        assert!(rx.changed().await.is_err(), "ends with the driver");
        assert!(h.watch_status().changed().await.is_err(), "and so do later ones");
    }

    #[tokio::test]
    async fn the_last_handle_gone_wakes_the_driver() {
        let h = Handoff::<()>::new(4, Status::Idle);
        h.add_handle();
        h.drop_handle();
        let early = tokio::time::timeout(std::time::Duration::from_millis(20), h.work()).await;
        assert!(early.is_err(), "one handle is left");
        h.drop_handle();
        tokio::time::timeout(std::time::Duration::from_secs(5), h.work())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!h.take(&mut VecDeque::new()));
    }
}
