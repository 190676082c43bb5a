//! One WebSocket connection: frames and pongs up to the actor, commands down to the socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::actor::{Command, Event};
use crate::core::{Breach, ConnId};

/// The longest close reason that fits a close frame (125 bytes less the code).
const MAX_CLOSE_REASON: usize = 123;

/// Serves one upgraded connection until either side ends it.
pub(crate) async fn serve<S>(
    ws: WebSocketStream<S>,
    conn: ConnId,
    events: mpsc::Sender<Event>,
    mut commands: mpsc::Receiver<Command>,
    mut kill: oneshot::Receiver<()>,
    linger: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
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
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Command::Ping) => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
                Some(Command::Close { code, reason }) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: truncate(&reason, MAX_CLOSE_REASON).to_owned().into(),
                    };
                    if sink.send(Message::Close(Some(frame))).await.is_ok() {
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
    // The actor ignores this for connections it already let go.
    let _ = events.send(Event::Closed { conn }).await;
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
