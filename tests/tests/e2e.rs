//! End-to-end over loopback: one definition of each scenario, run on both hosts
//! (tether-tokio and tether-mio) against the reference broker (X1). Every test
//! waits on events; the timeouts are safety nets.

mod self_signed;

use std::collections::BTreeMap;
use std::time::Duration;

use self_signed::self_signed_broker_tls;
use tether_broker::core::{ConnSelector, Refusal};
use tether_proto::lifecycle::{ConnectFailureKind, Failure, FailureClass, Notification, Status, StopReason};
use tether_proto::mesh::push::Push;
use tether_proto::mesh::session::{FailureKind, Outgoing, Queueing, SendRefusal};
use tether_proto::mesh::wire::{PeerRole, Priority};
use tether_tests::e2e::*;
use tether_tests::hosts::{AnyClient, CallError, ConnectFailure, Host, HostEvent};

use tether_tests::on_both_hosts;

on_both_hosts!(
    two_clients_exchange_sends_both_ways_and_every_request,
    broker_restart_while_sends_are_queued_delivers_each_exactly_once,
    permanent_rejections_stop_with_the_brokers_reason,
    session_replaced_stops_the_old_connection_instead_of_fighting,
    capacity_with_retry_after_is_honoured,
    hello_never_acked_times_out_and_backs_off,
    half_open_broker_is_detected_as_stale_and_reconnected,
    garbage_frames_are_counted_and_survived,
    oversized_frames_are_refused_with_a_clear_error,
    wss_with_a_self_signed_certificate_needs_its_ca,
    connect_failures_say_what_they_are,
    a_queued_send_whose_deadline_passed_is_never_sent_later,
);

async fn a_queued_send_whose_deadline_passed_is_never_sent_later(host: Host) {
    // proves D12 over both hosts: the seeds reported such a send "ack timeout"
    // and still sent it on reconnect, so a caller's retry delivered it twice.
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let url = broker.url();
    let alice = connected(host, &url, 1).await;
    let mut bob = connected(host, &url, 2).await;
    broker.stop().await;
    alice.wait_status("not open", |s| s != Status::Open).await;
    let mut late = Outgoing::new(pubkey(2), "too late");
    late.queueing = Queueing::Queue {
        deadline: Some(Duration::from_millis(200)),
    };
    match alice.send_message(late).await {
        Err(CallError::Failed(f)) => {
            assert_eq!(f.kind, FailureKind::NeverSent, "{f}");
            assert_eq!(f.reason, "queue_deadline");
            assert!(!f.may_have_been_delivered(), "never sent: safe to retry");
        }
        other => panic!("a send past its queue deadline resolved {other:?}"),
    }
    assert_eq!(alice.stats().await.queue_depth, 0, "it left the queue at once");
    let broker = broker.restart().await.unwrap();
    alice.wait_status("open again", |s| s == Status::Open).await;
    bob.wait_status("bob open again", |s| s == Status::Open).await;
    // A round trip after the reconnect: the expired send would have come first.
    alice.send(&pubkey(2), "after", Priority::Next).await.unwrap();
    assert_eq!(text_of(&bob.next_push().await.unwrap()), "after");
    assert_eq!(alice.stats().await.sends_failed, 1);
    alice.close().await;
    bob.close().await;
    broker.stop().await;
}

async fn connect_failures_say_what_they_are(host: Host) {
    // Both hosts classify with tether-host's one function: a dead port is
    // refused (transient: the broker may come up), a bad scheme is a
    // configuration error (permanent: retrying a typo helps nobody), even with
    // a first connect that would retry.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kind_of = |f: &ConnectFailure| match f.reason.as_ref().and_then(StopReason::failure) {
        Some(Failure::ConnectFailed { kind, .. }) => Some(*kind),
        _ => None,
    };
    let f = match AnyClient::connect(host, spec(&format!("ws://127.0.0.1:{port}/ws"), 1, "s1")).await {
        Err(f) => f,
        Ok(_) => panic!("connected to a closed port"),
    };
    assert_eq!(kind_of(&f), Some(ConnectFailureKind::Refused), "{f:?}");
    assert!(!f.permanent, "{f:?}");
    let mut s = spec("http://127.0.0.1:1/ws", 1, "s1");
    s.session.lifecycle.first_connect = tether_proto::lifecycle::FirstConnect::Retry;
    let f = match AnyClient::connect(host, s).await {
        Err(f) => f,
        Ok(_) => panic!("connected with an http:// URL"),
    };
    assert_eq!(kind_of(&f), Some(ConnectFailureKind::Configuration), "{f:?}");
    assert!(matches!(f.reason, Some(StopReason::Permanent { .. })), "{f:?}");
    assert!(f.permanent);
}

