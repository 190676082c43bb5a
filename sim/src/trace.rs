//! The trace of a run: a step count, a hash of every line (equal runs have
//! equal hashes) and the last lines for a failure report.

use std::collections::VecDeque;
use std::time::Duration;

/// Trace lines kept for a failure report.
const TRACE_TAIL: usize = 80;

/// One run's trace; lines are formatted only when it is on.
#[derive(Debug)]
pub struct Trace {
    on: bool,
    /// Steps taken.
    pub steps: u64,
    /// FNV-1a over every line.
    pub hash: u64,
    tail: VecDeque<String>,
}

impl Trace {
    /// A trace that keeps lines when `on`.
    pub fn new(on: bool) -> Self {
        Trace {
            on,
            steps: 0,
            hash: 0xcbf2_9ce4_8422_2325,
            tail: VecDeque::with_capacity(TRACE_TAIL),
        }
    }

    /// Counts a step at virtual time `now`, and keeps its line when on.
    pub fn note(&mut self, now: Duration, line: impl FnOnce() -> String) {
        self.steps += 1;
        if !self.on {
            return;
        }
        let line = format!("{:>10.3}s {}", now.as_secs_f64(), line());
        for b in line.bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if self.tail.len() == TRACE_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// The last lines, oldest first.
    pub fn into_tail(self) -> Vec<String> {
        self.tail.into_iter().collect()
    }
}
