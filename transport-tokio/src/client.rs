//! The cloneable handle applications hold.

use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;
use serde_json::Value;
use tether_proto::lifecycle::{Event, Status};
use tether_proto::mesh::handshake::MeshHandshake;
use tether_proto::mesh::session::{Command, Outcome, Outgoing, Request, Session, SessionStats};
use tether_proto::mesh::wire::{MemoryRow, Peer, Priority, PushFrame, Reply, Skill, SkillSummary, StateRow};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{ClientConfig, DEFAULT_COMMAND_CAPACITY, DEFAULT_WRITE_QUEUE};
use crate::driver::{Cmd, Driver, Shared};
use tether_host::{ClientError, ConnectError};
use tether_host::{ClientEvent, Sent};

/// A handle to one broker connection; clone it freely. The connection closes
/// when [`Client::close`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct Client {
    cmds: mpsc::Sender<Cmd>,
    status: watch::Receiver<Status>,
    shared: Shared,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Client {
    /// Connects and resolves on the broker's first hello ack, or fails with the
    /// broker's reason (L8). On failure nothing keeps running (D1).
    pub async fn connect(config: ClientConfig) -> Result<Client, ConnectError> {
        let url = config.session.lifecycle.url.clone();
        let tls = if url.starts_with("wss:") {
            Some(config.tls.client_config()?)
        } else {
            None
        };
        let mut session_config = config.session.clone();
        session_config.max_send_len = session_config.max_send_len.min(config.max_message_size);
        let handshake = MeshHandshake::new(config.credentials.clone(), config.presence.clone())
            .with_headers(config.headers.clone())
            .with_max_frame_len(config.max_message_size);
        let seed = config.seed.unwrap_or_else(random_seed);
        let session = Session::new(session_config, handshake, seed, Instant::now())?;
        let (cmd_tx, cmd_rx) = mpsc::channel(DEFAULT_COMMAND_CAPACITY);
        let (status_tx, status_rx) = watch::channel(Status::Idle);
        let shared = Shared {
            status: status_tx,
            pushes: broadcast::channel(config.subscriber_capacity.max(1)).0,
            events: broadcast::channel(config.subscriber_capacity.max(1)).0,
        };
        let (first_tx, first_rx) = oneshot::channel();
        let driver = Driver::new(
            session,
            cmd_rx,
            shared.clone(),
            first_tx,
            tls,
            WebSocketConfig::default()
                .read_buffer_size(config.read_buffer_size)
                .max_message_size(Some(config.max_message_size))
                .max_frame_size(Some(config.max_message_size)),
            DEFAULT_WRITE_QUEUE,
        );
        let client = Client {
            cmds: cmd_tx,
            status: status_rx,
            shared,
        };
        tokio::spawn(driver.run());
        match first_rx.await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnectError::Shutdown),
        }
    }

    /// Sends `body` to `target` and waits for the broker's ack (B1); queued while
    /// reconnecting (B3).
    pub async fn send(&self, target: &str, body: &str, priority: Priority) -> Result<Sent, ClientError> {
        self.send_message(Outgoing::new(target, body).priority(priority))
            .await
    }

    /// Sends with every option of [`Outgoing`] (idempotency id, offline policy, resend).
    pub async fn send_message(&self, outgoing: Outgoing) -> Result<Sent, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.call(Cmd::Send(outgoing, tx)).await?;
        match rx.await.map_err(|_| ClientError::Shutdown)?? {
            Ok(Outcome::Sent { message_id, queued }) => Ok(Sent { message_id, queued }),
            Ok(Outcome::Reply(_)) => Err(ClientError::UnexpectedReply),
            Err(failure) => Err(ClientError::Failed(failure)),
        }
    }

    async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.call(Cmd::Request(request, tx)).await?;
        match rx.await.map_err(|_| ClientError::Shutdown)?? {
            Ok(Outcome::Reply(reply)) => Ok(reply),
            Ok(Outcome::Sent { .. }) => Err(ClientError::UnexpectedReply),
            Err(failure) => Err(ClientError::Failed(failure)),
        }
    }

    /// Lists the mesh's peers, control-plane ones included (filter with
    /// [`Peer::is_user_facing`], B11).
    pub async fn list_peers(&self) -> Result<Vec<Peer>, ClientError> {
        match self.request(Request::ListPeers).await? {
            Reply::Peers(p) => Ok(p),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Reads one shared state key; `None` when absent.
    pub async fn get_state(&self, key: &str) -> Result<Option<StateRow>, ClientError> {
        match self.request(Request::GetState { key: key.into() }).await? {
            Reply::State(row) => Ok(row),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Lists every shared state row.
    pub async fn list_state(&self) -> Result<Vec<StateRow>, ClientError> {
        match self.request(Request::ListState).await? {
            Reply::StateList(rows) => Ok(rows),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Stores a memory; returns its id when the broker gives one.
    pub async fn remember(
        &self,
        content: &str,
        tags: Option<Vec<String>>,
    ) -> Result<Option<String>, ClientError> {
        match self
            .request(Request::Remember {
                content: content.into(),
                tags,
            })
            .await?
        {
            Reply::Remembered(id) => Ok(id),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Searches memories.
    pub async fn recall(&self, query: &str) -> Result<Vec<MemoryRow>, ClientError> {
        match self.request(Request::Recall { query: query.into() }).await? {
            Reply::Recalled(rows) => Ok(rows),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Lists published skills, optionally filtered.
    pub async fn list_skills(&self, query: Option<&str>) -> Result<Vec<SkillSummary>, ClientError> {
        match self
            .request(Request::ListSkills {
                query: query.map(Into::into),
            })
            .await?
        {
            Reply::Skills(s) => Ok(s),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Fetches one skill; `None` when not found.
    pub async fn get_skill(&self, name: &str) -> Result<Option<Skill>, ClientError> {
        match self.request(Request::GetSkill { name: name.into() }).await? {
            Reply::Skill(s) => Ok(s.map(|s| *s)),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Sends a fire-and-forget command; refused unless open (B9).
    pub async fn command(&self, command: Command) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.call(Cmd::Command(command, tx)).await?;
        Ok(rx.await.map_err(|_| ClientError::Shutdown)??)
    }

    /// Sets a shared state value (others receive `state_change`).
    pub async fn set_state(&self, key: &str, value: Value) -> Result<(), ClientError> {
        self.command(Command::SetState {
            key: key.into(),
            value,
        })
        .await
    }

    /// Deletes a memory.
    pub async fn forget(&self, memory_id: &str) -> Result<(), ClientError> {
        self.command(Command::Forget {
            memory_id: memory_id.into(),
        })
        .await
    }

    /// Sets this peer's summary line.
    pub async fn set_summary(&self, summary: &str) -> Result<(), ClientError> {
        self.command(Command::SetSummary {
            summary: summary.into(),
        })
        .await
    }

    /// Sets this peer's status (`idle`, `working`, `dnd`).
    pub async fn set_status(&self, status: &str) -> Result<(), ClientError> {
        self.command(Command::SetStatus {
            status: status.into(),
        })
        .await
    }

    /// Shows or hides this peer in peer lists.
    pub async fn set_visible(&self, visible: bool) -> Result<(), ClientError> {
        self.command(Command::SetVisible { visible }).await
    }

    /// Updates this peer's profile.
    pub async fn set_profile(
        &self,
        avatar: Option<String>,
        title: Option<String>,
        bio: Option<String>,
        capabilities: Option<Vec<String>>,
    ) -> Result<(), ClientError> {
        self.command(Command::SetProfile {
            avatar,
            title,
            bio,
            capabilities,
        })
        .await
    }

    /// A stream of every push from now on (B7).
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            inner: BroadcastStream::new(self.shared.pushes.subscribe()),
            missed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Lifecycle news and unconsumed frames from now on (L14).
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.shared.events.subscribe()
    }

    /// The connection status; `changed().await` waits for the next change.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Takes the pushes buffered in the session's history (B7).
    pub async fn drain_history(&self) -> Result<Vec<Arc<PushFrame>>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.call(Cmd::DrainHistory(tx)).await?;
        rx.await.map_err(|_| ClientError::Shutdown)
    }

    /// A metrics snapshot (X12).
    pub async fn stats(&self) -> Result<SessionStats, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.call(Cmd::Stats(tx)).await?;
        rx.await.map_err(|_| ClientError::Shutdown)
    }

    /// "The network is back": reset the backoff and connect now (X11).
    pub async fn retry_now(&self) -> Result<(), ClientError> {
        self.control(Event::RetryNow).await
    }

    /// Forces a fresh connection after a short delay (S5).
    pub async fn reconnect(&self) -> Result<(), ClientError> {
        self.control(Event::Reconnect).await
    }

    /// Closes for good and waits until the task has put the close frame on the
    /// wire (L11). Idempotent.
    pub async fn close(&self) {
        let _ = self.control(Event::Close).await;
        // The task ends once closed; its channel closing is the signal.
        self.cmds.closed().await;
    }

    async fn control(&self, event: Event) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.call(Cmd::Control(event, tx)).await?;
        rx.await
            .map_err(|_| ClientError::Shutdown)?
            .map_err(|_| ClientError::Shutdown)
    }

    async fn call(&self, cmd: Cmd) -> Result<(), ClientError> {
        self.cmds.send(cmd).await.map_err(|_| ClientError::Shutdown)
    }
}

/// A stream of pushes. A subscriber that falls more than the configured capacity
/// behind misses the oldest ones; [`Subscription::missed`] counts them (X4).
#[derive(Debug)]
pub struct Subscription {
    inner: BroadcastStream<Arc<PushFrame>>,
    missed: Arc<AtomicU64>,
}

impl Subscription {
    /// Pushes this subscriber missed by lagging.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// The next push; `None` once the client has shut down.
    pub async fn recv(&mut self) -> Option<Arc<PushFrame>> {
        futures_util::StreamExt::next(self).await
    }
}

impl Stream for Subscription {
    type Item = Arc<PushFrame>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(push))) => return Poll::Ready(Some(push)),
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                    self.missed.fetch_add(n, Ordering::Relaxed);
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A seed from the OS's per-process hash keys: enough to decorrelate clients'
/// jitter without another dependency.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
