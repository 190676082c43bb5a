//! The client commands: listen, send, peers, state, remember, recall.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use tether_proto::lifecycle::{Notification, Status, StopReason};
use tether_proto::mesh::push::{Push, PushBody};
use tether_proto::mesh::wire::Priority;
use tether_tokio::{Client, ClientCert, ClientEvent, IdentityFile, SessionFile};

use crate::fail::Failure;
use crate::stderr::{out, say, stdout_gone};

/// The broker URL used when neither a flag, the environment nor a config file names one.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:7878/ws";

/// Where to connect and as whom: flags, then the environment, then the config
/// file (`--config`, `TETHER_CONFIG`, or `~/.config/tether/config.json`).
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Broker URL [default: the config file's, else ws://127.0.0.1:7878/ws].
    #[arg(long, env = "TETHER_URL")]
    pub url: Option<String>,
    /// Identity file written by `tether keygen` [default: the config file's].
    #[arg(long, env = "TETHER_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// JSON config file with `url` and `identity` (and optional `ca` paths, `cert` and `key`).
    #[arg(long, env = "TETHER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for wss://, e.g. a self-signed broker's.
    #[arg(long = "ca")]
    pub ca_files: Vec<PathBuf>,
    /// Client certificate chain (PEM, leaf first) for a broker that requires one (mTLS).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of `--cert`.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Print lifecycle changes (connecting, reconnecting in N s, open) on stderr.
    #[arg(long, default_value_t = false)]
    pub status: bool,
}

/// `tether state …`
#[derive(Subcommand, Debug)]
pub enum StateCmd {
    /// Print one key's value.
    Get {
        /// The key.
        key: String,
    },
    /// Set a key to a JSON value (or a plain string).
    Set {
        /// The key.
        key: String,
        /// The value; parsed as JSON when it is valid JSON, else taken as a string.
        value: String,
    },
    /// List every key.
    List,
}

/// The `--priority` flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PriorityArg {
    /// Interrupt the recipient.
    Now,
    /// The recipient's next turn.
    Next,
    /// When the recipient is idle.
    Low,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Self {
        match p {
            PriorityArg::Now => Priority::Now,
            PriorityArg::Next => Priority::Next,
            PriorityArg::Low => Priority::Low,
        }
    }
}

/// The config file's settings; every field optional.
#[derive(serde::Deserialize, Default, Debug)]
struct ConfigFile {
    url: Option<String>,
    identity: Option<PathBuf>,
    #[serde(default)]
    ca: Vec<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// The connection settings after flags, environment and config file.
struct Resolved {
    url: String,
    identity: PathBuf,
    ca_files: Vec<PathBuf>,
    client_cert: Option<ClientCert>,
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("tether").join("config.json"))
}

fn resolve(args: &ConnectArgs) -> Result<Resolved, Failure> {
    let file = match &args.config {
        // Named explicitly: it must exist.
        Some(path) => Some((path.clone(), true)),
        None => default_config_path().map(|p| (p, false)),
    };
    let config = match file {
        Some((path, required)) => match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<ConfigFile>(&text).map_err(|e| {
                Failure::usage(
                    format!("config file {} is not valid: {e}", path.display()),
                    "fix or remove it",
                )
            })?,
            Err(e) if required => {
                return Err(Failure::usage(
                    format!("cannot read config file {}: {e}", path.display()),
                    "check the path",
                ))
            }
            Err(_) => ConfigFile::default(),
        },
        None => ConfigFile::default(),
    };
    let identity = args.identity.clone().or(config.identity).ok_or_else(|| {
        Failure::usage(
            "no identity: pass --identity FILE, set TETHER_IDENTITY, or put \"identity\" in the config file",
            "create one with `tether keygen --out FILE`",
        )
    })?;
    let mut ca_files = config.ca;
    ca_files.extend(args.ca_files.iter().cloned());
    // Flags name the pair together (clap), so only the config file can name half of it.
    let client_cert = match (args.cert.clone(), args.key.clone()) {
        (Some(cert), Some(key)) => Some(ClientCert::Files { cert, key }),
        _ => match (config.cert, config.key) {
            (Some(cert), Some(key)) => Some(ClientCert::Files { cert, key }),
            (None, None) => None,
            _ => {
                return Err(Failure::usage(
                    "the config file names only one of \"cert\" and \"key\"",
                    "name both, or neither",
                ))
            }
        },
    };
    Ok(Resolved {
        url: args
            .url
            .clone()
            .or(config.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned()),
        identity,
        ca_files,
        client_cert,
    })
}

