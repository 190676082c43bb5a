//! One WebSocket connection: frames and pongs up to the actor, commands down to the socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::actor::{Command, Counters, Event};
use crate::core::{Breach, ConnId};

/// The longest close reason that fits a close frame (125 bytes less the code).
const MAX_CLOSE_REASON: usize = 123;

/// What one connection task is given besides its socket.
pub(crate) struct Wiring {
    pub conn: ConnId,
    pub events: mpsc::Sender<Event>,
    pub commands: mpsc::Receiver<Command>,
    pub kill: oneshot::Receiver<()>,
    /// Bytes of frames queued for this connection and not yet written; the actor adds,
    /// this task subtracts once a frame is written.
    pub queued_bytes: Arc<AtomicUsize>,
    pub counters: Arc<Counters>,
    pub linger: Duration,
    /// A write that does not finish within this ends the connection.
    pub write_timeout: Duration,
}

/// Serves one upgraded connection until either side ends it.
pub(crate) async fn serve<S>(ws: WebSocketStream<S>, wiring: Wiring)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Wiring {
        conn,
        events,
        mut commands,
        mut kill,
        queued_bytes,
        counters,
        linger,
        write_timeout,
    } = wiring;
    let (mut sink, mut stream) = ws.split();
    // The actor drops the kill switch when it lets a connection go after a close;
    // only an explicit kill ends the task, a dropped switch is ignored from then on.
    let mut kill_dropped = false;
    // Cleared after a frame the core must refuse: the stream may be cut mid-message,
    // so nothing more is read while the core's error and close go out.
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            killed = &mut kill, if !kill_dropped => match killed {
                Ok(()) => break,
                Err(_) => kill_dropped = true,
            },
            command = commands.recv() => match command {
                None | Some(Command::Abort) => break,
                Some(Command::Send(text)) => {
                    let len = text.len();
                    let written = write(&mut sink, Message::text(text), write_timeout, &mut kill, &mut kill_dropped).await;
                    queued_bytes.fetch_sub(len, Ordering::Relaxed);
                    if !written.ok(&counters) {
                        break;
                    }
                }
                Some(Command::Ping) => {
                    let ping = Message::Ping(Default::default());
                    if !write(&mut sink, ping, write_timeout, &mut kill, &mut kill_dropped).await.ok(&counters) {
                        break;
                    }
                }
                Some(Command::Close { code, reason }) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: truncate(&reason, MAX_CLOSE_REASON).to_owned().into(),
                    };
                    let close = Message::Close(Some(frame));
                    if write(&mut sink, close, write_timeout, &mut kill, &mut kill_dropped).await.ok(&counters) {
                        // Wait briefly for the peer's close reply so it reads ours cleanly.
                        let _ = tokio::time::timeout(linger, async {
                            while let Some(Ok(message)) = stream.next().await {
                                if matches!(message, Message::Close(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                    }
                    break;
                }
                Some(Command::Silence) => {
                    // Half-open: neither read (tungstenite would answer pings) nor write,
                    // but keep the socket until the actor lets it go.
                    hold_silently(&mut commands, &mut kill, kill_dropped).await;
                    break;
                }
            },
            message = stream.next(), if reading => {
                let event = match message {
                    Some(Ok(Message::Text(text))) => Event::Frame { conn, text: text.as_str().to_owned() },
                    Some(Ok(Message::Binary(bytes))) => Event::Frame {
                        conn,
                        text: String::from_utf8_lossy(&bytes).into_owned(),
                    },
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                        reading = false;
                        Event::Breach { conn, breach: Breach::TooLarge { len: size } }
                    }
                    Some(Err(WsError::Utf8(_))) => {
                        reading = false;
                        Event::Breach { conn, breach: Breach::InvalidUtf8 }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Event::Activity { conn },
                    Some(Ok(Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) => {
                        // Flushes tungstenite's queued close reply.
                        let _ = tokio::time::timeout(linger, sink.close()).await;
                        break;
                    }
                    Some(Err(_)) | None => break,
                };
                if events.send(event).await.is_err() {
                    break;
                }
            }
        }
    }
    // Whatever was still queued is dropped with the receiver: its bytes are free now.
    drop(commands);
    queued_bytes.store(0, Ordering::Relaxed);
    // The actor ignores this for connections it already let go.
    let _ = events.send(Event::Closed { conn }).await;
}

/// How a write ended.
enum Written {
    Done,
    Failed,
    TimedOut,
    Killed,
}

impl Written {
    /// Whether the connection goes on; a timed-out write is counted.
    fn ok(&self, counters: &Counters) -> bool {
        match self {
            Written::Done => true,
            Written::TimedOut => {
                counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
                false
            }
            Written::Failed | Written::Killed => false,
        }
    }
}

/// Writes one message, giving up when the peer does not take it within `timeout` or
/// the actor kills the connection meanwhile: a reader that never reads cannot hold
/// the task (and its queue) forever.
async fn write<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    message: Message,
    timeout: Duration,
    kill: &mut oneshot::Receiver<()>,
    kill_dropped: &mut bool,
) -> Written
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let send = tokio::time::timeout(timeout, sink.send(message));
    tokio::pin!(send);
    loop {
        tokio::select! {
            biased;
            killed = &mut *kill, if !*kill_dropped => match killed {
                Ok(()) => return Written::Killed,
                Err(_) => *kill_dropped = true,
            },
            sent = &mut send => return match sent {
                Ok(Ok(())) => Written::Done,
                Ok(Err(_)) => Written::Failed,
                Err(_) => Written::TimedOut,
            },
        }
    }
}

async fn hold_silently(
    commands: &mut mpsc::Receiver<Command>,
    kill: &mut oneshot::Receiver<()>,
    mut kill_dropped: bool,
) {
    loop {
        tokio::select! {
            killed = &mut *kill, if !kill_dropped => match killed {
                Ok(()) => return,
                Err(_) => kill_dropped = true,
            },
            command = commands.recv() => match command {
                None | Some(Command::Abort | Command::Close { .. }) => return,
                Some(_) => {}
            },
        }
    }
}

/// The longest prefix of `text` within `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("aé", 2), "a");
    }
}
