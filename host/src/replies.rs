//! Which reply each mesh request expects, written once for both hosts' verbs.

use tether_proto::mesh::wire::{MemoryRow, Peer, Reply, Skill, SkillSummary, StateRow};

/// `list_peers`' reply.
pub fn peers(r: Reply) -> Option<Vec<Peer>> {
    match r {
        Reply::Peers(p) => Some(p),
        _ => None,
    }
}

/// `get_state`'s reply; `None` inside when the key is absent.
pub fn state(r: Reply) -> Option<Option<StateRow>> {
    match r {
        Reply::State(row) => Some(row),
        _ => None,
    }
}

/// `list_state`'s reply.
pub fn state_list(r: Reply) -> Option<Vec<StateRow>> {
    match r {
        Reply::StateList(rows) => Some(rows),
        _ => None,
    }
}

/// `remember`'s reply: the memory's id when the broker gives one.
pub fn remembered(r: Reply) -> Option<Option<String>> {
    match r {
        Reply::Remembered(id) => Some(id),
        _ => None,
    }
}

/// `recall`'s reply.
pub fn recalled(r: Reply) -> Option<Vec<MemoryRow>> {
    match r {
        Reply::Recalled(rows) => Some(rows),
        _ => None,
    }
}

/// `list_skills`' reply.
pub fn skills(r: Reply) -> Option<Vec<SkillSummary>> {
    match r {
        Reply::Skills(s) => Some(s),
        _ => None,
    }
}

/// `get_skill`'s reply; `None` inside when not found.
pub fn skill(r: Reply) -> Option<Option<Skill>> {
    match r {
        Reply::Skill(s) => Some(s.map(|s| *s)),
        _ => None,
    }
}
