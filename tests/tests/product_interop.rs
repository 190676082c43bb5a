//! The real product's own clients against tether's reference broker, and tether's
//! clients talking to them through it: the product's `BrokerClient` (the CLI's),
//! its daemon's member socket `DaemonBrokerClient` and per-session
//! `SessionBrokerClient`, run unmodified on Node (see `product/mod.rs`).
//!
//! Each scenario names what it proves. The failures issue 13 lists (every send
//! looking rejected, error frames the daemon never reads, pushes that do not
//! open, peer lists without the requester or `memberPubkey`) are each one of
//! these assertions.

mod product;

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tether_proto::lifecycle::{Status, StopReason};
use tether_proto::mesh::handshake::{Credentials, SessionCredentials};
use tether_proto::mesh::identity::SecretKey;
use tether_proto::mesh::push::PushBody;
use tether_proto::mesh::session::FailureKind;
use tether_proto::mesh::wire::{PeerRole, Priority};
use tether_tests::e2e::*;
use tether_tests::hosts::{AnyClient, CallError, Host};

use product::{joined_mesh, Product};

async fn tether(url: &str, n: u8) -> AnyClient {
    match AnyClient::connect(Host::Tokio, spec(url, n, &format!("tether-{n}"))).await {
        Ok(c) => c,
        Err(e) => panic!("tether member {n} could not connect: {}", e.text),
    }
}

/// A tether client connected with `session_hello` as a session of member `n`
/// (as `tether listen` does), with the session key from `seed`.
async fn tether_session(url: &str, n: u8, seed: u8) -> AnyClient {
    let mut s = spec(url, n, &format!("tether-session-{n}"));
    s.credentials = Credentials::Session(Box::new(SessionCredentials {
        parent: member(n),
        session_key: SecretKey::from_seed([seed; 32]),
        role: None,
        attestation_ttl: Duration::from_secs(3600),
    }));
    match AnyClient::connect(Host::Tokio, s).await {
        Ok(c) => c,
        Err(e) => panic!("tether session of member {n} could not connect: {}", e.text),
    }
}

fn session_pubkey(seed: u8) -> String {
    SecretKey::from_seed([seed; 32]).public_key().to_hex()
}

/// A product client of kind `kind` (`broker`, `daemon`) for member `n`, connected.
async fn product_client(p: &Product, kind: &str, name: &str, n: u8, url: &str) {
    p.ok(
        &format!("new_{kind}_client"),
        json!({"name": name, "mesh": joined_mesh(n, url), "displayName": name}),
    )
    .await;
    p.ok("connect", json!({"name": name})).await;
}

fn entry<'a>(peers: &'a Value, pubkey: &str) -> &'a Value {
    peers
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["pubkey"] == pubkey))
        .unwrap_or_else(|| panic!("no peer-list entry with pubkey {pubkey} in {peers}"))
}

fn base64_of(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

// proves B12, B17, B11: the product's CLI client (member hello with an unsigned
// session key) and its daemon socket (member hello) are accepted by tether's
// broker, and both sides see the peer list the real broker gives: every entry's
// `pubkey` is the routing key (the session key when there is one), `memberPubkey`
// the member key, the requester is listed, and the role follows the hello kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_products_clients_say_hello_and_list_the_same_peers_as_tether() {
    let broker = start_broker(broker_config(membership(4, &[])), None).await;
    let url = broker.url();
    let p = Product::start().await;
    product_client(&p, "broker", "cli", 2, &url).await;
    product_client(&p, "daemon", "daemon", 3, &url).await;
    let cli_session = p.ok("session_pubkey", json!({"name": "cli"})).await;
    let cli_session = cli_session.as_str().expect("a session key").to_owned();
    assert_ne!(
        cli_session,
        pubkey(2),
        "the product's client has a session key of its own"
    );
    let alice = tether(&url, 1).await;
    let listener = tether_session(&url, 4, 40).await;

    // tether's view.
    let peers = alice.list_peers().await.unwrap();
    let cli = peers
        .iter()
        .find(|p| p.pubkey == cli_session)
        .expect("the CLI client, by its session key");
    assert_eq!(cli.member_pubkey.as_deref(), Some(pubkey(2).as_str()));
    assert_eq!(cli.role(), PeerRole::ControlPlane);
    let daemon = peers
        .iter()
        .find(|p| p.pubkey == pubkey(3))
        .expect("the daemon, by its member key");
    assert_eq!(daemon.member_pubkey.as_deref(), Some(pubkey(3).as_str()));
    assert!(daemon.session_id.starts_with("daemon-"), "{daemon:?}");
    assert_eq!(daemon.channel.as_deref(), Some("claudemesh-daemon"));
    assert!(
        peers.iter().any(|p| p.pubkey == pubkey(1)),
        "the requester is listed"
    );

    // The product's view, through each of its clients.
    for client in ["cli", "daemon"] {
        let peers = p.ok("list_peers", json!({"name": client})).await;
        assert_eq!(peers.as_array().map(Vec::len), Some(4), "{client}: {peers}");
        let own = if client == "cli" {
            cli_session.clone()
        } else {
            pubkey(3)
        };
        let me = entry(&peers, &own);
        assert_eq!(me["peerRole"], "control-plane", "{client} lists itself");
        let t = entry(&peers, &pubkey(1));
        assert_eq!(t["memberPubkey"], pubkey(1));
        assert_eq!(t["peerRole"], "control-plane");
        assert_eq!(t["displayName"], "peer-1");
        let l = entry(&peers, &session_pubkey(40));
        assert_eq!(l["memberPubkey"], pubkey(4), "a session row names its member");
        assert_eq!(l["peerRole"], "session", "session_hello makes a session peer");
    }
    alice.close().await;
    listener.close().await;
    broker.stop().await;
}

