//! Building blocks of the end-to-end suites: a broker on 127.0.0.1 port 0 with
//! short timings, member identities, and clients configured to match.

use std::net::SocketAddr;
use std::time::Duration;

use tether_broker::core::{MemberRecord, Roster};
use tether_broker::{BrokerConfig, BrokerHandle, BrokerServer, Membership, ServerConfig, TlsSetup};
use tether_proto::lifecycle::{Config, FirstConnect};
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::session::SessionConfig;
use tether_proto::mesh::wire::HelloExtras;
use tether_proto::policy::Backoff;

use crate::hosts::Spec;

/// The mesh every test member belongs to.
pub const MESH: &str = "mesh-e2e";

/// How long a test waits for an event before declaring it lost. A safety net:
/// tests proceed as soon as the event arrives.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A member identity whose key is derived from `n`, so tests can name peers.
pub fn member(n: u8) -> MemberIdentity {
    MemberIdentity {
        mesh_id: MESH.to_owned(),
        member_id: format!("member-{n}"),
        secret: SecretKey::from_seed([n; 32]),
    }
}

/// The public key of [`member`]`(n)`.
pub fn pubkey(n: u8) -> String {
    member(n).secret.public_key().to_hex()
}

/// A roster listing members `1..=count`, `revoked` ones marked so.
pub fn membership(count: u8, revoked: &[u8]) -> Membership {
    let members = (1..=count)
        .map(|n| MemberRecord {
            member_id: format!("member-{n}"),
            pubkey: pubkey(n),
            display_name: format!("peer-{n}"),
            revoked: revoked.contains(&n),
            groups: Vec::new(),
        })
        .collect();
    Membership::Listed([(MESH.to_owned(), Roster::new(members))].into_iter().collect())
}

/// Broker timings short enough for tests: pings every 200 ms, stale after 600 ms.
pub fn broker_config(membership: Membership) -> ServerConfig {
    let broker = BrokerConfig {
        membership,
        ping_interval: Duration::from_millis(200),
        stale_after: Duration::from_millis(600),
        hello_timeout: Duration::from_secs(2),
        push_lease: Duration::from_secs(2),
        ..BrokerConfig::default()
    };
    ServerConfig {
        broker,
        close_linger: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

/// Starts a broker on 127.0.0.1, port 0.
pub async fn start_broker(config: ServerConfig, tls: Option<TlsSetup>) -> BrokerHandle {
    match BrokerServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), tls).await {
        Ok(handle) => handle,
        Err(e) => panic!("broker failed to start: {e}"),
    }
}

/// Client timings matching [`broker_config`]: hello ack within 500 ms, pings every
/// 200 ms, stale after 600 ms, backoff 100, 200, 400, 800 ms with the default jitter.
pub fn lifecycle(url: &str) -> Config {
    let mut c = Config::new(url);
    c.hello_ack_timeout = Duration::from_millis(500);
    c.open_timeout = Some(Duration::from_secs(2));
    c.ping_interval = Duration::from_millis(200);
    c.stale_after = Duration::from_millis(600);
    c.stability_window = Duration::from_millis(300);
    c.force_reconnect_delay = Duration::from_millis(50);
    c.backoff = Backoff::new(
        [100, 200, 400, 800]
            .into_iter()
            .map(Duration::from_millis)
            .collect(),
    )
    .unwrap_or_default();
    c
}

/// A client configuration (for either host) for member `n` with session id
/// `session`, with the timings of [`lifecycle`].
pub fn spec(url: &str, n: u8, session: &str) -> Spec {
    let presence = Presence {
        session_id: session.to_owned(),
        pid: std::process::id(),
        cwd: "/e2e".to_owned(),
        extras: HelloExtras {
            display_name: Some(format!("peer-{n}")),
            ..HelloExtras::default()
        }
        .into(),
    };
    let mut spec = Spec::new(url, Credentials::Member(member(n)), presence);
    spec.session = SessionConfig::new(lifecycle(url));
    spec.session.send_ack_timeout = Duration::from_secs(3);
    spec.session.request_timeout = Duration::from_secs(3);
    spec.seed = Some(u64::from(n));
    spec
}

/// Keeps connecting (not failing fast) after a failed first attempt.
pub fn retrying_spec(mut spec: Spec) -> Spec {
    spec.session.lifecycle.first_connect = FirstConnect::Retry;
    spec
}
