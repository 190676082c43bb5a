//! The mesh protocol as a [`Handshake`]: a signed `hello` (or `session_hello`)
//! built fresh for every attempt, `hello_ack` opens, an `error` before it refuses.

use std::time::Duration;

use super::identity::{MemberIdentity, Presence, SecretKey};
use super::wire::{decode_broker_frame, BrokerFrame, ClientFrame, DecodeError};
use crate::lifecycle::{Handshake, HelloError, PreOpen, Rejection};

/// How long a re-minted session attestation stays valid (brokers refuse more than
/// 24 h ahead; an hour is plenty since a new one is minted for every attempt).
pub const DEFAULT_ATTESTATION_TTL: Duration = Duration::from_secs(60 * 60);

/// Largest inbound frame decoded by default; bigger ones are dropped and counted.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// Who this connection speaks for.
// The member identity is the common case and lives inline; only the rarer,
// larger session credentials are boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Credentials {
    /// The member's own key: `hello` (the daemon's member-keyed socket).
    Member(MemberIdentity),
    /// An ephemeral session key vouched for by the member: `session_hello`.
    /// Boxed: twice the size of a member identity, and every connection's
    /// handshake would pay for it (memory per idle connection counts).
    Session(Box<SessionCredentials>),
}

/// A session key and the member that vouches for it.
#[derive(Clone, Debug)]
pub struct SessionCredentials {
    /// The parent member, who signs the attestation.
    pub parent: MemberIdentity,
    /// The session's key, which signs the hello.
    pub session_key: SecretKey,
    /// Optional role of the session.
    pub role: Option<String>,
    /// Lifetime of each re-minted attestation.
    pub attestation_ttl: Duration,
}

/// The mesh [`Handshake`].
#[derive(Clone, Debug)]
pub struct MeshHandshake {
    credentials: Credentials,
    presence: Presence,
    headers: Vec<(String, String)>,
    max_frame_len: usize,
}

impl MeshHandshake {
    /// A handshake for these credentials and presence fields.
    pub fn new(credentials: Credentials, presence: Presence) -> Self {
        MeshHandshake {
            credentials,
            presence,
            headers: Vec::new(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// Extra request headers sent with every attempt.
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

    /// The largest inbound frame that is decoded.
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// The credentials in use.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The public key others address this connection by.
    pub fn pubkey_hex(&self) -> String {
        match &self.credentials {
            Credentials::Member(m) => m.secret.public_hex(),
            Credentials::Session(s) => s.session_key.public_hex(),
        }
    }

    /// The presence fields sent with every hello.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Updates the presence fields; the next attempt's hello carries them.
    pub fn presence_mut(&mut self) -> &mut Presence {
        &mut self.presence
    }
}

impl Handshake for MeshHandshake {
    type Message = BrokerFrame;
    type DecodeError = DecodeError;

    fn headers(&mut self, _attempt: u64, _unix_ms: u64) -> Result<Vec<(String, String)>, HelloError> {
        Ok(self.headers.clone())
    }

    fn hello(&mut self, _attempt: u64, unix_ms: u64) -> Result<Option<String>, HelloError> {
        // B12, D8: the timestamp, signature and attestation are minted here, for
        // this attempt only; nothing signed is ever reused.
        let frame = match &self.credentials {
            Credentials::Member(member) => ClientFrame::Hello(member.hello(&self.presence, unix_ms)),
            Credentials::Session(s) => {
                let SessionCredentials {
                    parent,
                    session_key,
                    role,
                    attestation_ttl,
                } = &**s;
                let ttl = u64::try_from(attestation_ttl.as_millis()).unwrap_or(u64::MAX);
                let mut hello = parent.session_hello(session_key, &self.presence, unix_ms, ttl);
                hello.role.clone_from(role);
                ClientFrame::SessionHello(hello)
            }
        };
        Ok(Some(frame.encode()))
    }

    fn decode(&mut self, text: String) -> Result<BrokerFrame, DecodeError> {
        decode_broker_frame(&text, self.max_frame_len)
    }

    fn classify(&mut self, message: &BrokerFrame) -> PreOpen {
        match message {
            BrokerFrame::HelloAck(_) => PreOpen::Ack,
            BrokerFrame::Error(e) => PreOpen::Rejection(Rejection {
                code: e.code.clone(),
                message: e.message.clone(),
                retry_after: e.retry_after_ms.map(Duration::from_millis),
            }),
            _ => PreOpen::Other,
        }
    }
}
