//! Routes each decoded frame to its handler, before and after the hello.

use tether_proto::mesh::wire::{ClientFrame, DecodeError};
use tether_proto::Now;

use super::broker::Broker;
use super::faults::Refusal;
use super::output::ConnId;

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
            Err(e @ DecodeError::TooLarge { .. }) => {
                self.stats.malformed_frames += 1;
                self.reject(conn, Refusal::for_code("malformed", e.to_string()), now);
            }
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

    /// After the hello: sends, acks, requests and presence updates.
    pub(crate) fn dispatch_open(&mut self, conn: ConnId, frame: Result<ClientFrame, DecodeError>, now: Now) {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // The connection stays: one bad frame says nothing about the next (L5).
                self.stats.malformed_frames += 1;
                return self.send_error(conn, "malformed", e.to_string(), None);
            }
        };
        match frame {
            ClientFrame::Hello(_) | ClientFrame::SessionHello(_) => {
                self.stats.malformed_frames += 1;
                let message = "this connection's hello was already accepted".to_owned();
                self.send_error(conn, "duplicate_hello", message, None);
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
            ClientFrame::SetState(f) => self.set_state(conn, f.key, f.value, now),
            ClientFrame::Forget(f) => self.forget_memory(conn, &f.memory_id),
            ClientFrame::SetProfile(f) => self.set_profile(conn, f),
            ClientFrame::SetSummary(f) => self.set_summary(conn, f.summary),
            ClientFrame::SetStatus(f) => self.set_status(conn, f.status),
            ClientFrame::SetVisible(f) => self.set_visible(conn, f.visible),
            ClientFrame::Unknown { kind, .. } => {
                self.stats.unknown_types += 1;
                let message = format!("unknown message type: {kind}");
                self.send_error(conn, "unknown_message_type", message, None);
            }
        }
    }
}

fn is_hello_kind(e: &DecodeError) -> bool {
    matches!(e, DecodeError::BadFields { kind, .. } if kind == "hello" || kind == "session_hello")
}
