//! Admission: verify a `hello` or `session_hello`, check membership and capacity,
//! then ack (replacing an older connection of the same session) or refuse.

use tether_proto::mesh::identity::{verify_hello, verify_session_hello};
use tether_proto::mesh::wire::{HelloAckFrame, HelloExtras, HelloFrame, SessionHelloFrame};
use tether_proto::Now;

use super::admission::Admit;
use super::bounds::TooLong;
use super::broker::Broker;
use super::clock::rfc3339_from_unix_ms;
use super::conn::{HelloKind, Phase, Seat};
use super::faults::Refusal;
use super::membership::Standing;
use super::output::{ConnId, Notice};

/// A verified hello, whichever kind it was, reduced to what admission needs.
struct Candidate {
    mesh_id: String,
    member_id: String,
    member_pubkey: String,
    session_pubkey: Option<String>,
    claimed_pubkey: Option<String>,
    kind: HelloKind,
    session_id: String,
    cwd: String,
    extras: HelloExtras,
}

impl Broker {
    pub(crate) fn handle_hello(&mut self, conn: ConnId, hello: HelloFrame, now: Now) {
        if self.hello_preempted(conn, now) {
            return;
        }
        let ids = [
            ("meshId", hello.mesh_id.as_str()),
            ("memberId", hello.member_id.as_str()),
            ("sessionId", hello.session_id.as_str()),
            ("cwd", hello.cwd.as_str()),
        ];
        if let Err(TooLong(what)) = self.check_hello_fields(&ids, &hello.extras) {
            self.stats.fields_too_large += 1;
            return self.reject(
                conn,
                Refusal::for_code("malformed", format!("malformed: {what}")),
                now,
            );
        }
        if let Err(e) = verify_hello(&hello, now.unix_ms) {
            self.reject(conn, Refusal::for_code(e.code(), e.to_string()), now);
            return;
        }
        let pubkey = hello.pubkey.to_ascii_lowercase();
        let candidate = Candidate {
            mesh_id: hello.mesh_id,
            member_id: hello.member_id,
            claimed_pubkey: hello
                .session_pubkey
                .map(|k| k.to_ascii_lowercase())
                .filter(|k| !k.is_empty() && *k != pubkey),
            member_pubkey: pubkey,
            session_pubkey: None,
            kind: HelloKind::Member,
            session_id: hello.session_id,
            cwd: hello.cwd,
            extras: hello.extras,
        };
        self.admit(conn, candidate, now);
    }

