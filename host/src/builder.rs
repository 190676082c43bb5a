//! The mesh client builder, written once for both hosts: `Client::builder(url)`
//! on tether-tokio and `BlockingClient::builder(url)` on tether-mio are this
//! type, and only the last step ([`StartMesh`]) is the host's own.
//!
//! It follows async-nats' `ConnectOptions` and reqwest's `ClientBuilder`: every
//! setter takes and returns the builder, fallible ones (reading a file) return
//! a `Result` so `?` fits in the chain, the seeds' defaults stand for whatever
//! is not set, and the whole nested [`MeshConfig`] stays reachable through
//! [`with_config`](ClientBuilder::with_config) and [`build`](ClientBuilder::build).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_proto::lifecycle::FirstConnect;
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::{MemberIdentity, Presence};

use crate::error::ConnectError;
use crate::identity::{IdentityError, IdentityFile, SessionFile};
use crate::mesh::MeshConfig;
use crate::tls::ClientCert;
use crate::transport::random_seed;

/// How a host starts its mesh client from a finished configuration: the one
/// seam between the shared [`ClientBuilder`] and each host's client type.
pub trait StartMesh: Sized {
    /// What [`ClientBuilder::connect`] hands back: a future on tokio, the
    /// result itself on the blocking host.
    type Connecting;

    /// Starts a client for `config` (an `Err` is handed back as it is). With
    /// `wait`, it resolves on the first open or fails with nothing left running
    /// (L8, D1); without, it returns the client at once, still connecting.
    fn start(config: Result<MeshConfig, ConnectError>, wait: bool) -> Self::Connecting;
}

type Tweak = Box<dyn FnOnce(&mut MeshConfig) + Send>;

/// Builds a mesh client `C` step by step; made by the host's
/// `builder(url)`. Nothing is checked or opened before [`connect`](Self::connect),
/// [`spawn`](Self::spawn) or [`build`](Self::build), except the files it reads.
#[must_use = "a builder does nothing until connect(), spawn() or build()"]
pub struct ClientBuilder<C> {
    url: String,
    credentials: Option<Credentials>,
    member: Option<MemberIdentity>,
    session: Option<SessionFile>,
    presence: Presence,
    retry_on_initial_connect: bool,
    tweaks: Vec<Tweak>,
    _client: PhantomData<fn() -> C>,
}

impl<C> std::fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field(
                "credentials",
                &(self.credentials.is_some() || self.member.is_some()),
            )
            .field("session", &self.session.as_ref().map(|s| &s.session_id))
            .field("presence", &self.presence)
            .field("retry_on_initial_connect", &self.retry_on_initial_connect)
            .field("tweaks", &self.tweaks.len())
            .finish()
    }
}

impl<C> ClientBuilder<C> {
    /// A builder for a client of the broker at `url` (`ws://` or `wss://`),
    /// with the seeds' defaults and a presence of this process: a fresh
    /// session id, its pid and working directory, protocol version 1.
    pub fn new(url: impl Into<String>) -> Self {
        let presence = Presence {
            session_id: format!("tether-{:016x}", random_seed()),
            pid: std::process::id(),
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            extras: tether_proto::mesh::wire::HelloExtras {
                protocol_version: Some(1),
                ..Default::default()
            }
            .into(),
        };
        ClientBuilder {
            url: url.into(),
            credentials: None,
            member: None,
            session: None,
            presence,
            retry_on_initial_connect: false,
            tweaks: Vec::new(),
            _client: PhantomData,
        }
    }

    /// Connects as the member of the identity file `tether keygen` wrote
    /// (checked as [`IdentityFile::load`] checks it), announcing its display
    /// name unless [`name`](Self::name) sets another.
    pub fn identity_file(self, path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        Ok(self.identity(IdentityFile::load(path.as_ref())?))
    }

    /// Connects as the member of an identity already loaded.
    pub fn identity(mut self, file: IdentityFile) -> Self {
        if self.presence.extras.display_name.is_none() {
            self.presence.extras.display_name = file.display_name.clone();
        }
        self.member = Some(file.member());
        self.credentials = None;
        self
    }

    /// Connects as this member (a member `hello`).
    pub fn member(mut self, member: MemberIdentity) -> Self {
        self.member = Some(member);
        self.credentials = None;
        self
    }

    /// Connects with exactly these credentials, overriding the identity and
    /// session settings.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Connects as the persistent session kept in `path` (created at mode 0600
    /// if missing; `SessionFile::path_for(identity)` is where `tether listen`
    /// keeps it): a `session_hello` vouched for by the identity's member, with
    /// the same session id and key across restarts, so peers see one peer that
    /// they can write to by name (B17).
    pub fn session_file(mut self, path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        let session = SessionFile::load_or_create(path.as_ref())?;
        self.presence.session_id = session.session_id.clone();
        self.session = Some(session);
        Ok(self)
    }

