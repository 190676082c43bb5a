//! The hosted socket's handshake: headers per attempt, no hello, and the
//! decoding of what the server sends.

use std::fmt;

use serde_json::Value;

use crate::lifecycle::{Handshake, HelloError, PreOpen};

/// The `anthropic-version` header every attempt sends (sessions-websocket.ts).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Fetches the bearer token for one attempt (S1): called afresh before every
/// connection, so a refreshed token is used at once and an expired one is never
/// reused (D8). An `Err` fails that attempt (L13).
pub type TokenProvider = Box<dyn FnMut() -> Result<String, String> + Send>;

/// A JSON object with a string `type`, as the server sent it (L5, S10).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    value: Value,
}

impl Message {
    /// Its `type`.
    pub fn kind(&self) -> &str {
        self.value.get("type").and_then(Value::as_str).unwrap_or_default()
    }

    /// The whole object.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The whole object, owned.
    pub fn into_value(self) -> Value {
        self.value
    }
}

/// Why a frame from the server was dropped (counted, never fatal: L5).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object with a string `type`.
    #[error("not an object with a string type")]
    NoType,
}

/// Why a subscribe URL could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The base is not `https://`, `http://`, `wss://` or `ws://`.
    #[error("the base URL must start with https://, http://, wss:// or ws://: {0}")]
    Scheme(String),
    /// An id holds characters a URL path or query would change the meaning of.
    #[error("{what} may only hold letters, digits, '-', '_' and '.': {value:?}")]
    BadId {
        /// Which id.
        what: &'static str,
        /// The refused value.
        value: String,
    },
}

/// The subscribe URL of `session_id` in `organization` on `base` (the API's
/// https origin; `https://` becomes `wss://` as in the seed) (S10).
pub fn subscribe_url(base: &str, session_id: &str, organization: &str) -> Result<String, UrlError> {
    let lower = base.to_ascii_lowercase();
    let rest = |n: usize| base.get(n..).unwrap_or_default().trim_end_matches('/');
    let origin = if lower.starts_with("https://") {
        format!("wss://{}", rest(8))
    } else if lower.starts_with("http://") {
        format!("ws://{}", rest(7))
    } else if lower.starts_with("wss://") || lower.starts_with("ws://") {
        base.trim_end_matches('/').to_owned()
    } else {
        return Err(UrlError::Scheme(base.to_owned()));
    };
    for (what, value) in [("session id", session_id), ("organization id", organization)] {
        let ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(UrlError::BadId {
                what,
                value: value.to_owned(),
            });
        }
    }
    Ok(format!(
        "{origin}/v1/sessions/ws/{session_id}/subscribe?organization_uuid={organization}"
    ))
}

/// The hosted socket's [`Handshake`]: a fresh bearer token and the
/// `anthropic-version` header per attempt, no hello (the open socket is the
/// handshake), every object with a string `type` handed up.
pub struct HostedHandshake {
    tokens: TokenProvider,
    version: String,
}

impl fmt::Debug for HostedHandshake {
    // The token provider and its tokens are secrets: never printed (X5).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostedHandshake")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl HostedHandshake {
    /// A handshake asking `tokens` for each attempt's bearer token.
    pub fn new(tokens: TokenProvider) -> Self {
        HostedHandshake {
            tokens,
            version: ANTHROPIC_VERSION.to_owned(),
        }
    }

    /// Sends another `anthropic-version`.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

impl Handshake for HostedHandshake {
    type Message = Message;
    type DecodeError = MessageError;

    fn headers(&mut self, _attempt: u64, _unix_ms: u64) -> Result<Vec<(String, String)>, HelloError> {
        let token = (self.tokens)().map_err(HelloError)?;
        Ok(vec![
            ("Authorization".to_owned(), format!("Bearer {token}")),
            ("anthropic-version".to_owned(), self.version.clone()),
        ])
    }

    fn hello(&mut self, _attempt: u64, _unix_ms: u64) -> Result<Option<String>, HelloError> {
        Ok(None)
    }

    fn decode(&mut self, text: String) -> Result<Message, MessageError> {
        let value: Value = serde_json::from_str(&text).map_err(|e| MessageError::NotJson(e.to_string()))?;
        if value.get("type").is_some_and(Value::is_string) {
            Ok(Message { value })
        } else {
            Err(MessageError::NoType)
        }
    }

    fn classify(&mut self, _message: &Message) -> PreOpen {
        // Never asked: without a hello the connection is open before any frame.
        PreOpen::Other
    }
}
