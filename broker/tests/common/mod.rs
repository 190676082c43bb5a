//! A raw tokio-tungstenite client and helpers for talking to a real broker.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tether_broker::{BrokerConfig, BrokerHandle, BrokerServer, ServerConfig, TlsSetup};
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::wire::{decode_broker_frame, BrokerFrame, ClientFrame, HelloExtras};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Safety net only: tests wait on frames, never on the clock.
pub const PATIENCE: Duration = Duration::from_secs(5);
pub const MESH: &str = "mesh-1";

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn start(broker: BrokerConfig) -> BrokerHandle {
    start_tls(broker, None).await
}

pub async fn start_tls(broker: BrokerConfig, tls: Option<TlsSetup>) -> BrokerHandle {
    let config = ServerConfig {
        broker,
        close_linger: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    BrokerServer::start(config, loopback(), tls).await.unwrap()
}

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

pub fn member(n: u8) -> MemberIdentity {
    MemberIdentity {
        mesh_id: MESH.to_owned(),
        member_id: format!("member-{n}"),
        secret: SecretKey::from_seed([n; 32]),
    }
}

pub fn pubkey(n: u8) -> String {
    SecretKey::from_seed([n; 32]).public_key().to_hex()
}

pub fn presence(session: &str) -> Presence {
    Presence {
        session_id: session.to_owned(),
        pid: 1,
        cwd: "/work".to_owned(),
        extras: HelloExtras {
            display_name: Some(format!("peer {session}")),
            ..HelloExtras::default()
        }
        .into(),
    }
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}

pub async fn send(ws: &mut Ws, frame: impl Into<ClientFrame>) {
    ws.send(Message::text(frame.into().encode())).await.unwrap();
}

/// The next message that is not a ping or pong.
pub async fn next_message(ws: &mut Ws) -> Message {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("no message in time")
            .expect("stream ended")
            .expect("read error");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

pub async fn next_frame(ws: &mut Ws) -> BrokerFrame {
    match next_message(ws).await {
        Message::Text(text) => decode_broker_frame(text.as_str(), usize::MAX).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

pub async fn next_close(ws: &mut Ws) -> (u16, String) {
    match next_message(ws).await {
        Message::Close(Some(frame)) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Connects and says hello as member `n` in `session`; asserts the ack.
pub async fn join(url: &str, n: u8, session: &str) -> Ws {
    let mut ws = connect(url).await;
    send(&mut ws, member(n).hello(&presence(session), unix_ms())).await;
    match next_frame(&mut ws).await {
        BrokerFrame::HelloAck(_) => ws,
        other => panic!("expected hello_ack, got {other:?}"),
    }
}
