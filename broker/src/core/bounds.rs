//! Size bounds on what members send and on what the broker answers (X15).
//!
//! Every field a member chooses is hostile: hellos with megabyte names, state values
//! and memories that would make `list_state` or `recall` larger than any client
//! accepts. Fields are checked against [`BrokerConfig`](super::BrokerConfig) caps
//! before anything is stored, and every list reply is cut to `max_reply_len` with a
//! marker (`"truncated":true,"omitted":N`) instead of growing past the clients'
//! frame limit.

use serde::Serialize;
use tether_proto::mesh::wire::{BrokerFrame, GroupRef, HelloExtras};

use super::broker::Broker;
use super::output::{ConnId, OutputKind};

/// What a hello or request field broke, for the `error` message.
pub(crate) struct TooLong(pub String);

impl Broker {
    /// Checks the member-chosen fields of a hello: ids, names, labels and lists.
    pub(crate) fn check_hello_fields(
        &self,
        ids: &[(&str, &str)],
        extras: &HelloExtras,
    ) -> Result<(), TooLong> {
        let max = self.config.max_field_len;
        let fields = ids.iter().copied().chain(
            [
                ("displayName", extras.display_name.as_deref()),
                ("hostname", extras.hostname.as_deref()),
                ("peerType", extras.peer_type.as_deref()),
                ("channel", extras.channel.as_deref()),
                ("model", extras.model.as_deref()),
            ]
            .into_iter()
            .filter_map(|(name, v)| v.map(|v| (name, v))),
        );
        for (name, value) in fields {
            self.check_len(name, value, max)?;
        }
        if let Some(groups) = &extras.groups {
            self.check_groups(groups)?;
        }
        if let Some(caps) = &extras.capabilities {
            self.check_list("capabilities", caps.iter().map(String::as_str))?;
        }
        Ok(())
    }

    pub(crate) fn check_groups(&self, groups: &[GroupRef]) -> Result<(), TooLong> {
        let names = groups
            .iter()
            .flat_map(|g| std::iter::once(g.name.as_str()).chain(g.role.as_deref()));
        if groups.len() > self.config.max_list_len {
            return Err(TooLong(format!(
                "groups: {} entries > {}",
                groups.len(),
                self.config.max_list_len
            )));
        }
        for name in names {
            self.check_len("group", name, self.config.max_field_len)?;
        }
        Ok(())
    }

    pub(crate) fn check_list<'a>(
        &self,
        field: &str,
        items: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<(), TooLong> {
        if items.len() > self.config.max_list_len {
            return Err(TooLong(format!(
                "{field}: {} entries > {}",
                items.len(),
                self.config.max_list_len
            )));
        }
        for item in items {
            self.check_len(field, item, self.config.max_field_len)?;
        }
        Ok(())
    }

    pub(crate) fn check_len(&self, field: &str, value: &str, max: usize) -> Result<(), TooLong> {
        self.check_len_n(field, value.len(), max)
    }

    pub(crate) fn check_len_n(&self, field: &str, len: usize, max: usize) -> Result<(), TooLong> {
        if len > max {
            return Err(TooLong(format!("{field}: {len} bytes > {max}")));
        }
        Ok(())
    }

    /// Refuses a request or update for a field over its bound: an `error` naming it,
    /// echoing `_reqId`; the connection stays.
    pub(crate) fn refuse_field(&mut self, conn: ConnId, TooLong(what): TooLong, req_id: Option<String>) {
        self.stats.fields_too_large += 1;
        self.send_error(
            conn,
            "payload_too_large",
            format!("payload too large: {what}"),
            None,
            req_id,
        );
    }