// proves B14, B16: tether and the product's CLI client read each other's direct
// messages, end to end, both ways: tether seals for the product's session key or
// its member key (the product opens with its session secret, then its member
// secret); the product seals with its session secret and tether opens with the
// push's `senderPubkey`. The broker sees only ciphertext, and the product's send
// resolves ok (an accepted send acks `queued: true`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tether_and_the_products_cli_client_read_each_others_direct_messages() {
    let broker = start_broker(broker_config(membership(4, &[])), None).await;
    let url = broker.url();
    let mut p = Product::start().await;
    product_client(&p, "broker", "cli", 2, &url).await;
    let cli_session = p.ok("session_pubkey", json!({"name": "cli"})).await;
    let cli_session = cli_session.as_str().unwrap().to_owned();
    let mut alice = tether(&url, 1).await;

    for (to, text) in [
        (cli_session.as_str(), "to your session key 🔒"),
        (pubkey(2).as_str(), "to your member key"),
    ] {
        let id = alice.send(to, text, Priority::Now).await.unwrap();
        let push = p.push_of("cli", &id).await;
        assert_eq!(push["plaintext"], text, "{push}");
        assert_eq!(push["kind"], "direct");
        assert_eq!(push["messageId"], id);
        assert_eq!(push["senderPubkey"], pubkey(1));
        assert_eq!(push["priority"], "now");
        assert_ne!(
            push["ciphertext"],
            base64_of(text),
            "sealed, not base64 plaintext"
        );
    }

    let sent = p
        .ok(
            "send",
            json!({"name": "cli", "target": pubkey(1), "text": "from the product 🔒"}),
        )
        .await;
    assert_eq!(
        sent["ok"], true,
        "an accepted send is not reported rejected: {sent}"
    );
    let push = alice.next_push().await.expect("the product's message");
    assert_eq!(
        push.body,
        PushBody::Text {
            text: "from the product 🔒".into(),
            encrypted: true
        }
    );
    assert_eq!(push.message_id, sent["messageId"].as_str().unwrap());
    assert_eq!(
        push.frame.sender_pubkey, cli_session,
        "sealed with the session secret"
    );
    assert_eq!(
        push.frame.sender_member_pubkey.as_deref(),
        Some(pubkey(2).as_str())
    );

    // A tether session (as `tether listen` connects) opens what is sealed for
    // its session key and for its member key.
    let mut listener = tether_session(&url, 4, 40).await;
    for to in [session_pubkey(40), pubkey(4)] {
        let sent = p
            .ok(
                "send",
                json!({"name": "cli", "target": to, "text": "to the listener"}),
            )
            .await;
        assert_eq!(sent["ok"], true, "{sent}");
        let push = listener.next_push().await.expect("the product's message");
        assert_eq!(push.body.text(), Some("to the listener"), "{:?}", push.body);
    }

    // Broadcasts travel as base64 plaintext (PROTOCOL.md). The product's client
    // cannot read them: a push with a `senderPubkey` (the real broker always sets
    // one) is only ever opened as a direct message. tether does better and reads
    // them, marked as not encrypted.
    let id = alice.send("*", "to everyone", Priority::Next).await.unwrap();
    let push = p.push_of("cli", &id).await;
    assert_eq!(push["ciphertext"], base64_of("to everyone"));
    assert_eq!(push["plaintext"], Value::Null, "the product's defect, not ours");
    let sent = p
        .ok("send", json!({"name": "cli", "target": "*", "text": "to all"}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let push = alice.next_push().await.expect("the product's broadcast");
    assert_eq!(
        push.body,
        PushBody::Text {
            text: "to all".into(),
            encrypted: false
        }
    );
    assert_eq!(alice.stats().await.pushes_undecryptable, 0);
    alice.close().await;
    listener.close().await;
    broker.stop().await;
}

// proves B14, B16: the product's daemon, through its own member socket and its
// own inbound path (decrypt, dedupe, client_ack), and tether read each other's
// direct messages; a send to a key nobody holds comes back to the daemon as a
// failed send at once (an error ack, which it reads), not after its 15 s ack
// timeout (an `error` frame, which it never reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tether_and_the_products_daemon_read_each_others_direct_messages() {
    let broker = start_broker(broker_config(membership(4, &[])), None).await;
    let url = broker.url();
    let mut p = Product::start().await;
    product_client(&p, "daemon", "daemon", 3, &url).await;
    let mut alice = tether(&url, 1).await;

    let id = alice
        .send(&pubkey(3), "to the daemon 🔒", Priority::Next)
        .await
        .unwrap();
    let row = p.message("daemon").await;
    assert_eq!(row["body"], "to the daemon 🔒", "{row}");
    // The daemon falls back to base64 for what it cannot open: the body alone
    // would not show the message was sealed.
    assert_ne!(row["wire"]["ciphertext"], base64_of("to the daemon 🔒"), "sealed");
    assert_eq!(row["sender_pubkey"], pubkey(1));
    assert_eq!(row["sender_member_pubkey"], pubkey(1));
    assert_eq!(row["broker_message_id"], id);

    let sent = p
        .ok(
            "send",
            json!({"name": "daemon", "target": pubkey(1), "text": "from the daemon"}),
        )
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let push = alice.next_push().await.expect("the daemon's message");
    assert_eq!(
        push.body,
        PushBody::Text {
            text: "from the daemon".into(),
            encrypted: true
        }
    );
    assert_eq!(
        push.frame.sender_pubkey,
        pubkey(3),
        "no session key on the daemon socket"
    );

    let nobody = SecretKey::from_seed([99; 32]).public_key().to_hex();
    let started = std::time::Instant::now();
    let sent = p
        .ok(
            "send",
            json!({"name": "daemon", "target": nobody, "text": "anyone?"}),
        )
        .await;
    assert_eq!(sent["ok"], false, "{sent}");
    let error = sent["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("no connected peer"), "{sent}");
    assert_eq!(sent["permanent"], false, "the peer may come back");
    // Not a timing assertion: the daemon's own timeout would say "ack_timeout".
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered, not timed out"
    );
    alice.close().await;
    broker.stop().await;
}

