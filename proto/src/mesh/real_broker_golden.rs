//! Golden frames of the real broker: each string is what its wire handling
//! (`apps/broker/src/index.ts` at claudemesh 213a6b3, in
//! `../shared/reference/`) writes, keys in the order of its object literals and
//! fields it leaves `undefined` left out, as `JSON.stringify` does. Each must
//! decode, mean what the real broker means by it, and encode back to the same
//! JSON object, so tether's broker, which writes these types, sends the real
//! broker's shapes.

use std::sync::Arc;

use serde_json::{json, Value};

use super::crypto::BoxCache;
use super::identity::SecretKey;
use super::push::{decode_body, PushBody};
use super::wire::*;

const MAX: usize = 1 << 20;

const SESSION: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
const MEMBER: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

/// Decodes a real broker frame and checks that encoding it gives the same JSON
/// object back (no field lost, renamed or added).
fn real(wire: &str) -> BrokerFrame {
    let frame = match decode_broker_frame(wire, MAX) {
        Ok(f) => f,
        Err(e) => panic!("the real broker's frame does not decode: {e:?}\n{wire}"),
    };
    let theirs: Value = serde_json::from_str(wire).unwrap();
    let ours: Value = serde_json::from_str(&frame.encode()).unwrap();
    assert_eq!(
        ours,
        theirs,
        "tether's encoding of {} differs from the real broker's",
        frame.kind()
    );
    frame
}

fn ack(frame: BrokerFrame) -> AckFrame {
    match frame {
        BrokerFrame::Ack(a) => a,
        other => panic!("not an ack: {other:?}"),
    }
}

// proves L3, B12: both hello paths' acks (handleHello, handleSessionHello).
#[test]
fn golden_real_hello_acks() {
    let session = real(concat!(
        r#"{"type":"hello_ack","presenceId":"9f0c1d2e-0000-4000-8000-000000000001","memberDisplayName":"Ada","#,
        r#""memberProfile":{"roleTag":null,"groups":[],"messageMode":"push"}}"#
    ));
    assert!(matches!(session, BrokerFrame::HelloAck(ref a) if a.member_display_name == "Ada"));
    real(concat!(
        r#"{"type":"hello_ack","presenceId":"p-2","memberDisplayName":"Ada","#,
        r#""memberProfile":{"roleTag":"lead","groups":[{"name":"ops"}],"messageMode":"inbox"},"#,
        r#""meshPolicy":{"selfEditable":true},"restored":true,"lastSummary":"refactoring","#,
        r#""lastSeenAt":"2026-12-01T21:59:00.000Z","restoredGroups":[{"name":"ops","role":"lead"}],"#,
        r#""restoredStats":{"messagesIn":3,"messagesOut":4,"toolCalls":0,"errors":0},"services":[]}"#
    ));
}

// proves B16, B5: `queued: true` is the real broker's accepted send; its
// failures are acks with `queued: false` and free-text errors, classed as
// PROTOCOL.md says.
#[test]
fn golden_real_send_acks() {
    let ok = ack(real(
        r#"{"type":"ack","id":"c1","messageId":"3c1f9e7a-0000-4000-8000-00000000000a","queued":true}"#,
    ));
    assert_eq!(ok.failure(), None);
    for (error, permanent) in [
        ("rate_limit: max 60 msg/min (burst 10) — slow down", false),
        ("payload too large: 70000 bytes > MAX_MESSAGE_BYTES=65536", true),
        (
            "no connected peer for target (not online, or targetSpec is your own key without another session)",
            false,
        ),
        // Not in PROTOCOL.md's permanent list, so transient, though a grant
        // rarely changes by itself.
        ("blocked by recipient grants (sender lacks dm capability)", false),
    ] {
        let wire = json!({"type":"ack","id":"c1","messageId":"","queued":false,"error":error}).to_string();
        let failed = ack(real(&wire));
        assert_eq!(failed.failure(), Some(error));
        assert_eq!(failed.is_permanent_failure(), permanent, "{error}");
    }
}

