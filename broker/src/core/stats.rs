//! Counters of everything the broker did, refused or dropped (X4, X12).

use std::collections::BTreeMap;

/// A snapshot of the broker's counters and current buffer sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Connections opened by the host.
    pub connections_opened: u64,
    /// Connections that ended, whoever ended them.
    pub connections_closed: u64,
    /// Hellos accepted.
    pub hellos_accepted: u64,
    /// Hellos refused, by `error` code.
    pub hellos_rejected: BTreeMap<String, u64>,
    /// Hellos refused with `capacity` because they came faster than `hello_rate`.
    pub hellos_rate_limited: u64,
    /// Hellos left unanswered by the stall fault.
    pub hellos_stalled: u64,
    /// Connections closed for never getting a hello accepted in time.
    pub hello_timeouts: u64,
    /// Connections closed with `session_replaced`.
    pub sessions_replaced: u64,
    /// Presences that entered their grace when their connection closed.
    pub presences_lingered: u64,
    /// Lingering presences taken over by a new hello of the same session.
    pub presences_reattached: u64,
    /// Lingering presences whose grace ran out.
    pub presences_expired: u64,
    /// Messages kept on a lingering presence for its reattach.
    pub queued_on_lease: u64,
    /// Frames received from connections the core knows.
    pub frames_in: u64,
    /// Frames over `max_frame_len`, each closed with 1009.
    pub frames_too_large: u64,
    /// Text frames that were not UTF-8, each closed with 1007.
    pub frames_not_utf8: u64,
    /// Frames that could not be decoded.
    pub malformed_frames: u64,
    /// Frames with a `type` the broker does not handle.
    pub unknown_types: u64,
    /// Frames ignored (from silenced or stalled connections, or unknown ids).
    pub frames_ignored: u64,
    /// `send` frames handled.
    pub sends: u64,
    /// Sends answered from the dedupe window instead of delivered again.
    pub duplicate_sends: u64,
    /// Sends refused with an error ack: no connected peer for the direct target.
    pub targets_not_found: u64,
    /// Sends refused for a too large payload.
    pub payloads_too_large: u64,
    /// Push frames sent, first pushes only.
    pub pushes: u64,
    /// Push frames sent again after their lease ran out.
    pub repushes: u64,
    /// Pushes given up after `max_pushes_per_message`.
    pub pushes_given_up: u64,
    /// `client_ack` frames that confirmed a push.
    pub client_acks: u64,
    /// `client_ack` frames that matched nothing.
    pub client_acks_unmatched: u64,
    /// Unconfirmed pushes dropped because a connection's lease table was full.
    pub unacked_dropped: u64,
    /// Messages put in an offline queue (those of presences whose grace ran out).
    pub queued_offline: u64,
    /// Kept messages dropped (a lease's or an offline queue full, too many offline keys).
    pub offline_dropped: u64,
    /// Dedupe entries evicted to stay within the window.
    pub dedupe_evicted: u64,
    /// Memories evicted to stay within the cap.
    pub memories_evicted: u64,
    /// `set_state` calls refused because the mesh has too many keys.
    pub state_refused: u64,
    /// Acks held back by the delay fault.
    pub acks_delayed: u64,
    /// Pings sent.
    pub pings_sent: u64,
    /// Open connections dropped for silence longer than `stale_after`.
    pub stale_dropped: u64,
    /// Outputs swallowed because their connection is silenced.
    pub silenced_outputs: u64,
    /// Garbage frames injected.
    pub garbage_sent: u64,
    /// Gauge: connections the core knows now.
    pub live_connections: u64,
    /// Gauge: connections with an accepted hello now.
    pub open_connections: u64,
    /// Gauge: meshes with data.
    pub meshes: u64,
    /// Gauge: messages waiting in offline queues.
    pub offline_queued: u64,
    /// Empty meshes forgotten (open membership).
    pub meshes_freed: u64,
    /// Connections refused at open: too many waiting for their hello, or too many in all.
    pub connections_refused: u64,
    /// Hello fields, presence updates, state or memories refused for their size.
    pub fields_too_large: u64,
    /// Replies cut to fit `max_reply_len` (they carry `truncated: true`).
    pub replies_truncated: u64,
    /// Frames refused for a duplicate `type` key.
    pub duplicate_type_keys: u64,
    /// Gauge: bytes of messages kept on leases and in offline queues.
    pub kept_bytes: u64,
    /// Gauge: bytes of pushes waiting for a `client_ack`.
    pub unacked_bytes: u64,
    /// Gauge: connections waiting for their hello to be accepted.
    pub pending_hellos: u64,
    /// Gauge: presences in their grace.
    pub lingering_presences: u64,
    /// Gauge: messages kept on lingering presences.
    pub lease_queued: u64,
    /// Gauge: pushes waiting for a `client_ack`.
    pub unacked_pushes: u64,
    /// Gauge: acks held back by the delay fault.
    pub delayed_acks: u64,
    /// Gauge: entries in the dedupe window.
    pub dedupe_entries: u64,
}
