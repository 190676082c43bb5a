//! Broker settings; every buffer the broker keeps has its cap here.

use std::time::Duration;

use super::membership::Membership;
use super::skills::SkillBook;

/// PROTOCOL.md: brokers ping every 30 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// PROTOCOL.md: brokers drop a connection silent for 75 s.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(75);
/// PROTOCOL.md: unconfirmed pushes are re-pushed after a 30 s lease.
pub const DEFAULT_PUSH_LEASE: Duration = Duration::from_secs(30);
/// Twice the client's default hello-ack deadline (5 s, L2), so a slow client is not cut first.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The real broker's `MAX_MESSAGE_BYTES`: a send whose ciphertext, nonce and target
/// are longer together is refused with an error ack `payload too large: …`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 65_536;
/// Largest inbound frame: a message of `DEFAULT_MAX_MESSAGE_BYTES` plus room for the
/// envelope, so an oversized payload reaches the core and gets its error ack; a larger
/// frame is closed with 1009.
pub const DEFAULT_MAX_FRAME_LEN: usize = DEFAULT_MAX_MESSAGE_BYTES + 16 * 1024;
/// The real broker's `MAX_CONNECTIONS_PER_MESH`.
pub const DEFAULT_MAX_CONNECTIONS_PER_MESH: usize = 100;
/// The clients' inbound frame cap (tether's `DEFAULT_MAX_FRAME_LEN`, 1 MiB) less room
/// to spare: no reply the broker sends is larger.
pub const DEFAULT_MAX_REPLY_LEN: usize = (1 << 20) - 1024;
/// The real broker's `GRACE_MS`: a closed connection's presence lingers this long.
pub const DEFAULT_PRESENCE_GRACE: Duration = Duration::from_secs(90);

/// Everything a [`crate::core::Broker`] is configured with.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Who may join which mesh.
    pub membership: Membership,
    /// Skills served by `list_skills` / `get_skill` in every mesh.
    pub skills: SkillBook,
    /// Seed of the id generator (message, presence and memory ids).
    pub seed: u64,
    /// Largest inbound frame, in bytes; a bigger one closes the connection with 1009.
    pub max_frame_len: usize,
    /// Largest send payload: `ciphertext`, `nonce` and `targetSpec` lengths together.
    pub max_payload: usize,
    /// Presences (open connections and lingering ones) allowed per mesh before hellos
    /// are refused with `capacity`.
    pub max_connections_per_mesh: usize,
    /// How long a closed connection's presence lingers for a reattach (zero: none).
    pub presence_grace: Duration,
    /// Presences (open and lingering) one member may hold per mesh.
    pub max_connections_per_member: usize,
    /// Connections the core knows at once, hello or not; more are refused at open.
    pub max_connections: usize,
    /// Connections waiting for their hello at once; more are refused at open.
    pub max_pending_hellos: usize,
    /// Longest id, name or label in a hello or presence update (`displayName`,
    /// `sessionId`, `cwd`, a group name, a status …), in bytes.
    pub max_field_len: usize,
    /// Most entries of a list in a hello or profile (`groups`, `capabilities`).
    pub max_list_len: usize,
    /// Longest free text of a presence (`summary`, each profile field), in bytes.
    pub max_text_len: usize,
    /// Longest shared-state key, in bytes.
    pub max_state_key_len: usize,
    /// Largest shared-state value, in bytes of its JSON.
    pub max_state_value_len: usize,
    /// Shared state per mesh, keys and values together, in bytes.
    pub max_state_bytes_per_mesh: usize,
    /// Largest memory (`content` and tags), in bytes.
    pub max_memory_len: usize,
    /// Memories per mesh, in bytes; the oldest are evicted beyond it.
    pub max_memory_bytes_per_mesh: usize,
    /// Largest reply frame; longer lists are cut and marked `truncated: true`.
    pub max_reply_len: usize,
    /// Bytes of unconfirmed pushes kept per connection; the oldest dropped beyond it.
    pub max_unacked_bytes_per_conn: usize,
    /// Bytes of messages kept for lingering presences and offline keys, broker-wide;
    /// a message beyond it is not kept (counted).
    pub max_kept_bytes: usize,
    /// Hellos admitted per second, if limited: the rest are refused with
    /// `capacity` and a `retryAfterMs` that is the refused client's turn in the
    /// queue of turns already promised ([`crate::core::Admission`]), checked
    /// before any signature. `None` (the default) admits every hello.
    pub hello_rate: Option<crate::core::HelloRate>,
    /// `retryAfterMs` sent with a `capacity` rejection.
    pub capacity_retry_after_ms: u64,
    /// Meshes the broker keeps data for; a hello for a new mesh beyond it gets `capacity`.
    pub max_meshes: usize,
    /// How long a connection may stay open without an accepted hello.
    pub hello_timeout: Duration,
    /// Interval between pings to an open connection.
    pub ping_interval: Duration,
    /// An open connection with no frame or pong for this long is dropped.
    pub stale_after: Duration,
    /// An unconfirmed push is pushed again after this long.
    pub push_lease: Duration,
    /// Pushes of one message to one connection before it is given up (counted).
    pub max_pushes_per_message: u32,
    /// Unconfirmed pushes kept per connection; the oldest is dropped beyond it.
    pub max_unacked_per_conn: usize,
    /// Messages kept per lingering presence and per offline key; oldest dropped beyond it.
    pub offline_queue_per_key: usize,
    /// Offline recipient keys per mesh.
    pub max_offline_keys_per_mesh: usize,
    /// `(sender, client_message_id)` pairs remembered for exactly-once sends.
    pub dedupe_window: usize,
    /// Memories kept per mesh; the oldest is evicted beyond it.
    pub max_memories_per_mesh: usize,
    /// Shared state keys per mesh; a new key beyond it is refused.
    pub max_state_keys_per_mesh: usize,
    /// Acks held back by the delay fault; beyond it they are sent at once.
    pub max_delayed_acks: usize,
}