// proves B9, B16: the acks the real broker writes for `forget`, `set_visible` and
// `set_profile` are not failed sends (no error), whatever their `queued`.
#[test]
fn golden_real_command_acks() {
    let forget = ack(real(
        r#"{"type":"ack","id":"mem-1","messageId":"mem-1","queued":false}"#,
    ));
    assert_eq!(forget.failure(), None);
    let visible = ack(real(r#"{"type":"ack","id":"","messageId":"","queued":false}"#));
    assert_eq!(visible.failure(), None);
    let profile = ack(real(
        r#"{"type":"ack","id":"r7","messageId":"","queued":false,"_reqId":"r7"}"#,
    ));
    assert_eq!(profile.req_id.as_deref(), Some("r7"));
}

// proves B7, B14: a direct push as handleSend builds it (senderPubkey the
// session key, the member's key and id beside it) and a system push as the hello
// paths build it; the system one decodes as an event, never as a message.
#[test]
fn golden_real_pushes() {
    let direct = real(&format!(
        concat!(
            r#"{{"type":"push","messageId":"m-1","meshId":"mesh-1","senderPubkey":"{s}","#,
            r#""senderMemberPubkey":"{m}","senderMemberId":"member-1","senderName":"Ada","#,
            r#""priority":"now","nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX","#,
            r#""ciphertext":"Tek1FSudt2FzZiuO0dfyLasdsc4zQc6NoovzGAzTce9u01DsLi5ATw==","#,
            r#""createdAt":"2026-12-01T22:00:00.000Z","topic":"releases","replyToId":"m-0","subtype":"reminder"}}"#
        ),
        s = SESSION,
        m = MEMBER
    ));
    let push = direct.as_push().expect("a push");
    assert_eq!(push.sender_pubkey, SESSION);
    assert_eq!(push.sender_member_pubkey.as_deref(), Some(MEMBER));
    assert_eq!(push.topic.as_deref(), Some("releases"));

    let system = real(&format!(
        concat!(
            r#"{{"type":"push","subtype":"system","event":"peer_joined","#,
            r#""eventData":{{"name":"Ada","pubkey":"{s}","groups":[]}},"#,
            r#""messageId":"m-2","meshId":"mesh-1","senderPubkey":"system","priority":"low","#,
            r#""nonce":"","ciphertext":"","createdAt":"2026-12-01T22:00:01.000Z"}}"#
        ),
        s = SESSION
    ));
    let BrokerFrame::Push(frame) = system else {
        panic!("not a push")
    };
    let me = SecretKey::from_seed([2; 32]);
    let body = decode_body(&frame, &[&me], &mut BoxCache::default());
    assert_eq!(
        body,
        PushBody::System {
            event: "peer_joined".into(),
            data: Some(json!({"name":"Ada","pubkey":SESSION,"groups":[]})),
        }
    );
    let _: Arc<PushFrame> = frame;
}

// proves B8, B10, B11, B17: list_peers as the real broker answers it: `pubkey`
// the routing (session) key, `memberPubkey`, `peerRole` by hello kind, the
// profile's `role` lifted beside it, and `_reqId` echoed.
#[test]
fn golden_real_peers_list() {
    let frame = real(&format!(
        concat!(
            r#"{{"type":"peers_list","peers":["#,
            r#"{{"pubkey":"{s}","memberPubkey":"{m}","displayName":"Ada","status":"idle","summary":null,"#,
            r#""groups":[{{"name":"ops","role":"lead"}}],"sessionId":"launch-1","connectedAt":"2026-12-01T21:00:00.000Z","#,
            r#""cwd":"/work","peerRole":"session","hostname":"h","peerType":"ai","channel":"claudemesh-session","#,
            r#""visible":true,"profile":{{"title":"reviewer"}}}},"#,
            r#"{{"pubkey":"{m}","memberPubkey":"{m}","displayName":"Ada","status":"working","summary":"daemon","#,
            r#""groups":[],"sessionId":"daemon-42","connectedAt":"2026-12-01T20:00:00.000Z","cwd":"/","#,
            r#""peerRole":"control-plane","channel":"claudemesh-daemon","visible":true}}"#,
            r#"],"_reqId":"pl-1"}}"#
        ),
        s = SESSION,
        m = MEMBER
    ));
    assert_eq!(frame.req_id(), Some("pl-1"));
    let Ok(Reply::Peers(peers)) = frame.into_reply() else {
        panic!("not a peer list")
    };
    assert_eq!(peers[0].role(), PeerRole::Session);
    assert!(peers[0].is_user_facing());
    assert_eq!(peers[1].role(), PeerRole::ControlPlane);
    assert!(!peers[1].is_user_facing());
}

// proves B8, B10: state and memory replies in the real broker's shapes,
// `state_result` for a missing key included, and the change pushed to others.
#[test]
fn golden_real_state_and_memory_replies() {
    let found = real(
        r#"{"type":"state_result","key":"color","value":{"hue":"blue"},"updatedBy":"Ada","updatedAt":"2026-12-01T22:00:00.000Z","_reqId":"r1"}"#,
    );
    let Ok(Reply::State(Some(row))) = found.into_reply() else {
        panic!("no row")
    };
    assert_eq!(row.value, json!({"hue":"blue"}));
    let absent = real(
        r#"{"type":"state_result","key":"nope","value":null,"updatedBy":"","updatedAt":"","_reqId":"r2"}"#,
    );
    assert!(matches!(absent.into_reply(), Ok(Reply::State(None))));
    real(
        r#"{"type":"state_list","entries":[{"key":"color","value":"blue","updatedBy":"Ada","updatedAt":"2026-12-01T22:00:00.000Z"}],"_reqId":"r3"}"#,
    );
    real(r#"{"type":"state_change","key":"color","value":"blue","updatedBy":"Ada"}"#);
    let stored = real(r#"{"type":"memory_stored","id":"mem-1","_reqId":"r4"}"#);
    assert!(matches!(stored.into_reply(), Ok(Reply::Remembered(Some(ref id))) if id == "mem-1"));
    real(concat!(
        r#"{"type":"memory_results","memories":[{"id":"mem-1","content":"keys rotate on fridays","#,
        r#""tags":["ops"],"rememberedBy":"Ada","rememberedAt":"2026-12-01T22:00:00.000Z"}],"_reqId":"r5"}"#
    ));
}

// proves D6: the real broker's error frames: a hello refusal has no `id` (it is
// `undefined` and dropped), a request's error echoes `_reqId`.
#[test]
fn golden_real_errors() {
    let revoked = real(
        r#"{"type":"error","code":"revoked","message":"You've been removed from \"e2e\". Contact the mesh owner to rejoin."}"#,
    );
    assert!(matches!(revoked, BrokerFrame::Error(ref e) if e.code == "revoked" && e.id.is_none()));
    let request = real(r#"{"type":"error","code":"not_found","message":"file not found","_reqId":"r9"}"#);
    assert_eq!(request.req_id(), Some("r9"));
    real(r#"{"type":"error","code":"no_hello","message":"must send hello first"}"#);
}
