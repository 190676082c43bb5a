//! Action queues that give memory back after a burst.

use std::collections::VecDeque;

/// Capacity a drained queue keeps: enough for the steady state (a tick's ping, a
/// send, an ack, a push and its confirmation: at most two actions each), so that
/// stays allocation-free.
const KEEP: usize = 2;

/// Shrinks a drained queue that a burst (the handshake, a reconnect flushing the
/// outbound queue, a batch of pushes) grew past [`KEEP`]: an idle connection
/// should not hold its busiest moment's memory.
pub(crate) fn trim_drained<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > KEEP {
        queue.shrink_to(KEEP);
    }
}
