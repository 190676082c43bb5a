//! Requests (`_reqId` echoed on the reply) and fire-and-forget presence and state
//! updates: peers, shared state, memories, skills.

use serde_json::{Map, Value};
use tether_proto::mesh::wire::{
    AckFrame, BrokerFrame, MemoryResultsFrame, MemoryRow, MemoryStoredFrame, Peer, PeersListFrame,
    SetProfileFrame, SkillDataFrame, SkillListFrame, StateChangeFrame, StateListFrame, StateResultFrame,
    StateRow,
};
use tether_proto::Now;

use super::broker::Broker;
use super::clock::rfc3339_from_unix_ms;
use super::conn::{Conn, Seat};
use super::output::ConnId;

impl Broker {
    fn seat_of(&self, conn: ConnId) -> Option<&Seat> {
        self.conns.get(&conn).and_then(Conn::seat)
    }

    fn seat_mut_of(&mut self, conn: ConnId) -> Option<&mut Seat> {
        self.conns.get_mut(&conn).and_then(Conn::seat_mut)
    }

    /// Every presence of the requester's mesh, open or lingering in its grace, the
    /// requester included; hidden ones only to their own member (as the real broker).
    pub(crate) fn list_peers(&mut self, conn: ConnId, req_id: Option<String>) {
        let Some(me) = self.seat_of(conn).cloned() else {
            return;
        };
        let Some(mesh) = self.meshes.get(&me.mesh_id) else {
            return;
        };
        let open = mesh.open.iter().filter_map(|&id| self.seat_of(id));
        let lingering = mesh
            .lingering
            .iter()
            .filter_map(|id| self.leases.get(id).map(|l| &l.seat));
        let peers: Vec<Peer> = open
            .chain(lingering)
            .filter(|s| s.visible || s.member_pubkey == me.member_pubkey)
            .map(|s| self.peer_row(s))
            .collect();
        self.send_list(conn, peers, |peers| {
            PeersListFrame {
                peers,
                req_id: req_id.clone(),
            }
            .into()
        });
    }

    pub(crate) fn get_state(&mut self, conn: ConnId, key: String, req_id: Option<String>) {
        let row = self
            .seat_of(conn)
            .and_then(|s| self.meshes.get(&s.mesh_id))
            .and_then(|m| m.state.get(&key))
            .cloned();
        let frame = match row {
            Some(row) => StateResultFrame {
                key: row.key,
                value: row.value,
                updated_by: row.updated_by,
                updated_at: row.updated_at,
                req_id,
            },
            None => StateResultFrame {
                key,
                req_id,
                ..StateResultFrame::default()
            },
        };
        self.send_frame(conn, frame);
    }

    pub(crate) fn list_state(&mut self, conn: ConnId, req_id: Option<String>) {
        let entries = self
            .seat_of(conn)
            .and_then(|s| self.meshes.get(&s.mesh_id))
            .map(|m| m.state.values().cloned().collect())
            .unwrap_or_default();
        self.send_list(conn, entries, |entries| {
            StateListFrame {
                entries,
                req_id: req_id.clone(),
            }
            .into()
        });
    }

    /// Stores the value and tells every other open connection of the mesh.
    pub(crate) fn set_state(
        &mut self,
        conn: ConnId,
        key: String,
        value: Value,
        req_id: Option<String>,
        now: Now,
    ) {
        let Some(seat) = self.seat_of(conn) else {
            return;
        };
        let (mesh_id, updated_by) = (seat.mesh_id.clone(), seat.display_name.clone());
        let value_len = serde_json::to_string(&value).map_or(usize::MAX, |t| t.len());
        let checked = self
            .check_len("key", &key, self.config.max_state_key_len)
            .and_then(|()| self.check_len_n("value", value_len, self.config.max_state_value_len));
        if let Err(e) = checked {
            return self.refuse_field(conn, e, req_id);
        }
        let cap = self.config.max_state_keys_per_mesh;
        let cap_bytes = self.config.max_state_bytes_per_mesh;
        let Some(mesh) = self.meshes.get_mut(&mesh_id) else {
            return;
        };
        let old = mesh
            .state
            .get(&key)
            .map_or(0, |row| state_cost(&row.key, &row.value));
        let after = mesh.state_bytes.saturating_sub(old) + key.len() + value_len;
        if (old == 0 && mesh.state.len() >= cap) || after > cap_bytes {
            self.stats.state_refused += 1;
            let message = format!(
                "state_full: mesh holds {} keys, {} bytes",
                mesh.state.len(),
                mesh.state_bytes
            );
            return self.send_error(conn, "state_full", message, None, req_id);
        }
        mesh.state_bytes = after;
        let row = StateRow {
            key: key.clone(),
            value: value.clone(),
            updated_by: updated_by.clone(),
            updated_at: rfc3339_from_unix_ms(now.unix_ms),
        };
        mesh.state.insert(key.clone(), row);
        let others: Vec<ConnId> = mesh.open.iter().copied().filter(|&id| id != conn).collect();
        let change = StateChangeFrame {
            key,
            value,
            updated_by,
        };
        for other in others {
            self.send_frame(other, change.clone());
        }
    }

