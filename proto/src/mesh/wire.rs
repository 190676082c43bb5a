//! Every frame of `PROTOCOL.md` as a serde type, in both directions.
//!
//! [`ClientFrame`] is what a client sends and a broker reads; [`BrokerFrame`] the
//! reverse. Both encode to the exact wire JSON (`"type"` first, then the fields in
//! the order PROTOCOL.md lists them) and decode through [`decode_client_frame`] and
//! [`decode_broker_frame`]. Decoding is one pass over the text when `type` comes
//! first, as every known peer writes it: its string is read by hand, then the
//! struct that type names reads on from there. Otherwise a peek reads keys until
//! `type`, then the whole text goes into the struct. That avoids serde's
//! internally tagged enums, which buffer the whole object into an intermediate
//! tree first.
//!
//! Readers are tolerant where brokers in the field disagree: unknown fields are
//! ignored, unknown `type`s become [`BrokerFrame::Unknown`], and reply fields that
//! older brokers omit or send as `null` fall back to empty values. [`Reply`] folds
//! the old and new reply shapes into one view (B10, D7).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::sync::Arc;

use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use thiserror::Error;

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/// Delivery priority of a message; the wire default is `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Deliver immediately, interrupting the recipient.
    Now,
    /// Deliver at the recipient's next turn.
    #[default]
    Next,
    /// Deliver when the recipient is idle.
    Low,
}

/// A group membership as announced in a hello or listed for a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    /// Group name, without the leading `@`.
    pub name: String,
    /// The member's role inside the group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Reads a field that some brokers send as `null` or leave out, as its default.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Client → broker
// ---------------------------------------------------------------------------

/// Optional presence fields shared by `hello` and `session_hello`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloExtras {
    /// Protocol revision the client speaks (currently 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// Feature flags the client supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Name shown to other peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Host the client runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `"ai"`, `"human"` or `"connector"`; kept as a string so new kinds pass through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    /// Free-form channel label (e.g. which client program connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Model name of an AI peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Groups the client joins on connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupRef>>,
}

/// `hello`: a member authenticates with its long-lived key (B12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloFrame {
    /// Mesh being joined.
    pub mesh_id: String,
    /// Member id within the mesh.
    pub member_id: String,
    /// Member public key, 64 lowercase hex.
    pub pubkey: String,
    /// Client-chosen session id (stable across reconnects of one session).
    pub session_id: String,
    /// Process id of the client.
    pub pid: u32,
    /// Working directory of the client.
    pub cwd: String,
    /// Unix milliseconds when this hello was signed; fresh per attempt.
    pub timestamp: u64,
    /// ed25519 signature over `identity::canonical_hello`, 128 lowercase hex.
    pub signature: String,
    /// Optional presence fields.
    #[serde(flatten)]
    pub extras: HelloExtras,
    /// Ephemeral session key for session-targeted messages (not signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_pubkey: Option<String>,
}

/// The parent member's signed permission for a session key to act for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentAttestation {
    /// Session public key being vouched for, 64 hex.
    pub session_pubkey: String,
    /// Parent member public key that signs, 64 hex.
    pub parent_member_pubkey: String,
    /// Unix milliseconds after which the attestation is void.
    pub expires_at: u64,
    /// Parent's signature over `identity::canonical_session_attestation`, 128 hex.
    pub signature: String,
}

/// `session_hello`: a per-session identity authenticates with an ephemeral key (B12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionHelloFrame {
    /// Mesh being joined.
    pub mesh_id: String,
    /// Member id of the parent member.
    pub parent_member_id: String,
    /// Parent member public key, 64 hex.
    pub parent_member_pubkey: String,
    /// Ephemeral session public key, 64 hex.
    pub session_pubkey: String,
    /// Parent's attestation of the session key, re-minted per attempt.
    pub parent_attestation: ParentAttestation,
    /// Client-chosen session id.
    pub session_id: String,
    /// Process id of the client.
    pub pid: u32,
    /// Working directory of the client.
    pub cwd: String,
    /// Unix milliseconds when this hello was signed.
    pub timestamp: u64,
    /// Session key's signature over `identity::canonical_session_hello`, 128 hex.
    pub signature: String,
    /// Optional presence fields.
    #[serde(flatten)]
    pub extras: HelloExtras,
    /// Role the session plays (not signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `send`: one message to a target (B1, B6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendFrame {
    /// Correlation id echoed on the `ack` or `error`.
    pub id: String,
    /// Display name, pubkey, `@group`, `#topic`, `tag:x` or `*`.
    pub target_spec: String,
    /// Delivery priority.
    #[serde(default)]
    pub priority: Priority,
    /// Base64 nonce.
    pub nonce: String,
    /// Base64 ciphertext (base64 plaintext until end-to-end encryption lands).
    pub ciphertext: String,
    /// Idempotency id; same as `id` when set, reused on resends (B6).
    #[serde(
        rename = "client_message_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_message_id: Option<String>,
    /// Hex fingerprint of the request, for broker-side dedupe.
    #[serde(
        rename = "request_fingerprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_fingerprint: Option<String>,
    /// Peers mentioned in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<String>>,
    /// Message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    /// Version of the body encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
}

impl SendFrame {
    /// The frame borrowed, for encoding.
    pub fn as_ref(&self) -> SendFrameRef<'_> {
        SendFrameRef {
            id: &self.id,
            target_spec: &self.target_spec,
            priority: self.priority,
            nonce: &self.nonce,
            ciphertext: &self.ciphertext,
            client_message_id: self.client_message_id.as_deref(),
            request_fingerprint: self.request_fingerprint.as_deref(),
            mentions: self.mentions.as_deref(),
            reply_to_id: self.reply_to_id.as_deref(),
            body_version: self.body_version,
        }
    }
}

/// A `send` frame made of borrowed parts: what [`ClientFrame::Send`] encodes
/// through, and what a session encodes a send from without building an owned
/// frame first (every send is encoded; the copies, the drop and serde's
/// flattening serializer cost more than the JSON itself).
///
/// Serialized with `"type":"send"` first, as every reference peer writes it.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename = "send", rename_all = "camelCase")]
pub struct SendFrameRef<'a> {
    /// See [`SendFrame::id`].
    pub id: &'a str,
    /// See [`SendFrame::target_spec`].
    pub target_spec: &'a str,
    /// See [`SendFrame::priority`].
    pub priority: Priority,
    /// See [`SendFrame::nonce`].
    pub nonce: &'a str,
    /// See [`SendFrame::ciphertext`].
    pub ciphertext: &'a str,
    /// See [`SendFrame::client_message_id`].
    #[serde(rename = "client_message_id", skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<&'a str>,
    /// See [`SendFrame::request_fingerprint`].
    #[serde(rename = "request_fingerprint", skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<&'a str>,
    /// See [`SendFrame::mentions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mentions: Option<&'a [String]>,
    /// See [`SendFrame::reply_to_id`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<&'a str>,
    /// See [`SendFrame::body_version`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
}

impl SendFrameRef<'_> {
    /// The exact wire JSON, the same as [`ClientFrame::Send`]'s: what the serde
    /// derive writes, written by hand into a buffer sized once (every send is
    /// encoded, and serde_json's token-by-token writes cost more than the rest
    /// of the send's bookkeeping).
    pub fn encode(&self) -> String {
        use super::json::{push_field, push_str};
        let optional = [self.client_message_id, self.request_fingerprint, self.reply_to_id];
        // The keys, quotes and punctuation of every field come to under 160
        // bytes; values are as long as they are unless they need escapes.
        let mut len = 160 + self.id.len() + self.target_spec.len() + self.nonce.len() + self.ciphertext.len();
        len += optional.iter().flatten().map(|v| v.len() + 24).sum::<usize>();
        len += self.mentions.map_or(0, |m| m.iter().map(|v| v.len() + 3).sum());
        let mut out = String::with_capacity(len);
        out.push_str("{\"type\":\"send\"");
        push_field(&mut out, "id", self.id);
        push_field(&mut out, "targetSpec", self.target_spec);
        out.push_str(match self.priority {
            Priority::Now => ",\"priority\":\"now\"",
            Priority::Next => ",\"priority\":\"next\"",
            Priority::Low => ",\"priority\":\"low\"",
        });
        push_field(&mut out, "nonce", self.nonce);
        push_field(&mut out, "ciphertext", self.ciphertext);
        if let Some(v) = self.client_message_id {
            push_field(&mut out, "client_message_id", v);
        }
        if let Some(v) = self.request_fingerprint {
            push_field(&mut out, "request_fingerprint", v);
        }
        if let Some(mentions) = self.mentions {
            out.push_str(",\"mentions\":[");
            for (i, m) in mentions.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(&mut out, m);
            }
            out.push(']');
        }
        if let Some(v) = self.reply_to_id {
            push_field(&mut out, "replyToId", v);
        }
        if let Some(v) = self.body_version {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(out, ",\"bodyVersion\":{v}");
        }
        out.push('}');
        out
    }
}

/// `client_ack`: confirms a push so the broker stops re-pushing it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAckFrame {
    /// The sender's idempotency id of the confirmed message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// The broker's `messageId` of the confirmed message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_message_id: Option<String>,
}

/// `list_peers` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListPeersFrame {
    /// Correlation id echoed on the reply.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `get_state` request for one shared state key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetStateFrame {
    /// State key to read.
    pub key: String,
    /// Correlation id echoed on the reply.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `list_state` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListStateFrame {
    /// Correlation id echoed on the reply.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `remember` request: store a memory in the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberFrame {
    /// Memory text.
    pub content: String,
    /// Tags to file it under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Correlation id echoed on the reply.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `recall` request: search memories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecallFrame {
    /// Search query.
    pub query: String,
    /// Correlation id echoed on the reply.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `list_skills` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListSkillsFrame {
    /// Optional filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Correlation id echoed on the reply.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `get_skill` request for one skill by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSkillFrame {
    /// Skill name.
    pub name: String,
    /// Correlation id echoed on the reply.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `set_state` (fire-and-forget): others receive a `state_change`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetStateFrame {
    /// State key.
    pub key: String,
    /// New value (any JSON).
    #[serde(default)]
    pub value: Value,
}

/// `forget` (fire-and-forget): delete a memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForgetFrame {
    /// Id of the memory to delete.
    pub memory_id: String,
}

/// `set_profile` (fire-and-forget): update the sender's profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SetProfileFrame {
    /// Avatar (URL or emoji).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    /// Advertised capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// `set_summary` (fire-and-forget): what the sender is working on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSummaryFrame {
    /// One-line summary.
    pub summary: String,
}

/// `set_status` (fire-and-forget): `"idle"`, `"working"` or `"dnd"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStatusFrame {
    /// New status; a string so a broker can relay values it does not know.
    pub status: String,
}

/// `set_visible` (fire-and-forget): show or hide the sender in peer lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetVisibleFrame {
    /// Whether the sender is listed.
    pub visible: bool,
}