/// A session of member `n` through the product's `SessionBrokerClient` (as its
/// daemon opens one per launched session): its session key.
async fn product_session(p: &Product, name: &str, n: u8, url: &str) -> String {
    let key = p
        .ok(
            "new_session_client",
            json!({"name": name, "mesh": joined_mesh(n, url), "sessionId": format!("launch-{name}"),
                   "displayName": format!("peer-{n}")}),
        )
        .await;
    p.ok("connect", json!({"name": name})).await;
    key.as_str().expect("a session key").to_owned()
}

// proves B15: tether resolves a display name through list_peers to the product
// session's key (never to a control-plane row, as the product's own CLI does);
// the message is sealed for that key and the product's session opens it. A name
// that matches nobody, only a control-plane peer, or two sessions is never sent:
// nothing reaches the product.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_to_the_product_sessions_key_or_are_never_sent() {
    let broker = start_broker(broker_config(membership(4, &[])), None).await;
    let url = broker.url();
    let mut p = Product::start().await;
    let session = product_session(&p, "launch", 2, &url).await;
    product_client(&p, "daemon", "daemon", 3, &url).await;
    let mut alice = tether(&url, 1).await;

    let id = alice
        .send("Peer-2", "hello by name", Priority::Next)
        .await
        .unwrap();
    let row = p.message("launch").await;
    assert_eq!(row["body"], "hello by name", "{row}");
    assert_ne!(row["wire"]["ciphertext"], base64_of("hello by name"), "sealed");
    assert_eq!(row["broker_message_id"], id);
    assert_eq!(row["recipient_pubkey"], session, "on the session's own socket");

    // And the session answers by key, sealed with its session secret.
    let sent = p
        .ok(
            "send",
            json!({"name": "launch", "target": pubkey(1), "text": "hello back"}),
        )
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let push = alice.next_push().await.unwrap();
    assert_eq!(push.body.text(), Some("hello back"));
    assert_eq!(push.frame.sender_pubkey, session);

    let second = product_session(&p, "sibling", 2, &url).await;
    assert_ne!(second, session);
    for (name, code) in [
        ("nobody", "name_not_found"),
        ("peer-3", "name_not_found"), // the daemon: control-plane only
        ("peer-2", "name_ambiguous"), // two launched sessions of member 2
    ] {
        match alice.send(name, "should not arrive", Priority::Next).await {
            Err(CallError::Failed(f)) => {
                assert_eq!(f.kind, FailureKind::NeverSent, "{name}: {f}");
                assert_eq!(f.code.as_deref(), Some(code), "{name}: {f}");
                assert!(f.permanent, "{name}: {f}");
            }
            other => panic!("a send to {name:?} resolved {other:?}"),
        }
    }
    // Nothing went out: the next message each product socket sees is this one.
    for (client, to) in [
        ("daemon", pubkey(3)),
        ("launch", session.clone()),
        ("sibling", second),
    ] {
        alice.send(&to, "marker", Priority::Next).await.unwrap();
        assert_eq!(p.message(client).await["body"], "marker", "{client}");
    }
    alice.close().await;
    broker.stop().await;
}

