//! Messages: `send` → targets → `push`, exactly-once by idempotency id, and leases
//! that re-push until a `client_ack` confirms.
//!
//! Target specs, as the real broker reads them: a 64-hex pubkey is direct (a member
//! key reaches every connection of that member, a session key that session, each also
//! while its presence lingers in its grace); `@group`, `@all`, `*` and `#topic` reach
//! the visible connections of the other members (`@group` those in the group, a
//! `#topic` push names its topic). A direct target nobody holds is refused with an
//! error ack, as the real broker does; multicasts are accepted even when nobody is
//! there. tether's extension: a display name reaches the live connections showing it.
//! An accepted send is acked `queued: true`.

use tether_proto::mesh::wire::{AckFrame, BrokerFrame, ClientAckFrame, PushFrame, SendFrame};
use tether_proto::Now;

use super::broker::Broker;
use super::clock::rfc3339_from_unix_ms;
use super::conn::{Conn, Seat, Unacked};
use super::dedupe::FirstAck;
use super::mesh::Queued;
use super::output::{ConnId, OutputKind};

/// The real broker's error for a direct target with no connected (or lingering) peer.
pub const NO_CONNECTED_PEER: &str =
    "no connected peer for target (not online, or targetSpec is your own key without another session)";

/// Where a message goes: connections now, and lingering presences.
#[derive(Debug, Default)]
struct Targets {
    live: Vec<ConnId>,
    leases: Vec<u64>,
}

impl Broker {
    pub(crate) fn handle_send(&mut self, conn: ConnId, send: SendFrame, now: Now) {
        self.stats.sends += 1;
        let Some(sender) = self.conns.get(&conn).and_then(Conn::seat).cloned() else {
            return;
        };
        // The real broker's measure: ciphertext, nonce and target together.
        let len = send.ciphertext.len() + send.nonce.len() + send.target_spec.len();
        if len > self.config.max_payload {
            self.stats.payloads_too_large += 1;
            let error = format!(
                "payload too large: {len} bytes > MAX_MESSAGE_BYTES={}",
                self.config.max_payload
            );
            return self.refuse_send(conn, send.id, error, now);
        }
        // Ids are kept (dedupe window) and echoed on pushes: bounded like every field.
        let max = self.config.max_field_len;
        let ids = [
            ("id", Some(send.id.as_str())),
            ("client_message_id", send.client_message_id.as_deref()),
            ("request_fingerprint", send.request_fingerprint.as_deref()),
            ("replyToId", send.reply_to_id.as_deref()),
        ];
        if let Some((name, v)) = ids
            .into_iter()
            .find_map(|(n, v)| v.filter(|v| v.len() > max).map(|v| (n, v)))
        {
            self.stats.fields_too_large += 1;
            let error = format!("payload too large: {name}: {} bytes > {max}", v.len());
            let id: String = send.id.chars().take(max).collect();
            return self.refuse_send(conn, id, error, now);
        }
        let dedupe_key = send
            .client_message_id
            .clone()
            .map(|id| (sender.proven_pubkey().to_owned(), id));
        if let Some(first) = dedupe_key.as_ref().and_then(|k| self.dedupe.get(k)).cloned() {
            self.stats.duplicate_sends += 1;
            return self.ack(conn, send.id, first, now);
        }
        let Some(targets) = self.resolve(&sender, conn, &send.target_spec) else {
            self.stats.targets_not_found += 1;
            return self.refuse_send(conn, send.id, NO_CONNECTED_PEER.to_owned(), now);
        };

        let message_id = self.new_id("msg");
        let push = PushFrame {
            message_id: message_id.clone(),
            mesh_id: sender.mesh_id.clone(),
            sender_pubkey: self.speaking_key(&sender).to_owned(),
            priority: send.priority,
            nonce: send.nonce,
            ciphertext: send.ciphertext,
            created_at: rfc3339_from_unix_ms(now.unix_ms),
            sender_member_pubkey: Some(sender.member_pubkey.clone()),
            sender_member_id: Some(sender.member_id.clone()),
            sender_name: Some(sender.display_name.clone()),
            topic: send.target_spec.strip_prefix('#').map(str::to_owned),
            reply_to_id: send.reply_to_id,
            client_message_id: send.client_message_id,
            request_fingerprint: send.request_fingerprint,
            ..PushFrame::default()
        };
        let queued = Queued {
            message_id: message_id.clone(),
            client_message_id: push.client_message_id.clone(),
            text: BrokerFrame::from(push).encode(),
        };
        for &target in &targets.live {
            self.push_to(target, queued.clone(), now);
        }
        for &lease in &targets.leases {
            self.queue_on_lease(lease, queued.clone());
        }
        let first = FirstAck { message_id };
        if let Some(key) = dedupe_key {
            self.stats.dedupe_evicted += self.dedupe.insert(key, first.clone(), self.config.dedupe_window);
        }
        self.ack(conn, send.id, first, now);
    }

    fn ack(&mut self, conn: ConnId, id: String, first: FirstAck, now: Now) {
        let ack = AckFrame {
            id,
            message_id: first.message_id,
            queued: true,
            error: None,
            req_id: None,
        };
        self.send_ack(conn, BrokerFrame::Ack(ack).encode(), now);
    }

    /// A failed send: an ack with `queued: false` and the error, as the real broker sends.
    fn refuse_send(&mut self, conn: ConnId, id: String, error: String, now: Now) {
        let ack = AckFrame {
            id,
            message_id: String::new(),
            queued: false,
            error: Some(error),
            req_id: None,
        };
        self.send_ack(conn, BrokerFrame::Ack(ack).encode(), now);
    }

