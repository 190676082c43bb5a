//! Hello admission at a bounded rate (issue 16): after a restart every client
//! of a broker comes back within a few seconds; a broker that admits at most
//! `per_second` hellos refuses the rest with `capacity` and tells each refused
//! client when its turn comes, from the queue of turns it has already handed out.
//!
//! The limiter is GCRA (the generic cell rate algorithm): a hello conforms when
//! it arrives no earlier than `burst − 1` intervals before the theoretical
//! arrival time of the next one. A refused hello is handed the next free turn
//! after both that time and every turn promised before it, so clients that
//! come back when they are told arrive one interval apart, which is exactly the
//! rate the limiter admits. Pure: time is an input.

use std::time::{Duration, Instant};

/// How fast a broker admits hellos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloRate {
    /// Hellos admitted per second, sustained.
    pub per_second: u32,
    /// Hellos admitted at once above that rate (at least one).
    pub burst: u32,
    /// The longest wait a refusal asks for: a client refused while the queue
    /// is longer than this is told this, and the queue does not grow.
    pub max_wait: Duration,
}

impl HelloRate {
    /// `per_second` hellos a second, a burst of a tenth of a second's worth,
    /// and waits of at most five minutes (tether's own cap on a broker's hint).
    pub fn per_second(per_second: u32) -> Self {
        HelloRate {
            per_second,
            burst: (per_second / 10).max(1),
            max_wait: Duration::from_secs(300),
        }
    }

    /// The time between two admissions at the sustained rate.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.per_second.max(1)))
    }
}

/// What [`Admission::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Go ahead with the hello.
    Yes,
    /// Refused: come back after this long (the `retryAfterMs` of the refusal).
    Later(Duration),
}

/// The limiter and its queue of promised turns.
#[derive(Clone, Debug)]
pub struct Admission {
    rate: HelloRate,
    interval: Duration,
    /// How far ahead of its theoretical time a hello may come: the burst.
    tolerance: Duration,
    /// Theoretical arrival time of the next conforming hello (GCRA).
    next: Option<Instant>,
    /// The last turn handed to a refused hello.
    promised: Option<Instant>,
    /// Hellos admitted.
    pub admitted: u64,
    /// Hellos refused.
    pub refused: u64,
    /// Refusals whose wait was cut to `max_wait` (the queue was full).
    pub waits_capped: u64,
}

impl Admission {
    /// An empty queue admitting at `rate`.
    pub fn new(rate: HelloRate) -> Self {
        let interval = rate.interval();
        Admission {
            rate,
            interval,
            tolerance: interval.saturating_mul(rate.burst.max(1) - 1),
            next: None,
            promised: None,
            admitted: 0,
            refused: 0,
            waits_capped: 0,
        }
    }

    /// The settings.
    pub fn rate(&self) -> HelloRate {
        self.rate
    }

    /// Decides on a hello that arrived at `now`.
    pub fn admit(&mut self, now: Instant) -> Admit {
        let next = self.next.map_or(now, |n| n.max(now));
        // Earliest instant a hello conforms: `next − tolerance`.
        let early = next.checked_sub(self.tolerance).unwrap_or(now);
        if now >= early {
            self.next = next.checked_add(self.interval).or(Some(next));
            self.admitted += 1;
            return Admit::Yes;
        }
        self.refused += 1;
        let after_promised = self
            .promised
            .and_then(|p| p.checked_add(self.interval))
            .map_or(early, |p| p.max(early));
        let turn = after_promised.max(now);
        let wait = turn.saturating_duration_since(now);
        if wait > self.rate.max_wait {
            // The queue is full: say the longest wait, promise nothing more.
            self.waits_capped += 1;
            return Admit::Later(self.rate.max_wait);
        }
        self.promised = Some(turn);
        Admit::Later(wait)
    }

    /// How long the queue of promised turns reaches past `now`.
    pub fn queued_for(&self, now: Instant) -> Duration {
        self.promised
            .map_or(Duration::ZERO, |p| p.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_and_the_rest_are_given_turns_one_interval_apart() {
        let t0 = Instant::now();
        let mut a = Admission::new(HelloRate {
            per_second: 10,
            burst: 2,
            max_wait: Duration::from_secs(300),
        });
        assert_eq!(a.admit(t0), Admit::Yes);
        assert_eq!(a.admit(t0), Admit::Yes);
        // The burst is spent: the next conforming time is t0 + 100 ms.
        let waits: Vec<_> = (0..4).map(|_| a.admit(t0)).collect();
        let ms = |n| Admit::Later(Duration::from_millis(n));
        assert_eq!(waits, vec![ms(100), ms(200), ms(300), ms(400)]);
        // Each comes back at its turn and is admitted.
        for turn in 1..=4 {
            assert_eq!(
                a.admit(t0 + Duration::from_millis(100 * turn)),
                Admit::Yes,
                "turn {turn}"
            );
        }
        assert_eq!((a.admitted, a.refused), (6, 4));
    }

    #[test]
    fn a_full_queue_asks_for_the_longest_wait_and_stops_growing() {
        let t0 = Instant::now();
        let mut a = Admission::new(HelloRate {
            per_second: 1,
            burst: 1,
            max_wait: Duration::from_secs(3),
        });
        assert_eq!(a.admit(t0), Admit::Yes);
        for n in 1..=3 {
            assert_eq!(a.admit(t0), Admit::Later(Duration::from_secs(n)));
        }
        assert_eq!(a.admit(t0), Admit::Later(Duration::from_secs(3)));
        assert_eq!(a.waits_capped, 1);
        assert_eq!(a.queued_for(t0), Duration::from_secs(3));
    }
}
