//! The socket side behaves the same on both hosts, end to end (issue 12's
//! drifts, each a scenario run on tokio and mio): the peer's close frame is
//! answered with its own code, ours reaches the peer, a write queue behind a
//! stuck peer overflows into close 1006 "write queue full", a silent peer is
//! noticed by the watchdog (D11), a run of failed reconnects after an open
//! connection backs off up to its budget (D10), `wss:` is detected in any
//! case, and pushes, subscriptions and events end after close.

mod self_signed;

use std::time::Duration;

use self_signed::self_signed_broker_tls;
use serde_json::json;
use tether_proto::hosted::{HostedConfig, HostedEvent};
use tether_proto::lifecycle::{Failure, Notification, StopReason};
use tether_proto::mesh::wire::Priority;
use tether_proto::policy::{Backoff, Jitter};
use tether_tests::e2e::*;
use tether_tests::hosted_server::{tokens, wait_for, HostedServer, Plan, ORGANIZATION, SESSION_ID};
use tether_tests::hosts::{AnyClient, AnyHosted, Host, HostedEvents};
use tether_tests::on_both_hosts;
use tether_tokio::HostedClientConfig;

on_both_hosts!(
    a_peers_close_frame_is_answered_with_its_own_code,
    our_close_frame_reaches_the_peer_with_its_code,
    a_stuck_peer_overflows_the_write_queue_into_1006,
    a_silent_server_is_noticed_by_the_watchdog,
    failed_reconnects_after_an_open_connection_back_off_and_recover,
    failed_reconnects_stop_when_the_budget_is_spent,
    an_upper_case_wss_url_gets_tls,
    pushes_and_events_end_after_close,
    a_slow_subscriber_loses_the_oldest_and_counts,
);

/// The test server's URL, short backoff (20, 40 ms), no jitter.
fn config(server: &HostedServer) -> HostedClientConfig {
    let mut hosted =
        HostedConfig::new(&server.base(), SESSION_ID, ORGANIZATION).unwrap_or_else(|e| panic!("{e}"));
    hosted.lifecycle.jitter = Jitter::NONE;
    hosted.lifecycle.backoff =
        Backoff::new(vec![Duration::from_millis(20), Duration::from_millis(40)]).unwrap_or_default();
    let mut c = HostedClientConfig::new(hosted);
    c.seed = Some(11);
    c
}

/// Polls the server's record until `pred` holds; the server writes it from
/// its own tasks, so there is no event to wait on.
async fn until_seen(server: &HostedServer, what: &str, pred: impl Fn(&[u16]) -> bool) {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            if pred(&server.seen().client_closes) {
                return;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{what}: the server saw {:?}",
        server.seen().client_closes
    );
}