/// Every frame a client sends to a broker.
// Boxing the large hello variants would cost an allocation per frame for no gain:
// frames are built once and moved a few times.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `hello`.
    Hello(HelloFrame),
    /// `session_hello`.
    SessionHello(SessionHelloFrame),
    /// `send`.
    Send(SendFrame),
    /// `client_ack`.
    ClientAck(ClientAckFrame),
    /// `list_peers`.
    ListPeers(ListPeersFrame),
    /// `get_state`.
    GetState(GetStateFrame),
    /// `list_state`.
    ListState(ListStateFrame),
    /// `remember`.
    Remember(RememberFrame),
    /// `recall`.
    Recall(RecallFrame),
    /// `list_skills`.
    ListSkills(ListSkillsFrame),
    /// `get_skill`.
    GetSkill(GetSkillFrame),
    /// `set_state`.
    SetState(SetStateFrame),
    /// `forget`.
    Forget(ForgetFrame),
    /// `set_profile`.
    SetProfile(SetProfileFrame),
    /// `set_summary`.
    SetSummary(SetSummaryFrame),
    /// `set_status`.
    SetStatus(SetStatusFrame),
    /// `set_visible`.
    SetVisible(SetVisibleFrame),
    /// A `type` this crate does not know; a broker answers `unknown_message_type`.
    Unknown {
        /// The frame's `type` string.
        kind: String,
        /// The original frame text, unchanged.
        raw: String,
    },
}

/// The requests that expect a correlated reply (B8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `list_peers` → `peers_list`.
    ListPeers,
    /// `get_state` → `state_result` (older: `state_value`, `state_data`).
    GetState,
    /// `list_state` → `state_list`.
    ListState,
    /// `remember` → `memory_stored`.
    Remember,
    /// `recall` → `memory_results` (older: `memory_recall_result`).
    Recall,
    /// `list_skills` → `skill_list`.
    ListSkills,
    /// `get_skill` → `skill_data`.
    GetSkill,
}

impl RequestKind {
    /// The request's wire `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListPeers => "list_peers",
            Self::GetState => "get_state",
            Self::ListState => "list_state",
            Self::Remember => "remember",
            Self::Recall => "recall",
            Self::ListSkills => "list_skills",
            Self::GetSkill => "get_skill",
        }
    }
}

impl ClientFrame {
    /// The frame's wire `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::Hello(_) => "hello",
            Self::SessionHello(_) => "session_hello",
            Self::Send(_) => "send",
            Self::ClientAck(_) => "client_ack",
            Self::ListPeers(_) => "list_peers",
            Self::GetState(_) => "get_state",
            Self::ListState(_) => "list_state",
            Self::Remember(_) => "remember",
            Self::Recall(_) => "recall",
            Self::ListSkills(_) => "list_skills",
            Self::GetSkill(_) => "get_skill",
            Self::SetState(_) => "set_state",
            Self::Forget(_) => "forget",
            Self::SetProfile(_) => "set_profile",
            Self::SetSummary(_) => "set_summary",
            Self::SetStatus(_) => "set_status",
            Self::SetVisible(_) => "set_visible",
            Self::Unknown { kind, .. } => kind,
        }
    }

    /// Which request this is, if it expects a correlated reply.
    pub fn request_kind(&self) -> Option<RequestKind> {
        match self {
            Self::ListPeers(_) => Some(RequestKind::ListPeers),
            Self::GetState(_) => Some(RequestKind::GetState),
            Self::ListState(_) => Some(RequestKind::ListState),
            Self::Remember(_) => Some(RequestKind::Remember),
            Self::Recall(_) => Some(RequestKind::Recall),
            Self::ListSkills(_) => Some(RequestKind::ListSkills),
            Self::GetSkill(_) => Some(RequestKind::GetSkill),
            _ => None,
        }
    }

    /// The request's `_reqId`, which the broker echoes on the reply.
    pub fn req_id(&self) -> Option<&str> {
        match self {
            Self::ListPeers(f) => f.req_id.as_deref(),
            Self::GetState(f) => f.req_id.as_deref(),
            Self::ListState(f) => f.req_id.as_deref(),
            Self::Remember(f) => f.req_id.as_deref(),
            Self::Recall(f) => f.req_id.as_deref(),
            Self::ListSkills(f) => f.req_id.as_deref(),
            Self::GetSkill(f) => f.req_id.as_deref(),
            _ => None,
        }
    }

    /// The exact wire JSON; an `Unknown` frame is returned as its original text.
    pub fn encode(&self) -> String {
        match self {
            Self::Unknown { raw, .. } => raw.clone(),
            // The frames of every message, written by hand (same bytes).
            Self::Send(f) => f.as_ref().encode(),
            Self::ClientAck(f) => {
                encode_client_ack(f.client_message_id.as_deref(), f.broker_message_id.as_deref())
            }
            // Cannot fail: every field is a plain struct, string or `serde_json::Value`.
            _ => serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// The `client_ack` of a push, from borrowed ids: the bytes
/// `ClientFrame::ClientAck(..).encode()` writes, without building the frame
/// (every push is confirmed).
pub fn encode_client_ack(client_message_id: Option<&str>, broker_message_id: Option<&str>) -> String {
    use super::json::push_field;
    let ids = client_message_id.map_or(0, str::len) + broker_message_id.map_or(0, str::len);
    let mut out = String::with_capacity(64 + ids);
    out.push_str("{\"type\":\"client_ack\"");
    if let Some(v) = client_message_id {
        push_field(&mut out, "clientMessageId", v);
    }
    if let Some(v) = broker_message_id {
        push_field(&mut out, "brokerMessageId", v);
    }
    out.push('}');
    out
}

impl Serialize for ClientFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind();
        match self {
            Self::Hello(f) => tagged(kind, f, s),
            Self::SessionHello(f) => tagged(kind, f, s),
            Self::Send(f) => f.as_ref().serialize(s),
            Self::ClientAck(f) => tagged(kind, f, s),
            Self::ListPeers(f) => tagged(kind, f, s),
            Self::GetState(f) => tagged(kind, f, s),
            Self::ListState(f) => tagged(kind, f, s),
            Self::Remember(f) => tagged(kind, f, s),
            Self::Recall(f) => tagged(kind, f, s),
            Self::ListSkills(f) => tagged(kind, f, s),
            Self::GetSkill(f) => tagged(kind, f, s),
            Self::SetState(f) => tagged(kind, f, s),
            Self::Forget(f) => tagged(kind, f, s),
            Self::SetProfile(f) => tagged(kind, f, s),
            Self::SetSummary(f) => tagged(kind, f, s),
            Self::SetStatus(f) => tagged(kind, f, s),
            Self::SetVisible(f) => tagged(kind, f, s),
            Self::Unknown { raw, .. } => raw_json(raw, s),
        }
    }
}

macro_rules! impl_from_frame {
    ($enum:ident { $($variant:ident($ty:ty)),* $(,)? }) => {
        $(impl From<$ty> for $enum {
            fn from(frame: $ty) -> Self {
                Self::$variant(frame)
            }
        })*
    };
}

impl_from_frame!(ClientFrame {
    Hello(HelloFrame),
    SessionHello(SessionHelloFrame),
    Send(SendFrame),
    ClientAck(ClientAckFrame),
    ListPeers(ListPeersFrame),
    GetState(GetStateFrame),
    ListState(ListStateFrame),
    Remember(RememberFrame),
    Recall(RecallFrame),
    ListSkills(ListSkillsFrame),
    GetSkill(GetSkillFrame),
    SetState(SetStateFrame),
    Forget(ForgetFrame),
    SetProfile(SetProfileFrame),
    SetSummary(SetSummaryFrame),
    SetStatus(SetStatusFrame),
    SetVisible(SetVisibleFrame),
});

// ---------------------------------------------------------------------------
// Broker → client
// ---------------------------------------------------------------------------

/// `hello_ack`: the broker accepted the hello; the connection is open (L3).
///
/// The optional fields' shapes are not pinned by PROTOCOL.md, so they stay raw JSON:
/// a guess at a type that turned out wrong would make the ack undecodable and the
/// connection could never open.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloAckFrame {
    /// The broker's id for this presence.
    #[serde(default, deserialize_with = "null_default")]
    pub presence_id: String,
    /// Display name the broker has on record for the member.
    #[serde(default, deserialize_with = "null_default")]
    pub member_display_name: String,
    /// Whether a previous presence was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Value>,
    /// Summary of the restored presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_summary: Option<Value>,
    /// When the restored presence was last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<Value>,
    /// Groups of the restored presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_groups: Option<Value>,
    /// Counters of the restored presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_stats: Option<Value>,
    /// Services available in the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Value>,
    /// The member's stored profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_profile: Option<Value>,
    /// Mesh-wide policy settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_policy: Option<Value>,
}

/// `ack`: the outcome of a `send` (B1, B5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckFrame {
    /// The `send`'s `id`.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The broker's id for the stored message.
    #[serde(default, deserialize_with = "null_default")]
    pub message_id: String,
    /// `true` when the broker accepted the message (the real broker sends it on every
    /// accepted send, the recipient online or not); `false` only beside an `error`.
    #[serde(default, deserialize_with = "null_default")]
    pub queued: bool,
    /// Set when the send failed (e.g. `rate_limit: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Correlation id, when the ack answers a request.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

impl AckFrame {
    /// The failure text when this ack reports a failed send (a non-empty `error`).
    pub fn failure(&self) -> Option<&str> {
        self.error.as_deref().filter(|e| !e.is_empty())
    }

    /// True when the ack reports a failure that retrying will not fix (B5).
    pub fn is_permanent_failure(&self) -> bool {
        self.failure().is_some_and(ack_error_is_permanent)
    }
}

/// `push` (or `inbound`): a message delivered to this client (B7).
///
/// Everything but the optional fields defaults to empty when absent, because system
/// pushes (`subtype: "system"`) from some brokers carry no body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushFrame {
    /// The broker's message id (confirm it with `client_ack`).
    #[serde(default, deserialize_with = "null_default")]
    pub message_id: String,
    /// Mesh the message travelled in.
    #[serde(default, deserialize_with = "null_default")]
    pub mesh_id: String,
    /// Public key that sent it (session or member key).
    #[serde(default, deserialize_with = "null_default")]
    pub sender_pubkey: String,
    /// Delivery priority.
    #[serde(default, deserialize_with = "null_default")]
    pub priority: Priority,
    /// Base64 nonce.
    #[serde(default, deserialize_with = "null_default")]
    pub nonce: String,
    /// Base64 ciphertext.
    #[serde(default, deserialize_with = "null_default")]
    pub ciphertext: String,
    /// When the broker accepted the message.
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// Sender's member key, when it sent with a session key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_pubkey: Option<String>,
    /// Sender's member id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_id: Option<String>,
    /// Sender's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// Topic the message was posted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    /// Sender's idempotency id.
    #[serde(
        rename = "client_message_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_message_id: Option<String>,
    /// Sender's request fingerprint.
    #[serde(
        rename = "request_fingerprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_fingerprint: Option<String>,
    /// `"reminder"` or `"system"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// System event name, e.g. `peer_joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// System event payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_data: Option<Value>,
}

/// `error`: a rejection of the hello, a send or a request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFrame {
    /// Machine-readable code, e.g. `timestamp_skew` (PROTOCOL.md table).
    #[serde(default, deserialize_with = "null_default")]
    pub code: String,
    /// Human-readable text, reported as the broker's reason (D6).
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    /// The `send` this error answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The request this error answers.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
    /// Least delay the broker wants before the next attempt (X10, tether extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// What a peer is, from `peerRole`; see [`Peer::role`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// `control-plane`: infrastructure, hidden from user-facing lists (B11).
    ControlPlane,
    /// `session`: an ordinary peer; also what a peer without a role is.
    Session,
    /// `service`: a mesh service.
    Service,
    /// A role this crate does not know yet.
    Other(String),
}