    /// `None` when a direct target (or a name) names nobody.
    fn resolve(&self, sender: &Seat, from: ConnId, spec: &str) -> Option<Targets> {
        let mesh = self.meshes.get(&sender.mesh_id)?;
        let live = |keep: &dyn Fn(&Seat) -> bool| -> Vec<ConnId> {
            mesh.open
                .iter()
                .copied()
                .filter(|&id| id != from && self.seat(id).is_some_and(keep))
                .collect()
        };
        // Multicasts skip the sender's own member (its sessions could not open a box
        // meant for others anyway) and hidden peers, like the real broker.
        let multicast = |s: &Seat| s.member_pubkey != sender.member_pubkey && s.visible;
        if spec == "*" || spec == "@all" || spec.starts_with('#') || spec.starts_with("tag:") {
            return Some(Targets {
                live: live(&multicast),
                leases: Vec::new(),
            });
        }
        if let Some(group) = spec.strip_prefix('@') {
            let in_group = |s: &Seat| multicast(s) && s.groups.iter().any(|g| g.name == group);
            return Some(Targets {
                live: live(&in_group),
                leases: Vec::new(),
            });
        }
        let targets = if is_pubkey(spec) {
            let key = spec.to_ascii_lowercase();
            let leases = mesh
                .lingering
                .iter()
                .copied()
                .filter(|id| {
                    self.leases
                        .get(id)
                        .is_some_and(|l| self.answers_to(&l.seat, &key))
                })
                .collect();
            Targets {
                live: live(&|s| self.answers_to(s, &key)),
                leases,
            }
        } else {
            // A name reaches its holder only when one member holds it: a second member
            // showing the same name makes it nobody's, never a way to receive another's mail.
            let live = live(&|s| s.display_name == spec);
            let mut holders = live
                .iter()
                .filter_map(|&id| self.seat(id))
                .map(|s| &s.member_pubkey);
            let first = holders.next();
            if holders.any(|k| Some(k) != first) {
                return None;
            }
            Targets {
                live,
                leases: Vec::new(),
            }
        };
        (!targets.live.is_empty() || !targets.leases.is_empty()).then_some(targets)
    }

    fn seat(&self, conn: ConnId) -> Option<&Seat> {
        self.conns.get(&conn).and_then(Conn::seat)
    }

    /// Pushes a message to an open connection and starts its lease.
    pub(crate) fn push_to(&mut self, conn: ConnId, message: Queued, now: Now) {
        let lease = self.config.push_lease;
        let cap = self.config.max_unacked_per_conn;
        let cap_bytes = self.config.max_unacked_bytes_per_conn;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.unacked_bytes += message.text.len();
        c.unacked.push_back(Unacked {
            message_id: message.message_id,
            client_message_id: message.client_message_id,
            text: message.text.clone(),
            due: tether_proto::deadline_after(now.instant, lease),
            pushes: 1,
        });
        // Oldest first, never the one just pushed: it is on its way anyway.
        while c.unacked.len() > cap || (c.unacked_bytes > cap_bytes && c.unacked.len() > 1) {
            if let Some(old) = c.unacked.pop_front() {
                c.unacked_bytes = c.unacked_bytes.saturating_sub(old.text.len());
                self.stats.unacked_dropped += 1;
            }
        }
        self.stats.pushes += 1;
        self.touch(conn);
        self.emit(conn, OutputKind::Send(message.text));
    }

    pub(crate) fn enqueue_offline(&mut self, mesh_id: &str, key: &str, message: Queued) {
        let per_key = self.config.offline_queue_per_key;
        let max_keys = self.config.max_offline_keys_per_mesh;
        let Some(mesh) = self.meshes.get_mut(mesh_id) else {
            return;
        };
        let full = !mesh.offline.contains_key(key) && mesh.offline.len() >= max_keys;
        if full || self.kept_bytes + message.text.len() > self.config.max_kept_bytes {
            self.stats.offline_dropped += 1;
            return;
        }
        self.kept_bytes += message.text.len();
        let queue = mesh.offline.entry(key.to_owned()).or_default();
        queue.push_back(message);
        self.stats.queued_offline += 1;
        if queue.len() > per_key {
            if let Some(old) = queue.pop_front() {
                self.kept_bytes = self.kept_bytes.saturating_sub(old.text.len());
            }
            self.stats.offline_dropped += 1;
        }
    }

    /// Pushes everything queued for any of `keys` to a connection that just opened.
    pub(crate) fn deliver_offline(&mut self, conn: ConnId, mesh_id: &str, keys: &[String], now: Now) {
        for key in keys {
            let queued = self
                .meshes
                .get_mut(mesh_id)
                .and_then(|mesh| mesh.offline.remove(key))
                .unwrap_or_default();
            for message in queued {
                self.kept_bytes = self.kept_bytes.saturating_sub(message.text.len());
                self.push_to(conn, message, now);
            }
        }
    }

    pub(crate) fn handle_client_ack(&mut self, conn: ConnId, ack: ClientAckFrame) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let position = c.unacked.iter().position(|u| {
            ack.broker_message_id.as_deref() == Some(u.message_id.as_str())
                || (ack.client_message_id.is_some() && u.client_message_id == ack.client_message_id)
        });
        match position {
            Some(i) => {
                if let Some(u) = c.unacked.remove(i) {
                    c.unacked_bytes = c.unacked_bytes.saturating_sub(u.text.len());
                }
                self.stats.client_acks += 1;
                self.touch(conn);
            }
            None => self.stats.client_acks_unmatched += 1,
        }
    }
}

fn is_pubkey(spec: &str) -> bool {
    spec.len() == 64 && spec.bytes().all(|b| b.is_ascii_hexdigit())
}