async fn start(host: Host, config: HostedClientConfig) -> (AnyHosted, HostedEvents) {
    let (provider, _) = tokens();
    let (client, events) = AnyHosted::spawn(host, config, provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connected().await.unwrap_or_else(|e| panic!("{e}"));
    (client, events)
}

async fn a_peers_close_frame_is_answered_with_its_own_code(host: Host) {
    // proves X1: the seeds' tokio host dropped the socket, so brokers logged
    // 1006, not their code; both hosts now answer the close frame.
    let server = HostedServer::start(vec![Plan::Serve, Plan::Close(4003)]).await;
    let (client, mut events) = start(host, config(&server)).await;
    client.reconnect().await.unwrap_or_else(|e| panic!("{e}"));
    wait_for(&mut events, "the 4003 stop", |e| match e {
        HostedEvent::Lifecycle(Notification::Closed { .. }) => Some(()),
        _ => None,
    })
    .await;
    until_seen(&server, "the echo of 4003", |c| c.contains(&4003)).await;
    client.close().await;
}

async fn our_close_frame_reaches_the_peer_with_its_code(host: Host) {
    // proves L11, X1: ours goes out, flushed before the socket is let go (the
    // linger), so the peer sees 1000 and not a dropped connection.
    let server = HostedServer::start(vec![]).await;
    let (client, _events) = start(host, config(&server)).await;
    client.close().await;
    until_seen(&server, "our close frame", |c| c == [1000]).await;
}

async fn a_stuck_peer_overflows_the_write_queue_into_1006(host: Host) {
    // proves X4, X1: one overflow rule on both hosts, a socket this far behind
    // is dead, and its refusal is counted the same way on both.
    let server = HostedServer::start(vec![Plan::Stall]).await;
    let mut c = config(&server);
    c.transport.write_queue = 8;
    c.transport.write_queue_bytes = 256 * 1024;
    let (client, mut events) = start(host, c).await;
    let pad = "p".repeat(32 * 1024);
    let mut sent = 0u32;
    // The kernel's buffers fill first; then the queue; then the socket is dropped
    // and the session is no longer connected, which refuses the next send.
    while sent < 20_000 {
        if client
            .send_control_request(json!({"subtype": "pad", "pad": pad}))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let failure = wait_for(&mut events, "the overflow close", |e| match e {
        HostedEvent::Lifecycle(Notification::Disconnected { failure, .. }) => Some(failure.clone()),
        _ => None,
    })
    .await;
    match &failure {
        Failure::Closed(close) => {
            assert_eq!((close.code, close.reason.as_str()), (1006, "write queue full"));
        }
        other => panic!("after {sent} sends: {other:?}"),
    }
    // The refusal is counted, once, by the same rule on both hosts.
    let stats = client.io_stats().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.queue_overflows, 1, "{stats:?}");
    client.close().await;
}

async fn a_silent_server_is_noticed_by_the_watchdog(host: Host) {
    // proves D11 over both hosts: the seed pinged and never noticed no answer
    let server = HostedServer::start(vec![Plan::Stall, Plan::Serve]).await;
    let mut c = config(&server);
    c.hosted.lifecycle.ping_interval = Duration::from_millis(100);
    c.hosted.lifecycle.stale_after = Duration::from_millis(300);
    let (client, mut events) = start(host, c).await;
    let failure = wait_for(&mut events, "the stale verdict", |e| match e {
        HostedEvent::Lifecycle(Notification::Disconnected { failure, .. }) => Some(failure.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(failure, Failure::Stale { .. }), "{failure:?}");
    wait_for(&mut events, "the reconnect", |e| match e {
        HostedEvent::Lifecycle(Notification::Connected { first: false, .. }) => Some(()),
        _ => None,
    })
    .await;
    client.close().await;
}

async fn failed_reconnects_after_an_open_connection_back_off_and_recover(host: Host) {
    // proves D10 over both hosts: the seed's first failed reconnect was final
    let server = HostedServer::start(vec![Plan::Drop, Plan::Refuse, Plan::Refuse, Plan::Serve]).await;
    let (client, mut events) = start(host, config(&server)).await;
    let mut failed = 0;
    wait_for(
        &mut events,
        "the reconnect after two failed attempts",
        |e| match e {
            HostedEvent::Lifecycle(Notification::Disconnected {
                failure: Failure::ConnectFailed { .. },
                ..
            }) => {
                failed += 1;
                None
            }
            HostedEvent::Lifecycle(Notification::Closed { reason }) => panic!("stopped: {reason:?}"),
            HostedEvent::Lifecycle(Notification::Connected { first: false, .. }) => Some(()),
            _ => None,
        },
    )
    .await;
    assert_eq!(failed, 2);
    assert_eq!(server.seen().authorizations.len(), 4);
    client.close().await;
}

async fn failed_reconnects_stop_when_the_budget_is_spent(host: Host) {
    // proves D10, S4 over both hosts: at most the budget of attempts in a row
    let mut plan = vec![Plan::Drop];
    plan.extend([Plan::Refuse; 10]);
    let server = HostedServer::start(plan).await;
    let (client, mut events) = start(host, config(&server)).await;
    let reason = wait_for(&mut events, "the stop", |e| match e {
        HostedEvent::Lifecycle(Notification::Closed { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(reason, StopReason::BudgetExhausted { attempts: 5, .. }),
        "{reason:?}"
    );
    // The open one, then the budget's five.
    assert_eq!(server.seen().authorizations.len(), 6);
    client.close().await;
}

async fn an_upper_case_wss_url_gets_tls(host: Host) {
    // proves X5 over both hosts: `WSS://` is TLS too (one host once sent it in the clear)
    let (tls, ca) = self_signed_broker_tls();
    let broker = start_broker(broker_config(membership(1, &[])), Some(tls)).await;
    let url = broker.url().replacen("wss://", "WSS://", 1);
    let mut s = spec(&url, 1, "s1");
    s.transport.tls.extra_ca_pem.push(ca);
    let alice = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    alice.send("*", "upper case", Priority::Next).await.unwrap();
    alice.close().await;
    broker.stop().await;
}

async fn pushes_and_events_end_after_close(host: Host) {
    // proves L11, X1: subscriptions and event streams end (None) once the client
    // is closed, though handles are still alive (the docs promise it; tokio once hung).
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let alice = AnyClient::connect(host, spec(&broker.url(), 1, "s1"))
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    let (mut pushes, mut events) = (alice.subscribe(), alice.events());
    alice.close().await;
    let ended = tokio::time::timeout(PATIENCE, async {
        while pushes.recv().await.is_some() {}
        while events.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "a subscription or the events outlived close");
    broker.stop().await;
}

async fn a_slow_subscriber_loses_the_oldest_and_counts(host: Host) {
    // proves B7, X4, X1: one rule on both hosts (one used to lose the newest):
    // the oldest go, counted.
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let alice = AnyClient::connect(host, spec(&broker.url(), 1, "s1"))
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    let mut s = spec(&broker.url(), 2, "s2");
    s.transport.subscriber_capacity = 4;
    let mut bob = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    let mut slow = bob.subscribe();
    for i in 0..10 {
        alice
            .send(&pubkey(2), &format!("m{i}"), Priority::Next)
            .await
            .unwrap();
    }
    // The client's own subscription keeps up: once it has m9, all ten have
    // arrived. `slow` may not have m9 yet, though: a push is handed to one
    // receiver after another, and a reader woken by the first can run before
    // the host reaches the next. The close runs on the host after that hand-out
    // and ends `slow` behind all it was given, so its end is the event to wait on.
    loop {
        let push = bob.next_push().await.expect("a push");
        if push.body.text() == Some("m9") {
            break;
        }
    }
    bob.close().await;
    let kept = tokio::time::timeout(PATIENCE, async {
        let mut kept = Vec::new();
        while let Some(push) = slow.recv().await {
            kept.push(push.body.text().unwrap_or_default().to_owned());
        }
        kept
    })
    .await
    .expect("the slow subscription ends after close");
    assert_eq!(kept, ["m6", "m7", "m8", "m9"]);
    assert_eq!(slow.missed(), 6);
    alice.close().await;
    broker.stop().await;
}