impl PeerRole {
    /// The wire spelling (`control-plane`, `session`, `service`, or the unknown text).
    pub fn as_str(&self) -> &str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::Session => "session",
            Self::Service => "service",
            Self::Other(text) => text,
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "control-plane" => Self::ControlPlane,
            "session" => Self::Session,
            "service" => Self::Service,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One row of `peers_list`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Key the peer connected with (session or member key).
    #[serde(default, deserialize_with = "null_default")]
    pub pubkey: String,
    /// Name shown to users.
    #[serde(default, deserialize_with = "null_default")]
    pub display_name: String,
    /// Presence status, e.g. `idle`.
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    /// What the peer says it is doing; `null` on the wire when unset.
    #[serde(default)]
    pub summary: Option<String>,
    /// Groups the peer is in.
    #[serde(default, deserialize_with = "null_default")]
    pub groups: Vec<GroupRef>,
    /// The peer's session id.
    #[serde(default, deserialize_with = "null_default")]
    pub session_id: String,
    /// When the peer connected.
    #[serde(default, deserialize_with = "null_default")]
    pub connected_at: String,
    /// Member key behind a session key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_pubkey: Option<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `ai`, `human` or `connector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    /// Client channel label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Model of an AI peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `control-plane`, `session` or `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_role: Option<String>,
    /// The user-chosen `profile.role` ("lead", "reviewer"), lifted to the top by
    /// the real CLI; not the presence class, which is [`Peer::peer_role`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whether the peer chose to be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    /// Broker-side counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
    /// The peer's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Value>,
}

impl Peer {
    /// The peer's presence class: `peerRole`, else `Session` (B11, B17).
    ///
    /// `role` is not consulted: on the real broker's wire it is the user-chosen
    /// `profile.role` lifted to the top ("lead", "reviewer"), not a presence class
    /// (`apps/cli/src/commands/peers.ts`).
    pub fn role(&self) -> PeerRole {
        match self.peer_role.as_deref() {
            Some(text) => PeerRole::parse(text),
            None => PeerRole::Session,
        }
    }

    /// Whether a user-facing listing shows this peer without asking for all (B11).
    pub fn is_user_facing(&self) -> bool {
        self.role() != PeerRole::ControlPlane
    }
}

/// `peers_list`: reply to `list_peers`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PeersListFrame {
    /// The peers.
    #[serde(default, deserialize_with = "null_default")]
    pub peers: Vec<Peer>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One shared state entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRow {
    /// State key.
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// Stored value (any JSON).
    #[serde(default)]
    pub value: Value,
    /// Who wrote it last.
    #[serde(default, deserialize_with = "null_default")]
    pub updated_by: String,
    /// When it was written last.
    #[serde(default, deserialize_with = "null_default")]
    pub updated_at: String,
}

/// `state_result`: the current reply to `get_state`, the row at top level.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateResultFrame {
    /// State key.
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// Stored value; `null` when the key is absent.
    #[serde(default)]
    pub value: Value,
    /// Who wrote it last; empty when absent.
    #[serde(default, deserialize_with = "null_default")]
    pub updated_by: String,
    /// When it was written last; empty when absent.
    #[serde(default, deserialize_with = "null_default")]
    pub updated_at: String,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

impl StateResultFrame {
    /// The row, or `None` when the broker reports the key absent (B10).
    pub fn row(&self) -> Option<StateRow> {
        let absent = self.value.is_null() && self.updated_by.is_empty() && self.updated_at.is_empty();
        (!absent).then(|| StateRow {
            key: self.key.clone(),
            value: self.value.clone(),
            updated_by: self.updated_by.clone(),
            updated_at: self.updated_at.clone(),
        })
    }
}

/// `state_value` / `state_data`: older replies to `get_state`, the row nested.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LegacyStateFrame {
    /// The row, as some older brokers name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateRow>,
    /// The row, as other older brokers name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<StateRow>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

impl LegacyStateFrame {
    /// The row under whichever name the broker used (B10).
    pub fn row(&self) -> Option<StateRow> {
        self.state.as_ref().or(self.row.as_ref()).cloned()
    }
}

/// `state_list`: reply to `list_state`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StateListFrame {
    /// All entries.
    #[serde(default, deserialize_with = "null_default")]
    pub entries: Vec<StateRow>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `memory_stored`: reply to `remember`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStoredFrame {
    /// The new memory's id (current brokers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The new memory's id (older brokers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_id: Option<String>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

impl MemoryStoredFrame {
    /// The stored memory's id under whichever name the broker used (B10).
    pub fn stored_id(&self) -> Option<&str> {
        self.id.as_deref().or(self.memory_id.as_deref())
    }
}

/// One memory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRow {
    /// Memory id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// Memory text.
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Who stored it.
    #[serde(default, deserialize_with = "null_default")]
    pub remembered_by: String,
    /// When it was stored.
    #[serde(default, deserialize_with = "null_default")]
    pub remembered_at: String,
}

/// `memory_results`: the current reply to `recall`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryResultsFrame {
    /// Matching memories.
    #[serde(default, deserialize_with = "null_default")]
    pub memories: Vec<MemoryRow>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `memory_recall_result`: the older reply to `recall`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryRecallResultFrame {
    /// Matching memories.
    #[serde(default, deserialize_with = "null_default")]
    pub matches: Vec<MemoryRow>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One skill as listed by `skill_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillSummary {
    /// Skill name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// What it does.
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Who published it.
    #[serde(default, deserialize_with = "null_default")]
    pub author: String,
    /// When it was published.
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
}

/// One skill in full, as returned by `skill_data`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    /// Skill name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// What it does.
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    /// The skill body.
    #[serde(default, deserialize_with = "null_default")]
    pub instructions: String,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Who published it.
    #[serde(default, deserialize_with = "null_default")]
    pub author: String,
    /// When it was published.
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// Optional machine-readable manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
}

/// `skill_list`: reply to `list_skills`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SkillListFrame {
    /// Matching skills.
    #[serde(default, deserialize_with = "null_default")]
    pub skills: Vec<SkillSummary>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `skill_data`: reply to `get_skill`; `skill` is `null` when not found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SkillDataFrame {
    /// The skill, or `None` (`null` on the wire) when there is none by that name.
    #[serde(default)]
    pub skill: Option<Skill>,
    /// Echoed correlation id.
    #[serde(rename = "_reqId", default, skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `state_change`: another peer ran `set_state`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChangeFrame {
    /// State key.
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// New value.
    #[serde(default)]
    pub value: Value,
    /// Who wrote it.
    #[serde(default, deserialize_with = "null_default")]
    pub updated_by: String,
}

/// Every frame a broker sends to a client.
// See `ClientFrame` for why the large variants are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerFrame {
    /// `hello_ack` (boxed: large and once per connection, it would size every frame).
    HelloAck(Box<HelloAckFrame>),
    /// `ack`.
    Ack(AckFrame),
    /// `push`.
    Push(Arc<PushFrame>),
    /// `inbound`: the same payload as `push`, under the name some brokers use.
    Inbound(Arc<PushFrame>),
    /// `error`.
    Error(ErrorFrame),
    /// `peers_list`.
    PeersList(PeersListFrame),
    /// `state_result`.
    StateResult(StateResultFrame),
    /// `state_value` (older `get_state` reply; boxed: two rows wide and rare).
    StateValue(Box<LegacyStateFrame>),
    /// `state_data` (older `get_state` reply; boxed like `state_value`).
    StateData(Box<LegacyStateFrame>),
    /// `state_list`.
    StateList(StateListFrame),
    /// `memory_stored`.
    MemoryStored(MemoryStoredFrame),
    /// `memory_results`.
    MemoryResults(MemoryResultsFrame),
    /// `memory_recall_result` (older `recall` reply).
    MemoryRecallResult(MemoryRecallResultFrame),
    /// `skill_list`.
    SkillList(SkillListFrame),
    /// `skill_data`.
    SkillData(Box<SkillDataFrame>),
    /// `state_change`.
    StateChange(StateChangeFrame),
    /// A `type` this crate does not know, handed to the application as is.
    Unknown {
        /// The frame's `type` string.
        kind: String,
        /// The original frame text, unchanged.
        raw: String,
    },
}

/// A request's reply folded into one shape, whichever wire shape carried it (B10, D7).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Answer to `list_peers`.
    Peers(Vec<Peer>),
    /// Answer to `get_state`; `None` when the key is absent.
    State(Option<StateRow>),
    /// Answer to `list_state`.
    StateList(Vec<StateRow>),
    /// Answer to `remember`: the new memory's id, if the broker gave one.
    Remembered(Option<String>),
    /// Answer to `recall`.
    Recalled(Vec<MemoryRow>),
    /// Answer to `list_skills`.
    Skills(Vec<SkillSummary>),
    /// Answer to `get_skill`; `None` when not found (boxed: large and rare).
    Skill(Option<Box<Skill>>),
}

impl Reply {
    /// The request this reply answers.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::Peers(_) => RequestKind::ListPeers,
            Self::State(_) => RequestKind::GetState,
            Self::StateList(_) => RequestKind::ListState,
            Self::Remembered(_) => RequestKind::Remember,
            Self::Recalled(_) => RequestKind::Recall,
            Self::Skills(_) => RequestKind::ListSkills,
            Self::Skill(_) => RequestKind::GetSkill,
        }
    }
}

impl BrokerFrame {
    /// The frame's wire `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::HelloAck(_) => "hello_ack",
            Self::Ack(_) => "ack",
            Self::Push(_) => "push",
            Self::Inbound(_) => "inbound",
            Self::Error(_) => "error",
            Self::PeersList(_) => "peers_list",
            Self::StateResult(_) => "state_result",
            Self::StateValue(_) => "state_value",
            Self::StateData(_) => "state_data",
            Self::StateList(_) => "state_list",
            Self::MemoryStored(_) => "memory_stored",
            Self::MemoryResults(_) => "memory_results",
            Self::MemoryRecallResult(_) => "memory_recall_result",
            Self::SkillList(_) => "skill_list",
            Self::SkillData(_) => "skill_data",
            Self::StateChange(_) => "state_change",
            Self::Unknown { kind, .. } => kind,
        }
    }

    /// Which request this frame is a reply to, if it is a reply (B8).
    ///
    /// An `error` answers a request too, but its kind is only known from the
    /// pending request with the same `_reqId`, so it returns `None` here.
    pub fn reply_kind(&self) -> Option<RequestKind> {
        match self {
            Self::PeersList(_) => Some(RequestKind::ListPeers),
            Self::StateResult(_) | Self::StateValue(_) | Self::StateData(_) => Some(RequestKind::GetState),
            Self::StateList(_) => Some(RequestKind::ListState),
            Self::MemoryStored(_) => Some(RequestKind::Remember),
            Self::MemoryResults(_) | Self::MemoryRecallResult(_) => Some(RequestKind::Recall),
            Self::SkillList(_) => Some(RequestKind::ListSkills),
            Self::SkillData(_) => Some(RequestKind::GetSkill),
            _ => None,
        }
    }

    /// The echoed `_reqId` of a reply, `error` or `ack`, if the broker sent one.
    pub fn req_id(&self) -> Option<&str> {
        match self {
            Self::Ack(f) => f.req_id.as_deref(),
            Self::Error(f) => f.req_id.as_deref(),
            Self::PeersList(f) => f.req_id.as_deref(),
            Self::StateResult(f) => f.req_id.as_deref(),
            Self::StateValue(f) | Self::StateData(f) => f.req_id.as_deref(),
            Self::StateList(f) => f.req_id.as_deref(),
            Self::MemoryStored(f) => f.req_id.as_deref(),
            Self::MemoryResults(f) => f.req_id.as_deref(),
            Self::MemoryRecallResult(f) => f.req_id.as_deref(),
            Self::SkillList(f) => f.req_id.as_deref(),
            Self::SkillData(f) => f.req_id.as_deref(),
            _ => None,
        }
    }

    /// The message of a `push` or `inbound` frame.
    pub fn as_push(&self) -> Option<&PushFrame> {
        match self {
            Self::Push(f) | Self::Inbound(f) => Some(&**f),
            _ => None,
        }
    }

    /// Folds a reply frame into a [`Reply`]; any other frame is handed back unchanged.
    ///
    /// Read [`BrokerFrame::req_id`] first: the `Reply` does not carry it.
    // The error is the caller's own frame handed back, no bigger than what it passed in.
    #[allow(clippy::result_large_err)]
    pub fn into_reply(self) -> Result<Reply, Self> {
        Ok(match self {
            Self::PeersList(f) => Reply::Peers(f.peers),
            Self::StateResult(f) => Reply::State(f.row()),
            Self::StateValue(f) | Self::StateData(f) => Reply::State(f.state.or(f.row)),
            Self::StateList(f) => Reply::StateList(f.entries),
            Self::MemoryStored(f) => Reply::Remembered(f.id.or(f.memory_id)),
            Self::MemoryResults(f) => Reply::Recalled(f.memories),
            Self::MemoryRecallResult(f) => Reply::Recalled(f.matches),
            Self::SkillList(f) => Reply::Skills(f.skills),
            Self::SkillData(f) => Reply::Skill(f.skill.map(Box::new)),
            other => return Err(other),
        })
    }

    /// The exact wire JSON; an `Unknown` frame is returned as its original text.
    pub fn encode(&self) -> String {
        match self {
            Self::Unknown { raw, .. } => raw.clone(),
            // Cannot fail: every field is a plain struct, string or `serde_json::Value`.
            _ => serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

impl Serialize for BrokerFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind();
        match self {
            Self::HelloAck(f) => tagged(kind, &**f, s),
            Self::Ack(f) => tagged(kind, f, s),
            Self::Push(f) | Self::Inbound(f) => tagged(kind, &**f, s),
            Self::Error(f) => tagged(kind, f, s),
            Self::PeersList(f) => tagged(kind, f, s),
            Self::StateResult(f) => tagged(kind, f, s),
            Self::StateValue(f) | Self::StateData(f) => tagged(kind, &**f, s),
            Self::StateList(f) => tagged(kind, f, s),
            Self::MemoryStored(f) => tagged(kind, f, s),
            Self::MemoryResults(f) => tagged(kind, f, s),
            Self::MemoryRecallResult(f) => tagged(kind, f, s),
            Self::SkillList(f) => tagged(kind, f, s),
            Self::SkillData(f) => tagged(kind, &**f, s),
            Self::StateChange(f) => tagged(kind, f, s),
            Self::Unknown { raw, .. } => raw_json(raw, s),
        }
    }
}

