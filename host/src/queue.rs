//! The one bounded write queue and its one overflow rule.
//!
//! Frames the machine wrote wait here until the host hands them to the socket
//! (once per turn, so a burst becomes one write). A socket that lets this queue
//! fill — by frames or by bytes — has a peer that stopped reading long ago: the
//! host drops it and reports it closed with 1006 and
//! [`WRITE_QUEUE_FULL`](crate::socket::WRITE_QUEUE_FULL), and the machine's
//! reconnect policy takes over. Nothing is silently discarded while the socket
//! lives, and every overflow is counted in the connection's [`IoStats`] by the
//! one function both hosts write through, [`queue_write`].

use std::collections::VecDeque;
use std::fmt;

use tether_proto::lifecycle::{Event, SocketId};
use tungstenite::Message;

use crate::socket::{message_len, queue_overflowed};

/// Counters of one connection's socket work, kept across its sockets (X4);
/// the same fields, counted by the same rules, on both hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Frames waiting behind a socket that does not take them now.
    pub queued: usize,
    /// Sockets dropped because that queue was full.
    pub queue_overflows: u64,
    /// WebSocket messages received (text, binary, ping, pong).
    pub messages_in: u64,
    /// WebSocket messages handed to the socket (text, ping, close).
    pub messages_out: u64,
    /// Batches handed to the socket: one per turn that wrote anything.
    pub flushes: u64,
}

/// Queues a frame the machine wrote, under the one overflow rule: counted as a
/// message out when it fits; when the queue is full, the overflow is counted and
/// logged and the `Err` carries the event to feed once the host has dropped the
/// socket (`conn` names the connection in the log).
pub fn queue_write(
    queue: &mut WriteQueue,
    stats: &mut IoStats,
    conn: &dyn fmt::Display,
    socket: SocketId,
    message: Message,
) -> Result<(), Event> {
    if queue.push(message).is_ok() {
        stats.messages_out += 1;
        return Ok(());
    }
    stats.queue_overflows += 1;
    crate::log::log_overflow(conn, socket.0);
    Err(queue_overflowed(socket))
}

/// The write queue was full; the socket must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("write queue full")]
pub struct QueueFull;

/// Frames a drained write queue keeps room for.
const KEEP_FRAMES: usize = 2;

/// Frames written by the machine, not yet taken by the socket; bounded by
/// frames and by bytes (X4).
#[derive(Debug)]
pub struct WriteQueue {
    frames: VecDeque<Message>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

impl WriteQueue {
    /// An empty queue holding at most `max_frames` frames and `max_bytes` bytes
    /// (each at least one, so a single frame always fits).
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        WriteQueue {
            frames: VecDeque::new(),
            bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Queues a frame, or refuses it when the queue is full (then drop the
    /// socket: the overflow rule). A frame alone larger than the byte bound is
    /// taken into an empty queue, so the message size limit, not this one,
    /// decides what can be sent.
    pub fn push(&mut self, message: Message) -> Result<(), QueueFull> {
        let len = message_len(&message);
        let over_bytes = !self.frames.is_empty() && self.bytes.saturating_add(len) > self.max_bytes;
        if self.frames.len() >= self.max_frames || over_bytes {
            return Err(QueueFull);
        }
        self.bytes += len;
        self.frames.push_back(message);
        Ok(())
    }

    /// Queues the close frame past the bounds: it is the last frame this socket
    /// will ever carry, and the peer should see it.
    pub fn push_close(&mut self, message: Message) {
        self.bytes += message_len(&message);
        self.frames.push_back(message);
    }

    /// The oldest frame, to hand to the socket.
    pub fn pop(&mut self) -> Option<Message> {
        let message = self.frames.pop_front()?;
        self.bytes -= message_len(&message).min(self.bytes);
        if self.frames.is_empty() {
            self.bytes = 0;
            // A burst should not pin its memory on an idle connection: keep
            // room for a steady-state turn (a ping, an ack, a push's
            // confirmation), two 56-byte frames rather than the four the
            // handshake's first push set up.
            if self.frames.capacity() > KEEP_FRAMES {
                self.frames.shrink_to(KEEP_FRAMES);
            }
        }
        Some(message)
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflow_is_counted_and_becomes_a_1006_close() {
        // proves X4: the refusal is counted, and the socket is reported dead
        let mut q = WriteQueue::new(1, 100);
        let mut stats = IoStats::default();
        assert_eq!(queue_write(&mut q, &mut stats, &"", SocketId(3), text(1)), Ok(()));
        let refused = queue_write(&mut q, &mut stats, &"", SocketId(3), text(1));
        assert_eq!(refused, Err(queue_overflowed(SocketId(3))));
        assert_eq!((stats.messages_out, stats.queue_overflows), (1, 1));
        assert_eq!(q.len(), 1, "the refused frame is not queued");
    }

    fn text(n: usize) -> Message {
        Message::Text("x".repeat(n).into())
    }

    #[test]
    fn the_queue_refuses_past_its_frame_and_byte_bounds() {
        // proves X4: the write queue has a bound in frames and in bytes
        let mut q = WriteQueue::new(3, 10);
        assert!(q.push(text(4)).is_ok());
        assert!(q.push(text(4)).is_ok());
        assert_eq!(q.push(text(4)), Err(QueueFull), "12 bytes > 10");
        assert!(q.push(text(2)).is_ok());
        assert_eq!(q.push(text(0)), Err(QueueFull), "3 frames");
        q.push_close(Message::Close(None));
        assert_eq!(q.len(), 4);
        while q.pop().is_some() {}
        assert_eq!((q.len(), q.bytes()), (0, 0));
        assert!(q.push(text(50)).is_ok(), "one large frame fits an empty queue");
    }
}