    pub(crate) fn remember(
        &mut self,
        conn: ConnId,
        content: String,
        tags: Vec<String>,
        req_id: Option<String>,
        now: Now,
    ) {
        let Some(seat) = self.seat_of(conn) else {
            return;
        };
        let (mesh_id, by) = (seat.mesh_id.clone(), seat.display_name.clone());
        let len = content.len() + tags.iter().map(String::len).sum::<usize>();
        let checked = self
            .check_len_n("memory", len, self.config.max_memory_len)
            .and_then(|()| self.check_list("tags", tags.iter().map(String::as_str)));
        if let Err(e) = checked {
            return self.refuse_field(conn, e, req_id);
        }
        let id = self.new_id("mem");
        let cap = self.config.max_memories_per_mesh;
        let cap_bytes = self.config.max_memory_bytes_per_mesh;
        if let Some(mesh) = self.meshes.get_mut(&mesh_id) {
            let row = MemoryRow {
                id: id.clone(),
                content,
                tags,
                remembered_by: by,
                remembered_at: rfc3339_from_unix_ms(now.unix_ms),
            };
            mesh.memory_bytes += memory_cost(&row);
            mesh.memories.push_back(row);
            while mesh.memories.len() > cap || mesh.memory_bytes > cap_bytes {
                let Some(old) = mesh.memories.pop_front() else {
                    break;
                };
                mesh.memory_bytes = mesh.memory_bytes.saturating_sub(memory_cost(&old));
                self.stats.memories_evicted += 1;
            }
        }
        let frame = MemoryStoredFrame {
            id: Some(id),
            memory_id: None,
            req_id,
        };
        self.send_frame(conn, frame);
    }