// proves B8, B9, B10: shared state set by the product is read by tether and the
// other way round, with the product seeing tether's change pushed
// (`state_change`) and reading it back in the real broker's `state_result`
// shape. The product's daemon cannot read one key: its `getState` waits for
// `state_value`/`state_data`, which the real broker never sends (the seeds' D7);
// tether reads `state_result` and the older shapes alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_set_on_one_side_is_read_on_the_other() {
    let broker = start_broker(broker_config(membership(4, &[])), None).await;
    let url = broker.url();
    let mut p = Product::start().await;
    product_client(&p, "broker", "cli", 2, &url).await;
    product_client(&p, "daemon", "daemon", 3, &url).await;
    let alice = tether(&url, 1).await;

    p.ok(
        "set_state",
        json!({"name": "cli", "key": "color", "value": {"hue": "blue"}}),
    )
    .await;
    let row = loop {
        // set_state has no reply: read until the broker has applied it.
        if let Some(row) = alice.get_state("color").await.unwrap() {
            break row;
        }
    };
    assert_eq!(row.value, json!({"hue": "blue"}));

    alice.set_state("size", json!(3)).await.unwrap();
    let change = p
        .event("the product's state_change", |e| {
            (e["event"] == "state_change" && e["client"] == "cli").then(|| e["change"].clone())
        })
        .await;
    assert_eq!(change["key"], "size");
    assert_eq!(change["value"], 3);
    let got = p.ok("get_state", json!({"name": "cli", "key": "size"})).await;
    assert_eq!(got["value"], 3, "{got}");
    assert!(!got["updatedBy"].as_str().unwrap_or_default().is_empty(), "{got}");
    let missing = p.ok("get_state", json!({"name": "cli", "key": "missing"})).await;
    assert_eq!(missing["value"], Value::Null, "{missing}");
    for client in ["cli", "daemon"] {
        let all = p.ok("list_state", json!({"name": client})).await;
        let keys: Vec<_> = all.as_array().unwrap().iter().map(|r| r["key"].clone()).collect();
        assert_eq!(keys.len(), 2, "{client}: {all}");
        assert!(
            keys.contains(&json!("color")) && keys.contains(&json!("size")),
            "{all}"
        );
    }
    let daemon = p
        .ok(
            "get_state",
            json!({"name": "daemon", "key": "size", "timeoutMs": 300}),
        )
        .await;
    assert_eq!(daemon, Value::Null, "the product daemon's own defect (D7)");
    alice.close().await;
    broker.stop().await;
}