impl From<HelloAckFrame> for BrokerFrame {
    fn from(f: HelloAckFrame) -> Self {
        BrokerFrame::HelloAck(Box::new(f))
    }
}

impl From<SkillDataFrame> for BrokerFrame {
    fn from(f: SkillDataFrame) -> Self {
        BrokerFrame::SkillData(Box::new(f))
    }
}

impl From<PushFrame> for BrokerFrame {
    fn from(f: PushFrame) -> Self {
        BrokerFrame::Push(Arc::new(f))
    }
}

impl_from_frame!(BrokerFrame {
    Ack(AckFrame),
    Error(ErrorFrame),
    PeersList(PeersListFrame),
    StateResult(StateResultFrame),
    StateList(StateListFrame),
    MemoryStored(MemoryStoredFrame),
    MemoryResults(MemoryResultsFrame),
    MemoryRecallResult(MemoryRecallResultFrame),
    SkillList(SkillListFrame),
    StateChange(StateChangeFrame),
});

/// Whether an `ack`'s `error` text describes a failure that retrying cannot fix (B5).
///
/// The text's code ([`split_ack_error`](crate::policy::split_ack_error)) is
/// matched against PROTOCOL.md's list ([`ErrorPolicy::default`](crate::policy::ErrorPolicy));
/// anything else (e.g. `rate_limit: …`) is transient.
pub fn ack_error_is_permanent(err: &str) -> bool {
    // The code decides, never the message (B16); the table is PROTOCOL.md's.
    crate::policy::ErrorPolicy::default().is_permanent(crate::policy::split_ack_error(err).0)
}

// ---------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------

/// A frame body with its `type` written first, as every reference peer does.
#[derive(Serialize)]
struct Tagged<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

fn tagged<S: Serializer, T: Serialize>(kind: &str, body: &T, s: S) -> Result<S::Ok, S::Error> {
    Tagged { kind, body }.serialize(s)
}

fn raw_json<S: Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    serde_json::from_str::<Value>(raw)
        .map_err(S::Error::custom)?
        .serialize(s)
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Why a text frame could not be decoded; the frame is dropped and counted (L5).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The frame is longer than the configured limit; it was not parsed at all.
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// Length of the frame in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text is not valid JSON.
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object.
    #[error("frame is not a JSON object")]
    NotAnObject,
    /// An object without a `type` field.
    #[error("frame has no `type`")]
    MissingType,
    /// An object whose `type` is not a string.
    #[error("frame `type` is not a string")]
    TypeNotString,
    /// A known `type` whose fields do not have the expected shape.
    #[error("bad fields in `{kind}` frame: {detail}")]
    BadFields {
        /// The frame's `type`.
        kind: String,
        /// serde's description of the mismatch.
        detail: String,
    },
}

/// Decodes one broker → client text frame of at most `max_len` bytes.
///
/// Unknown `type`s decode to [`BrokerFrame::Unknown`], never to an error.
pub fn decode_broker_frame(text: &str, max_len: usize) -> Result<BrokerFrame, DecodeError> {
    let (kind, leading) = peek_kind(text, max_len)?;
    let k = kind.as_ref();
    Ok(match k {
        "hello_ack" => BrokerFrame::HelloAck(Box::new(body(text, k, leading)?)),
        "ack" => BrokerFrame::Ack(body(text, k, leading)?),
        // Shared from the start: the session hands the same push to every
        // subscriber and its history without another allocation.
        "push" => BrokerFrame::Push(Arc::new(body(text, k, leading)?)),
        "inbound" => BrokerFrame::Inbound(Arc::new(body(text, k, leading)?)),
        "error" => BrokerFrame::Error(body(text, k, leading)?),
        "peers_list" => BrokerFrame::PeersList(body(text, k, leading)?),
        "state_result" => BrokerFrame::StateResult(body(text, k, leading)?),
        "state_value" => BrokerFrame::StateValue(Box::new(body(text, k, leading)?)),
        "state_data" => BrokerFrame::StateData(Box::new(body(text, k, leading)?)),
        "state_list" => BrokerFrame::StateList(body(text, k, leading)?),
        "memory_stored" => BrokerFrame::MemoryStored(body(text, k, leading)?),
        "memory_results" => BrokerFrame::MemoryResults(body(text, k, leading)?),
        "memory_recall_result" => BrokerFrame::MemoryRecallResult(body(text, k, leading)?),
        "skill_list" => BrokerFrame::SkillList(body(text, k, leading)?),
        "skill_data" => BrokerFrame::SkillData(Box::new(body(text, k, leading)?)),
        "state_change" => BrokerFrame::StateChange(body(text, k, leading)?),
        _ => {
            validate_json(text)?;
            BrokerFrame::Unknown {
                kind: kind.into_owned(),
                raw: text.to_owned(),
            }
        }
    })
}

/// Decodes one client → broker text frame of at most `max_len` bytes.
///
/// Unknown `type`s decode to [`ClientFrame::Unknown`] so a broker can answer
/// `unknown_message_type` rather than `malformed`.
pub fn decode_client_frame(text: &str, max_len: usize) -> Result<ClientFrame, DecodeError> {
    let (kind, leading) = peek_kind(text, max_len)?;
    let k = kind.as_ref();
    Ok(match k {
        "hello" => ClientFrame::Hello(body(text, k, leading)?),
        "session_hello" => ClientFrame::SessionHello(body(text, k, leading)?),
        "send" => ClientFrame::Send(body(text, k, leading)?),
        "client_ack" => ClientFrame::ClientAck(body(text, k, leading)?),
        "list_peers" => ClientFrame::ListPeers(body(text, k, leading)?),
        "get_state" => ClientFrame::GetState(body(text, k, leading)?),
        "list_state" => ClientFrame::ListState(body(text, k, leading)?),
        "remember" => ClientFrame::Remember(body(text, k, leading)?),
        "recall" => ClientFrame::Recall(body(text, k, leading)?),
        "list_skills" => ClientFrame::ListSkills(body(text, k, leading)?),
        "get_skill" => ClientFrame::GetSkill(body(text, k, leading)?),
        "set_state" => ClientFrame::SetState(body(text, k, leading)?),
        "forget" => ClientFrame::Forget(body(text, k, leading)?),
        "set_profile" => ClientFrame::SetProfile(body(text, k, leading)?),
        "set_summary" => ClientFrame::SetSummary(body(text, k, leading)?),
        "set_status" => ClientFrame::SetStatus(body(text, k, leading)?),
        "set_visible" => ClientFrame::SetVisible(body(text, k, leading)?),
        _ => {
            validate_json(text)?;
            ClientFrame::Unknown {
                kind: kind.into_owned(),
                raw: text.to_owned(),
            }
        }
    })
}

/// The struct the frame's `type` names. When `type` leads the object (every
/// known peer writes it first), in the same pass: the peek read `"type":"…"`
/// by hand and the struct reads on from there, so each frame is parsed once.
/// Otherwise the whole text again, `type` skipped as an unknown field.
fn body<T: DeserializeOwned>(text: &str, kind: &str, leading: bool) -> Result<T, DecodeError> {
    let decoded = if leading {
        rest_after_type(text)
    } else {
        serde_json::from_str(text)
    };
    decoded.map_err(|err| {
        let bad_fields = || DecodeError::BadFields {
            kind: kind.to_owned(),
            detail: err.to_string(),
        };
        match err.classify() {
            serde_json::error::Category::Data => bad_fields(),
            // serde_json reports some type mismatches (a number where an enum string
            // belongs) as syntax errors, so ask whether the text itself is valid JSON.
            _ => match validate_json(text) {
                Ok(()) => bad_fields(),
                Err(not_json) => not_json,
            },
        }
    })
}

/// `text` is `{"type":"…"` and the rest of an object: the rest into `T`.
fn rest_after_type<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = de.deserialize_map(RestOf(std::marker::PhantomData))?;
    // Nothing but whitespace may follow the object, as in `from_str`.
    de.end()?;
    Ok(value)
}