    /// Case-insensitive substring match on content and tags; an empty query matches all.
    pub(crate) fn recall(&mut self, conn: ConnId, query: &str, req_id: Option<String>) {
        let needle = query.to_lowercase();
        let memories = self
            .seat_of(conn)
            .and_then(|s| self.meshes.get(&s.mesh_id))
            .map(|m| {
                m.memories
                    .iter()
                    .filter(|row| {
                        row.content.to_lowercase().contains(&needle)
                            || row.tags.iter().any(|t| t.to_lowercase().contains(&needle))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        self.send_list(conn, memories, |memories| {
            MemoryResultsFrame {
                memories,
                req_id: req_id.clone(),
            }
            .into()
        });
    }

    /// Deletes the memory and answers as the real broker does: an `ack` whose `id` and
    /// `messageId` are the memory id, `queued: false`, `_reqId` echoed.
    pub(crate) fn forget_memory(&mut self, conn: ConnId, memory_id: String, req_id: Option<String>) {
        let Some(mesh_id) = self.seat_of(conn).map(|s| s.mesh_id.clone()) else {
            return;
        };
        if let Some(mesh) = self.meshes.get_mut(&mesh_id) {
            let mut freed = 0;
            mesh.memories.retain(|row| {
                let keep = row.id != memory_id;
                if !keep {
                    freed += memory_cost(row);
                }
                keep
            });
            mesh.memory_bytes = mesh.memory_bytes.saturating_sub(freed);
        }
        let ack = AckFrame {
            id: memory_id.clone(),
            message_id: memory_id,
            queued: false,
            error: None,
            req_id,
        };
        self.send_frame(conn, BrokerFrame::Ack(ack));
    }

    pub(crate) fn list_skills(&mut self, conn: ConnId, query: Option<&str>, req_id: Option<String>) {
        let skills = self.config.skills.list(query);
        self.send_list(conn, skills, |skills| {
            SkillListFrame {
                skills,
                req_id: req_id.clone(),
            }
            .into()
        });
    }

    pub(crate) fn get_skill(&mut self, conn: ConnId, name: &str, req_id: Option<String>) {
        let skill = self.config.skills.get(name).cloned();
        self.send_frame(conn, SkillDataFrame { skill, req_id });
    }

    pub(crate) fn set_status(&mut self, conn: ConnId, status: String, req_id: Option<String>) {
        if let Err(e) = self.check_len("status", &status, self.config.max_field_len) {
            return self.refuse_field(conn, e, req_id);
        }
        if let Some(seat) = self.seat_mut_of(conn) {
            seat.status = status;
        }
    }

    pub(crate) fn set_summary(&mut self, conn: ConnId, summary: String, req_id: Option<String>) {
        if let Err(e) = self.check_len("summary", &summary, self.config.max_text_len) {
            return self.refuse_field(conn, e, req_id);
        }
        if let Some(seat) = self.seat_mut_of(conn) {
            seat.summary = Some(summary);
        }
    }

    pub(crate) fn set_visible(&mut self, conn: ConnId, visible: bool) {
        if let Some(seat) = self.seat_mut_of(conn) {
            seat.visible = visible;
        }
    }

    /// Merges the given fields into the profile; fields left out keep their value.
    pub(crate) fn set_profile(&mut self, conn: ConnId, update: SetProfileFrame, req_id: Option<String>) {
        let max = self.config.max_text_len;
        let texts = [
            ("avatar", &update.avatar),
            ("title", &update.title),
            ("bio", &update.bio),
        ];
        let checked = texts
            .into_iter()
            .filter_map(|(name, v)| v.as_deref().map(|v| (name, v)))
            .try_for_each(|(name, v)| self.check_len(name, v, max))
            .and_then(|()| match &update.capabilities {
                Some(caps) => self.check_list("capabilities", caps.iter().map(String::as_str)),
                None => Ok(()),
            });
        if let Err(e) = checked {
            return self.refuse_field(conn, e, req_id);
        }
        let Some(seat) = self.seat_mut_of(conn) else {
            return;
        };
        let mut profile = match seat.profile.take() {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let text = |v: String| Value::String(v);
        let fields = [
            ("avatar", update.avatar.map(text)),
            ("title", update.title.map(text)),
            ("bio", update.bio.map(text)),
            (
                "capabilities",
                update
                    .capabilities
                    .map(|caps| Value::Array(caps.into_iter().map(Value::String).collect())),
            ),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                profile.insert(name.to_owned(), value);
            }
        }
        seat.profile = Some(Value::Object(profile));
    }
}

/// What a state row costs against `max_state_bytes_per_mesh`.
pub(crate) fn state_cost(key: &str, value: &Value) -> usize {
    key.len() + serde_json::to_string(value).map_or(0, |t| t.len())
}

/// What a memory costs against `max_memory_bytes_per_mesh`.
fn memory_cost(row: &MemoryRow) -> usize {
    row.id.len()
        + row.content.len()
        + row.tags.iter().map(String::len).sum::<usize>()
        + row.remembered_by.len()
}

impl Broker {
    fn peer_row(&self, seat: &Seat) -> Peer {
        Peer {
            pubkey: self.speaking_key(seat).to_owned(),
            display_name: seat.display_name.clone(),
            status: seat.status.clone(),
            summary: seat.summary.clone(),
            groups: seat.groups.clone(),
            session_id: seat.session_id.clone(),
            connected_at: seat.connected_at.clone(),
            member_pubkey: Some(seat.member_pubkey.clone()),
            cwd: Some(seat.cwd.clone()),
            hostname: seat.hostname.clone(),
            peer_type: seat.peer_type.clone(),
            channel: seat.channel.clone(),
            model: seat.model.clone(),
            peer_role: Some(seat.peer_role().to_owned()),
            role: None,
            visible: Some(seat.visible),
            stats: None,
            profile: seat.profile.clone(),
        }
    }
}
