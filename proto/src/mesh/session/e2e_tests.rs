//! Stories of direct-message encryption (B14) and name resolution (B15) in the
//! session: what goes on the wire, and what the application is handed.

use std::time::Duration;

use serde_json::json;

use super::tests::support::*;
use super::*;
use crate::mesh::crypto::{decrypt_direct, encrypt_direct};
use crate::mesh::handshake::{Credentials, SessionCredentials};
use crate::mesh::identity::SecretKey;

fn bob() -> SecretKey {
    SecretKey::from_seed([2; 32])
}

fn session_credentials() -> Credentials {
    Credentials::Session(Box::new(SessionCredentials {
        parent: member(),
        session_key: SecretKey::from_seed([9; 32]),
        role: None,
        attestation_ttl: Duration::from_secs(3600),
    }))
}

fn pushed(actions: &[SessionAction]) -> Vec<Arc<Push>> {
    actions
        .iter()
        .filter_map(|a| match a {
            SessionAction::Event(SessionEvent::Push(p)) => Some(Arc::clone(p)),
            _ => None,
        })
        .collect()
}

// proves B14: a direct send is sealed with the member key when there is no
// session key, and only the recipient opens it.
#[test]
fn a_direct_send_is_sealed_with_the_member_key() {
    let mut sim = Sim::new(config());
    sim.establish();
    let (_, a) = sim.send(&bob().public_key().to_hex(), "for bob only");
    let f = &sends(&a)[0];
    assert_eq!(f.target_spec, bob().public_key().to_hex());
    assert_ne!(f.ciphertext, "Zm9yIGJvYiBvbmx5", "not base64 plaintext");
    let plain = decrypt_direct(&f.nonce, &f.ciphertext, &member().secret.public_key(), &bob()).unwrap();
    assert_eq!(plain, b"for bob only");
    // Groups and broadcasts stay base64 plaintext (PROTOCOL.md).
    let (_, a) = sim.send("@team", "for bob only");
    assert_eq!(sends(&a)[0].ciphertext, "Zm9yIGJvYiBvbmx5");
}

// proves B14: with a session key, the session secret seals (the push's
// senderPubkey is the session key).
#[test]
fn a_direct_send_is_sealed_with_the_session_key_when_there_is_one() {
    let mut sim = Sim::with(config(), session_credentials());
    sim.establish();
    let (_, a) = sim.send(&bob().public_key().to_hex(), "from my session");
    let f = &sends(&a)[0];
    let session_pub = SecretKey::from_seed([9; 32]).public_key();
    let plain = decrypt_direct(&f.nonce, &f.ciphertext, &session_pub, &bob()).unwrap();
    assert_eq!(plain, b"from my session");
    assert!(decrypt_direct(&f.nonce, &f.ciphertext, &member().secret.public_key(), &bob()).is_err());
    // Two sends never share a nonce.
    let (_, a) = sim.send(&bob().public_key().to_hex(), "again");
    assert_ne!(sends(&a)[0].nonce, f.nonce);
}

// proves B14: pushes come decoded; sealed to the session key or to the member
// key both open, one sealed to a stranger is undecryptable and counted.
#[test]
fn pushes_are_opened_with_the_session_then_the_member_secret() {
    let mut sim = Sim::with(config(), session_credentials());
    sim.establish();
    let session_pub = SecretKey::from_seed([9; 32]).public_key();
    let nonce = [3u8; 24];
    let mut texts = Vec::new();
    for (n, to) in [
        session_pub,
        member().secret.public_key(),
        SecretKey::from_seed([5; 32]).public_key(),
    ]
    .iter()
    .enumerate()
    {
        let env = encrypt_direct("psst", &nonce, to, &bob()).unwrap();
        let a = sim.broker(
            json!({"type":"push","messageId":format!("m{n}"),"meshId":"mesh-test",
            "senderPubkey":bob().public_key().to_hex(),"priority":"next","nonce":env.nonce,
            "ciphertext":env.ciphertext,"createdAt":"t"}),
        );
        texts.push(pushed(&a)[0].body.clone());
    }
    let psst = PushBody::Text {
        text: "psst".into(),
        encrypted: true,
    };
    assert_eq!(texts, [psst.clone(), psst, PushBody::Undecryptable]);
    assert_eq!(sim.s.stats(sim.now).pushes_undecryptable, 1);
    // The history hands back the decoded pushes too.
    assert_eq!(sim.s.drain_history().len(), 3);
}

