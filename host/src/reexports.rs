//! Everything a mesh or hosted client's code names, flat: both hosts re-export
//! this module whole (`pub use tether_host::reexports::*`), so an application
//! imports from its host crate alone and the list is written once.

pub use crate::builder::ClientBuilder;
pub use crate::drive::Drive;
pub use crate::error::{ClientError, ClientEvent, ConnectError, Sent, Shutdown, CLOSED};
pub use crate::fanout::{Receiver, TryRecvError};
pub use crate::hosted::{HostedCallError, HostedClientConfig};
pub use crate::identity::{IdentityError, IdentityFile, SessionFile};
pub use crate::proxy::{Proxy, ProxyEnv, ProxyError, ProxyUrl};
pub use crate::queue::IoStats;
pub use crate::router::{Broadcast, MeshRouter, Router};
pub use crate::tls::{ClientCert, Roots, TlsError, TlsOptions};
pub use crate::transport::{
    Transport, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_READ_BUFFER_SIZE, DEFAULT_SUBSCRIBER_CAPACITY,
    DEFAULT_WRITE_QUEUE,
};

/// State values and control requests are JSON: `json!` and `Value` without a
/// dependency on serde_json of your own.
pub use serde_json::{json, Value};
pub use tether_proto::hosted::{HostedConfig, HostedError, HostedEvent, TokenProvider};
pub use tether_proto::lifecycle::{
    Config as LifecycleConfig, ConfigError, ConnectFailureKind, FirstConnect, Notification, Status,
    StopReason,
};
pub use tether_proto::mesh::handshake::{Credentials, SessionCredentials};
pub use tether_proto::mesh::identity::{Extras, MemberIdentity, Presence, PublicKey, SecretKey};
pub use tether_proto::mesh::push::{Push, PushBody};
pub use tether_proto::mesh::session::{
    Command, FailureKind, OpFailure, Outgoing, Overflow, Queueing, Request, RequestError, SendError,
    SendRefusal, SessionConfig, SessionStats, DEFAULT_QUEUE_DEADLINE,
};
pub use tether_proto::mesh::target::Target;
pub use tether_proto::mesh::wire::{
    BrokerFrame, HelloExtras, MemoryRow, Peer, Priority, Skill, SkillSummary, StateRow,
};
