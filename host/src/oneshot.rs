//! One answer, handed from the host's thread or task to whoever waits for it:
//! `.await` in async code, [`Answer::wait`] in blocking code. One type for both
//! hosts, so a protocol's client is written once over either (see [`Drive`](crate::Drive)).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::Shutdown;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Slot<T> {
    value: Option<T>,
    /// The giving side is gone: no value will come after the one (if any) held.
    given_up: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

/// A one-shot channel: the [`Promise`] to fill and the [`Answer`] to wait on.
pub fn answer<T>() -> (Promise<T>, Answer<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            given_up: false,
            waker: None,
        }),
        ready: Condvar::new(),
    });
    (
        Promise {
            shared: Some(Arc::clone(&shared)),
        },
        Answer { shared },
    )
}

/// The giving side; dropping it unfilled makes the answer [`Shutdown`].
pub struct Promise<T> {
    shared: Option<Arc<Shared<T>>>,
}

impl<T> std::fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promise").finish_non_exhaustive()
    }
}

impl<T> Promise<T> {
    /// Hands `value` to the waiter (a waiter that has gone away loses it).
    pub fn give(mut self, value: T) {
        if let Some(shared) = self.shared.take() {
            settle(&shared, Some(value));
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            settle(&shared, None);
        }
    }
}

fn settle<T>(shared: &Shared<T>, value: Option<T>) {
    let waker = {
        let mut slot = lock(&shared.slot);
        slot.value = value;
        slot.given_up = true;
        slot.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
    shared.ready.notify_all();
}

/// The waiting side: `.await` it, or [`wait`](Self::wait) on a blocking thread.
pub struct Answer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").finish_non_exhaustive()
    }
}

impl<T> Answer<T> {
    /// Blocks until the value comes, or [`Shutdown`] if the promise was dropped.
    pub fn wait(self) -> Result<T, Shutdown> {
        let mut slot = lock(&self.shared.slot);
        while !slot.given_up {
            slot = self
                .shared
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
        slot.value.take().ok_or(Shutdown)
    }
}

impl<T> Future for Answer<T> {
    type Output = Result<T, Shutdown>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.shared.slot);
        if slot.given_up {
            return Poll::Ready(slot.value.take().ok_or(Shutdown));
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_waiter_gets_the_value_given_on_another_thread() {
        let (promise, answer) = answer();
        let giver = std::thread::spawn(move || promise.give(7));
        assert_eq!(answer.wait(), Ok(7));
        giver.join().unwrap();
    }

    #[test]
    fn a_dropped_promise_is_a_shutdown_not_a_hang() {
        let (promise, answer) = answer::<u8>();
        drop(promise);
        assert_eq!(answer.wait(), Err(Shutdown));
    }

    #[test]
    fn an_async_waiter_is_woken_by_the_value() {
        let (promise, mut answer) = answer();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut answer).poll(&mut cx).is_pending());
        promise.give("here");
        assert_eq!(Pin::new(&mut answer).poll(&mut cx), Poll::Ready(Ok("here")));
    }
}
