//! A tiny in-test broker: a std listener on 127.0.0.1:0 whose connection
//! threads answer the hello with `hello_ack` and every `send` with an `ack`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tether_mio::ConnConfig;
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::policy::Backoff;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// Safety net of every wait: tests wait on events, never on the clock.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What the broker does after acknowledging a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Ack every send, forever.
    Ack,
    /// Close the first connection (1012, service restart) right after its ack.
    CloseFirst,
    /// Stop reading after the ack, holding the socket open.
    StopReading,
}

pub struct Server {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let n = count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream, behaviour, n));
            }
        });
        Server { addr, accepted }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

/// Serves one client on any stream (plain or TLS).
pub fn serve<S: Read + Write>(stream: S, behaviour: Behaviour, n: usize) {
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    loop {
        let Ok(message) = ws.read() else { return };
        let Message::Text(text) = message else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match frame["type"].as_str() {
            Some("hello") | Some("session_hello") => {
                reply(
                    &mut ws,
                    json!({"type": "hello_ack", "presenceId": "p", "memberDisplayName": "m"}),
                );
                match behaviour {
                    Behaviour::CloseFirst if n == 0 => {
                        let _ = ws.close(Some(CloseFrame {
                            code: CloseCode::Restart,
                            reason: "restarting".into(),
                        }));
                        // Let the close handshake finish, then drop the socket.
                        while ws.read().is_ok() {}
                        return;
                    }
                    Behaviour::StopReading => {
                        // Hold the socket without reading until the client drops it.
                        let (_tx, rx) = mpsc::channel::<()>();
                        let _ = rx.recv_timeout(Duration::from_secs(60));
                        return;
                    }
                    _ => {}
                }
            }
            Some("send") => {
                let id = frame["id"].clone();
                reply(
                    &mut ws,
                    json!({"type": "ack", "id": id, "messageId": "m1", "queued": false}),
                );
            }
            _ => {}
        }
    }
}

fn reply<S: Read + Write>(ws: &mut WebSocket<S>, frame: Value) {
    let _ = ws.send(Message::Text(frame.to_string().into()));
}

pub fn config(url: &str) -> ConnConfig {
    let me = MemberIdentity {
        mesh_id: "mesh-1".into(),
        member_id: "member-1".into(),
        secret: SecretKey::from_seed([7; 32]),
    };
    let mut config = ConnConfig::new(url, Credentials::Member(me), Presence::default());
    // Quick retries keep the reconnect tests short; the schedule itself is proto's.
    config.session.lifecycle.backoff = Backoff::new(vec![Duration::from_millis(20)]).unwrap();
    config.seed = Some(1);
    config
}
