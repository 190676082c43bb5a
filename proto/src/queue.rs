//! Action queues that give memory back after a burst.

use std::collections::VecDeque;

/// Capacity a drained session queue keeps: enough for the steady state (a
/// tick's ping, a send, an ack, a push and its confirmation: at most two
/// actions each), so that stays allocation-free.
pub(crate) const KEEP_SESSION: usize = 2;

/// Capacity a drained lifecycle queue keeps. Every steady-state input gives
/// the lifecycle one action at most (a tick its ping, a frame its message, a
/// send its text), and a session above it moves each one out at once; a
/// second slot would be 128 bytes per connection that only a rare suspend
/// probe (two actions, one allocation) ever uses.
pub(crate) const KEEP_LIFECYCLE: usize = 1;

/// Shrinks a drained queue that a burst (the handshake, a reconnect flushing the
/// outbound queue, a batch of pushes) grew past `keep`: an idle connection
/// should not hold its busiest moment's memory.
pub(crate) fn trim_drained<T>(queue: &mut VecDeque<T>, keep: usize) {
    if queue.is_empty() && queue.capacity() > keep {
        queue.shrink_to(keep);
    }
}
