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

impl Lease {
    /// Adds a message, dropping the oldest beyond `cap`; returns how many were dropped.
    fn add(&mut self, message: Queued, cap: usize) -> u64 {
        self.queue.push_back(message);
        let mut dropped = 0;
        while self.queue.len() > cap {
            self.queue.pop_front();
            dropped += 1;
        }
        dropped
    }
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
        let Some(until) = now.instant.checked_add(self.config.presence_grace) else {
            return self.keep_offline(&seat, queue);
        };
        if self.config.presence_grace.is_zero() {
            return self.keep_offline(&seat, queue);
        }
        let id = self.next_lease;
        self.next_lease += 1;
        let Some(mesh) = self.meshes.get_mut(&seat.mesh_id) else {
            return;
        };
        mesh.lingering.insert(id);
        self.lease_timers.insert((until, id));
        self.stats.presences_lingered += 1;
        let mut lease = Lease {
            seat: *seat,
            until,
            queue: VecDeque::new(),
        };
        for message in queue {
            self.stats.offline_dropped += lease.add(message, self.config.offline_queue_per_key);
        }
        self.leases.insert(id, lease);
    }

    /// Queues a message on lease `id`; false when there is no such lease.
    pub(crate) fn queue_on_lease(&mut self, id: u64, message: Queued) -> bool {
        let cap = self.config.offline_queue_per_key;
        let Some(lease) = self.leases.get_mut(&id) else {
            return false;
        };
        self.stats.offline_dropped += lease.add(message, cap);
        self.stats.queued_on_lease += 1;
        true
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
                self.keep_offline(&lease.seat, lease.queue);
            } else {
                self.lease_timers.remove(&(until, id));
            }
        }
    }

    fn keep_offline(&mut self, seat: &Seat, queue: VecDeque<Queued>) {
        let key = seat.proven_pubkey().to_owned();
        for message in queue {
            self.enqueue_offline(&seat.mesh_id, &key, message);
        }
    }
}
