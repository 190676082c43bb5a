//! Routes each decoded frame to its handler, before and after the hello.

use serde::Deserialize;
use tether_proto::mesh::wire::{ClientFrame, DecodeError};
use tether_proto::Now;

use super::broker::Broker;
use super::faults::Refusal;
use super::output::ConnId;

/// Close code for a frame over the size limit (RFC 6455 §7.4.1, "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a text frame that is not UTF-8 (RFC 6455 §7.4.1, "invalid payload").
pub const CLOSE_NOT_UTF8: u16 = 1007;

/// A frame the host could not hand to the core, reported by [`Broker::handle_breach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// Over the frame limit; `len` is its size when the host knows it.
    TooLarge {
        /// The frame's length in bytes (0 when unknown).
        len: usize,
    },
    /// A text frame that is not UTF-8.
    InvalidUtf8,
}

impl Broker {
    /// Before the hello only `hello` and `session_hello` are welcome.
    pub(crate) fn dispatch_pre_open(
        &mut self,
        conn: ConnId,
        frame: Result<ClientFrame, DecodeError>,
        now: Now,
    ) {
        match frame {
            Ok(ClientFrame::Hello(hello)) => self.handle_hello(conn, hello, now),
            Ok(ClientFrame::SessionHello(hello)) => self.handle_session_hello(conn, hello, now),
            Err(e @ DecodeError::BadFields { .. }) if is_hello_kind(&e) => {
                self.stats.malformed_frames += 1;
                self.reject(conn, Refusal::for_code("malformed", e.to_string()), now);
            }
            Err(DecodeError::TooLarge { len, max }) => self.too_big(conn, len, max, None, now),
            Ok(other) => {
                let message = format!("no_hello: `{}` before hello", other.kind());
                self.reject(conn, Refusal::for_code("no_hello", message), now);
            }
            Err(e) => {
                self.stats.malformed_frames += 1;
                let message = format!("no_hello: {e}");
                self.reject(conn, Refusal::for_code("no_hello", message), now);
            }
        }
    }

    /// After the hello: sends, acks, requests and presence updates. `text` is the
    /// frame as received, read again only for the `_reqId` an error reply echoes.
    pub(crate) fn dispatch_open(
        &mut self,
        conn: ConnId,
        text: &str,
        frame: Result<ClientFrame, DecodeError>,
        now: Now,
    ) {
        let frame = match frame {
            Ok(frame) => frame,
            Err(DecodeError::TooLarge { len, max }) => return self.too_big(conn, len, max, None, now),
            Err(e) => {
                // The connection stays: one bad frame says nothing about the next (L5).
                self.stats.malformed_frames += 1;
                return self.send_error(conn, "malformed", e.to_string(), None, req_id_of(text));
            }
        };
        match frame {
            ClientFrame::Hello(_) | ClientFrame::SessionHello(_) => {
                self.stats.malformed_frames += 1;
                let message = "this connection's hello was already accepted".to_owned();
                self.send_error(conn, "duplicate_hello", message, None, req_id_of(text));
            }
            ClientFrame::Send(send) => self.handle_send(conn, send, now),
            ClientFrame::ClientAck(ack) => self.handle_client_ack(conn, ack),
            ClientFrame::ListPeers(f) => self.list_peers(conn, f.req_id),
            ClientFrame::GetState(f) => self.get_state(conn, f.key, f.req_id),
            ClientFrame::ListState(f) => self.list_state(conn, f.req_id),
            ClientFrame::Remember(f) => {
                self.remember(conn, f.content, f.tags.unwrap_or_default(), f.req_id, now)
            }
            ClientFrame::Recall(f) => self.recall(conn, &f.query, f.req_id),
            ClientFrame::ListSkills(f) => self.list_skills(conn, f.query.as_deref(), f.req_id),
            ClientFrame::GetSkill(f) => self.get_skill(conn, &f.name, f.req_id),
            ClientFrame::SetState(f) => self.set_state(conn, f.key, f.value, req_id_of(text), now),
            ClientFrame::Forget(f) => self.forget_memory(conn, f.memory_id, req_id_of(text)),
            ClientFrame::SetProfile(f) => self.set_profile(conn, f, req_id_of(text)),
            ClientFrame::SetSummary(f) => self.set_summary(conn, f.summary, req_id_of(text)),
            ClientFrame::SetStatus(f) => self.set_status(conn, f.status, req_id_of(text)),
            ClientFrame::SetVisible(f) => self.set_visible(conn, f.visible),
            ClientFrame::Unknown { kind, .. } => {
                self.stats.unknown_types += 1;
                let message = format!("unknown message type: {kind}");
                self.send_error(conn, "unknown_message_type", message, None, req_id_of(text));
            }
        }
    }

    /// A frame over the limit: an `error` saying so, then close 1009 (the stream may
    /// be cut mid-message, so the connection cannot go on).
    pub(crate) fn too_big(&mut self, conn: ConnId, len: usize, max: usize, req_id: Option<String>, now: Now) {
        self.stats.frames_too_large += 1;
        let message = format!("payload too large: frame of {len} bytes > {max}");
        self.send_error(conn, "payload_too_large", message, None, req_id);
        let reason = format!("message too big: {len} > {max} bytes");
        self.close(conn, CLOSE_TOO_BIG, &reason, now);
    }
}

fn is_hello_kind(e: &DecodeError) -> bool {
    matches!(e, DecodeError::BadFields { kind, .. } if kind == "hello" || kind == "session_hello")
}

/// The `_reqId` of a frame, if it is a JSON object with a string one.
fn req_id_of(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct ReqId {
        #[serde(rename = "_reqId")]
        req_id: Option<String>,
    }
    serde_json::from_str::<ReqId>(text).ok().and_then(|r| r.req_id)
}
