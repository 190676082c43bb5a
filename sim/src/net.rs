//! The simulated network: links between client sockets and broker connections,
//! with per-link latency, ordered delivery, half-open links, partitions and
//! refused connects. Pure data: the world moves packets when their time comes.

use std::collections::BTreeMap;
use std::time::Duration;

use tether_broker::ConnId;
use tether_proto::lifecycle::{ConnectFailureKind, SocketId};

/// Identifies one link (one TCP connection).
pub type LinkId = u64;

/// One simulated TCP connection.
#[derive(Clone, Debug)]
pub struct Link {
    /// The client at one end.
    pub client: usize,
    /// The client's id for it.
    pub socket: SocketId,
    /// The broker's id for it.
    pub conn: ConnId,
    /// Carries nothing more, both ways, and says nothing (a NAT forgot it).
    pub half_open: bool,
    /// Reset: whatever is still in flight is lost.
    pub lost: bool,
    /// Which broker incarnation accepted it; a restarted broker knows none of the old.
    pub epoch: u64,
    /// The broker has seen it open.
    pub accepted: bool,
    /// Since when it has silently carried nothing (half-open), if it has.
    pub dead_since: Option<Duration>,
    /// When the last packet towards the broker / the client is delivered (TCP keeps order).
    pub last_to_broker: Duration,
    /// See `last_to_broker`.
    pub last_to_client: Duration,
}

/// What travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// The connection reaches the broker.
    BrokerOpen,
    /// The upgrade response reaches the client.
    ClientOpened,
    /// The connect failed, of this kind (refused, an HTTP status …).
    ClientConnectFailed(ConnectFailureKind),
    /// A text frame for the broker.
    ToBroker(String),
    /// A pong for the broker.
    BrokerActivity,
    /// A ping for the broker (its host answers with a pong).
    ToBrokerPing,
    /// The client closed or dropped the connection.
    BrokerClosed,
    /// A text frame for the client.
    ToClientText(String),
    /// A ping for the client (its host answers with a pong).
    ToClientPing,
    /// A pong for the client.
    ToClientPong,
    /// The broker closed the connection (1006 when it just dropped it).
    ClientClosed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
}

impl Packet {
    /// Whether the packet travels towards the broker.
    pub fn to_broker(&self) -> bool {
        matches!(
            self,
            Packet::BrokerOpen
                | Packet::ToBroker(_)
                | Packet::BrokerActivity
                | Packet::ToBrokerPing
                | Packet::BrokerClosed
        )
    }
}

/// Packets in flight, ordered by delivery time then by send order.
#[derive(Debug, Default)]
pub struct Net {
    /// The links ever made.
    pub links: BTreeMap<LinkId, Link>,
    queue: BTreeMap<(Duration, u64), (LinkId, Packet)>,
    seq: u64,
    next_link: LinkId,
}

impl Net {
    /// A new link.
    pub fn link(&mut self, client: usize, socket: SocketId, conn: ConnId, epoch: u64) -> LinkId {
        self.next_link += 1;
        self.links.insert(
            self.next_link,
            Link {
                client,
                socket,
                conn,
                half_open: false,
                lost: false,
                epoch,
                accepted: false,
                dead_since: None,
                last_to_broker: Duration::ZERO,
                last_to_client: Duration::ZERO,
            },
        );
        self.next_link
    }

    /// Puts `packet` on `link`, delivered no earlier than `at` and after every
    /// earlier packet in the same direction.
    pub fn send(&mut self, link: LinkId, at: Duration, packet: Packet) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.half_open || l.lost {
            return;
        }
        let last = if packet.to_broker() {
            &mut l.last_to_broker
        } else {
            &mut l.last_to_client
        };
        let at = at.max(*last);
        *last = at;
        self.seq += 1;
        self.queue.insert((at, self.seq), (link, packet));
    }

    /// Delivers a packet outside any link's order (connect failures).
    pub fn send_unordered(&mut self, link: LinkId, at: Duration, packet: Packet) {
        self.seq += 1;
        self.queue.insert((at, self.seq), (link, packet));
    }

    /// When the next packet is due.
    pub fn next_time(&self) -> Option<Duration> {
        self.queue.keys().next().map(|(t, _)| *t)
    }

    /// Takes the next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<(LinkId, Packet)> {
        let (&key, _) = self.queue.iter().next()?;
        if key.0 > now {
            return None;
        }
        self.queue.remove(&key)
    }

    /// Puts a packet back to be delivered at `at` (a sleeping host reads later).
    pub fn defer(&mut self, link: LinkId, at: Duration, packet: Packet) {
        self.seq += 1;
        self.queue.insert((at, self.seq), (link, packet));
    }
}