async fn connected(host: Host, url: &str, n: u8) -> AnyClient {
    match AnyClient::connect(host, spec(url, n, &format!("s{n}"))).await {
        Ok(c) => c,
        Err(e) => panic!("member {n} could not connect on {host:?}: {}", e.text),
    }
}

fn text_of(push: &Push) -> String {
    push.body.text().expect("a readable body").to_owned()
}

fn note(
    e: &HostEvent,
) -> Option<&Notification<std::convert::Infallible, tether_proto::mesh::wire::DecodeError>> {
    match e {
        HostEvent::Lifecycle(n) => Some(n),
        HostEvent::Inbound(_) => None,
    }
}

async fn two_clients_exchange_sends_both_ways_and_every_request(host: Host) {
    // proves B1, B7, B8, B9, B10, B11, L3, X1
    let broker = start_broker(broker_config(membership(3, &[])), None).await;
    let url = broker.url();
    let mut alice = connected(host, &url, 1).await;
    let mut bob = connected(host, &url, 2).await;

    let sent = alice.send(&pubkey(2), "hi bob", Priority::Now).await.unwrap();
    let push = bob.next_push().await.unwrap();
    assert_eq!(text_of(&push), "hi bob");
    assert_eq!(push.message_id, sent);
    assert_eq!(push.priority, Priority::Now);
    bob.send(&pubkey(1), "hi alice", Priority::Next).await.unwrap();
    assert_eq!(text_of(&alice.next_push().await.unwrap()), "hi alice");

    let peers = alice.list_peers().await.unwrap();
    // A member-keyed `hello` is a control-plane peer on the real broker's wire (and
    // ours); the requester is listed too.
    assert!(peers
        .iter()
        .any(|p| p.pubkey == pubkey(2) && p.role() == PeerRole::ControlPlane));
    assert!(peers.iter().any(|p| p.pubkey == pubkey(1)));
    alice.set_state("color", serde_json::json!("blue")).await.unwrap();
    let row = loop {
        // set_state has no reply: read until the broker has applied it.
        if let Some(row) = bob.get_state("color").await.unwrap() {
            break row;
        }
    };
    assert_eq!(row.value, serde_json::json!("blue"));
    assert!(bob.get_state("missing").await.unwrap().is_none());
    assert_eq!(bob.list_state().await.unwrap().len(), 1);
    assert!(alice
        .remember("the deploy key rotates on fridays")
        .await
        .unwrap()
        .is_some());
    assert_eq!(bob.recall("fridays").await.unwrap().len(), 1);
    assert_eq!(alice.skills().await.unwrap(), (0, false));
    alice.set_presence("testing", "working").await.unwrap();

    alice.close().await;
    bob.close().await;
    broker.stop().await;
}

async fn broker_restart_while_sends_are_queued_delivers_each_exactly_once(host: Host) {
    // proves B3, B6, X3, L6, L7
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let url = broker.url();
    let alice = std::sync::Arc::new(connected(host, &url, 1).await);
    let mut bob = connected(host, &url, 2).await;

    broker.stop().await;
    alice.wait_status("not open", |s| s != Status::Open).await;
    let sends: Vec<_> = (0..20)
        .map(|i| {
            let alice = std::sync::Arc::clone(&alice);
            tokio::spawn(async move {
                let text = format!("msg {i}");
                loop {
                    // A send flushed before bob is back is refused as the real broker
                    // refuses it (no connected peer, transient, never delivered): retry.
                    match alice.send(&pubkey(2), &text, Priority::Next).await {
                        Err(CallError::Failed(f))
                            if !f.permanent && f.reason.contains("no connected peer") =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        other => break other,
                    }
                }
            })
        })
        .collect();
    let broker = broker.restart().await.unwrap();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    let mut got = BTreeMap::new();
    while got.len() < 20 {
        let push = bob.next_push().await.expect("a push");
        *got.entry(text_of(&push)).or_insert(0) += 1;
    }
    assert!(got.values().all(|n| *n == 1), "{got:?}");
    // A round trip through the broker: a duplicate would have arrived before it.
    alice.send(&pubkey(2), "last", Priority::Next).await.unwrap();
    assert_eq!(text_of(&bob.next_push().await.unwrap()), "last");
    if let Ok(alice) = std::sync::Arc::try_unwrap(alice) {
        alice.close().await;
    }
    bob.close().await;
    broker.stop().await;
}

fn expect_permanent(result: Result<AnyClient, ConnectFailure>, code: &str) -> StopReason {
    let failure = match result {
        Err(f) => f,
        Ok(_) => panic!("expected a rejection"),
    };
    assert!(failure.permanent, "{}", failure.text);
    let reason = failure.reason.expect("a stop reason");
    assert!(matches!(reason, StopReason::Permanent { .. }), "{reason:?}");
    match reason.failure() {
        Some(Failure::Rejected { rejection, .. }) => assert_eq!(rejection.code, code),
        other => panic!("expected the broker's {code}, got {other:?}"),
    }
    reason
}