/// How a command shows up on the mesh (B17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// The identity's one logical session (`session_hello` with the session kept
    /// beside the identity file): a peer people see and write to.
    Session,
    /// A one-shot command: a member `hello`, which brokers list as control-plane,
    /// so it leaves no peer in the default list after it exits.
    OneShot,
}

/// Connects with the identity and URL of `args`, showing the status line if asked.
///
/// Built with `Client::builder`, the path the library offers its users, so the
/// CLI shows how a program of theirs would connect.
pub async fn connect(args: &ConnectArgs, channel: &str, kind: Presence) -> Result<Client, Failure> {
    let settings = resolve(args)?;
    let file = IdentityFile::load(&settings.identity).map_err(Failure::identity)?;
    let mut builder = Client::builder(&settings.url)
        .identity(file)
        .peer_type("human")
        .channel(format!("tether-cli-{channel}"));
    // A one-shot keeps the builder's member hello and fresh session id.
    if kind == Presence::Session {
        builder = builder
            .session_file(SessionFile::path_for(&settings.identity))
            .map_err(Failure::identity)?;
    }
    for ca in settings.ca_files {
        builder = builder.add_root_certificate(ca);
    }
    if let Some(cert) = settings.client_cert {
        builder = builder.client_cert(cert);
    }
    if args.status {
        say!("· connecting to {}", settings.url);
    }
    let client = builder.connect().await.map_err(Failure::connect)?;
    if args.status {
        say!("· open");
        spawn_status_line(&client);
    }
    Ok(client)
}

/// Prints "reconnecting in N s" / "connecting" / "open" as the lifecycle moves.
fn spawn_status_line(client: &Client) {
    let mut events = client.events();
    let tty = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let ClientEvent::Lifecycle(note) = event else {
                continue;
            };
            let line = match note {
                Notification::StatusChanged {
                    to: Status::Connecting,
                    ..
                } => "connecting".to_owned(),
                Notification::StatusChanged { to: Status::Open, .. } => "open".to_owned(),
                Notification::ReconnectScheduled { delay, .. } => {
                    format!("reconnecting in {:.1} s", delay.as_secs_f64())
                }
                Notification::Disconnected { failure, .. } => format!("disconnected: {failure}"),
                Notification::Closed { reason } => format!("closed: {reason}"),
                _ => continue,
            };
            if tty {
                eprint!("\r\x1b[K· {line}");
            } else {
                say!("· {line}");
            }
        }
    });
}

/// What a push says, as one line: its text, a system event, or a plain note that
/// it could not be read (never its bytes, B14).
pub fn push_text(push: &Push) -> String {
    match &push.body {
        PushBody::Text { text, .. } => text.clone(),
        PushBody::Undecryptable => "<undecryptable: not sealed for this identity>".to_owned(),
        PushBody::System {
            event,
            data: Some(data),
        } => format!("[{event}] {data}"),
        PushBody::System { event, data: None } => format!("[{event}]"),
    }
}

/// A push as one JSON object: the frame's fields plus `text` and `encrypted`
/// (or `undecryptable: true`), so no script decodes the body itself.
pub fn push_json(push: &Push) -> serde_json::Value {
    let mut v = serde_json::to_value(&*push.frame).unwrap_or_default();
    match &push.body {
        PushBody::Text { text, encrypted } => {
            v["text"] = serde_json::json!(text);
            v["encrypted"] = serde_json::json!(encrypted);
        }
        PushBody::Undecryptable => v["undecryptable"] = serde_json::json!(true),
        PushBody::System { .. } => {}
    }
    v
}

/// `tether send`
pub async fn send(
    args: &ConnectArgs,
    target: &str,
    message: &str,
    priority: PriorityArg,
) -> Result<(), Failure> {
    let client = connect(args, "send", Presence::OneShot).await?;
    let result = client.send(target, message, priority.into()).await;
    client.close().await;
    let sent = result.map_err(|e| Failure::client("send", e))?;
    // `queued: true` is how brokers say "accepted" (PROTOCOL.md), not "offline".
    out!("sent {}", sent.message_id);
    Ok(())
}

