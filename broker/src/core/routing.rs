//! Messages: `send` → targets → `push`, exactly-once by idempotency id, offline
//! queues, and leases that re-push until a `client_ack` confirms.
//!
//! Target specs: a pubkey (64 hex; a member key reaches all of that member's
//! connections, a session key that one session), a display name, `@group`, or `*`
//! (everyone in the mesh but the sending connection). `#topic` and `tag:x` are
//! delivered like `*` (a `#topic` push names its topic). Only a known member that
//! is offline gets its messages queued: a listed, unrevoked member, or in an open
//! mesh a member key that has said hello before.

use tether_proto::mesh::wire::{AckFrame, BrokerFrame, ClientAckFrame, PushFrame, SendFrame};
use tether_proto::Now;

use super::broker::Broker;
use super::clock::rfc3339_from_unix_ms;
use super::conn::{Conn, Seat, Unacked};
use super::dedupe::FirstAck;
use super::mesh::{Mesh, Queued};
use super::output::{ConnId, OutputKind};

/// Where a message goes: connections now, and keys to queue for.
#[derive(Debug, Default)]
struct Targets {
    live: Vec<ConnId>,
    offline: Vec<String>,
}

impl Broker {
    pub(crate) fn handle_send(&mut self, conn: ConnId, send: SendFrame, now: Now) {
        self.stats.sends += 1;
        let Some(sender) = self.conns.get(&conn).and_then(Conn::seat).cloned() else {
            return;
        };
        let len = send.ciphertext.len();
        if len > self.config.max_payload {
            self.stats.payloads_too_large += 1;
            let ack = AckFrame {
                id: send.id,
                message_id: String::new(),
                queued: false,
                error: Some(format!(
                    "payload too large: {len} bytes > {}",
                    self.config.max_payload
                )),
                req_id: None,
            };
            return self.send_ack(conn, BrokerFrame::Ack(ack).encode(), now);
        }
        let dedupe_key = send
            .client_message_id
            .clone()
            .map(|id| (sender.pubkey.clone(), id));
        if let Some(first) = dedupe_key.as_ref().and_then(|k| self.dedupe.get(k)).cloned() {
            self.stats.duplicate_sends += 1;
            return self.ack(conn, send.id, first, now);
        }
        let Some(targets) = self.resolve(&sender, conn, &send.target_spec) else {
            self.stats.targets_not_found += 1;
            let message = format!("target_not_found: no peer matches {}", send.target_spec);
            return self.send_error(conn, "target_not_found", message, Some(send.id));
        };

        let message_id = self.new_id("msg");
        let push = PushFrame {
            message_id: message_id.clone(),
            mesh_id: sender.mesh_id.clone(),
            sender_pubkey: sender.pubkey.clone(),
            priority: send.priority,
            nonce: send.nonce,
            ciphertext: send.ciphertext,
            created_at: rfc3339_from_unix_ms(now.unix_ms),
            sender_member_pubkey: sender.is_session().then(|| sender.member_pubkey.clone()),
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
        for key in &targets.offline {
            self.enqueue_offline(&sender.mesh_id, key, queued.clone());
        }
        let first = FirstAck {
            message_id,
            queued: targets.live.is_empty() && !targets.offline.is_empty(),
        };
        if let Some(key) = dedupe_key {
            self.stats.dedupe_evicted += self.dedupe.insert(key, first.clone(), self.config.dedupe_window);
        }
        self.ack(conn, send.id, first, now);
    }

    fn ack(&mut self, conn: ConnId, id: String, first: FirstAck, now: Now) {
        let ack = AckFrame {
            id,
            message_id: first.message_id,
            queued: first.queued,
            error: None,
            req_id: None,
        };
        self.send_ack(conn, BrokerFrame::Ack(ack).encode(), now);
    }

    /// `None` when the spec names nobody (`target_not_found`).
    fn resolve(&self, sender: &Seat, from: ConnId, spec: &str) -> Option<Targets> {
        let mesh = self.meshes.get(&sender.mesh_id)?;
        let roster = self.config.membership.roster(&sender.mesh_id);
        let others = |keep: &dyn Fn(&Seat) -> bool| -> Vec<ConnId> {
            mesh.open
                .iter()
                .copied()
                .filter(|&id| id != from && self.seat(id).is_some_and(keep))
                .collect()
        };
        if spec == "*" || spec.starts_with('#') || spec.starts_with("tag:") {
            return Some(Targets {
                live: others(&|_| true),
                offline: Vec::new(),
            });
        }
        if let Some(group) = spec.strip_prefix('@') {
            let in_group = |s: &Seat| s.groups.iter().any(|g| g.name == group);
            let listed: Vec<&str> = roster
                .map(|r| r.members())
                .unwrap_or_default()
                .iter()
                .filter(|m| !m.revoked && m.groups.iter().any(|g| g.name == group))
                .map(|m| m.pubkey.as_str())
                .collect();
            let exists = !listed.is_empty() || sender_or_any(mesh, self, &in_group);
            let offline = listed
                .into_iter()
                .filter(|key| !self.key_is_open(mesh, key))
                .map(str::to_owned)
                .collect();
            return exists.then(|| Targets {
                live: others(&in_group),
                offline,
            });
        }
        if is_pubkey(spec) {
            let key = spec.to_ascii_lowercase();
            let live = others(&|s| s.answers_to(&key));
            let known = match roster {
                Some(r) => r.by_pubkey(&key).is_some_and(|m| !m.revoked),
                None => mesh.knows_member(&key),
            };
            return if !live.is_empty() || sender.answers_to(&key) {
                Some(Targets {
                    live,
                    offline: Vec::new(),
                })
            } else {
                known.then(|| Targets {
                    live,
                    offline: vec![key],
                })
            };
        }
        let live = others(&|s| s.display_name == spec);
        if !live.is_empty() || sender.display_name == spec {
            return Some(Targets {
                live,
                offline: Vec::new(),
            });
        }
        let member = roster?
            .members()
            .iter()
            .find(|m| !m.revoked && m.display_name == spec)?;
        Some(Targets {
            live,
            offline: vec![member.pubkey.clone()],
        })
    }

    fn seat(&self, conn: ConnId) -> Option<&Seat> {
        self.conns.get(&conn).and_then(Conn::seat)
    }

    fn key_is_open(&self, mesh: &Mesh, key: &str) -> bool {
        mesh.open
            .iter()
            .any(|&id| self.seat(id).is_some_and(|s| s.answers_to(key)))
    }

    /// Pushes a message to an open connection and starts its lease.
    pub(crate) fn push_to(&mut self, conn: ConnId, message: Queued, now: Now) {
        let lease = self.config.push_lease;
        let cap = self.config.max_unacked_per_conn;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.unacked.push_back(Unacked {
            message_id: message.message_id,
            client_message_id: message.client_message_id,
            text: message.text.clone(),
            due: now.instant + lease,
            pushes: 1,
        });
        if c.unacked.len() > cap {
            c.unacked.pop_front();
            self.stats.unacked_dropped += 1;
        }
        self.stats.pushes += 1;
        self.touch(conn);
        self.emit(conn, OutputKind::Send(message.text));
    }

    fn enqueue_offline(&mut self, mesh_id: &str, key: &str, message: Queued) {
        let per_key = self.config.offline_queue_per_key;
        let max_keys = self.config.max_offline_keys_per_mesh;
        let Some(mesh) = self.meshes.get_mut(mesh_id) else {
            return;
        };
        if !mesh.offline.contains_key(key) && mesh.offline.len() >= max_keys {
            self.stats.offline_dropped += 1;
            return;
        }
        let queue = mesh.offline.entry(key.to_owned()).or_default();
        queue.push_back(message);
        self.stats.queued_offline += 1;
        if queue.len() > per_key {
            queue.pop_front();
            self.stats.offline_dropped += 1;
        }
    }

    /// Gives a message to the open connections speaking with `key`, or queues it.
    pub(crate) fn deliver_to_key(&mut self, mesh_id: &str, key: &str, message: Queued, now: Now) {
        let live: Vec<ConnId> = match self.meshes.get(mesh_id) {
            Some(mesh) => mesh
                .open
                .iter()
                .copied()
                .filter(|&id| self.seat(id).is_some_and(|s| s.pubkey == key))
                .collect(),
            None => return,
        };
        if live.is_empty() {
            return self.enqueue_offline(mesh_id, key, message);
        }
        for conn in live {
            self.push_to(conn, message.clone(), now);
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
                c.unacked.remove(i);
                self.stats.client_acks += 1;
                self.touch(conn);
            }
            None => self.stats.client_acks_unmatched += 1,
        }
    }
}

/// Whether anyone open in the mesh (the sender included) passes `keep`.
fn sender_or_any(mesh: &Mesh, broker: &Broker, keep: &dyn Fn(&Seat) -> bool) -> bool {
    mesh.open.iter().any(|&id| broker.seat(id).is_some_and(keep))
}

fn is_pubkey(spec: &str) -> bool {
    spec.len() == 64 && spec.bytes().all(|b| b.is_ascii_hexdigit())
}