impl BrokerConfig {
    /// Refuses a period of zero (the broker would spin) and any duration over
    /// [`tether_proto::MAX_DURATION`] (a deadline it would not arm), naming it.
    /// The server checks this before it listens; the core never panics on a
    /// duration either way, its deadlines saturate.
    pub fn validate(&self) -> Result<(), tether_proto::lifecycle::ConfigError> {
        use tether_proto::lifecycle::ConfigError;
        for (name, value) in [
            ("hello_timeout", self.hello_timeout),
            ("ping_interval", self.ping_interval),
            ("stale_after", self.stale_after),
            ("push_lease", self.push_lease),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
            if value > tether_proto::MAX_DURATION {
                return Err(ConfigError::TooLong {
                    name,
                    max: tether_proto::MAX_DURATION,
                });
            }
        }
        if let Some(rate) = self.hello_rate {
            if rate.per_second == 0 {
                return Err(ConfigError::Zero("hello_rate.per_second"));
            }
            if rate.max_wait > tether_proto::MAX_DURATION {
                return Err(ConfigError::TooLong {
                    name: "hello_rate.max_wait",
                    max: tether_proto::MAX_DURATION,
                });
            }
        }
        Ok(())
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            membership: Membership::Open,
            skills: SkillBook::default(),
            seed: 0,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_payload: DEFAULT_MAX_MESSAGE_BYTES,
            max_connections_per_mesh: DEFAULT_MAX_CONNECTIONS_PER_MESH,
            presence_grace: DEFAULT_PRESENCE_GRACE,
            max_connections_per_member: 10,
            max_connections: 10_000,
            max_pending_hellos: 1_024,
            max_field_len: 256,
            max_list_len: 32,
            max_text_len: 4 * 1024,
            max_state_key_len: 256,
            max_state_value_len: 16 * 1024,
            max_state_bytes_per_mesh: 256 * 1024,
            max_memory_len: 16 * 1024,
            max_memory_bytes_per_mesh: 512 * 1024,
            max_reply_len: DEFAULT_MAX_REPLY_LEN,
            max_unacked_bytes_per_conn: 2 * 1024 * 1024,
            max_kept_bytes: 64 * 1024 * 1024,
            capacity_retry_after_ms: 5_000,
            hello_rate: None,
            max_meshes: 256,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            stale_after: DEFAULT_STALE_AFTER,
            push_lease: DEFAULT_PUSH_LEASE,
            max_pushes_per_message: 10,
            max_unacked_per_conn: 256,
            offline_queue_per_key: 100,
            max_offline_keys_per_mesh: 1000,
            dedupe_window: 10_000,
            max_memories_per_mesh: 1000,
            max_state_keys_per_mesh: 1000,
            max_delayed_acks: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert!(BrokerConfig::default().validate().is_ok());
        let config = BrokerConfig {
            push_lease: Duration::MAX,
            ..BrokerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(tether_proto::lifecycle::ConfigError::TooLong {
                name: "push_lease",
                ..
            })
        ));
        let config = BrokerConfig {
            ping_interval: Duration::ZERO,
            ..BrokerConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(tether_proto::lifecycle::ConfigError::Zero("ping_interval"))
        );
    }
}
