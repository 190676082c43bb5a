//! End-to-end over loopback: tether-tokio against the reference broker.
//! Every test waits on events; the timeouts are safety nets.

use std::collections::BTreeMap;
use std::time::Duration;

use tether_broker::core::{ConnSelector, Refusal};
use tether_broker::TlsSetup;
use tether_proto::lifecycle::{Failure, Notification, Status, StopReason};
use tether_proto::mesh::session::SendRefusal;
use tether_proto::mesh::wire::{PeerRole, Priority};
use tether_tests::e2e::*;
use tether_tokio::{Client, ClientError, ConnectError};

async fn connected(url: &str, n: u8) -> Client {
    match Client::connect(client_config(url, n, &format!("s{n}"))).await {
        Ok(c) => c,
        Err(e) => panic!("member {n} could not connect: {e}"),
    }
}

fn text_of(push: &tether_proto::mesh::wire::PushFrame) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&push.ciphertext)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn two_clients_exchange_sends_both_ways_and_every_request() {
    // proves B1, B7, B8, B9, B10, B11, L3
    let broker = start_broker(broker_config(membership(3, &[])), None).await;
    let url = broker.url();
    let alice = connected(&url, 1).await;
    let bob = connected(&url, 2).await;
    let mut alice_in = alice.subscribe();
    let mut bob_in = bob.subscribe();

    let sent = alice.send(&pubkey(2), "hi bob", Priority::Now).await.unwrap();
    let push = bob_in.recv().await.unwrap();
    assert_eq!(text_of(&push), "hi bob");
    assert_eq!(push.message_id, sent.message_id);
    assert_eq!(push.priority, Priority::Now);
    bob.send("peer-1", "hi alice", Priority::Next).await.unwrap();
    assert_eq!(text_of(&alice_in.recv().await.unwrap()), "hi alice");

    // Every request type, with the broker's reply shapes.
    let peers = alice.list_peers().await.unwrap();
    assert!(peers
        .iter()
        .any(|p| p.pubkey == pubkey(2) && p.role() == PeerRole::Session));
    alice.set_state("color", serde_json::json!("blue")).await.unwrap();
    let row = loop {
        // set_state is fire-and-forget: read until the broker has applied it.
        if let Some(row) = bob.get_state("color").await.unwrap() {
            break row;
        }
    };
    assert_eq!(row.value, serde_json::json!("blue"));
    assert!(bob.get_state("missing").await.unwrap().is_none());
    assert_eq!(bob.list_state().await.unwrap().len(), 1);
    let id = alice
        .remember("the deploy key rotates on fridays", Some(vec!["ops".into()]))
        .await
        .unwrap();
    assert!(id.is_some());
    let found = bob.recall("fridays").await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(alice.list_skills(None).await.unwrap().is_empty());
    assert!(alice.get_skill("nope").await.unwrap().is_none());
    alice.set_summary("testing").await.unwrap();
    alice.set_status("working").await.unwrap();
    alice.set_visible(true).await.unwrap();

    alice.close().await;
    bob.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn broker_restart_while_sends_are_queued_delivers_each_exactly_once() {
    // proves B3, B6, X3, L6, L7
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let url = broker.url();
    let alice = connected(&url, 1).await;
    let bob = connected(&url, 2).await;
    let mut bob_in = bob.subscribe();
    let mut alice_status = alice.status();

    broker.stop().await;
    alice_status.wait_for(|s| *s != Status::Open).await.unwrap();
    let sends: Vec<_> = (0..20)
        .map(|i| {
            let alice = alice.clone();
            tokio::spawn(async move { alice.send(&pubkey(2), &format!("msg {i}"), Priority::Next).await })
        })
        .collect();
    let broker = broker.restart().await.unwrap();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    let mut got = BTreeMap::new();
    while got.len() < 20 {
        let push = tokio::time::timeout(PATIENCE, bob_in.recv())
            .await
            .unwrap()
            .unwrap();
        *got.entry(text_of(&push)).or_insert(0) += 1;
    }
    assert!(got.values().all(|n| *n == 1), "{got:?}");
    // Nothing else arrives: a round trip through the broker flushes the pipe.
    alice.send(&pubkey(2), "last", Priority::Next).await.unwrap();
    let last = tokio::time::timeout(PATIENCE, bob_in.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text_of(&last), "last");
    alice.close().await;
    bob.close().await;
    broker.stop().await;
}

async fn expect_permanent(result: Result<Client, ConnectError>, code: &str) -> StopReason {
    match result {
        Err(ConnectError::Failed(reason)) => {
            assert!(matches!(reason, StopReason::Permanent { .. }), "{reason:?}");
            match reason.failure() {
                Some(Failure::Rejected { rejection, .. }) => assert_eq!(rejection.code, code),
                other => panic!("expected the broker's {code}, got {other:?}"),
            }
            reason
        }
        Err(e) => panic!("expected a permanent rejection, got {e}"),
        Ok(_) => panic!("expected a rejection"),
    }
}

#[tokio::test]
async fn permanent_rejections_stop_with_the_brokers_reason() {
    // proves D3, D6, S2, L8
    let broker = start_broker(broker_config(membership(2, &[2])), None).await;
    let url = broker.url();
    // Not a member: unauthorized. Even configured to keep retrying, it stops.
    let stranger = Client::connect(retrying(client_config(&url, 9, "s9"))).await;
    expect_permanent(stranger, "unauthorized").await;
    // Revoked: 4002 banned, with the broker's message.
    let banned = Client::connect(retrying(client_config(&url, 2, "s2"))).await;
    let reason = expect_permanent(banned, "revoked").await;
    assert!(matches!(reason.failure(), Some(Failure::Rejected { close: Some(c), .. }) if c.code == 4002));
    // Bad signature, as the broker reports it.
    broker
        .refuse_hellos_with(
            Refusal::for_code("bad_signature", "signature does not verify"),
            None,
        )
        .await;
    let forged = Client::connect(retrying(client_config(&url, 1, "s1"))).await;
    expect_permanent(forged, "bad_signature").await;
    // Exactly one attempt each: three hellos rejected, none retried.
    let stats = broker.stats().await;
    let rejected: u64 = stats.core.hellos_rejected.values().sum();
    assert_eq!(rejected, 3, "{stats:?}");
    assert_eq!(stats.core.hellos_accepted, 0);
    broker.stop().await;
}

#[tokio::test]
async fn session_replaced_stops_the_old_connection_instead_of_fighting() {
    // proves D4
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let url = broker.url();
    let first = Client::connect(client_config(&url, 1, "same-session"))
        .await
        .unwrap();
    let mut events = first.events();
    let second = Client::connect(client_config(&url, 1, "same-session"))
        .await
        .unwrap();
    let reason = wait_for(&mut events, "the old session to stop", |e| {
        match lifecycle_note(e) {
            Some(Notification::Closed { reason }) => Some(reason.clone()),
            _ => None,
        }
    })
    .await;
    assert!(
        matches!(reason.failure(), Some(Failure::Closed(c)) if c.reason == "session_replaced"),
        "{reason:?}"
    );
    assert_eq!(*second.status().borrow(), Status::Open);
    second.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn capacity_with_retry_after_is_honoured() {
    // proves X10
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let alice = connected(&broker.url(), 1).await;
    let mut events = alice.events();
    broker
        .refuse_hellos_with(Refusal::capacity("mesh full", 1500), Some(Duration::from_secs(1)))
        .await;
    broker.drop_all(1001, "shutting down").await;
    let delay = wait_for(&mut events, "a capacity rejection", |e| match lifecycle_note(e) {
        Some(Notification::Disconnected {
            failure: Failure::Rejected { rejection, .. },
            ..
        }) => {
            assert_eq!(rejection.code, "capacity");
            assert_eq!(rejection.retry_after, Some(Duration::from_millis(1500)));
            Some(())
        }
        _ => None,
    })
    .await;
    let () = delay;
    let delay = wait_for(&mut events, "the next delay", |e| match lifecycle_note(e) {
        Some(Notification::ReconnectScheduled { delay, .. }) => Some(*delay),
        _ => None,
    })
    .await;
    assert!(
        delay >= Duration::from_millis(1500),
        "{delay:?} ignores retryAfterMs"
    );
    let mut status = alice.status();
    status.wait_for(|s| *s == Status::Open).await.unwrap();
    alice.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn hello_never_acked_times_out_and_backs_off() {
    // proves L4, L6, L7
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let alice = connected(&broker.url(), 1).await;
    let mut events = alice.events();
    broker.stall_hellos(true).await;
    broker.drop_all(1001, "shutting down").await;
    let mut delays = Vec::new();
    while delays.len() < 3 {
        let (timeout, delay) = wait_for(&mut events, "an ack timeout", |e| match lifecycle_note(e) {
            Some(Notification::Disconnected { failure, .. }) => Some((Some(failure.clone()), None)),
            Some(Notification::ReconnectScheduled { delay, .. }) => Some((None, Some(*delay))),
            _ => None,
        })
        .await;
        if let Some(f) = timeout {
            if delays.is_empty() {
                continue; // the drop itself
            }
            assert_eq!(f, Failure::HelloAckTimeout);
        }
        if let Some(d) = delay {
            delays.push(d);
        }
    }
    // 100, 200, 400 ms nominal, ±20 %: each step grows.
    assert!(delays[1] > delays[0] && delays[2] > delays[1], "{delays:?}");
    broker.stall_hellos(false).await;
    alice.status().wait_for(|s| *s == Status::Open).await.unwrap();
    alice.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn half_open_broker_is_detected_as_stale_and_reconnected() {
    // proves L9, L6
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let alice = connected(&broker.url(), 1).await;
    let mut events = alice.events();
    broker.go_silent(ConnSelector::Pubkey(pubkey(1))).await;
    wait_for(&mut events, "a stale terminate", |e| match lifecycle_note(e) {
        Some(Notification::Disconnected {
            failure: Failure::Stale { .. },
            ..
        }) => Some(()),
        // The broker may drop the silent socket first (it has the same stale window).
        Some(Notification::Disconnected {
            failure: Failure::Closed(c),
            ..
        }) if c.code == 1006 => Some(()),
        _ => None,
    })
    .await;
    wait_for(&mut events, "the reconnect", |e| match lifecycle_note(e) {
        Some(Notification::Connected { first: false, .. }) => Some(()),
        _ => None,
    })
    .await;
    alice.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn garbage_frames_are_counted_and_survived() {
    // proves L5
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let alice = connected(&broker.url(), 1).await;
    let mut events = alice.events();
    broker
        .send_garbage(ConnSelector::All, "{definitely not json")
        .await;
    wait_for(&mut events, "the dropped frame", |e| match lifecycle_note(e) {
        Some(Notification::FrameDropped(_)) => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(*alice.status().borrow(), Status::Open);
    assert_eq!(alice.stats().await.unwrap().lifecycle.frames_dropped, 1);
    assert!(alice.list_peers().await.is_ok(), "still usable");
    alice.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn oversized_frames_are_refused_with_a_clear_error() {
    // proves X4
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let mut config = client_config(&broker.url(), 1, "s1");
    config.max_message_size = 64 * 1024;
    let alice = Client::connect(config).await.unwrap();
    // Outbound: refused at the call, nothing sent, the message handed back.
    let big = "x".repeat(100 * 1024);
    match alice.send(&pubkey(1), &big, Priority::Next).await {
        Err(ClientError::Refused(e)) => {
            assert!(matches!(e.reason, SendRefusal::TooLarge { .. }), "{e}");
            assert!(e.to_string().contains("limit"), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Inbound: the socket is dropped with 1009 and the client reconnects.
    let mut events = alice.events();
    broker
        .send_garbage(ConnSelector::All, &"y".repeat(200 * 1024))
        .await;
    let failure = wait_for(&mut events, "the oversize close", |e| match lifecycle_note(e) {
        Some(Notification::Disconnected { failure, .. }) => Some(failure.clone()),
        _ => None,
    })
    .await;
    assert_eq!(failure.close_code(), 1009, "{failure}");
    alice.status().wait_for(|s| *s == Status::Open).await.unwrap();
    alice.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate_needs_its_ca() {
    // proves X5
    let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(issued.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![issued.cert.der().clone()], key)
    .unwrap();
    let broker = start_broker(
        broker_config(membership(1, &[])),
        Some(TlsSetup::Config(std::sync::Arc::new(server))),
    )
    .await;
    let url = broker.url();
    assert!(url.starts_with("wss://"), "{url}");
    // Verification is on by default: the unknown issuer is refused.
    let refused = Client::connect(client_config(&url, 1, "s1")).await;
    match refused {
        Err(ConnectError::Failed(reason)) => assert!(reason.to_string().contains("certificate"), "{reason}"),
        other => panic!("expected a certificate failure, got {other:?}"),
    }
    let mut config = client_config(&url, 1, "s1");
    config.tls = config.tls.with_extra_ca_pem(issued.cert.pem());
    let alice = Client::connect(config).await.unwrap();
    alice.send(&pubkey(1), "over tls", Priority::Next).await.unwrap();
    alice.close().await;
    broker.stop().await;
}
