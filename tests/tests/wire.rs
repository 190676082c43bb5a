//! tether's clients on both hosts against the reference broker behaving as the
//! real one (issue 13): the list the product's own clients are checked against in
//! `product_interop.rs` — hello, direct messages end to end both ways with a
//! session key and a member key, names, peers, revocation — here between tether
//! clients, and what a name send does while the connection is down.

use std::time::Duration;

use tether_proto::lifecycle::{Notification, Status, StopReason};
use tether_proto::mesh::handshake::{Credentials, SessionCredentials};
use tether_proto::mesh::identity::SecretKey;
use tether_proto::mesh::push::PushBody;
use tether_proto::mesh::session::SendRefusal;
use tether_proto::mesh::wire::{PeerRole, Priority};
use tether_tests::e2e::*;
use tether_tests::hosts::{AnyClient, CallError, Host, HostEvent, Spec};
use tether_tests::on_both_hosts;

on_both_hosts!(
    sessions_and_members_speak_the_real_wire_to_each_other,
    a_name_send_while_disconnected_is_refused_and_never_sent,
);

fn session_pubkey(seed: u8) -> String {
    SecretKey::from_seed([seed; 32]).public_key().to_hex()
}

async fn connect(host: Host, spec: Spec) -> AnyClient {
    match AnyClient::connect(host, spec).await {
        Ok(c) => c,
        Err(e) => panic!("could not connect on {host:?}: {}", e.text),
    }
}

/// Member `n` connected with `session_hello` and the session key from `seed`, as
/// `tether listen` connects.
fn session_spec(url: &str, n: u8, seed: u8) -> Spec {
    let mut s = retrying_spec(spec(url, n, &format!("session-{n}")));
    s.credentials = Credentials::Session(Box::new(SessionCredentials {
        parent: member(n),
        session_key: SecretKey::from_seed([seed; 32]),
        role: None,
        attestation_ttl: Duration::from_secs(3600),
    }));
    s
}

fn sealed(text: &str) -> PushBody {
    PushBody::Text {
        text: text.into(),
        encrypted: true,
    }
}

async fn sessions_and_members_speak_the_real_wire_to_each_other(host: Host) {
    // proves B14, B15, B17, B11, B12: a session (session_hello) and a member
    // (hello) list each other as the real broker does, exchange direct messages
    // sealed end to end with the session secret and the member secret, reach the
    // session by its name, and a revoked member's reconnect stops for good.
    let broker = start_broker(broker_config(membership(3, &[])), None).await;
    let url = broker.url();
    let addr = broker.local_addr();
    let mut listener = connect(host, session_spec(&url, 2, 20)).await;
    let mut alice = connect(host, spec(&url, 1, "member-1")).await;

    let peers = alice.list_peers().await.unwrap();
    let l = peers
        .iter()
        .find(|p| p.pubkey == session_pubkey(20))
        .expect("the session, by its key");
    assert_eq!(l.member_pubkey.as_deref(), Some(pubkey(2).as_str()));
    assert_eq!(l.role(), PeerRole::Session);
    let me = peers
        .iter()
        .find(|p| p.pubkey == pubkey(1))
        .expect("the requester");
    assert_eq!(me.role(), PeerRole::ControlPlane);

    // Sealed for the session key and for the member key: the session opens both.
    for to in [session_pubkey(20), pubkey(2)] {
        alice.send(&to, "to the session", Priority::Next).await.unwrap();
        let push = listener.next_push().await.expect("alice's message");
        assert_eq!(push.body, sealed("to the session"));
        assert_eq!(push.frame.sender_pubkey, pubkey(1));
    }
    // By name: resolved to the session's key (the member's hello is hidden).
    alice.send("peer-2", "by name", Priority::Next).await.unwrap();
    assert_eq!(listener.next_push().await.unwrap().body, sealed("by name"));
    // The session seals with its session secret; alice opens with senderPubkey.
    listener
        .send(&pubkey(1), "from the session", Priority::Next)
        .await
        .unwrap();
    let push = alice.next_push().await.expect("the session's message");
    assert_eq!(push.body, sealed("from the session"));
    assert_eq!(push.frame.sender_pubkey, session_pubkey(20));
    assert_eq!(
        push.frame.sender_member_pubkey.as_deref(),
        Some(pubkey(2).as_str())
    );
    assert_eq!(listener.stats().await.pushes_undecryptable, 0);

    // Member 2 is revoked while its session is connected: the broker comes back
    // refusing it, and the session stops with the broker's reason.
    broker.stop().await;
    let config = broker_config(membership(3, &[2]));
    let broker = match tether_broker::BrokerServer::start(config, addr, None).await {
        Ok(b) => b,
        Err(e) => panic!("the broker could not restart on {addr}: {e}"),
    };
    let reason = listener
        .wait_for("the session to stop for good", |e| match e {
            HostEvent::Lifecycle(Notification::Closed { reason }) => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(matches!(reason, StopReason::Permanent { .. }), "{reason:?}");
    assert!(format!("{reason:?}").contains("revoked"), "{reason:?}");
    assert_eq!(listener.status(), Status::Closed);
    alice.wait_status("alice open again", |s| s == Status::Open).await;
    let stats = broker.stats().await;
    assert_eq!(
        stats.core.hellos_rejected.get("revoked").copied(),
        Some(1),
        "{stats:?}"
    );
    listener.close().await;
    alice.close().await;
    broker.stop().await;
}

async fn a_name_send_while_disconnected_is_refused_and_never_sent(host: Host) {
    // proves B15: a name is resolved against the broker's peer list at the time
    // of the send, so while the connection is down a send to a name is refused at
    // the call (never sent, nothing queued), not resolved against a stale list
    // and not queued to go out under a name the broker may resolve differently.
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let url = broker.url();
    let alice = connect(host, retrying_spec(spec(&url, 1, "s1"))).await;
    let mut bob = connect(host, retrying_spec(spec(&url, 2, "s2"))).await;
    // A list fetched while connected is no excuse to resolve from it later.
    assert!(alice
        .list_peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.display_name == "peer-2"));
    broker.stop().await;
    alice.wait_status("not open", |s| s != Status::Open).await;
    match alice.send("peer-2", "while away", Priority::Next).await {
        Err(CallError::Refused(reason, text)) => {
            assert_eq!(reason, SendRefusal::NotOpen, "{text}");
        }
        other => panic!("a name send while away resolved {other:?}"),
    }
    assert_eq!(alice.stats().await.queue_depth, 0, "nothing was queued");

    let broker = broker.restart().await.unwrap();
    alice.wait_status("open again", |s| s == Status::Open).await;
    bob.wait_status("bob open again", |s| s == Status::Open).await;
    // The refused send would have come first.
    alice.send(&pubkey(2), "after", Priority::Next).await.unwrap();
    assert_eq!(bob.next_push().await.unwrap().body.text(), Some("after"));
    alice.close().await;
    bob.close().await;
    broker.stop().await;
}