    /// The display name announced to other peers.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.presence.extras.display_name = Some(name.into());
        self
    }

    /// The peer type announced (`"ai"`, `"human"` or `"connector"`).
    pub fn peer_type(mut self, peer_type: impl Into<String>) -> Self {
        self.presence.extras.peer_type = Some(peer_type.into());
        self
    }

    /// The channel label announced (which program connected).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.presence.extras.channel = Some(channel.into());
        self
    }

    /// Replaces the whole presence of the hello.
    pub fn presence(mut self, presence: Presence) -> Self {
        self.presence = presence;
        self
    }

    /// Hands back the client at once while the first connect is still being
    /// tried, with backoff as later reconnects are, instead of failing on the
    /// first refused attempt (async-nats' `retry_on_initial_connect`). Sends
    /// made meanwhile wait under the queue deadline; the client's status shows
    /// where it is, and `connected()` waits for the first open.
    pub fn retry_on_initial_connect(mut self) -> Self {
        self.retry_on_initial_connect = true;
        self
    }

    /// How long a send made while away waits for a connection before it fails
    /// as never sent; `None` waits until the client closes. The default and the
    /// rules are in `tether_proto::mesh::session` ("While the connection is away").
    pub fn queue_deadline(self, deadline: Option<Duration>) -> Self {
        self.with_config(move |c| c.session.queue_deadline = deadline)
    }

    /// How long a request waits for its reply (B8).
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.with_config(move |c| c.session.request_timeout = timeout)
    }

    /// How long a written send waits for the broker's ack (B2).
    pub fn send_ack_timeout(self, timeout: Duration) -> Self {
        self.with_config(move |c| c.session.send_ack_timeout = timeout)
    }

    /// One more request header on every attempt.
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let header = (name.into(), value.into());
        self.with_config(move |c| c.headers.push(header))
    }

    /// Trusts the CA certificates of a PEM file too, for a `wss://` broker with
    /// a certificate of its own (verification stays on, X5).
    pub fn add_root_certificate(self, pem_file: impl Into<PathBuf>) -> Self {
        let path = pem_file.into();
        self.with_config(move |c| c.transport.tls.extra_ca_files.push(path))
    }

    /// Presents this certificate chain and key to a `wss://` broker that asks
    /// for one (mTLS, S9); the key is never shown by `Debug`.
    pub fn client_cert(self, cert: ClientCert) -> Self {
        self.with_config(move |c| c.transport.tls.client_cert = Some(cert))
    }

    /// Seeds the session's jitter, ids and nonces (tests and simulations; the
    /// default draws a seed from the OS for every client).
    pub fn seed(self, seed: u64) -> Self {
        self.with_config(move |c| c.seed = Some(seed))
    }

    /// Changes anything of the nested configuration (lifecycle, session,
    /// transport), after the builder's own settings, in the order given.
    pub fn with_config(mut self, tweak: impl FnOnce(&mut MeshConfig) + Send + 'static) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// The configuration the client would connect with.
    pub fn build(self) -> Result<MeshConfig, ConnectError> {
        let credentials = match (self.credentials, self.member, self.session) {
            (Some(credentials), _, _) => credentials,
            (None, Some(member), Some(session)) => session.credentials(member, None),
            (None, Some(member), None) => Credentials::Member(member),
            (None, None, _) => return Err(ConnectError::NoCredentials),
        };
        let mut config = MeshConfig::new(self.url, credentials, self.presence);
        for tweak in self.tweaks {
            tweak(&mut config);
        }
        // After the tweaks: a client handed back before its first open must
        // keep trying, whatever lifecycle a tweak put in.
        if self.retry_on_initial_connect {
            config.session.lifecycle.first_connect = FirstConnect::Retry;
        }
        Ok(config)
    }
}

impl<C: StartMesh> ClientBuilder<C> {
    /// Connects: resolves on the broker's first hello ack, or fails with its
    /// reason and leaves nothing running (L8, D1). With
    /// [`retry_on_initial_connect`](Self::retry_on_initial_connect) it hands
    /// the client back at once instead.
    pub fn connect(self) -> C::Connecting {
        let wait = !self.retry_on_initial_connect;
        C::start(self.build(), wait)
    }

    /// Starts connecting and hands the client back at once, whatever the
    /// first-connect policy; its events show the first attempt.
    pub fn spawn(self) -> C::Connecting {
        C::start(self.build(), false)
    }
}