// proves B8, B10: a memory the product stores tether recalls (same id) and the
// other way round; the product's `forget` removes it for everyone. The
// product's daemon reads neither reply: it expects `memoryId` and
// `memory_recall_result`, shapes the real broker does not send (D7); tether reads
// both generations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_stored_on_one_side_are_recalled_on_the_other() {
    let broker = start_broker(broker_config(membership(4, &[])), None).await;
    let url = broker.url();
    let p = Product::start().await;
    product_client(&p, "broker", "cli", 2, &url).await;
    product_client(&p, "daemon", "daemon", 3, &url).await;
    let alice = tether(&url, 1).await;

    let id = p
        .ok(
            "remember",
            json!({"name": "cli", "content": "the deploy key rotates on fridays", "tags": ["ops"]}),
        )
        .await;
    let id = id.as_str().expect("the product reads the stored id").to_owned();
    let found = alice.recall("fridays").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].content, "the deploy key rotates on fridays");

    let mine = alice.remember("tether was here").await.unwrap().expect("an id");
    let found = p.ok("recall", json!({"name": "cli", "query": "tether"})).await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["id"], mine);
    assert_eq!(found[0]["content"], "tether was here");

    p.ok("forget", json!({"name": "cli", "memoryId": id})).await;
    // Fire-and-forget: the product's own next request on the same socket comes
    // after it.
    assert_eq!(
        p.ok("recall", json!({"name": "cli", "query": "fridays"})).await,
        json!([])
    );
    assert!(alice.recall("fridays").await.unwrap().is_empty());

    let stored = p
        .ok(
            "remember",
            json!({"name": "daemon", "content": "daemon note", "timeoutMs": 300}),
        )
        .await;
    assert_eq!(stored, Value::Null, "the product daemon's own defect (D7)");
    assert_eq!(
        alice.recall("daemon note").await.unwrap().len(),
        1,
        "it was stored"
    );
    alice.close().await;
    broker.stop().await;
}

// proves B12 (with D3): a member revoked while connected is refused with
// `revoked` and close 4002 `banned` when it reconnects, and so is a revoked
// member's first connect: the product's CLI client stops for good on 4002, and so
// does tether, with the broker's reason. The product's daemon socket does not
// stop: its lifecycle reconnects after 4002 like after any close (the seeds' D3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_refused_for_good() {
    let broker = start_broker(broker_config(membership(4, &[])), None).await;
    let url = broker.url();
    let addr = broker.local_addr();
    let mut p = Product::start().await;
    product_client(&p, "broker", "cli", 2, &url).await;
    product_client(&p, "daemon", "daemon", 3, &url).await;
    let mut bob = AnyClient::connect(Host::Tokio, retrying_spec(spec(&url, 4, "tether-4")))
        .await
        .unwrap_or_else(|e| panic!("{}", e.text));

    // The broker comes back with members 2, 3 and 4 revoked.
    broker.stop().await;
    let config = broker_config(membership(4, &[2, 3, 4]));
    let broker = match tether_broker::BrokerServer::start(config, addr, None).await {
        Ok(b) => b,
        Err(e) => panic!("the broker could not restart on {addr}: {e}"),
    };

    let reason = bob
        .wait_for("tether to stop for good", |e| match e {
            tether_tests::hosts::HostEvent::Lifecycle(tether_proto::lifecycle::Notification::Closed {
                reason,
            }) => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(matches!(reason, StopReason::Permanent { .. }), "{reason:?}");
    assert!(format!("{reason:?}").contains("revoked"), "{reason:?}");
    assert_eq!(bob.status(), Status::Closed);

    p.event("the CLI client to close", |e| {
        (e["event"] == "status" && e["client"] == "cli" && e["status"] == "closed").then_some(())
    })
    .await;
    let cli = p.ok("terminal", json!({"name": "cli"})).await;
    assert_eq!(
        cli["terminalClose"],
        json!({"code": 4002, "reason": "banned"}),
        "{cli}"
    );

    p.ok(
        "new_broker_client",
        json!({"name": "again", "mesh": joined_mesh(2, &url), "displayName": "again"}),
    )
    .await;
    let refused = p.call("connect", json!({"name": "again"})).await;
    assert_eq!(refused, Err("ws terminal close 4002: banned".to_owned()));

    // The daemon: refused, and back again after its backoff, refused again.
    for _ in 0..2 {
        p.event("the daemon to try again", |e| {
            (e["event"] == "status" && e["client"] == "daemon" && e["status"] == "connecting").then_some(())
        })
        .await;
        p.event("the daemon to be refused", |e| {
            (e["event"] == "status" && e["client"] == "daemon" && e["status"] == "reconnecting").then_some(())
        })
        .await;
    }
    let stats = broker.stats().await;
    assert!(
        stats.core.hellos_rejected.get("revoked").copied().unwrap_or(0) >= 4,
        "{stats:?}"
    );
    assert_eq!(stats.core.hellos_accepted, 0);
    bob.close().await;
    broker.stop().await;
}