/// Steps over the leading `type` entry, then hands the rest of the map to `T`.
struct RestOf<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for RestOf<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        // The peek already read this entry; a plain string, cheap to skip.
        map.next_entry::<IgnoredAny, IgnoredAny>()?;
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

/// The peek stops at `type`, so an unknown frame's tail has not been checked yet.
fn validate_json(text: &str) -> Result<(), DecodeError> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(|_| ())
        .map_err(|err| DecodeError::NotJson(err.to_string()))
}

/// What the peek found out about the top-level value.
enum Peeked<'a> {
    Kind(Cow<'a, str>),
    MissingType,
    TypeNotString,
}

/// Finds the `type` string without allocating (unless it holds escapes), and
/// whether it leads the object (then [`body`] reads on from it in one pass).
///
/// A leading `"type"` is read by hand; otherwise serde_json reads keys until `type`.
/// Stopping early leaves the rest of the object unread, so serde_json reports an
/// error for the unfinished object, which is ignored because the answer is already
/// in `slot`. [`body`] or [`validate_json`] checks the whole text either way.
fn peek_kind(text: &str, max_len: usize) -> Result<(Cow<'_, str>, bool), DecodeError> {
    if text.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: text.len(),
            max: max_len,
        });
    }
    if let Some(kind) = peek_leading_type(text) {
        return Ok((Cow::Borrowed(kind), true));
    }
    let mut slot = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let outcome = de.deserialize_any(TopVisitor { slot: &mut slot });
    match (slot, outcome) {
        (Some(Peeked::Kind(kind)), _) => Ok((kind, false)),
        (Some(Peeked::TypeNotString), _) => Err(DecodeError::TypeNotString),
        (Some(Peeked::MissingType), _) | (None, Ok(())) => Err(DecodeError::MissingType),
        // A data error before any key was read can only be our visitor refusing a
        // non-object top-level value; anything else is broken JSON.
        (None, Err(err)) => Err(match err.classify() {
            serde_json::error::Category::Data => DecodeError::NotAnObject,
            _ => DecodeError::NotJson(err.to_string()),
        }),
    }
}

/// The fast path for the shape every known peer sends: `{"type":"<plain string>"`
/// first. Anything else (escapes, `type` later in the object) returns `None` and
/// takes the general path; pass 2 or [`validate_json`] still checks the whole text.
fn peek_leading_type(text: &str) -> Option<&str> {
    fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
        while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    }
    let bytes = text.as_bytes();
    let i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    let i = skip_ws(bytes, i + 1);
    if !bytes.get(i..)?.starts_with(b"\"type\"") {
        return None;
    }
    let i = skip_ws(bytes, i + 6);
    if bytes.get(i) != Some(&b':') {
        return None;
    }
    let i = skip_ws(bytes, i + 1);
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = bytes
        .get(start..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if bytes.get(start + len) != Some(&b'"') {
        return None;
    }
    text.get(start..start + len)
}

struct TopVisitor<'s, 'de> {
    slot: &'s mut Option<Peeked<'de>>,
}

impl<'de> Visitor<'de> for TopVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(TypeKey(is_type)) = map.next_key()? {
            if is_type {
                *self.slot = Some(match map.next_value::<KindValue<'de>>()? {
                    KindValue::Str(kind) => Peeked::Kind(kind),
                    KindValue::NotString => Peeked::TypeNotString,
                });
                return Ok(());
            }
            map.next_value::<IgnoredAny>()?;
        }
        *self.slot = Some(Peeked::MissingType);
        Ok(())
    }
}

/// A map key, reduced to whether it is `type`.
struct TypeKey(bool);