/// `tether listen`: prints pushes until interrupted.
pub async fn listen(args: &ConnectArgs, json: bool, count: Option<usize>) -> Result<(), Failure> {
    let client = connect(args, "listen", Presence::Session).await?;
    let mut pushes = client.subscribe();
    let mut events = client.events();
    let mut seen = 0usize;
    loop {
        tokio::select! {
            // A session that stops for good (a rejection while reconnecting,
            // session_replaced, the budget spent) ends `listen` with its reason
            // and exit code, instead of waiting for ever on a dead client.
            event = events.recv() => match event {
                Some(event) => {
                    if let Some(reason) = stopped_for_good(&event) {
                        client.close().await;
                        return Err(Failure::stopped(&reason));
                    }
                }
                None => break,
            },
            push = pushes.recv() => {
                let Some(push) = push else {
                    // The subscription ends when the session does, and may end
                    // before the event saying why has been read: read it, or a
                    // session refused for good would exit 0 (seen one run in two).
                    while let Some(event) = events.recv().await {
                        if let Some(reason) = stopped_for_good(&event) {
                            client.close().await;
                            return Err(Failure::stopped(&reason));
                        }
                    }
                    break;
                };
                if json {
                    out!("{}", push_json(&push));
                } else {
                    let from = push.sender_name.clone().unwrap_or_else(|| push.sender_pubkey.chars().take(12).collect());
                    out!("{from}: {}", push_text(&push));
                }
                seen += 1;
                // The reader went away (`tether listen | head`): its job is done.
                if count.is_some_and(|c| seen >= c) || stdout_gone() {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await;
    Ok(())
}

/// The reason a session stopped for good, when `event` says it did (not by the user).
fn stopped_for_good(event: &ClientEvent) -> Option<StopReason> {
    match event {
        ClientEvent::Lifecycle(Notification::Closed { reason }) if *reason != StopReason::User => {
            Some(reason.clone())
        }
        _ => None,
    }
}

/// `tether peers`: the real CLI's view (B11, B17): sessions shown, control-plane
/// peers (daemons, one-shot commands) only with `--all`.
pub async fn peers(args: &ConnectArgs, all: bool, json: bool) -> Result<(), Failure> {
    let client = connect(args, "peers", Presence::OneShot).await?;
    let result = client.list_peers().await;
    client.close().await;
    let peers = result.map_err(|e| Failure::client("list_peers", e))?;
    let total = peers.len();
    let shown: Vec<_> = peers.into_iter().filter(|p| all || p.is_user_facing()).collect();
    if json {
        for p in &shown {
            // `role` stays the profile's role as the broker sent it; the presence
            // class is `peerRole`, filled in as `session` when a broker omits it.
            let mut v = serde_json::to_value(p).unwrap_or_default();
            v["peerRole"] = serde_json::json!(p.role().as_str());
            out!("{v}");
        }
        return Ok(());
    }
    let hidden = total - shown.len();
    if hidden > 0 {
        out!("{} peers ({hidden} control-plane hidden, use --all)", shown.len());
    }
    for p in &shown {
        out!(
            "{:<20} {:<10} {:<14} {}",
            p.display_name,
            p.status,
            p.role().as_str(),
            p.pubkey
        );
    }
    if shown.is_empty() {
        out!("(no peers)");
    }
    Ok(())
}

/// `tether state …`
pub async fn state(args: &ConnectArgs, cmd: &StateCmd) -> Result<(), Failure> {
    let client = connect(args, "state", Presence::OneShot).await?;
    let result = match cmd {
        StateCmd::Get { key } => client.get_state(key).await.map(|row| match row {
            Some(row) => out!("{}", row.value),
            None => out!("(no value for {key})"),
        }),
        StateCmd::Set { key, value } => {
            let value =
                serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.clone()));
            client.set_state(key, value).await.map(|()| out!("set {key}"))
        }
        StateCmd::List => client.list_state().await.map(|rows| {
            for row in rows {
                out!(
                    "{} = {}  (by {} at {})",
                    row.key,
                    row.value,
                    row.updated_by,
                    row.updated_at
                );
            }
        }),
    };
    client.close().await;
    result.map_err(|e| Failure::client("state", e))
}

/// `tether remember`
pub async fn remember(args: &ConnectArgs, text: &str, tags: Vec<String>) -> Result<(), Failure> {
    let client = connect(args, "remember", Presence::OneShot).await?;
    let result = client.remember(text, (!tags.is_empty()).then_some(tags)).await;
    client.close().await;
    match result.map_err(|e| Failure::client("remember", e))? {
        Some(id) => out!("remembered as {id}"),
        None => out!("remembered"),
    }
    Ok(())
}

/// `tether recall`
pub async fn recall(args: &ConnectArgs, query: &str) -> Result<(), Failure> {
    let client = connect(args, "recall", Presence::OneShot).await?;
    let result = client.recall(query).await;
    client.close().await;
    let rows = result.map_err(|e| Failure::client("recall", e))?;
    for row in &rows {
        out!("{}  {}  [{}]", row.id, row.content, row.tags.join(", "));
    }
    if rows.is_empty() {
        out!("(nothing matches {query:?})");
    }
    Ok(())
}