fn peers_reply(req_id: &str) -> serde_json::Value {
    json!({"type":"peers_list","_reqId":req_id,"peers":[
        {"pubkey":bob().public_key().to_hex(),"displayName":"Bob","status":"idle","summary":null,
         "groups":[],"sessionId":"s-b","connectedAt":"t","peerRole":"session"},
        {"pubkey":SecretKey::from_seed([4; 32]).public_key().to_hex(),"displayName":"bob","status":"idle",
         "summary":null,"groups":[],"sessionId":"s-d","connectedAt":"t","peerRole":"control-plane"},
        {"pubkey":SecretKey::from_seed([5; 32]).public_key().to_hex(),"displayName":"twin","status":"idle",
         "summary":null,"groups":[],"sessionId":"s-t1","connectedAt":"t"},
        {"pubkey":SecretKey::from_seed([6; 32]).public_key().to_hex(),"displayName":"twin","status":"idle",
         "summary":null,"groups":[],"sessionId":"s-t2","connectedAt":"t"}
    ]})
}

fn list_peers_req(actions: &[SessionAction]) -> String {
    written(actions)
        .into_iter()
        .find_map(|f| match f {
            ClientFrame::ListPeers(l) => l.req_id,
            _ => None,
        })
        .expect("a list_peers request")
}

// proves B15: a name is resolved through list_peers (never to a control-plane
// row), then the message goes, sealed, to that key.
#[test]
fn a_name_is_resolved_to_a_key_before_the_send() {
    let mut sim = Sim::new(config());
    sim.establish();
    let (id, a) = sim.send("bob", "hi by name");
    assert!(
        sends(&a).is_empty(),
        "nothing is sent before the name is resolved"
    );
    let req = list_peers_req(&a);
    let a = sim.broker(peers_reply(&req));
    let f = &sends(&a)[0];
    assert_eq!(f.target_spec, bob().public_key().to_hex());
    let plain = decrypt_direct(&f.nonce, &f.ciphertext, &member().secret.public_key(), &bob()).unwrap();
    assert_eq!(plain, b"hi by name");
    let a = sim.broker(json!({"type":"ack","id":f.id,"messageId":"m1","queued":true}));
    assert!(matches!(&resolved(&a)[..], [(i, Ok(Outcome::Sent { .. }))] if *i == id));
}

// proves B15: no match and several matches fail as never sent, with a clear
// reason, and put nothing on the wire.
#[test]
fn an_unknown_or_ambiguous_name_is_never_sent() {
    let mut sim = Sim::new(config());
    sim.establish();
    for (name, code, says) in [
        ("dave", "name_not_found", "no peer is named \"dave\""),
        ("twin", "name_ambiguous", "matches 2 peers"),
    ] {
        let (id, a) = sim.send(name, "hello?");
        let a = sim.broker(peers_reply(&list_peers_req(&a)));
        assert!(sends(&a).is_empty());
        let failure = failure_of(&a, id);
        assert_eq!(failure.kind, FailureKind::NeverSent);
        assert_eq!(failure.code.as_deref(), Some(code));
        assert!(failure.to_string().contains(says), "{failure}");
        assert!(failure.permanent);
    }
    // A lost connection while resolving is never sent either: nothing was.
    let (id, _) = sim.send("bob", "hello?");
    let a = sim.drop_connection(1006);
    assert_eq!(failure_of(&a, id).kind, FailureKind::NeverSent);
    // And a name cannot be resolved while away.
    let err = sim.s.send(sim.at(), Outgoing::new("bob", "x")).unwrap_err();
    assert_eq!(err.reason, SendRefusal::NotOpen);
}

/// What a session seeded with 5 writes for member 0x07's first direct message
/// to bob (0x02): the real product's `send` shape, sealed.
const GOLDEN_SEALED_SEND: &str = concat!(
    r#"{"type":"send","id":"3281e4424633355c","#,
    r#""targetSpec":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","#,
    r#""priority":"next","nonce":"Tt0tEw0Nf4f1bl2ryuxUbOPdpALQGp2f","#,
    r#""ciphertext":"eo60G8oq6OXyjbitCSS5B84eg0EVHnPObZuB6rw1Mr7r","#,
    r#""client_message_id":"3281e4424633355c"}"#
);

// proves B14: the whole encrypted send frame is fixed by the session's seed
// (proto draws ids and nonces from it; hosts seed it from the OS), byte for
// byte, and it opens as libsodium's crypto_box_open_easy would (the same strings
// open under libsodium itself in tests/tests/libsodium_interop.rs).
#[test]
fn golden_encrypted_send_with_a_fixed_seed() {
    let mut sim = Sim::new(config());
    sim.establish();
    let (_, a) = sim.send(&bob().public_key().to_hex(), "golden hello, bob");
    let text = written(&a)
        .into_iter()
        .find(|f| matches!(f, ClientFrame::Send(_)))
        .map(|f| f.encode())
        .expect("a send frame");
    // Sim's session seed is 5; the member key is 0x07 × 32, bob's 0x02 × 32.
    assert_eq!(text, GOLDEN_SEALED_SEND);
    let f = &sends(&a)[0];
    assert_eq!(f.nonce, "Tt0tEw0Nf4f1bl2ryuxUbOPdpALQGp2f");
    let plain = decrypt_direct(&f.nonce, &f.ciphertext, &member().secret.public_key(), &bob()).unwrap();
    assert_eq!(plain, b"golden hello, bob");
}