async fn permanent_rejections_stop_with_the_brokers_reason(host: Host) {
    // proves D3, D6, S2, L8
    let broker = start_broker(broker_config(membership(2, &[2])), None).await;
    let url = broker.url();
    // Not a member: unauthorized. Even configured to keep retrying, it stops.
    let stranger = AnyClient::connect(host, retrying_spec(spec(&url, 9, "s9"))).await;
    expect_permanent(stranger, "unauthorized");
    // Revoked: 4002 banned, with the broker's message.
    let banned = AnyClient::connect(host, retrying_spec(spec(&url, 2, "s2"))).await;
    let reason = expect_permanent(banned, "revoked");
    assert!(matches!(reason.failure(), Some(Failure::Rejected { close: Some(c), .. }) if c.code == 4002));
    // Bad signature, as the broker reports it.
    broker
        .refuse_hellos_with(
            Refusal::for_code("bad_signature", "signature does not verify"),
            None,
        )
        .await;
    let forged = AnyClient::connect(host, retrying_spec(spec(&url, 1, "s1"))).await;
    expect_permanent(forged, "bad_signature");
    // Exactly one attempt each: three hellos rejected, none retried.
    let stats = broker.stats().await;
    let rejected: u64 = stats.core.hellos_rejected.values().sum();
    assert_eq!(rejected, 3, "{stats:?}");
    assert_eq!(stats.core.hellos_accepted, 0);
    broker.stop().await;
}

