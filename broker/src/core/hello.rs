//! Admission: verify a `hello` or `session_hello`, check membership and capacity,
//! then ack (replacing an older connection of the same session) or refuse.

use tether_proto::mesh::identity::{verify_hello, verify_session_hello};
use tether_proto::mesh::wire::{ErrorFrame, HelloAckFrame, HelloExtras, HelloFrame, SessionHelloFrame};
use tether_proto::Now;

use super::broker::Broker;
use super::clock::rfc3339_from_unix_ms;
use super::conn::{Phase, Seat};
use super::faults::Refusal;
use super::membership::Standing;
use super::output::{ConnId, Notice};

/// The `channel` of claudemesh's daemon, whose connections are infrastructure (B11).
pub const CONTROL_PLANE_CHANNEL: &str = "claudemesh-daemon";

/// A verified hello, whichever kind it was, reduced to what admission needs.
struct Candidate {
    mesh_id: String,
    member_id: String,
    pubkey: String,
    member_pubkey: String,
    alias_pubkey: Option<String>,
    session_id: String,
    cwd: String,
    extras: HelloExtras,
    role: Option<String>,
}

impl Broker {
    pub(crate) fn handle_hello(&mut self, conn: ConnId, hello: HelloFrame, now: Now) {
        if self.hello_preempted(conn, now) {
            return;
        }
        if let Err(e) = verify_hello(&hello, now.unix_ms) {
            self.reject(conn, Refusal::for_code(e.code(), e.to_string()), now);
            return;
        }
        let pubkey = hello.pubkey.to_ascii_lowercase();
        let candidate = Candidate {
            mesh_id: hello.mesh_id,
            member_id: hello.member_id,
            member_pubkey: pubkey.clone(),
            pubkey,
            alias_pubkey: hello.session_pubkey.map(|k| k.to_ascii_lowercase()),
            session_id: hello.session_id,
            cwd: hello.cwd,
            extras: hello.extras,
            role: None,
        };
        self.admit(conn, candidate, now);
    }

    pub(crate) fn handle_session_hello(&mut self, conn: ConnId, hello: SessionHelloFrame, now: Now) {
        if self.hello_preempted(conn, now) {
            return;
        }
        if let Err(e) = verify_session_hello(&hello, now.unix_ms) {
            self.reject(conn, Refusal::for_code(e.code(), e.to_string()), now);
            return;
        }
        let candidate = Candidate {
            mesh_id: hello.mesh_id,
            member_id: hello.parent_member_id,
            pubkey: hello.session_pubkey.to_ascii_lowercase(),
            member_pubkey: hello.parent_member_pubkey.to_ascii_lowercase(),
            alias_pubkey: None,
            session_id: hello.session_id,
            cwd: hello.cwd,
            extras: hello.extras,
            role: hello.role,
        };
        self.admit(conn, candidate, now);
    }

    /// The stall and refuse faults act before any verification, like a broker that is
    /// down or overloaded would.
    fn hello_preempted(&mut self, conn: ConnId, now: Now) -> bool {
        if self.faults.stall_hellos {
            if let Some(c) = self.conns.get_mut(&conn) {
                if let Phase::AwaitingHello { deadline } = c.phase {
                    c.phase = Phase::Stalled { deadline };
                }
            }
            self.stats.hellos_stalled += 1;
            return true;
        }
        if let Some(refusal) = self.faults.refusal(now.instant).cloned() {
            self.reject(conn, refusal, now);
            return true;
        }
        false
    }

