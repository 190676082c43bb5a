//! A mesh broker stand-in on 127.0.0.1 port 0 that records every hello it is
//! sent, acknowledges it, and closes the first connections with 1001 (a
//! broker restart) right after the ack, so a client makes several attempts
//! and each one's hello can be checked (S1, B12, D8: fresh per attempt).

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tether_proto::mesh::wire::{decode_client_frame, ClientFrame};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::e2e::PATIENCE;
use crate::stand_in::{lock, Listening};

struct Shared {
    hellos: Mutex<Vec<ClientFrame>>,
    more: Notify,
    /// Connections still to be closed after their ack.
    kicks: Mutex<usize>,
}

/// The running stand-in.
pub struct HelloRecorder {
    listening: Listening,
    shared: Arc<Shared>,
}

impl HelloRecorder {
    /// Starts serving; the first `kicks` connections are closed with 1001 right
    /// after their hello is acknowledged, later ones are kept open.
    pub async fn start(kicks: usize) -> HelloRecorder {
        let shared = Arc::new(Shared {
            hellos: Mutex::new(Vec::new()),
            more: Notify::new(),
            kicks: Mutex::new(kicks),
        });
        let state = Arc::clone(&shared);
        let listening = Listening::start(move |tcp| serve(tcp, Arc::clone(&state))).await;
        HelloRecorder { listening, shared }
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.listening.addr())
    }

    /// Waits until `n` hellos have come (panics after [`PATIENCE`]) and returns
    /// them in order.
    pub async fn hellos(&self, n: usize) -> Vec<ClientFrame> {
        let enough = tokio::time::timeout(PATIENCE, async {
            loop {
                let more = self.shared.more.notified();
                {
                    let hellos = lock(&self.shared.hellos);
                    if hellos.len() >= n {
                        return hellos.clone();
                    }
                }
                more.await;
            }
        })
        .await;
        match enough {
            Ok(hellos) => hellos,
            Err(_) => panic!("gave up waiting for {n} hellos"),
        }
    }
}

async fn serve(tcp: tokio::net::TcpStream, shared: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let Some(Ok(Message::Text(text))) = ws.next().await else {
        return;
    };
    let Ok(hello) = decode_client_frame(text.as_str(), usize::MAX) else {
        return;
    };
    let number = {
        let mut hellos = lock(&shared.hellos);
        hellos.push(hello);
        hellos.len()
    };
    shared.more.notify_waiters();
    let ack = json!({"type": "hello_ack", "presenceId": format!("p-{number}"), "memberDisplayName": "peer"});
    if ws.send(Message::Text(ack.to_string().into())).await.is_err() {
        return;
    }
    let kick = {
        let mut kicks = lock(&shared.kicks);
        let kick = *kicks > 0;
        *kicks = kicks.saturating_sub(1);
        kick
    };
    if kick {
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "shutting down".into(),
        };
        let _ = ws.send(Message::Close(Some(frame))).await;
    }
    // Reading answers pings and the client's close.
    while let Some(Ok(_)) = ws.next().await {}
}
