//! A hosted-session test server on 127.0.0.1 port 0: it checks each attempt's
//! headers, closes with 4001 or 4003 on demand, greets every session, and
//! answers each control request with a control response echoing it. On
//! demand it also refuses the upgrade, drops the socket, or stops reading
//! altogether, and it records the close frames clients send it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tether_proto::hosted::TokenProvider;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::stand_in::{lock, Listening};

pub use crate::hosts::wait_for;

/// Tokens `tok-1`, `tok-2`, … and a counter of how many were fetched (S1).
pub fn tokens() -> (TokenProvider, Arc<AtomicU64>) {
    let fetched = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&fetched);
    let provider: TokenProvider =
        Box::new(move || Ok(format!("tok-{}", counter.fetch_add(1, Ordering::SeqCst) + 1)));
    (provider, fetched)
}

/// The session id the server's URL names.
pub const SESSION_ID: &str = "sess-e2e";
/// The organization the server's URL names.
pub const ORGANIZATION: &str = "org-e2e";

/// What the server does with one accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Greet, then echo control requests until the client goes.
    Serve,
    /// Close at once with this code (4001 session not found, 4003 unauthorized …).
    Close(u16),
    /// Refuse the upgrade with HTTP 503: the attempt fails before it opens.
    Refuse,
    /// Greet, then drop the socket without a close frame (1006).
    Drop,
    /// Greet, then never read again (no pongs, no room): a silent, stuck peer.
    Stall,
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Each upgrade's `Authorization` header, in order.
    pub authorizations: Vec<String>,
    /// Each upgrade's `anthropic-version` header.
    pub versions: Vec<String>,
    /// Each upgrade's path and query.
    pub paths: Vec<String>,
    /// Control responses the clients sent.
    pub responses: Vec<Value>,
    /// Close frames clients sent, by code: answers to our closes and their own.
    pub client_closes: Vec<u16>,
    plan: VecDeque<Plan>,
}

/// The running server.
pub struct HostedServer {
    listening: Listening,
    seen: Arc<Mutex<Seen>>,
}

impl HostedServer {
    /// Starts serving; connections follow `plan` in order, then [`Plan::Serve`].
    pub async fn start(plan: Vec<Plan>) -> HostedServer {
        let seen = Arc::new(Mutex::new(Seen {
            plan: plan.into(),
            ..Seen::default()
        }));
        let shared = Arc::clone(&seen);
        let listening = Listening::start(move |tcp| serve(tcp, Arc::clone(&shared))).await;
        HostedServer { listening, seen }
    }

    /// The API origin to hand to `HostedConfig::new`.
    pub fn base(&self) -> String {
        format!("http://{}", self.listening.addr())
    }

    /// What the server has seen so far.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }
}

async fn serve(tcp: tokio::net::TcpStream, seen: Arc<Mutex<Seen>>) {
    let headers = Arc::clone(&seen);
    let plan = lock(&seen).plan.pop_front().unwrap_or(Plan::Serve);
    // The signature is tungstenite's handshake callback; its error is its own type.
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (auth, version) = (header("authorization"), header("anthropic-version"));
        let mut seen = lock(&headers);
        seen.authorizations.push(auth.clone());
        seen.versions.push(version.clone());
        seen.paths.push(request.uri().to_string());
        if plan == Plan::Refuse {
            let mut refused = ErrorResponse::new(Some("try later".into()));
            *refused.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Err(refused);
        }
        if !auth.starts_with("Bearer ") || version.is_empty() {
            let mut refused = ErrorResponse::new(Some("missing credentials".into()));
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            return Err(refused);
        }
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
        return;
    };
    if let Plan::Close(code) = plan {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "by plan".into(),
        };
        let _ = ws.send(Message::Close(Some(frame))).await;
        while let Some(Ok(message)) = ws.next().await {
            record_close(&seen, &message);
        }
        return;
    }
    let hello = json!({"type": "system", "subtype": "init", "session_id": SESSION_ID});
    if ws.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    match plan {
        Plan::Drop => return,
        Plan::Stall => {
            // Holds the socket without reading until the test's runtime ends.
            std::future::pending::<()>().await;
            return;
        }
        _ => {}
    }
    while let Some(Ok(message)) = ws.next().await {
        record_close(&seen, &message);
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match value["type"].as_str() {
            Some("control_request") => {
                let answer = json!({
                    "type": "control_response",
                    "response": {
                        "subtype": "success",
                        "request_id": value["request_id"],
                        "echo": value["request"],
                    },
                });
                if ws.send(Message::Text(answer.to_string().into())).await.is_err() {
                    return;
                }
            }
            Some("control_response") => lock(&seen).responses.push(value),
            _ => {}
        }
    }
}

fn record_close(seen: &Mutex<Seen>, message: &Message) {
    if let Message::Close(frame) = message {
        let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
        lock(seen).client_closes.push(code);
    }
}