    /// Sends a list reply built by `frame` from as many leading `rows` as fit in
    /// `max_reply_len`; a cut reply carries `"truncated":true,"omitted":N`.
    pub(crate) fn send_list<R: Serialize>(
        &mut self,
        conn: ConnId,
        mut rows: Vec<R>,
        frame: impl Fn(Vec<R>) -> BrokerFrame,
    ) {
        let max = self.config.max_reply_len;
        // Room for the marker, the frame's own fields and the commas.
        let budget = max.saturating_sub(frame(Vec::new()).encode().len() + 64);
        let mut used = 0usize;
        let mut keep = 0usize;
        for row in &rows {
            let len = serde_json::to_string(row)
                .map_or(usize::MAX, |t| t.len())
                .saturating_add(1);
            if used.saturating_add(len) > budget {
                break;
            }
            used += len;
            keep += 1;
        }
        let omitted = rows.len() - keep;
        rows.truncate(keep);
        let mut text = frame(rows).encode();
        if omitted > 0 {
            self.stats.replies_truncated += 1;
            // The encoded frame is a JSON object: the marker goes before its last `}`.
            if text.ends_with('}') {
                text.pop();
                text.push_str(&format!(r#","truncated":true,"omitted":{omitted}}}"#));
            }
        }
        self.emit(conn, OutputKind::Send(text));
    }
}

impl Broker {
    /// Checks every bound of [`BrokerConfig`](super::BrokerConfig) against what the
    /// broker holds right now; the simulator calls it after every step, so each run
    /// tries the bounds against new combinations of hostile members and faults.
    pub fn check_bounds(&self) -> Result<(), String> {
        let c = &self.config;
        let fail = |what: String| Err(what);
        if self.conns.len() > c.max_connections {
            return fail(format!(
                "{} connections > {}",
                self.conns.len(),
                c.max_connections
            ));
        }
        if self.pending_hellos > c.max_pending_hellos {
            return fail(format!(
                "{} pending hellos > {}",
                self.pending_hellos, c.max_pending_hellos
            ));
        }
        if self.meshes.len() > c.max_meshes {
            return fail(format!("{} meshes > {}", self.meshes.len(), c.max_meshes));
        }
        if self.kept_bytes > c.max_kept_bytes {
            return fail(format!("{} kept bytes > {}", self.kept_bytes, c.max_kept_bytes));
        }
        for (id, conn) in &self.conns {
            if conn.unacked.len() > c.max_unacked_per_conn
                || (conn.unacked_bytes > c.max_unacked_bytes_per_conn && conn.unacked.len() > 1)
            {
                return fail(format!(
                    "{id}: {} unconfirmed pushes, {} bytes",
                    conn.unacked.len(),
                    conn.unacked_bytes
                ));
            }
        }
        for (mesh_id, mesh) in &self.meshes {
            if mesh.presences() > c.max_connections_per_mesh {
                return fail(format!("mesh {mesh_id}: {} presences", mesh.presences()));
            }
            if mesh.state_bytes > c.max_state_bytes_per_mesh || mesh.state.len() > c.max_state_keys_per_mesh {
                return fail(format!("mesh {mesh_id}: {} bytes of state", mesh.state_bytes));
            }
            if mesh.memory_bytes > c.max_memory_bytes_per_mesh
                || mesh.memories.len() > c.max_memories_per_mesh
            {
                return fail(format!("mesh {mesh_id}: {} bytes of memories", mesh.memory_bytes));
            }
            let mut per_member: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            let open = mesh
                .open
                .iter()
                .filter_map(|id| self.conns.get(id).and_then(|c| c.seat()));
            let lingering = mesh
                .lingering
                .iter()
                .filter_map(|id| self.leases.get(id).map(|l| &l.seat));
            for seat in open.chain(lingering) {
                let n = per_member.entry(seat.member_pubkey.as_str()).or_default();
                *n += 1;
                if *n > c.max_connections_per_member {
                    return fail(format!(
                        "mesh {mesh_id}: member {} holds {n} presences",
                        seat.member_id
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether the text's top-level object names `type` more than once. Other duplicate
/// keys are refused by the decoder; this one was read first and then ignored, so a
/// frame could look like one thing to one reader and another to the next.
pub(crate) fn has_duplicate_type(text: &str) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    // Fast path: one occurrence of the key's text cannot be two keys.
    if text.matches("\"type\"").nth(1).is_none() && !text.contains('\\') {
        return false;
    }
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            // Read to the end: the deserializer refuses an object left half read.
            let (mut seen, mut twice) = (false, false);
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "type" {
                    twice |= seen;
                    seen = true;
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(twice)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Count).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::has_duplicate_type;

    #[test]
    fn finds_a_second_type_key() {
        assert!(has_duplicate_type(r#"{"type":"a","type":"b"}"#));
        assert!(has_duplicate_type(r#"{"type":"a","\u0074ype":"b"}"#));
        assert!(!has_duplicate_type(r#"{"type":"a","x":"type"}"#));
        assert!(!has_duplicate_type(r#"{"type":"a","x":{"type":"b"}}"#));
        assert!(!has_duplicate_type("not json"));
    }
}