    fn admit(&mut self, conn: ConnId, candidate: Candidate, now: Now) {
        let record = match self
            .config
            .membership
            .standing(&candidate.mesh_id, &candidate.member_pubkey)
        {
            Standing::Open => None,
            Standing::UnknownMesh => {
                let message = format!("mesh {} is not served here", candidate.mesh_id);
                return self.reject(conn, Refusal::for_code("unauthorized", message), now);
            }
            Standing::NotMember => {
                let message = format!("key is not a member of mesh {}", candidate.mesh_id);
                return self.reject(conn, Refusal::for_code("unauthorized", message), now);
            }
            Standing::Member(record) if record.member_id != candidate.member_id => {
                let message = format!("key does not belong to member {}", candidate.member_id);
                return self.reject(conn, Refusal::for_code("unauthorized", message), now);
            }
            Standing::Member(record) if record.revoked => {
                let message = format!("member {} has been revoked", record.member_id);
                return self.reject(conn, Refusal::for_code("revoked", message), now);
            }
            Standing::Member(record) => Some(record.clone()),
        };

        // A replaced connection is about to leave, so it does not count against the cap.
        let replaced = self.same_session(&candidate.mesh_id, &candidate.session_id);
        let open_in_mesh = self.meshes.get(&candidate.mesh_id).map_or(0, |m| m.open.len());
        let new_mesh = !self.meshes.contains_key(&candidate.mesh_id);
        if (new_mesh && self.meshes.len() >= self.config.max_meshes)
            || open_in_mesh.saturating_sub(replaced.len()) >= self.config.max_connections_per_mesh
        {
            let refusal = Refusal::capacity(
                format!("mesh {} is at capacity", candidate.mesh_id),
                self.config.capacity_retry_after_ms,
            );
            return self.reject(conn, refusal, now);
        }

        let display_name = [
            candidate.extras.display_name.as_deref(),
            record.as_ref().map(|r| r.display_name.as_str()),
        ]
        .into_iter()
        .flatten()
        .find(|name| !name.is_empty())
        .unwrap_or(&candidate.member_id)
        .to_owned();
        let member_display_name = record
            .as_ref()
            .map(|r| r.display_name.clone())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| display_name.clone());
        let groups = candidate
            .extras
            .groups
            .clone()
            .or_else(|| record.as_ref().map(|r| r.groups.clone()))
            .unwrap_or_default();
        let peer_role = peer_role(&candidate.extras, candidate.role.as_deref()).to_owned();
        let seat = Seat {
            mesh_id: candidate.mesh_id.clone(),
            member_id: candidate.member_id,
            pubkey: candidate.pubkey.clone(),
            member_pubkey: candidate.member_pubkey.clone(),
            alias_pubkey: candidate.alias_pubkey.clone(),
            session_id: candidate.session_id,
            display_name,
            status: "idle".to_owned(),
            summary: None,
            groups,
            connected_at: rfc3339_from_unix_ms(now.unix_ms),
            peer_type: candidate.extras.peer_type,
            channel: candidate.extras.channel,
            hostname: candidate.extras.hostname,
            cwd: candidate.cwd,
            model: candidate.extras.model,
            peer_role,
            visible: true,
            profile: None,
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.phase = Phase::Open(Box::new(seat));
        c.last_activity = now.instant;
        c.next_ping = now.instant + self.config.ping_interval;
        self.touch(conn);

        let cap = self.config.max_offline_keys_per_mesh;
        let listed = record.is_some();
        let mesh = self.meshes.entry(candidate.mesh_id.clone()).or_default();
        mesh.open.insert(conn);
        if !listed {
            self.stats.offline_dropped += mesh.remember_member(&candidate.member_pubkey, cap);
        }

        let presence_id = self.new_id("presence");
        self.send_frame(
            conn,
            HelloAckFrame {
                presence_id,
                member_display_name,
                ..HelloAckFrame::default()
            },
        );
        self.stats.hellos_accepted += 1;
        self.notice(
            conn,
            Notice::HelloAccepted {
                mesh_id: candidate.mesh_id.clone(),
                pubkey: candidate.pubkey.clone(),
            },
        );
        for old in replaced {
            self.stats.sessions_replaced += 1;
            self.close(old, 1000, "session_replaced", now);
        }
        let mut keys = vec![candidate.pubkey, candidate.member_pubkey];
        keys.extend(candidate.alias_pubkey);
        keys.dedup();
        self.deliver_offline(conn, &candidate.mesh_id, &keys, now);
    }

    /// Open connections of this mesh with this (non-empty) session id.
    fn same_session(&self, mesh_id: &str, session_id: &str) -> Vec<ConnId> {
        if session_id.is_empty() {
            return Vec::new();
        }
        let Some(mesh) = self.meshes.get(mesh_id) else {
            return Vec::new();
        };
        mesh.open
            .iter()
            .copied()
            .filter(|id| {
                self.conns
                    .get(id)
                    .and_then(|c| c.seat())
                    .is_some_and(|s| s.session_id == session_id)
            })
            .collect()
    }

    /// Sends the `error` frame, then the close the refusal names.
    pub(crate) fn reject(&mut self, conn: ConnId, refusal: Refusal, now: Now) {
        self.send_frame(
            conn,
            ErrorFrame {
                code: refusal.code.clone(),
                message: refusal.message,
                id: None,
                req_id: None,
                retry_after_ms: refusal.retry_after_ms,
            },
        );
        *self
            .stats
            .hellos_rejected
            .entry(refusal.code.clone())
            .or_default() += 1;
        self.notice(conn, Notice::HelloRejected { code: refusal.code });
        self.close(conn, refusal.close_code, &refusal.close_reason, now);
    }
}

/// `control-plane` for claudemesh's daemon or a peer that says it is one, `service`
/// for a peer that says so, `session` otherwise (PROTOCOL.md: the default).
fn peer_role(extras: &HelloExtras, role: Option<&str>) -> &'static str {
    let peer_type = extras.peer_type.as_deref();
    if extras.channel.as_deref() == Some(CONTROL_PLANE_CHANNEL)
        || peer_type == Some("control-plane")
        || role == Some("control-plane")
    {
        "control-plane"
    } else if peer_type == Some("service") || role == Some("service") {
        "service"
    } else {
        "session"
    }
}