async fn session_replaced_stops_the_old_connection_instead_of_fighting(host: Host) {
    // proves D4
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let url = broker.url();
    let mut first = AnyClient::connect(host, spec(&url, 1, "same-session"))
        .await
        .unwrap();
    let second = AnyClient::connect(host, spec(&url, 1, "same-session"))
        .await
        .unwrap();
    let reason = first
        .wait_for("the old session to stop", |e| match note(e) {
            Some(Notification::Closed { reason }) => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(reason.failure(), Some(Failure::Closed(c)) if c.reason == "session_replaced"),
        "{reason:?}"
    );
    assert_eq!(second.status(), Status::Open);
    second.close().await;
    broker.stop().await;
}

async fn capacity_with_retry_after_is_honoured(host: Host) {
    // proves X10
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let mut alice = connected(host, &broker.url(), 1).await;
    broker
        .refuse_hellos_with(Refusal::capacity("mesh full", 1500), Some(Duration::from_secs(1)))
        .await;
    broker.drop_all(1001, "shutting down").await;
    alice
        .wait_for("a capacity rejection", |e| match note(e) {
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
    let delay = alice
        .wait_for("the next delay", |e| match note(e) {
            Some(Notification::ReconnectScheduled { delay, .. }) => Some(*delay),
            _ => None,
        })
        .await;
    assert!(
        delay >= Duration::from_millis(1500),
        "{delay:?} ignores retryAfterMs"
    );
    alice.wait_status("open", |s| s == Status::Open).await;
    alice.close().await;
    broker.stop().await;
}

async fn hello_never_acked_times_out_and_backs_off(host: Host) {
    // proves L4, L6, L7
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let mut alice = connected(host, &broker.url(), 1).await;
    broker.stall_hellos(true).await;
    broker.drop_all(1001, "shutting down").await;
    let mut delays = Vec::new();
    let mut timeouts = 0;
    while delays.len() < 3 {
        let (failure, delay) = alice
            .wait_for("an ack timeout", |e| match note(e) {
                Some(Notification::Disconnected { failure, .. }) => Some((Some(failure.clone()), None)),
                Some(Notification::ReconnectScheduled { delay, .. }) => Some((None, Some(*delay))),
                _ => None,
            })
            .await;
        if let Some(f) = failure {
            if !delays.is_empty() {
                assert_eq!(f, Failure::HelloAckTimeout);
                timeouts += 1;
            }
        }
        if let Some(d) = delay {
            delays.push(d);
        }
    }
    assert!(timeouts >= 2);
    // 100, 200, 400 ms nominal, ±20 %: each step grows.
    assert!(delays[1] > delays[0] && delays[2] > delays[1], "{delays:?}");
    broker.stall_hellos(false).await;
    alice.wait_status("open", |s| s == Status::Open).await;
    alice.close().await;
    broker.stop().await;
}

async fn half_open_broker_is_detected_as_stale_and_reconnected(host: Host) {
    // proves L9, L6, D11: only the client's own watchdog can end this
    // connection. The broker's liveness window is far longer than the client's,
    // so the broker never drops the silent socket first; the disconnect must be
    // the client's stale verdict, not the broker's 1006 (an earlier version
    // accepted either and passed with the client's detection switched off).
    let mut config = broker_config(membership(1, &[]));
    config.broker.stale_after = Duration::from_secs(60);
    let broker = start_broker(config, None).await;
    let mut alice = connected(host, &broker.url(), 1).await;
    broker.go_silent(ConnSelector::Pubkey(pubkey(1))).await;
    let failure = alice
        .wait_for("a disconnect", |e| match note(e) {
            Some(Notification::Disconnected { failure, .. }) => Some(failure.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(failure, Failure::Stale { .. }),
        "the first disconnect was not the watchdog's: {failure}"
    );
    alice
        .wait_for("the reconnect", |e| match note(e) {
            Some(Notification::Connected { first: false, .. }) => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(alice.stats().await.lifecycle.failures_of(FailureClass::Stale), 1);
    alice.close().await;
    broker.stop().await;
}

async fn garbage_frames_are_counted_and_survived(host: Host) {
    // proves L5
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let mut alice = connected(host, &broker.url(), 1).await;
    broker
        .send_garbage(ConnSelector::All, "{definitely not json")
        .await;
    alice
        .wait_for("the dropped frame", |e| match note(e) {
            Some(Notification::FrameDropped(_)) => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(alice.status(), Status::Open);
    assert_eq!(alice.stats().await.lifecycle.frames_dropped, 1);
    assert!(alice.list_peers().await.is_ok(), "still usable");
    alice.close().await;
    broker.stop().await;
}

async fn oversized_frames_are_refused_with_a_clear_error(host: Host) {
    // proves X4
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let mut s = spec(&broker.url(), 1, "s1");
    s.transport.max_message_size = 64 * 1024;
    s.session.max_send_len = 64 * 1024;
    let mut alice = AnyClient::connect(host, s).await.unwrap();
    // Outbound: refused at the call, nothing sent.
    let big = "x".repeat(100 * 1024);
    match alice.send(&pubkey(1), &big, Priority::Next).await {
        Err(CallError::Refused(SendRefusal::TooLarge { .. }, text)) => {
            assert!(text.contains("limit"), "{text}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Inbound: the socket is dropped with 1009 and the client reconnects.
    broker
        .send_garbage(ConnSelector::All, "y".repeat(200 * 1024))
        .await;
    let failure = alice
        .wait_for("the oversize close", |e| match note(e) {
            Some(Notification::Disconnected { failure, .. }) => Some(failure.clone()),
            _ => None,
        })
        .await;
    assert_eq!(failure.close_code(), 1009, "{failure}");
    alice.wait_status("open", |s| s == Status::Open).await;
    alice.close().await;
    broker.stop().await;
}

async fn wss_with_a_self_signed_certificate_needs_its_ca(host: Host) {
    // proves X5
    let (tls, ca) = self_signed_broker_tls();
    let broker = start_broker(broker_config(membership(1, &[])), Some(tls)).await;
    let url = broker.url();
    assert!(url.starts_with("wss://"), "{url}");
    // A TLS handshake in a debug build on a loaded machine can take longer
    // than the suite's 2 s open, 500 ms hello and 3 s ack deadlines, and then the
    // attempt fails for time, not for its certificate: this test waits on
    // the outcome itself, with deadlines far beyond any load.
    let patient = |mut s: tether_tests::hosts::Spec| {
        s.session.lifecycle.open_timeout = Some(Duration::from_secs(30));
        s.session.lifecycle.hello_ack_timeout = Duration::from_secs(30);
        s.session.send_ack_timeout = Duration::from_secs(30);
        s
    };
    // Verification is on by default: the unknown issuer is refused, as a
    // certificate failure, which stops (it will not verify next time either).
    match AnyClient::connect(host, patient(spec(&url, 1, "s1"))).await {
        Err(f) => {
            assert!(f.text.contains("certificate"), "{}", f.text);
            assert!(
                matches!(
                    f.reason.as_ref(),
                    Some(StopReason::Permanent {
                        failure: Failure::ConnectFailed {
                            kind: ConnectFailureKind::TlsCertificate,
                            ..
                        }
                    })
                ),
                "{f:?}"
            );
            assert!(f.permanent);
        }
        Ok(_) => panic!("a self-signed broker was trusted without its CA"),
    }
    let mut s = patient(spec(&url, 1, "s1"));
    s.transport.tls.extra_ca_pem.push(ca);
    let alice = AnyClient::connect(host, s).await.unwrap();
    // A broadcast: the real broker refuses a direct send to one's own only connection.
    alice.send("*", "over tls", Priority::Next).await.unwrap();
    alice.close().await;
    broker.stop().await;
}
