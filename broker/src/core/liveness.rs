//! What falls due on a connection: the hello deadline, pings, the stale drop, and
//! re-pushes of unconfirmed messages.

use tether_proto::Now;

use super::broker::Broker;
use super::conn::Phase;
use super::output::{ConnId, OutputKind};

/// Close reason for a connection that never got a hello accepted in time.
pub const HELLO_TIMEOUT_REASON: &str = "hello_timeout";

impl Broker {
    pub(crate) fn conn_due(&mut self, conn: ConnId, now: Now) {
        self.touch(conn);
        let stale_after = self.config.stale_after;
        let ping_interval = self.config.ping_interval;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Phase::AwaitingHello { deadline } | Phase::Stalled { deadline } = c.phase {
            if now.instant >= deadline {
                self.stats.hello_timeouts += 1;
                self.close(conn, 1008, HELLO_TIMEOUT_REASON, now);
            }
            return;
        }
        // A silenced connection hears nothing, so it goes stale from the moment it was silenced.
        let silent = c.silent_since.is_some();
        let quiet_since = c.silent_since.unwrap_or(c.last_activity);
        if now.instant >= tether_proto::deadline_after(quiet_since, stale_after) {
            self.stats.stale_dropped += 1;
            return self.abort(conn, now);
        }
        if silent {
            return;
        }
        let ping = now.instant >= c.next_ping;
        if ping {
            c.next_ping = tether_proto::deadline_after(now.instant, ping_interval);
        }
        let repush = self.expire_leases(conn, now);
        if ping {
            self.stats.pings_sent += 1;
            self.emit(conn, OutputKind::Ping);
        }
        for text in repush {
            self.emit(conn, OutputKind::Send(text));
        }
    }

    /// Renews every lease that ran out; returns the pushes to send again.
    fn expire_leases(&mut self, conn: ConnId, now: Now) -> Vec<String> {
        let lease = self.config.push_lease;
        let max_pushes = self.config.max_pushes_per_message;
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        let mut repush = Vec::new();
        // Bounded by the starting length so a zero lease cannot spin forever.
        for _ in 0..c.unacked.len() {
            if c.unacked.front().is_none_or(|u| u.due > now.instant) {
                break;
            }
            let Some(mut u) = c.unacked.pop_front() else {
                break;
            };
            if u.pushes >= max_pushes {
                c.unacked_bytes = c.unacked_bytes.saturating_sub(u.text.len());
                self.stats.pushes_given_up += 1;
                continue;
            }
            u.pushes += 1;
            u.due = tether_proto::deadline_after(now.instant, lease);
            repush.push(u.text.clone());
            c.unacked.push_back(u);
        }
        self.stats.repushes += repush.len() as u64;
        repush
    }
}
