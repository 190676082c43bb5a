//! The named timer table.
//!
//! Every deadline of the lifecycle is one slot here, so the next wake-up is the
//! smallest slot and a stalled simulation can say which timer it waits on.

use std::time::Instant;

/// The lifecycle's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The requested socket must open by then.
    Open,
    /// The hello ack must arrive by then (L2, L4).
    HelloAck,
    /// The next attempt starts then (L6).
    Reconnect,
    /// The liveness watchdog's next check (L9).
    Watchdog,
    /// The probe sent after a suspend must be answered by then (X13).
    Probe,
}

impl std::fmt::Display for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Timer {
    pub(crate) const COUNT: usize = 5;
    const ALL: [Timer; Timer::COUNT] = [
        Timer::Open,
        Timer::HelloAck,
        Timer::Reconnect,
        Timer::Watchdog,
        Timer::Probe,
    ];

    /// A stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Timer::Open => "open",
            Timer::HelloAck => "hello_ack",
            Timer::Reconnect => "reconnect",
            Timer::Watchdog => "watchdog",
            Timer::Probe => "probe",
        }
    }
}

/// A slot per [`Timer`].
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable {
    slots: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.slots[timer as usize] = Some(at);
    }

    pub(crate) fn clear(&mut self, timer: Timer) {
        self.slots[timer as usize] = None;
    }

    pub(crate) fn clear_all(&mut self) {
        self.slots = [None; Timer::COUNT];
    }

    /// The earliest armed timer; ties go to the one declared first.
    pub(crate) fn next(&self) -> Option<(Instant, Timer)> {
        Timer::ALL
            .iter()
            .filter_map(|&t| self.slots[t as usize].map(|at| (at, t)))
            .min()
    }

    /// Disarms and returns the earliest timer that is due at `now`, skipping the
    /// ones in `fired` (those that already fired in this tick) and adding it there.
    ///
    /// Each timer fires at most once per tick: a deadline re-armed at `now` (a
    /// saturated one, at the very end of representable time) would otherwise fire
    /// again and again inside one `handle`.
    pub(crate) fn pop_expired(
        &mut self,
        now: Instant,
        fired: &mut [bool; Timer::COUNT],
    ) -> Option<(Instant, Timer)> {
        let (at, timer) = Timer::ALL
            .iter()
            .filter(|&&t| !fired[t as usize])
            .filter_map(|&t| self.slots[t as usize].map(|at| (at, t)))
            .min()?;
        if at <= now {
            self.clear(timer);
            fired[timer as usize] = true;
            Some((at, timer))
        } else {
            None
        }
    }
}
