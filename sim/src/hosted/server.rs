//! A pure model of the hosted session server: it judges each upgrade's URL and
//! headers, answers control requests, asks control requests of its own and
//! checks the answers. No sockets and no clock: the world hands it each
//! upgrade and frame, and carries what it returns.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tether_proto::hosted::ANTHROPIC_VERSION;

use crate::check::Violation;

/// The API origin the simulated sessions connect to.
pub const BASE: &str = "https://api.hosted.sim";
/// The session the simulated client subscribes to.
pub const SESSION_ID: &str = "sess-sim";
/// Its organisation.
pub const ORGANIZATION: &str = "org-sim";

/// The subscribe URL, written out here rather than built by the code under
/// test, so a wrong URL is caught (S10).
pub fn expected_url() -> String {
    format!("wss://api.hosted.sim/v1/sessions/ws/{SESSION_ID}/subscribe?organization_uuid={ORGANIZATION}")
}

/// The server's side of every connection of one run.
#[derive(Debug, Default)]
pub struct Server {
    /// Tokens presented so far: a replayed one is an expired credential (D8).
    seen_tokens: BTreeSet<String>,
    /// Control request ids the client sent (each must be fresh, S7).
    request_ids: BTreeSet<String>,
    /// Control requests the server sent that are not answered yet.
    asked: BTreeSet<String>,
    asked_total: u64,
    /// Control requests answered with a control response.
    pub echoed: u64,
    /// Server control requests the client answered.
    pub answered: u64,
}

impl Server {
    /// Judges an upgrade. `newest` is the token the provider handed out last:
    /// anything else, or a token seen before, is a violation of S1.
    pub fn upgrade(
        &mut self,
        url: &str,
        headers: &[(String, String)],
        newest: Option<&str>,
    ) -> Result<(), Violation> {
        if url != expected_url() {
            return Err(Violation(format!("upgrade to {url}, not {}", expected_url())));
        }
        let values = |name: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let version = values("anthropic-version");
        if version != [ANTHROPIC_VERSION] {
            return Err(Violation(format!("anthropic-version headers {version:?}")));
        }
        let auth = values("authorization");
        let [auth] = auth[..] else {
            return Err(Violation(format!("authorization headers {auth:?}")));
        };
        let Some(token) = auth.strip_prefix("Bearer ") else {
            return Err(Violation(format!("authorization {auth:?} is not a bearer token")));
        };
        if Some(token) != newest {
            return Err(Violation(format!(
                "upgrade with token {token:?}, the provider's newest is {newest:?} (S1)"
            )));
        }
        if !self.seen_tokens.insert(token.to_owned()) {
            return Err(Violation(format!(
                "token {token:?} reused across attempts (S1, D8)"
            )));
        }
        Ok(())
    }

    /// The greeting a serving server sends first.
    pub fn greeting() -> String {
        json!({"type": "system", "subtype": "init", "session_id": SESSION_ID}).to_string()
    }

    /// The `n`-th frame of a serving server: mostly messages, some frames the
    /// client must drop (L5), some control requests of the server's own.
    pub fn frame(&mut self, n: u64) -> String {
        match n % 11 {
            3 => "not json at all".into(),
            5 => "[1, 2, 3]".into(),
            7 => json!({"type": 7, "n": n}).to_string(),
            9 => json!({"subtype": "no type", "n": n}).to_string(),
            4 | 10 => {
                self.asked_total += 1;
                let id = format!("srv-{}", self.asked_total);
                self.asked.insert(id.clone());
                json!({"type": "control_request", "request_id": id, "request": {"subtype": "can_use_tool", "tool_name": "Bash"}})
                    .to_string()
            }
            _ => json!({"type": "assistant", "message": {"n": n, "text": "héllo \u{1F600}"}, "nested": [{"a": null}]})
                .to_string(),
        }
    }

    /// A text frame from the client; returns the frames the server answers with.
    pub fn text(&mut self, text: &str) -> Result<Option<String>, Violation> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Violation(format!("the client wrote non-JSON {text:?}: {e}")))?;
        match value["type"].as_str() {
            Some("control_request") => {
                let Some(id) = value["request_id"].as_str() else {
                    return Err(Violation(format!("a control request without request_id: {text}")));
                };
                if !self.request_ids.insert(id.to_owned()) {
                    return Err(Violation(format!("request_id {id} sent twice (S7)")));
                }
                if !value["request"].is_object() {
                    return Err(Violation(format!(
                        "a control request without a request object: {text}"
                    )));
                }
                self.echoed += 1;
                let answer = json!({
                    "type": "control_response",
                    "response": {"subtype": "success", "request_id": id, "echo": value["request"]},
                });
                Ok(Some(answer.to_string()))
            }
            Some("control_response") => {
                let id = value["response"]["request_id"].as_str().unwrap_or_default();
                if !self.asked.remove(id) {
                    return Err(Violation(format!(
                        "a control response to {id:?}, which is not an open server request"
                    )));
                }
                self.answered += 1;
                Ok(None)
            }
            _ => Err(Violation(format!(
                "the client wrote a frame the server does not know: {text}"
            ))),
        }
    }
}
