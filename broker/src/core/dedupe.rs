//! The bounded window that makes resent `send`s exactly-once.

use std::collections::{HashMap, VecDeque};

/// What the first `send` with a given idempotency id was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirstAck {
    pub message_id: String,
}

/// `(sender key, client_message_id)` → first ack, oldest evicted first.
#[derive(Debug, Default)]
pub(crate) struct Dedupe {
    entries: HashMap<(String, String), FirstAck>,
    order: VecDeque<(String, String)>,
}

impl Dedupe {
    pub fn get(&self, key: &(String, String)) -> Option<&FirstAck> {
        self.entries.get(key)
    }

    /// Remembers `key`; returns how many old entries were evicted to make room.
    pub fn insert(&mut self, key: (String, String), ack: FirstAck, cap: usize) -> u64 {
        let mut evicted = 0;
        if self.entries.insert(key.clone(), ack).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > cap {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
                evicted += 1;
            }
        }
        evicted
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
