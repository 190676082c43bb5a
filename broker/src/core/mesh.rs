//! What the broker keeps per mesh: who is open or lingering, shared state, memories,
//! and messages kept for presences that are gone.

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
    /// Presences in their grace after their connection closed, by lease id (= age order).
    pub lingering: BTreeSet<u64>,
    pub state: BTreeMap<String, StateRow>,
    /// Bytes of `state`, keys and value JSON together.
    pub state_bytes: usize,
    pub memories: VecDeque<MemoryRow>,
    /// Bytes of `memories`.
    pub memory_bytes: usize,
    /// Messages of presences whose grace ran out, by the key they were for; handed to
    /// the next connection that speaks with that key.
    pub offline: HashMap<String, VecDeque<Queued>>,
    /// Member keys that said hello here, newest last (bounded): a member hello may not
    /// claim one of them as its session key.
    pub member_keys: VecDeque<String>,
}

impl Mesh {
    pub fn offline_len(&self) -> usize {
        self.offline.values().map(VecDeque::len).sum()
    }

    /// Remembers a member key, forgetting the oldest beyond `cap`.
    pub fn remember_member(&mut self, pubkey: &str, cap: usize) {
        if self.member_keys.iter().any(|k| k == pubkey) {
            return;
        }
        self.member_keys.push_back(pubkey.to_owned());
        while self.member_keys.len() > cap.max(1) {
            self.member_keys.pop_front();
        }
    }

    /// Presences that count against the mesh's capacity: open and lingering.
    pub fn presences(&self) -> usize {
        self.open.len() + self.lingering.len()
    }
}