impl<'de> Deserialize<'de> for TypeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = TypeKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeKey, E> {
                Ok(TypeKey(v == "type"))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The value of `type`: a string (borrowed when it has no escapes) or anything else.
enum KindValue<'de> {
    Str(Cow<'de, str>),
    NotString,
}

impl<'de> Deserialize<'de> for KindValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl<'de> Visitor<'de> for KindVisitor {
            type Value = KindValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KindValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KindValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KindValue::Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(KindValue::NotString)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(KindValue::NotString)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(KindValue::NotString)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(KindValue::NotString)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(KindValue::NotString)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KindValue::NotString)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KindValue::NotString)
            }
        }
        d.deserialize_any(KindVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const MAX: usize = 1 << 20;

    /// Encodes `frame`, compares with `wire` byte for byte, and decodes `wire` back.
    fn golden_client(frame: ClientFrame, wire: &str) {
        assert_eq!(frame.encode(), wire, "encoding of {}", frame.kind());
        assert_eq!(decode_client_frame(wire, MAX), Ok(frame));
    }

    /// `{"type":"k",REST}` with `type` moved last: the same frame for the
    /// decoder's other path.
    fn type_last(wire: &str) -> Option<String> {
        let rest = wire.strip_prefix("{\"type\":\"")?;
        let (kind, rest) = rest.split_once('"')?;
        let body = rest.strip_prefix(',').unwrap_or(rest).strip_suffix('}')?;
        let sep = if body.is_empty() { "" } else { "," };
        Some(format!("{{{body}{sep}\"type\":\"{kind}\"}}"))
    }

    #[test]
    fn the_one_pass_decode_and_the_peek_then_parse_decode_agree() {
        // Every frame the golden tests pin, and broken ones, decode alike
        // whether `type` leads (one pass) or trails (peek, then the whole text).
        let wires = [
            r#"{"type":"ack","id":"s1","messageId":"m1","queued":true}"#,
            r#"{"type":"ack","id":"s1","messageId":"m1","queued":true,"error":"rate_limit: slow"}"#,
            r#"{"type":"push","messageId":"m","meshId":"x","senderPubkey":"ab","priority":"now","nonce":"n","ciphertext":"c","createdAt":"t","topic":"news"}"#,
            r#"{"type":"error","code":"capacity","message":"full","retryAfterMs":250}"#,
            r#"{"type":"hello_ack","presenceId":"p","memberDisplayName":"d","restored":true}"#,
            r#"{"type":"peers_list","peers":[{"pubkey":"ab","displayName":"x","status":"idle"}],"_reqId":"r1"}"#,
            r#"{"type":"state_result","key":"k","value":null,"_reqId":"r2"}"#,
            r#"{"type":"memory_stored"}"#,
            r#"{"type":"ack","id":5}"#,
            r#"{"type":"push","priority":"soon"}"#,
            r#"{"type":"new_thing","x":[1,2]}"#,
        ];
        for wire in wires {
            let Some(other) = type_last(wire) else {
                panic!("test frame {wire} starts with its type");
            };
            let (one_pass, two_pass) = (decode_broker_frame(wire, MAX), decode_broker_frame(&other, MAX));
            match (&one_pass, &two_pass) {
                (Ok(BrokerFrame::Unknown { kind: a, .. }), Ok(BrokerFrame::Unknown { kind: b, .. })) => {
                    assert_eq!(a, b)
                }
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{wire}"),
                (
                    Err(DecodeError::BadFields { kind: a, .. }),
                    Err(DecodeError::BadFields { kind: b, .. }),
                ) => {
                    assert_eq!(a, b, "{wire}")
                }
                _ => panic!("{wire}: {one_pass:?} against {two_pass:?}"),
            }
        }
    }

    #[test]
    fn the_one_pass_decode_checks_the_whole_text() {
        // Nothing may follow the object, and the object must close, whichever path.
        for wire in [
            r#"{"type":"ack","id":"s1","messageId":"m1"} x"#,
            r#"{"type":"ack","id":"s1","messageId":"m1""#,
            r#"{"type":"ack","id":"s1",}"#,
            r#"{"type":"ack","id":"s1"}}"#,
        ] {
            assert!(
                matches!(decode_broker_frame(wire, MAX), Err(DecodeError::NotJson(_))),
                "{wire}: {:?}",
                decode_broker_frame(wire, MAX)
            );
        }
        // Trailing whitespace is JSON.
        assert!(decode_broker_frame("{\"type\":\"ack\",\"id\":\"s\",\"messageId\":\"m\"} \n", MAX).is_ok());
    }

    fn golden_broker(frame: BrokerFrame, wire: &str) {
        assert_eq!(frame.encode(), wire, "encoding of {}", frame.kind());
        assert_eq!(decode_broker_frame(wire, MAX), Ok(frame));
    }

    fn req(id: &str) -> Option<String> {
        Some(id.to_owned())
    }

    // ----- client → broker golden frames -----

    // proves B12: the hello's fields are spelled and ordered as the reference peers expect.
    #[test]
    fn golden_hello() {
        let minimal = HelloFrame {
            mesh_id: "m".into(),
            member_id: "u".into(),
            pubkey: "pk".into(),
            session_id: "s".into(),
            pid: 7,
            cwd: "/w".into(),
            timestamp: 1_700_000_000_000,
            signature: "sig".into(),
            extras: HelloExtras::default(),
            session_pubkey: None,
        };
        golden_client(
            minimal.clone().into(),
            r#"{"type":"hello","meshId":"m","memberId":"u","pubkey":"pk","sessionId":"s","pid":7,"cwd":"/w","timestamp":1700000000000,"signature":"sig"}"#,
        );
        let full = HelloFrame {
            extras: HelloExtras {
                protocol_version: Some(1),
                capabilities: Some(vec!["x".into()]),
                display_name: Some("Ada".into()),
                hostname: Some("h".into()),
                peer_type: Some("ai".into()),
                channel: Some("c".into()),
                model: Some("mo".into()),
                groups: Some(vec![
                    GroupRef {
                        name: "g".into(),
                        role: Some("lead".into()),
                    },
                    GroupRef {
                        name: "h".into(),
                        role: None,
                    },
                ]),
            },
            session_pubkey: Some("spk".into()),
            ..minimal
        };
        golden_client(
            full.into(),
            r#"{"type":"hello","meshId":"m","memberId":"u","pubkey":"pk","sessionId":"s","pid":7,"cwd":"/w","timestamp":1700000000000,"signature":"sig","protocolVersion":1,"capabilities":["x"],"displayName":"Ada","hostname":"h","peerType":"ai","channel":"c","model":"mo","groups":[{"name":"g","role":"lead"},{"name":"h"}],"sessionPubkey":"spk"}"#,
        );
    }

    // proves B12
    #[test]
    fn golden_session_hello() {
        let frame = SessionHelloFrame {
            mesh_id: "m".into(),
            parent_member_id: "u".into(),
            parent_member_pubkey: "ppk".into(),
            session_pubkey: "spk".into(),
            parent_attestation: ParentAttestation {
                session_pubkey: "spk".into(),
                parent_member_pubkey: "ppk".into(),
                expires_at: 1_700_003_600_000,
                signature: "asig".into(),
            },
            session_id: "s".into(),
            pid: 7,
            cwd: "/w".into(),
            timestamp: 1_700_000_000_000,
            signature: "sig".into(),
            extras: HelloExtras {
                display_name: Some("Ada".into()),
                ..HelloExtras::default()
            },
            role: Some("session".into()),
        };
        golden_client(
            frame.into(),
            r#"{"type":"session_hello","meshId":"m","parentMemberId":"u","parentMemberPubkey":"ppk","sessionPubkey":"spk","parentAttestation":{"sessionPubkey":"spk","parentMemberPubkey":"ppk","expiresAt":1700003600000,"signature":"asig"},"sessionId":"s","pid":7,"cwd":"/w","timestamp":1700000000000,"signature":"sig","displayName":"Ada","role":"session"}"#,
        );
    }

    // proves B1, B6
    #[test]
    fn golden_send() {
        let minimal = SendFrame {
            id: "c1".into(),
            target_spec: "@ops".into(),
            priority: Priority::Now,
            nonce: "n".into(),
            ciphertext: "aGk=".into(),
            client_message_id: None,
            request_fingerprint: None,
            mentions: None,
            reply_to_id: None,
            body_version: None,
        };
        golden_client(
            minimal.clone().into(),
            r#"{"type":"send","id":"c1","targetSpec":"@ops","priority":"now","nonce":"n","ciphertext":"aGk="}"#,
        );
        let full = SendFrame {
            priority: Priority::Low,
            client_message_id: Some("c1".into()),
            request_fingerprint: Some("ab12".into()),
            mentions: Some(vec!["bob".into()]),
            reply_to_id: Some("m0".into()),
            body_version: Some(2),
            ..minimal
        };
        golden_client(
            full.into(),
            r#"{"type":"send","id":"c1","targetSpec":"@ops","priority":"low","nonce":"n","ciphertext":"aGk=","client_message_id":"c1","request_fingerprint":"ab12","mentions":["bob"],"replyToId":"m0","bodyVersion":2}"#,
        );
        // A missing priority is the protocol default.
        let decoded = decode_client_frame(
            r#"{"type":"send","id":"c1","targetSpec":"*","nonce":"n","ciphertext":"x"}"#,
            MAX,
        );
        assert!(matches!(
            decoded,
            Ok(ClientFrame::Send(SendFrame {
                priority: Priority::Next,
                ..
            }))
        ));
    }

    // proves B7
    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z0-9\"\\\\\n\u{1}é]{0,12}"]
    }

    proptest! {
        #[test]
        fn hand_written_send_is_what_serde_writes(
            id in arb_text(), target in arb_text(), nonce in arb_text(), ct in arb_text(),
            cmid in proptest::option::of(arb_text()), fp in proptest::option::of(arb_text()),
            mentions in proptest::option::of(proptest::collection::vec(arb_text(), 0..3)),
            reply in proptest::option::of(arb_text()), version in proptest::option::of(any::<u32>()),
            priority in prop_oneof![Just(Priority::Now), Just(Priority::Next), Just(Priority::Low)],
        ) {
            let frame = SendFrame {
                id, target_spec: target, priority, nonce, ciphertext: ct, client_message_id: cmid,
                request_fingerprint: fp, mentions, reply_to_id: reply, body_version: version,
            };
            let by_serde = serde_json::to_string(&frame.as_ref()).unwrap_or_default();
            prop_assert_eq!(frame.as_ref().encode(), by_serde.clone());
            prop_assert_eq!(ClientFrame::Send(frame).encode(), by_serde);
        }

        #[test]
        fn hand_written_client_ack_is_what_serde_writes(
            cmid in proptest::option::of(arb_text()), bmid in proptest::option::of(arb_text()),
        ) {
            let frame = ClientFrame::ClientAck(ClientAckFrame {
                client_message_id: cmid.clone(), broker_message_id: bmid.clone(),
            });
            let by_serde = serde_json::to_string(&frame).unwrap_or_default();
            prop_assert_eq!(encode_client_ack(cmid.as_deref(), bmid.as_deref()), by_serde.clone());
            prop_assert_eq!(frame.encode(), by_serde);
        }
    }

    #[test]
    fn golden_client_ack() {
        golden_client(
            ClientAckFrame {
                client_message_id: Some("c1".into()),
                broker_message_id: Some("b1".into()),
            }
            .into(),
            r#"{"type":"client_ack","clientMessageId":"c1","brokerMessageId":"b1"}"#,
        );
        golden_client(ClientAckFrame::default().into(), r#"{"type":"client_ack"}"#);
    }

    // proves B8: every request carries its `_reqId`.
    #[test]
    fn golden_requests() {
        golden_client(
            ListPeersFrame { req_id: req("r1") }.into(),
            r#"{"type":"list_peers","_reqId":"r1"}"#,
        );
        golden_client(ListPeersFrame::default().into(), r#"{"type":"list_peers"}"#);
        golden_client(
            GetStateFrame {
                key: "k".into(),
                req_id: req("r2"),
            }
            .into(),
            r#"{"type":"get_state","key":"k","_reqId":"r2"}"#,
        );
        golden_client(
            ListStateFrame { req_id: req("r3") }.into(),
            r#"{"type":"list_state","_reqId":"r3"}"#,
        );
        golden_client(
            RememberFrame {
                content: "c".into(),
                tags: Some(vec!["t".into()]),
                req_id: req("r4"),
            }
            .into(),
            r#"{"type":"remember","content":"c","tags":["t"],"_reqId":"r4"}"#,
        );
        golden_client(
            RecallFrame {
                query: "q".into(),
                req_id: req("r5"),
            }
            .into(),
            r#"{"type":"recall","query":"q","_reqId":"r5"}"#,
        );
        golden_client(
            ListSkillsFrame {
                query: Some("q".into()),
                req_id: req("r6"),
            }
            .into(),
            r#"{"type":"list_skills","query":"q","_reqId":"r6"}"#,
        );
        golden_client(
            GetSkillFrame {
                name: "n".into(),
                req_id: req("r7"),
            }
            .into(),
            r#"{"type":"get_skill","name":"n","_reqId":"r7"}"#,
        );
    }

    // proves B8: requests say what they are and which id the reply must echo.
    #[test]
    fn client_requests_report_kind_and_req_id() {
        let frame: ClientFrame = RecallFrame {
            query: "q".into(),
            req_id: req("r5"),
        }
        .into();
        assert_eq!(frame.request_kind(), Some(RequestKind::Recall));
        assert_eq!(frame.req_id(), Some("r5"));
        assert_eq!(RequestKind::Recall.as_str(), "recall");
        let ff: ClientFrame = SetSummaryFrame { summary: "s".into() }.into();
        assert_eq!(ff.request_kind(), None);
        assert_eq!(ff.req_id(), None);
    }

    // proves B9: the fire-and-forget commands have exact wire shapes.
    #[test]
    fn golden_fire_and_forget() {
        golden_client(
            SetStateFrame {
                key: "k".into(),
                value: json!({"a": [1, true, null]}),
            }
            .into(),
            r#"{"type":"set_state","key":"k","value":{"a":[1,true,null]}}"#,
        );
        golden_client(
            ForgetFrame {
                memory_id: "m1".into(),
            }
            .into(),
            r#"{"type":"forget","memoryId":"m1"}"#,
        );
        golden_client(
            SetProfileFrame {
                avatar: Some("a".into()),
                title: Some("t".into()),
                bio: Some("b".into()),
                capabilities: Some(vec!["c".into()]),
            }
            .into(),
            r#"{"type":"set_profile","avatar":"a","title":"t","bio":"b","capabilities":["c"]}"#,
        );
        golden_client(SetProfileFrame::default().into(), r#"{"type":"set_profile"}"#);
        golden_client(
            SetSummaryFrame {
                summary: "busy".into(),
            }
            .into(),
            r#"{"type":"set_summary","summary":"busy"}"#,
        );
        golden_client(
            SetStatusFrame { status: "dnd".into() }.into(),
            r#"{"type":"set_status","status":"dnd"}"#,
        );
        golden_client(
            SetVisibleFrame { visible: false }.into(),
            r#"{"type":"set_visible","visible":false}"#,
        );
    }

    #[test]
    fn unknown_client_type_is_kept_for_the_broker_to_answer() {
        let raw = r#"{"type":"subscribe_topic","topic":"x"}"#;
        let frame = decode_client_frame(raw, MAX);
        assert_eq!(
            frame,
            Ok(ClientFrame::Unknown {
                kind: "subscribe_topic".into(),
                raw: raw.into()
            })
        );
        assert_eq!(frame.map(|f| f.encode()), Ok(raw.to_owned()));
    }

    // ----- broker → client golden frames -----

    // proves L3: the ack that opens a connection decodes, with or without extras.
    #[test]
    fn golden_hello_ack() {
        golden_broker(
            HelloAckFrame {
                presence_id: "p1".into(),
                member_display_name: "Ada".into(),
                ..HelloAckFrame::default()
            }
            .into(),
            r#"{"type":"hello_ack","presenceId":"p1","memberDisplayName":"Ada"}"#,
        );
        golden_broker(
            HelloAckFrame {
                presence_id: "p1".into(),
                member_display_name: "Ada".into(),
                restored: Some(json!(true)),
                last_summary: Some(json!("s")),
                last_seen_at: Some(json!(1)),
                restored_groups: Some(json!([{"name": "g"}])),
                restored_stats: Some(json!({})),
                services: Some(json!([])),
                member_profile: Some(json!({"bio": "b"})),
                mesh_policy: Some(json!({"x": 1})),
            }
            .into(),
            r#"{"type":"hello_ack","presenceId":"p1","memberDisplayName":"Ada","restored":true,"lastSummary":"s","lastSeenAt":1,"restoredGroups":[{"name":"g"}],"restoredStats":{},"services":[],"memberProfile":{"bio":"b"},"meshPolicy":{"x":1}}"#,
        );
    }

    // proves B1, B5
    #[test]
    fn golden_ack() {
        let ok = AckFrame {
            id: "c1".into(),
            message_id: "b1".into(),
            queued: false,
            error: None,
            req_id: None,
        };
        assert_eq!(ok.failure(), None);
        golden_broker(
            ok.into(),
            r#"{"type":"ack","id":"c1","messageId":"b1","queued":false}"#,
        );
        let failed = AckFrame {
            id: "c1".into(),
            message_id: "".into(),
            queued: true,
            error: Some("payload too large: 2MB".into()),
            req_id: req("r1"),
        };
        assert_eq!(failed.failure(), Some("payload too large: 2MB"));
        assert!(failed.is_permanent_failure());
        golden_broker(
            failed.into(),
            r#"{"type":"ack","id":"c1","messageId":"","queued":true,"error":"payload too large: 2MB","_reqId":"r1"}"#,
        );
        // An empty error is success, as in the seeds.
        let empty = AckFrame {
            error: Some(String::new()),
            ..AckFrame::default()
        };
        assert_eq!(empty.failure(), None);
        assert!(!empty.is_permanent_failure());
    }

    // proves B7: `push` and `inbound` carry the same payload and stay distinguishable.
    #[test]
    fn golden_push_and_inbound() {
        let minimal = PushFrame {
            message_id: "b1".into(),
            mesh_id: "m".into(),
            sender_pubkey: "spk".into(),
            priority: Priority::Next,
            nonce: "n".into(),
            ciphertext: "aGk=".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            ..PushFrame::default()
        };
        golden_broker(
            BrokerFrame::Push(Arc::new(minimal.clone())),
            r#"{"type":"push","messageId":"b1","meshId":"m","senderPubkey":"spk","priority":"next","nonce":"n","ciphertext":"aGk=","createdAt":"2024-01-01T00:00:00Z"}"#,
        );
        golden_broker(
            BrokerFrame::Inbound(Arc::new(minimal.clone())),
            r#"{"type":"inbound","messageId":"b1","meshId":"m","senderPubkey":"spk","priority":"next","nonce":"n","ciphertext":"aGk=","createdAt":"2024-01-01T00:00:00Z"}"#,
        );
        let full = PushFrame {
            sender_member_pubkey: Some("mpk".into()),
            sender_member_id: Some("u".into()),
            sender_name: Some("Ada".into()),
            topic: Some("t".into()),
            reply_to_id: Some("b0".into()),
            client_message_id: Some("c1".into()),
            request_fingerprint: Some("ff".into()),
            subtype: Some("system".into()),
            event: Some("peer_joined".into()),
            event_data: Some(json!({"name": "Bob"})),
            ..minimal
        };
        let frame = BrokerFrame::Push(Arc::new(full));
        assert!(frame.as_push().is_some());
        golden_broker(
            frame,
            r#"{"type":"push","messageId":"b1","meshId":"m","senderPubkey":"spk","priority":"next","nonce":"n","ciphertext":"aGk=","createdAt":"2024-01-01T00:00:00Z","senderMemberPubkey":"mpk","senderMemberId":"u","senderName":"Ada","topic":"t","replyToId":"b0","client_message_id":"c1","request_fingerprint":"ff","subtype":"system","event":"peer_joined","eventData":{"name":"Bob"}}"#,
        );
    }

    // proves D6, X10: the broker's code, message and retry hint survive decoding.
    #[test]
    fn golden_error() {
        golden_broker(
            ErrorFrame {
                code: "timestamp_skew".into(),
                message: "clock".into(),
                ..ErrorFrame::default()
            }
            .into(),
            r#"{"type":"error","code":"timestamp_skew","message":"clock"}"#,
        );
        let full = BrokerFrame::from(ErrorFrame {
            code: "capacity".into(),
            message: "full".into(),
            id: Some("c1".into()),
            req_id: req("r1"),
            retry_after_ms: Some(2500),
        });
        assert_eq!(full.req_id(), Some("r1"));
        assert_eq!(full.reply_kind(), None);
        golden_broker(
            full,
            r#"{"type":"error","code":"capacity","message":"full","id":"c1","_reqId":"r1","retryAfterMs":2500}"#,
        );
    }

    // proves B8, B11
    #[test]
    fn golden_peers_list() {
        let minimal = Peer {
            pubkey: "pk".into(),
            display_name: "Ada".into(),
            status: "idle".into(),
            summary: None,
            groups: vec![],
            session_id: "s".into(),
            connected_at: "t".into(),
            ..Peer::default()
        };
        let full = Peer {
            summary: Some("busy".into()),
            groups: vec![GroupRef {
                name: "g".into(),
                role: None,
            }],
            member_pubkey: Some("mpk".into()),
            cwd: Some("/w".into()),
            hostname: Some("h".into()),
            peer_type: Some("ai".into()),
            channel: Some("c".into()),
            model: Some("mo".into()),
            peer_role: Some("service".into()),
            role: Some("session".into()),
            visible: Some(true),
            stats: Some(json!({"sent": 1})),
            profile: Some(json!({})),
            ..minimal.clone()
        };
        let frame = BrokerFrame::from(PeersListFrame {
            peers: vec![minimal, full],
            req_id: req("r1"),
        });
        assert_eq!(frame.reply_kind(), Some(RequestKind::ListPeers));
        assert_eq!(frame.req_id(), Some("r1"));
        golden_broker(
            frame,
            concat!(
                r#"{"type":"peers_list","peers":["#,
                r#"{"pubkey":"pk","displayName":"Ada","status":"idle","summary":null,"groups":[],"sessionId":"s","connectedAt":"t"},"#,
                r#"{"pubkey":"pk","displayName":"Ada","status":"idle","summary":"busy","groups":[{"name":"g"}],"sessionId":"s","connectedAt":"t","memberPubkey":"mpk","cwd":"/w","hostname":"h","peerType":"ai","channel":"c","model":"mo","peerRole":"service","role":"session","visible":true,"stats":{"sent":1},"profile":{}}"#,
                r#"],"_reqId":"r1"}"#
            ),
        );
    }

    // proves B11, B17: `peerRole` is the presence class, missing means session,
    // and the profile's `role` never stands in for it.
    #[test]
    fn peer_role_defaults_to_session() {
        let mut peer = Peer::default();
        assert_eq!(peer.role(), PeerRole::Session);
        assert!(peer.is_user_facing());
        peer.role = Some("control-plane".into());
        assert_eq!(peer.role(), PeerRole::Session);
        peer.peer_role = Some("control-plane".into());
        assert_eq!(peer.role(), PeerRole::ControlPlane);
        assert!(!peer.is_user_facing());
        peer.peer_role = Some("service".into());
        assert_eq!(peer.role(), PeerRole::Service);
        peer.peer_role = Some("robot".into());
        assert_eq!(peer.role(), PeerRole::Other("robot".into()));
    }

    // proves B10, D7: the current `get_state` reply, present and absent.
    #[test]
    fn golden_state_result() {
        let present = BrokerFrame::from(StateResultFrame {
            key: "k".into(),
            value: json!(5),
            updated_by: "ada".into(),
            updated_at: "t".into(),
            req_id: req("r1"),
        });
        assert_eq!(present.reply_kind(), Some(RequestKind::GetState));
        golden_broker(
            present.clone(),
            r#"{"type":"state_result","key":"k","value":5,"updatedBy":"ada","updatedAt":"t","_reqId":"r1"}"#,
        );
        assert_eq!(
            present.into_reply(),
            Ok(Reply::State(Some(StateRow {
                key: "k".into(),
                value: json!(5),
                updated_by: "ada".into(),
                updated_at: "t".into(),
            })))
        );
        let absent =
            r#"{"type":"state_result","key":"k","value":null,"updatedBy":"","updatedAt":"","_reqId":"r2"}"#;
        let frame = decode_broker_frame(absent, MAX).map(BrokerFrame::into_reply);
        assert_eq!(frame, Ok(Ok(Reply::State(None))));
    }

    // proves B10, D7: the older `get_state` replies under both names and both row keys.
    #[test]
    fn golden_legacy_state_replies() {
        let row = StateRow {
            key: "k".into(),
            value: json!("v"),
            updated_by: "ada".into(),
            updated_at: "t".into(),
        };
        let with_state = LegacyStateFrame {
            state: Some(row.clone()),
            row: None,
            req_id: req("r1"),
        };
        golden_broker(
            BrokerFrame::StateValue(Box::new(with_state.clone())),
            r#"{"type":"state_value","state":{"key":"k","value":"v","updatedBy":"ada","updatedAt":"t"},"_reqId":"r1"}"#,
        );
        let with_row = LegacyStateFrame {
            state: None,
            row: Some(row.clone()),
            req_id: None,
        };
        golden_broker(
            BrokerFrame::StateData(Box::new(with_row.clone())),
            r#"{"type":"state_data","row":{"key":"k","value":"v","updatedBy":"ada","updatedAt":"t"}}"#,
        );
        for frame in [
            BrokerFrame::StateValue(Box::new(with_state)),
            BrokerFrame::StateData(Box::new(with_row)),
        ] {
            assert_eq!(frame.reply_kind(), Some(RequestKind::GetState));
            assert_eq!(frame.into_reply(), Ok(Reply::State(Some(row.clone()))));
        }
        let null_state =
            decode_broker_frame(r#"{"type":"state_value","state":null}"#, MAX).map(BrokerFrame::into_reply);
        assert_eq!(null_state, Ok(Ok(Reply::State(None))));
    }

    // proves B8
    #[test]
    fn golden_state_list() {
        let frame = BrokerFrame::from(StateListFrame {
            entries: vec![StateRow {
                key: "k".into(),
                value: json!(null),
                updated_by: "a".into(),
                updated_at: "t".into(),
            }],
            req_id: req("r1"),
        });
        assert_eq!(frame.reply_kind(), Some(RequestKind::ListState));
        golden_broker(
            frame,
            r#"{"type":"state_list","entries":[{"key":"k","value":null,"updatedBy":"a","updatedAt":"t"}],"_reqId":"r1"}"#,
        );
    }

    // proves B10, D7: `remember` replies with `id` now and `memoryId` before.
    #[test]
    fn golden_memory_stored_both_shapes() {
        let current = BrokerFrame::from(MemoryStoredFrame {
            id: Some("m1".into()),
            memory_id: None,
            req_id: req("r1"),
        });
        golden_broker(
            current.clone(),
            r#"{"type":"memory_stored","id":"m1","_reqId":"r1"}"#,
        );
        assert_eq!(current.into_reply(), Ok(Reply::Remembered(Some("m1".into()))));
        let older = MemoryStoredFrame {
            id: None,
            memory_id: Some("m2".into()),
            req_id: None,
        };
        assert_eq!(older.stored_id(), Some("m2"));
        golden_broker(
            older.clone().into(),
            r#"{"type":"memory_stored","memoryId":"m2"}"#,
        );
        assert_eq!(
            BrokerFrame::from(older).into_reply(),
            Ok(Reply::Remembered(Some("m2".into())))
        );
        let neither = BrokerFrame::from(MemoryStoredFrame::default());
        assert_eq!(neither.reply_kind(), Some(RequestKind::Remember));
        assert_eq!(neither.into_reply(), Ok(Reply::Remembered(None)));
    }

    // proves B10, D7: `recall` replies as `memory_results.memories` or the older
    // `memory_recall_result.matches`.
    #[test]
    fn golden_recall_both_shapes() {
        let row = MemoryRow {
            id: "m1".into(),
            content: "c".into(),
            tags: vec!["t".into()],
            remembered_by: "ada".into(),
            remembered_at: "t0".into(),
        };
        let current = BrokerFrame::from(MemoryResultsFrame {
            memories: vec![row.clone()],
            req_id: req("r1"),
        });
        golden_broker(
            current.clone(),
            r#"{"type":"memory_results","memories":[{"id":"m1","content":"c","tags":["t"],"rememberedBy":"ada","rememberedAt":"t0"}],"_reqId":"r1"}"#,
        );
        let older = BrokerFrame::from(MemoryRecallResultFrame {
            matches: vec![row.clone()],
            req_id: req("r2"),
        });
        golden_broker(
            older.clone(),
            r#"{"type":"memory_recall_result","matches":[{"id":"m1","content":"c","tags":["t"],"rememberedBy":"ada","rememberedAt":"t0"}],"_reqId":"r2"}"#,
        );
        for frame in [current, older] {
            assert_eq!(frame.reply_kind(), Some(RequestKind::Recall));
            assert_eq!(frame.into_reply(), Ok(Reply::Recalled(vec![row.clone()])));
        }
    }

    // proves B8
    #[test]
    fn golden_skill_list_and_data() {
        let frame = BrokerFrame::from(SkillListFrame {
            skills: vec![SkillSummary {
                name: "n".into(),
                description: "d".into(),
                tags: vec![],
                author: "a".into(),
                created_at: "t".into(),
            }],
            req_id: req("r1"),
        });
        assert_eq!(frame.reply_kind(), Some(RequestKind::ListSkills));
        golden_broker(
            frame,
            r#"{"type":"skill_list","skills":[{"name":"n","description":"d","tags":[],"author":"a","createdAt":"t"}],"_reqId":"r1"}"#,
        );
        let skill = Skill {
            name: "n".into(),
            description: "d".into(),
            instructions: "i".into(),
            tags: vec!["x".into()],
            author: "a".into(),
            created_at: "t".into(),
            manifest: Some(json!({"v": 1})),
        };
        let found = BrokerFrame::from(SkillDataFrame {
            skill: Some(skill.clone()),
            req_id: req("r2"),
        });
        assert_eq!(found.reply_kind(), Some(RequestKind::GetSkill));
        golden_broker(
            found.clone(),
            r#"{"type":"skill_data","skill":{"name":"n","description":"d","instructions":"i","tags":["x"],"author":"a","createdAt":"t","manifest":{"v":1}},"_reqId":"r2"}"#,
        );
        assert_eq!(found.into_reply(), Ok(Reply::Skill(Some(Box::new(skill)))));
        let missing = BrokerFrame::from(SkillDataFrame {
            skill: None,
            req_id: req("r3"),
        });
        golden_broker(
            missing.clone(),
            r#"{"type":"skill_data","skill":null,"_reqId":"r3"}"#,
        );
        assert_eq!(missing.into_reply(), Ok(Reply::Skill(None)));
    }

    #[test]
    fn golden_state_change() {
        let frame = BrokerFrame::from(StateChangeFrame {
            key: "k".into(),
            value: json!([1]),
            updated_by: "ada".into(),
        });
        assert_eq!(frame.reply_kind(), None);
        assert!(frame.clone().into_reply().is_err());
        golden_broker(
            frame,
            r#"{"type":"state_change","key":"k","value":[1],"updatedBy":"ada"}"#,
        );
    }

    // ----- tolerance -----

    // proves L5: unknown fields are ignored, wherever they sit.
    #[test]
    fn unknown_fields_are_ignored() {
        let text =
            r#"{"zzz":{"deep":[1,2]},"type":"ack","id":"c1","messageId":"b1","queued":true,"extra":null}"#;
        assert_eq!(
            decode_broker_frame(text, MAX),
            Ok(BrokerFrame::Ack(AckFrame {
                id: "c1".into(),
                message_id: "b1".into(),
                queued: true,
                error: None,
                req_id: None,
            }))
        );
        let text = r#"{"type":"get_state","key":"k","future":1}"#;
        assert!(matches!(
            decode_client_frame(text, MAX),
            Ok(ClientFrame::GetState(_))
        ));
    }

    // proves B10: older brokers' nulls and missing reply fields read as empty.
    #[test]
    fn reply_rows_tolerate_null_and_missing_fields() {
        let text = r#"{"type":"peers_list","peers":[{"pubkey":"pk","summary":null,"groups":null}]}"#;
        let frame = decode_broker_frame(text, MAX);
        let peers = match frame.map(BrokerFrame::into_reply) {
            Ok(Ok(Reply::Peers(peers))) => peers,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].role(), PeerRole::Session);
        assert!(peers[0].groups.is_empty());
        let empty = decode_broker_frame(r#"{"type":"memory_results"}"#, MAX);
        assert_eq!(
            empty.map(BrokerFrame::into_reply),
            Ok(Ok(Reply::Recalled(vec![])))
        );
    }

    // proves L5: an unknown type reaches the application with its original text.
    #[test]
    fn unknown_broker_type_is_passed_through() {
        let raw = r#"{ "type" : "topic_created", "name":"x", "n": [1, {"a":2}] }"#;
        let frame = decode_broker_frame(raw, MAX);
        assert_eq!(
            frame,
            Ok(BrokerFrame::Unknown {
                kind: "topic_created".into(),
                raw: raw.into()
            })
        );
        let frame = frame.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(frame.encode(), raw);
        assert_eq!(frame.kind(), "topic_created");
        // Embedded in other JSON it is re-serialised as the same value.
        let v = serde_json::to_value(&frame).unwrap_or_default();
        assert_eq!(v["n"][1]["a"], json!(2));
    }

    // The hand-written fast path and the general path must agree on every shape.
    #[test]
    fn type_is_found_wherever_and_however_it_is_written() {
        for text in [
            r#"{"type":"push","messageId":"b1"}"#,
            " \r\n\t{ \n\"type\" \t:\r \"push\" , \"messageId\":\"b1\"}",
            r#"{"messageId":"b1","type":"push"}"#,
            r#"{"type":"p\u0075sh","messageId":"b1"}"#,
            r#"{"ty\u0070e":"push","messageId":"b1"}"#,
        ] {
            let decoded = decode_broker_frame(text, MAX);
            assert!(
                matches!(decoded, Ok(BrokerFrame::Push(ref p)) if p.message_id == "b1"),
                "{text}"
            );
        }
        assert_eq!(peek_leading_type(r#"{"type":"a\"b"}"#), None);
        assert_eq!(peek_leading_type(r#"{"type":"ack""#), Some("ack"));
        assert_eq!(peek_leading_type(r#"{"type":"ack"#), None);
        assert_eq!(peek_leading_type(r#"{"typed":"ack"}"#), None);
        assert_eq!(peek_leading_type(r#"{"type":5}"#), None);
        // A truncated frame found by the fast path is still refused by pass 2.
        assert!(matches!(
            decode_broker_frame(r#"{"type":"ack""#, MAX),
            Err(DecodeError::NotJson(_))
        ));
        assert!(matches!(
            decode_broker_frame(r#"{"type":"new_thing","#, MAX),
            Err(DecodeError::NotJson(_))
        ));
    }

    // ----- malformed input -----

    // proves L5: every kind of garbage is a typed error, never a panic.
    #[test]
    fn malformed_frames_give_the_right_error() {
        let not_json = |r: Result<BrokerFrame, DecodeError>| matches!(r, Err(DecodeError::NotJson(_)));
        assert!(not_json(decode_broker_frame("", MAX)));
        assert!(not_json(decode_broker_frame("hello", MAX)));
        assert!(not_json(decode_broker_frame("{\"type\":", MAX)));
        assert!(not_json(decode_broker_frame(r#"{"a":[1,}"#, MAX)));
        // Garbage after the type is still caught, for known and unknown types.
        assert!(not_json(decode_broker_frame(r#"{"type":"ack","id":}"#, MAX)));
        assert!(not_json(decode_broker_frame(r#"{"type":"zzz","id":}"#, MAX)));
        assert!(not_json(decode_broker_frame(r#"{"type":"ack"} x"#, MAX)));
        assert!(not_json(decode_broker_frame(r#"{"type":"zzz"} x"#, MAX)));

        assert_eq!(decode_broker_frame("[1,2]", MAX), Err(DecodeError::NotAnObject));
        assert_eq!(decode_broker_frame("42", MAX), Err(DecodeError::NotAnObject));
        assert_eq!(
            decode_broker_frame(r#""push""#, MAX),
            Err(DecodeError::NotAnObject)
        );
        assert_eq!(decode_broker_frame("null", MAX), Err(DecodeError::NotAnObject));
        assert_eq!(decode_client_frame("[]", MAX), Err(DecodeError::NotAnObject));

        assert_eq!(decode_broker_frame("{}", MAX), Err(DecodeError::MissingType));
        assert_eq!(
            decode_broker_frame(r#"{"id":"x","kind":"push"}"#, MAX),
            Err(DecodeError::MissingType)
        );
        assert_eq!(
            decode_broker_frame(r#"{"type":5}"#, MAX),
            Err(DecodeError::TypeNotString)
        );
        assert_eq!(
            decode_broker_frame(r#"{"type":null}"#, MAX),
            Err(DecodeError::TypeNotString)
        );
        assert_eq!(
            decode_client_frame(r#"{"type":{"a":["b"]}}"#, MAX),
            Err(DecodeError::TypeNotString)
        );
    }

    #[test]
    fn wrong_field_types_are_bad_fields() {
        let bad = decode_broker_frame(r#"{"type":"ack","id":5}"#, MAX);
        assert!(matches!(bad, Err(DecodeError::BadFields { ref kind, .. }) if kind == "ack"));
        let bad = decode_broker_frame(r#"{"type":"push","priority":"urgent"}"#, MAX);
        assert!(matches!(bad, Err(DecodeError::BadFields { ref kind, .. }) if kind == "push"));
        let bad = decode_client_frame(r#"{"type":"hello","meshId":"m"}"#, MAX);
        assert!(matches!(bad, Err(DecodeError::BadFields { ref kind, .. }) if kind == "hello"));
        let bad = decode_client_frame(r#"{"type":"set_visible","visible":"yes"}"#, MAX);
        assert!(matches!(bad, Err(DecodeError::BadFields { .. })));
        let bad = decode_client_frame(
            r#"{"type":"send","id":"c","targetSpec":"*","nonce":"n","ciphertext":"c","pid":-1,"priority":3}"#,
            MAX,
        );
        assert!(matches!(bad, Err(DecodeError::BadFields { .. })));
    }

    // proves X4: the size cap is checked before any parsing.
    #[test]
    fn oversized_frames_are_refused_unparsed() {
        let text = format!(r#"{{"type":"push","ciphertext":"{}"}}"#, "a".repeat(100));
        assert_eq!(
            decode_broker_frame(&text, 64),
            Err(DecodeError::TooLarge {
                len: text.len(),
                max: 64
            })
        );
        assert_eq!(
            decode_client_frame("not even json", 3),
            Err(DecodeError::TooLarge { len: 13, max: 3 })
        );
        assert!(decode_broker_frame(&text, text.len()).is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // Ignored fields are skipped without recursion, so depth there is harmless.
        let ignored = format!(r#"{{"type":"ack","x":{}}}"#, nest(10_000));
        assert!(matches!(
            decode_broker_frame(&ignored, usize::MAX),
            Ok(BrokerFrame::Ack(_))
        ));
        // A kept value hits serde_json's recursion limit and is refused.
        let kept = format!(r#"{{"type":"state_change","value":{}}}"#, nest(10_000));
        assert!(matches!(
            decode_broker_frame(&kept, usize::MAX),
            Err(DecodeError::BadFields { .. })
        ));
    }

    // proves B5: the classification list of PROTOCOL.md, case-insensitive.
    #[test]
    fn ack_errors_are_classified() {
        for permanent in [
            "payload_too_large",
            "Payload Too Large: 2MB",
            "FORBIDDEN",
            "target_not_found: bob",
            "invalid target",
            "schema mismatch",
            "unauthorized",
            "bad signature",
            "unknown recipient",
            "not_authorized",
        ] {
            assert!(ack_error_is_permanent(permanent), "{permanent}");
        }
        for transient in ["rate_limit: slow down", "broker busy", "", "timeout"] {
            assert!(!ack_error_is_permanent(transient), "{transient}");
        }
    }

    proptest! {
        // proves L5: no input string can panic either decoder.
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = decode_broker_frame(&text, MAX);
            let _ = decode_client_frame(&text, MAX);
        }

        // JSON-looking input reaches deeper into the decoders than random text.
        #[test]
        fn json_shaped_text_never_panics(
            kind in prop::sample::select(vec![
                "push", "ack", "hello", "session_hello", "peers_list", "state_result",
                "memory_stored", "skill_data", "send", "zzz",
            ]),
            body in "[{}\\[\\]\":,a-z0-9 ]{0,40}",
        ) {
            let text = format!(r#"{{"type":"{kind}",{body}"#);
            let _ = decode_broker_frame(&text, MAX);
            let _ = decode_client_frame(&text, MAX);
        }
    }
}
