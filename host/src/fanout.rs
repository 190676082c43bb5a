//! One subscriber queue for both hosts: pushes and events fan out to every
//! receiver, each bounded, a slow one losing its oldest items (counted), and
//! every receiver ending once the connection has closed for good.
//!
//! One implementation serves async receivers (a waker) and blocking ones (a
//! condition variable), so the two hosts cannot differ in who loses what. A
//! receiver's buffer grows only as far as it falls behind: an idle connection
//! holds no slots.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Slot<T> {
    items: VecDeque<T>,
    missed: u64,
    closed: bool,
    gone: bool,
    waker: Option<Waker>,
}

struct Sub<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

struct Subs<T> {
    list: Vec<Arc<Sub<T>>>,
    closed: bool,
}

/// The sending side, shared by the host (which publishes) and the handles
/// (which subscribe).
pub struct Fanout<T> {
    subs: Mutex<Subs<T>>,
    capacity: usize,
    /// A receiver subscribed at creation, handed to the first caller of
    /// `subscribe`, so the first subscriber misses nothing from the start.
    first: Mutex<Option<Receiver<T>>>,
}

impl<T> std::fmt::Debug for Fanout<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Fanout<T> {
    /// A fanout whose receivers buffer at most `capacity` items each (at least one).
    pub fn new(capacity: usize) -> Self {
        Fanout {
            subs: Mutex::new(Subs {
                list: Vec::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
            first: Mutex::new(None),
        }
    }

    /// A fanout whose first subscriber sees every item from now on, however
    /// late it subscribes: what a client wants for its first attempt's events.
    pub fn with_first(capacity: usize) -> Self {
        let fanout = Fanout::new(capacity);
        let first = fanout.subscribe();
        *lock(&fanout.first) = Some(first);
        fanout
    }

    /// Lets go of the receiver kept for the first subscriber, if nobody took
    /// it: once a client's `connect` has returned, the first attempt is over,
    /// and keeping its news for a subscriber that may never come would pin
    /// them for the connection's whole life. Later subscribers see items from
    /// the time they subscribe, as after any other subscription.
    pub fn release_first(&self) {
        let Some(first) = lock(&self.first).take() else {
            return;
        };
        let mut subs = lock(&self.subs);
        subs.list.retain(|sub| !Arc::ptr_eq(sub, &first.sub));
        if subs.list.is_empty() {
            // Nobody listens, maybe never: hold no slots for them.
            subs.list = Vec::new();
        }
    }

    /// A receiver of every item published from now on; one that has already
    /// ended if the fanout is closed.
    pub fn subscribe(&self) -> Receiver<T> {
        if let Some(first) = lock(&self.first).take() {
            return first;
        }
        let mut subs = lock(&self.subs);
        let sub = Arc::new(Sub {
            slot: Mutex::new(Slot {
                items: VecDeque::new(),
                missed: 0,
                closed: subs.closed,
                gone: false,
                waker: None,
            }),
            ready: Condvar::new(),
        });
        if !subs.closed {
            subs.list.push(Arc::clone(&sub));
        }
        Receiver { sub }
    }

    /// Hands `item` to every receiver; a full one drops its oldest first (X4).
    pub fn publish(&self, item: T) {
        let mut subs = lock(&self.subs);
        subs.list.retain(|sub| {
            let mut slot = lock(&sub.slot);
            if slot.gone {
                return false;
            }
            if slot.items.len() >= self.capacity {
                slot.items.pop_front();
                slot.missed += 1;
            }
            slot.items.push_back(item.clone());
            wake(sub, &mut slot);
            true
        });
    }

    /// True when someone listens (so a host can skip building an item).
    pub fn has_receivers(&self) -> bool {
        !lock(&self.subs).list.is_empty()
    }

    /// Ends every receiver once it has taken what is buffered; later
    /// subscribers end at once.
    pub fn close(&self) {
        let mut subs = lock(&self.subs);
        subs.closed = true;
        for sub in subs.list.drain(..) {
            let mut slot = lock(&sub.slot);
            slot.closed = true;
            wake(&sub, &mut slot);
        }
    }
}

fn wake<T>(sub: &Sub<T>, slot: &mut Slot<T>) {
    if let Some(waker) = slot.waker.take() {
        waker.wake();
    }
    sub.ready.notify_all();
}

/// One subscriber's end: `recv().await` in async code, `recv_timeout` in
/// blocking code; `None` once the connection has closed and the buffer is empty.
pub struct Receiver<T> {
    sub: Arc<Sub<T>>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// What a receiver found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing buffered now.
    Empty,
    /// The connection closed for good and everything was taken.
    Closed,
}

impl<T> Receiver<T> {
    /// Items this receiver lost by falling behind (X4).
    pub fn missed(&self) -> u64 {
        lock(&self.sub.slot).missed
    }

    /// The next item if one is buffered.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut slot = lock(&self.sub.slot);
        match slot.items.pop_front() {
            Some(item) => Ok(item),
            None if slot.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next item, waiting at most `timeout` (blocking); `None` on timeout
    /// or once closed and empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now().checked_add(timeout);
        let mut slot = lock(&self.sub.slot);
        loop {
            if let Some(item) = slot.items.pop_front() {
                return Some(item);
            }
            if slot.closed {
                return None;
            }
            let left = match deadline {
                Some(at) => at
                    .checked_duration_since(Instant::now())
                    .filter(|d| !d.is_zero())?,
                None => Duration::from_secs(3600),
            };
            slot = self
                .sub
                .ready
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Polls for the next item (async).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = lock(&self.sub.slot);
        if let Some(item) = slot.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The next item (async); `None` once closed and empty.
    pub fn recv(&mut self) -> impl Future<Output = Option<T>> + '_ {
        std::future::poll_fn(|cx| self.poll_recv(cx))
    }
}

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_recv(cx)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        lock(&self.sub.slot).gone = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_receiver_loses_its_oldest_and_counts_them() {
        // proves X4 (and the one slow-subscriber rule of both hosts)
        let fan = Fanout::new(2);
        let rx = fan.subscribe();
        for i in 0..5 {
            fan.publish(i);
        }
        assert_eq!(rx.missed(), 3);
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(rx.try_recv(), Ok(4));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn receivers_end_after_close_once_drained() {
        let fan = Fanout::new(4);
        let rx = fan.subscribe();
        fan.publish(1);
        fan.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Some(1));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), None);
        assert_eq!(fan.subscribe().try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn the_first_subscriber_sees_everything_from_the_start() {
        let fan = Fanout::with_first(4);
        fan.publish(1);
        let first = fan.subscribe();
        let second = fan.subscribe();
        fan.publish(2);
        assert_eq!(first.try_recv(), Ok(1));
        assert_eq!(first.try_recv(), Ok(2));
        assert_eq!(second.try_recv(), Ok(2));
    }

    #[test]
    fn a_released_first_receiver_holds_nothing() {
        // proves X4: an unclaimed first receiver is let go with what it kept
        let fan = Fanout::with_first(4);
        fan.publish(1);
        fan.release_first();
        assert!(!fan.has_receivers(), "nothing is kept for nobody");
        let late = fan.subscribe();
        fan.publish(2);
        assert_eq!(late.try_recv(), Ok(2));
        assert_eq!(late.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_claimed_first_receiver_is_kept_by_its_owner() {
        let fan = Fanout::with_first(4);
        fan.publish(1);
        let first = fan.subscribe();
        fan.release_first();
        fan.publish(2);
        assert_eq!(first.try_recv(), Ok(1));
        assert_eq!(first.try_recv(), Ok(2));
    }

    #[test]
    fn dropped_receivers_are_forgotten() {
        let fan = Fanout::new(4);
        drop(fan.subscribe());
        fan.publish(1);
        assert!(!fan.has_receivers());
    }
}
