//! What the broker keeps per mesh: who is open, shared state, memories, offline queues.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use tether_proto::mesh::wire::{MemoryRow, StateRow};

use super::output::ConnId;

/// A message waiting for a recipient that is not connected.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub message_id: String,
    pub client_message_id: Option<String>,
    /// The encoded push frame, sent as is on delivery.
    pub text: String,
}

/// One mesh.
#[derive(Debug, Default)]
pub(crate) struct Mesh {
    /// Open connections, in id order so broadcasts are deterministic.
    pub open: BTreeSet<ConnId>,
    pub state: BTreeMap<String, StateRow>,
    pub memories: VecDeque<MemoryRow>,
    /// Offline messages by recipient key.
    pub offline: HashMap<String, VecDeque<Queued>>,
    /// Member keys seen in accepted hellos, so an open mesh can queue for them; oldest first.
    pub known_members: VecDeque<String>,
}

impl Mesh {
    pub fn knows_member(&self, pubkey: &str) -> bool {
        self.known_members.iter().any(|k| k == pubkey)
    }

    /// Remembers a member key, forgetting the oldest (and its queue) beyond `cap`.
    pub fn remember_member(&mut self, pubkey: &str, cap: usize) -> u64 {
        if self.knows_member(pubkey) {
            return 0;
        }
        self.known_members.push_back(pubkey.to_owned());
        let mut dropped = 0;
        while self.known_members.len() > cap {
            if let Some(old) = self.known_members.pop_front() {
                dropped += self.offline.remove(&old).map_or(0, |q| q.len() as u64);
            }
        }
        dropped
    }

    pub fn offline_len(&self) -> usize {
        self.offline.values().map(VecDeque::len).sum()
    }
}