    pub(crate) fn handle_session_hello(&mut self, conn: ConnId, hello: SessionHelloFrame, now: Now) {
        if self.hello_preempted(conn, now) {
            return;
        }
        let ids = [
            ("meshId", hello.mesh_id.as_str()),
            ("parentMemberId", hello.parent_member_id.as_str()),
            ("sessionId", hello.session_id.as_str()),
            ("cwd", hello.cwd.as_str()),
            ("role", hello.role.as_deref().unwrap_or_default()),
        ];
        if let Err(TooLong(what)) = self.check_hello_fields(&ids, &hello.extras) {
            self.stats.fields_too_large += 1;
            return self.reject(
                conn,
                Refusal::for_code("malformed", format!("malformed: {what}")),
                now,
            );
        }
        if let Err(e) = verify_session_hello(&hello, now.unix_ms) {
            self.reject(conn, Refusal::for_code(e.code(), e.to_string()), now);
            return;
        }
        let candidate = Candidate {
            mesh_id: hello.mesh_id,
            member_id: hello.parent_member_id,
            member_pubkey: hello.parent_member_pubkey.to_ascii_lowercase(),
            session_pubkey: Some(hello.session_pubkey.to_ascii_lowercase()),
            claimed_pubkey: None,
            kind: HelloKind::Session,
            session_id: hello.session_id,
            cwd: hello.cwd,
            extras: hello.extras,
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
        // Before any signature is checked: a refused hello costs nothing.
        if let Some(admission) = &mut self.admission {
            if let Admit::Later(wait) = admission.admit(now.instant) {
                let per_second = admission.rate().per_second;
                // Rounded up: a client told 0 ms would come straight back.
                let ms = wait.as_nanos().div_ceil(1_000_000);
                let ms = u64::try_from(ms).unwrap_or(u64::MAX);
                self.stats.hellos_rate_limited += 1;
                let refusal = Refusal::capacity(format!("admitting {per_second} hellos a second"), ms);
                self.reject(conn, refusal, now);
                return true;
            }
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

        // With a members file, names and groups are the file's: a hello can neither
        // grant itself a group nor take another member's name (X15).
        let roster = self.config.membership.roster(&candidate.mesh_id);
        let hello_name = candidate.extras.display_name.as_deref().filter(|n| !n.is_empty());
        let display_name = match &record {
            Some(r) if !r.display_name.is_empty() => r.display_name.clone(),
            Some(_) => hello_name
                .filter(|n| {
                    roster.is_none_or(|r| {
                        r.members().iter().all(|m| {
                            m.pubkey == candidate.member_pubkey || !m.display_name.eq_ignore_ascii_case(n)
                        })
                    })
                })
                .unwrap_or(&candidate.member_id)
                .to_owned(),
            None => hello_name.unwrap_or(&candidate.member_id).to_owned(),
        };
        let member_display_name = display_name.clone();
        let groups = match &record {
            Some(r) => r.groups.clone(),
            None => candidate.extras.groups.clone().unwrap_or_default(),
        };
        let mut seat = Seat {
            mesh_id: candidate.mesh_id.clone(),
            member_id: candidate.member_id,
            member_pubkey: candidate.member_pubkey,
            session_pubkey: candidate.session_pubkey,
            claimed_pubkey: candidate.claimed_pubkey,
            kind: candidate.kind,
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
            visible: true,
            profile: None,
        };

        // The same session of the same member takes its older presence over: an open
        // one is replaced, a lingering one reattached; neither counts against the cap.
        let replaced = self.same_session(&seat);
        let reattaches = self.has_lease_for(&seat);
        let presences = self.meshes.get(&seat.mesh_id).map_or(0, |m| m.presences());
        let new_mesh = !self.meshes.contains_key(&seat.mesh_id);
        let leaving = replaced.len() + usize::from(reattaches);
        let mine = self.presences_of(&seat.mesh_id, &seat.member_pubkey);
        let full = if new_mesh && self.meshes.len() >= self.config.max_meshes {
            Some(format!("broker serves {} meshes already", self.meshes.len()))
        } else if presences.saturating_sub(leaving) >= self.config.max_connections_per_mesh {
            Some(format!("mesh {} is at capacity", seat.mesh_id))
        } else if mine.saturating_sub(leaving) >= self.config.max_connections_per_member {
            Some(format!(
                "member {} holds {mine} connections, the most one member may",
                seat.member_id
            ))
        } else {
            None
        };
        if let Some(message) = full {
            let refusal = Refusal::capacity(message, self.config.capacity_retry_after_ms);
            return self.reject(conn, refusal, now);
        }
        let lease = self.take_lease(&seat);
        if let Some(lease) = &lease {
            // A silent reattach: to everyone else the presence never left.
            let old = &lease.seat;
            seat.connected_at.clone_from(&old.connected_at);
            seat.status.clone_from(&old.status);
            seat.summary.clone_from(&old.summary);
            seat.visible = old.visible;
            seat.profile.clone_from(&old.profile);
            self.stats.presences_reattached += 1;
        }
        let keys = {
            let mut keys = vec![seat.proven_pubkey().to_owned(), seat.member_pubkey.clone()];
            keys.dedup();
            keys
        };
        let mesh_id = seat.mesh_id.clone();
        let member_pubkey = seat.member_pubkey.clone();
        let notice_key = seat.proven_pubkey().to_owned();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.phase = Phase::Open(Box::new(seat));
        self.pending_hellos = self.pending_hellos.saturating_sub(1);
        c.last_activity = now.instant;
        c.next_ping = tether_proto::deadline_after(now.instant, self.config.ping_interval);
        self.touch(conn);
        let cap = self.config.max_offline_keys_per_mesh;
        let mesh = self.meshes.entry(mesh_id.clone()).or_default();
        mesh.open.insert(conn);
        mesh.remember_member(&member_pubkey, cap);

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
                mesh_id: mesh_id.clone(),
                pubkey: notice_key,
            },
        );
        for old in replaced {
            self.stats.sessions_replaced += 1;
            self.replace(old, conn, now);
        }
        let kept = lease.map(|l| l.queue).unwrap_or_default();
        self.release_kept(&kept);
        for message in kept {
            self.push_to(conn, message, now);
        }
        self.deliver_offline(conn, &mesh_id, &keys, now);
    }

    /// Open connections that are the same session as `seat` (same member).
    fn same_session(&self, seat: &Seat) -> Vec<ConnId> {
        let Some(mesh) = self.meshes.get(&seat.mesh_id) else {
            return Vec::new();
        };
        mesh.open
            .iter()
            .copied()
            .filter(|id| {
                self.conns
                    .get(id)
                    .and_then(|c| c.seat())
                    .is_some_and(|s| s.same_session(seat))
            })
            .collect()
    }

    /// Presences (open and lingering) of one member in a mesh.
    fn presences_of(&self, mesh_id: &str, member_pubkey: &str) -> usize {
        let Some(mesh) = self.meshes.get(mesh_id) else {
            return 0;
        };
        let open = mesh
            .open
            .iter()
            .filter(|id| {
                self.conns
                    .get(id)
                    .and_then(|c| c.seat())
                    .is_some_and(|s| s.member_pubkey == member_pubkey)
            })
            .count();
        let lingering = mesh
            .lingering
            .iter()
            .filter(|id| {
                self.leases
                    .get(id)
                    .is_some_and(|l| l.seat.member_pubkey == member_pubkey)
            })
            .count();
        open + lingering
    }

    fn has_lease_for(&self, seat: &Seat) -> bool {
        self.meshes.get(&seat.mesh_id).is_some_and(|mesh| {
            mesh.lingering
                .iter()
                .any(|id| self.leases.get(id).is_some_and(|l| l.seat.same_session(seat)))
        })
    }

    /// Sends the `error` frame, then the close the refusal names.
    pub(crate) fn reject(&mut self, conn: ConnId, refusal: Refusal, now: Now) {
        self.send_frame(conn, refusal.error_frame());
        *self
            .stats
            .hellos_rejected
            .entry(refusal.code.clone())
            .or_default() += 1;
        self.notice(conn, Notice::HelloRejected { code: refusal.code });
        self.close(conn, refusal.close_code, &refusal.close_reason, now);
    }
}
