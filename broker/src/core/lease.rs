//! The presence grace of the real broker (`GRACE_MS`, 90 s): a closed connection's
//! presence lingers, still listed and still addressable; messages sent to it meanwhile
//! wait in its lease, and a hello of the same session inside the window takes the
//! presence over silently and receives them.

use std::collections::VecDeque;
use std::time::Instant;

use tether_proto::Now;

use super::broker::Broker;
use super::conn::{Conn, Phase, Seat};
use super::mesh::Queued;

/// A presence whose connection is gone, kept until `until`.
#[derive(Debug)]
pub(crate) struct Lease {
    pub seat: Seat,
    pub until: Instant,
    /// Unconfirmed pushes of the closed connection, then messages sent since, oldest first.
    pub queue: VecDeque<Queued>,
}

impl Broker {
    /// A gone connection's presence starts its grace, keeping its unconfirmed pushes.
    /// Without a grace window (or with a clock at its end) the pushes go to the
    /// offline queue of its key right away.
    pub(crate) fn linger(&mut self, c: Conn, now: Now) {
        let Phase::Open(seat) = c.phase else {
            return;
        };
        let queue: VecDeque<Queued> = c
            .unacked
            .into_iter()
            .map(|u| Queued {
                message_id: u.message_id,
                client_message_id: u.client_message_id,
                text: u.text,
            })
            .collect();
        let until = now.instant.checked_add(self.config.presence_grace);
        let Some(until) = until.filter(|_| !self.config.presence_grace.is_zero()) else {
            self.keep_offline(&seat, queue);
            return self.free_if_empty(&seat.mesh_id);
        };
        let id = self.next_lease;
        self.next_lease += 1;
        let Some(mesh) = self.meshes.get_mut(&seat.mesh_id) else {
            return;
        };
        mesh.lingering.insert(id);
        self.lease_timers.insert((until, id));
        self.stats.presences_lingered += 1;
        let lease = Lease {
            seat: *seat,
            until,
            queue: VecDeque::new(),
        };
        self.leases.insert(id, lease);
        for message in queue {
            self.queue_on_lease(id, message);
        }
    }

    /// Queues a message on lease `id` within the per-presence cap (oldest dropped) and
    /// the broker-wide budget of kept bytes (the new one refused); all counted.
    pub(crate) fn queue_on_lease(&mut self, id: u64, message: Queued) {
        let cap = self.config.offline_queue_per_key;
        let len = message.text.len();
        if self.kept_bytes + len > self.config.max_kept_bytes {
            self.stats.offline_dropped += 1;
            return;
        }
        let Some(lease) = self.leases.get_mut(&id) else {
            return;
        };
        self.kept_bytes += len;
        lease.queue.push_back(message);
        self.stats.queued_on_lease += 1;
        while lease.queue.len() > cap {
            if let Some(old) = lease.queue.pop_front() {
                self.kept_bytes = self.kept_bytes.saturating_sub(old.text.len());
            }
            self.stats.offline_dropped += 1;
        }
    }

    /// The lease, if any, that a new hello of `seat` takes over (the same session of
    /// the same member), removed from every index.
    pub(crate) fn take_lease(&mut self, seat: &Seat) -> Option<Lease> {
        let mesh = self.meshes.get(&seat.mesh_id)?;
        let id = mesh
            .lingering
            .iter()
            .copied()
            .find(|id| self.leases.get(id).is_some_and(|l| l.seat.same_session(seat)))?;
        self.remove_lease(id)
    }

    pub(crate) fn remove_lease(&mut self, id: u64) -> Option<Lease> {
        let lease = self.leases.remove(&id)?;
        self.lease_timers.remove(&(lease.until, id));
        if let Some(mesh) = self.meshes.get_mut(&lease.seat.mesh_id) {
            mesh.lingering.remove(&id);
        }
        Some(lease)
    }

    /// Ends every grace that ran out by `now`: the presence is gone for good and what
    /// waited for it goes to the offline queue of its key.
    pub(crate) fn expire_presences(&mut self, now: Now) {
        while let Some(&(until, id)) = self.lease_timers.first() {
            if until > now.instant {
                break;
            }
            if let Some(lease) = self.remove_lease(id) {
                self.stats.presences_expired += 1;
                self.release_kept(&lease.queue);
                self.keep_offline(&lease.seat, lease.queue);
                self.free_if_empty(&lease.seat.mesh_id);
            } else {
                self.lease_timers.remove(&(until, id));
            }
        }
    }

    /// Gives back the kept-bytes budget of messages leaving a lease or a queue.
    pub(crate) fn release_kept<'a>(&mut self, queue: impl IntoIterator<Item = &'a Queued>) {
        let bytes: usize = queue.into_iter().map(|q| q.text.len()).sum();
        self.kept_bytes = self.kept_bytes.saturating_sub(bytes);
    }

    fn keep_offline(&mut self, seat: &Seat, queue: VecDeque<Queued>) {
        let key = seat.proven_pubkey().to_owned();
        for message in queue {
            self.enqueue_offline(&seat.mesh_id, &key, message);
        }
    }
}
