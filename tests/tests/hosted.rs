//! The hosted session client end to end, one definition per scenario run on
//! both hosts, against the hosted test server (S1–S7, S10, D1, X14).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tether_proto::hosted::{HostedConfig, HostedEvent};
use tether_proto::lifecycle::{Notification, Status, StopReason};
use tether_proto::policy::{Jitter, Limit, LimitDelay, Match, Rule, Verdict};
use tether_tests::e2e::PATIENCE;
use tether_tests::hosted_server::{tokens, wait_for, HostedServer, Plan, ORGANIZATION, SESSION_ID};
use tether_tests::hosts::{AnyHosted, Host};
use tether_tokio::{ConnectError, HostedCallError, HostedClientConfig};

use tether_tests::on_both_hosts;

on_both_hosts!(
    a_session_connects_with_fresh_headers_and_echoes_control_requests,
    close_4003_stops_the_session,
    close_4001_is_retried_with_a_fresh_token,
    a_failed_first_connect_leaves_nothing_running,
    control_messages_are_refused_while_not_connected,
);

/// The server's subscribe URL with test timings: 4001 retried after 50 ms × n.
fn config(server: &HostedServer) -> HostedClientConfig {
    let mut hosted =
        HostedConfig::new(&server.base(), SESSION_ID, ORGANIZATION).unwrap_or_else(|e| panic!("{e}"));
    hosted.lifecycle.jitter = Jitter::NONE;
    hosted.lifecycle.policy.prepend(Rule {
        on: Match::Close(4001),
        verdict: Verdict::Limited(Limit {
            max_retries: 3,
            delay: LimitDelay::Linear(Duration::from_millis(50)),
        }),
    });
    let mut c = HostedClientConfig::new(hosted);
    c.seed = Some(7);
    c
}

async fn a_session_connects_with_fresh_headers_and_echoes_control_requests(host: Host) {
    // proves S1, S7, S10, X14 on both hosts
    let server = HostedServer::start(vec![]).await;
    let (provider, fetched) = tokens();
    let (client, mut events) = AnyHosted::spawn(host, config(&server), provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connected().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client.status(), Status::Open);
    let init = wait_for(&mut events, "the greeting", |e| match e {
        HostedEvent::Message(m) if m.kind() == "system" => Some(m.value().clone()),
        _ => None,
    })
    .await;
    assert_eq!(init["subtype"], "init", "handed up unchanged");
    {
        let seen = server.seen();
        assert_eq!(seen.authorizations, ["Bearer tok-1"]);
        assert_eq!(seen.versions, ["2023-06-01"]);
        assert_eq!(
            seen.paths,
            [format!(
                "/v1/sessions/ws/{SESSION_ID}/subscribe?organization_uuid={ORGANIZATION}"
            )]
        );
    }
    let id = client
        .send_control_request(json!({"subtype": "interrupt"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let echoed = wait_for(&mut events, "the control response", |e| match e {
        HostedEvent::Message(m) if m.kind() == "control_response" => Some(m.value().clone()),
        _ => None,
    })
    .await;
    assert_eq!(echoed["response"]["request_id"], id.as_str());
    assert_eq!(echoed["response"]["echo"]["subtype"], "interrupt");
    let second = client.send_control_request(json!({"subtype": "interrupt"})).await;
    assert_ne!(second.ok().as_deref(), Some(id.as_str()), "fresh request ids");
    client
        .send_control_response(json!({"type": "control_response", "response": {"subtype": "success"}}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.close().await;
    // The events end after the close (both hosts).
    let ended = tokio::time::timeout(PATIENCE, async { while events.recv().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the event stream did not end after close");
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
    assert_eq!(server.seen().responses.len(), 1);
}

async fn close_4003_stops_the_session(host: Host) {
    // proves S2, S6 on both hosts
    let server = HostedServer::start(vec![Plan::Serve, Plan::Close(4003)]).await;
    let (provider, _) = tokens();
    let (client, mut events) = AnyHosted::spawn(host, config(&server), provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connected().await.unwrap_or_else(|e| panic!("{e}"));
    // A forced reconnect meets the 4003 close: permanent, the session stops.
    client.reconnect().await.unwrap_or_else(|e| panic!("{e}"));
    let reason = wait_for(&mut events, "the stop", |e| match e {
        HostedEvent::Lifecycle(Notification::Closed { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(reason, StopReason::Permanent { .. }), "{reason:?}");
    assert_eq!(server.seen().authorizations.len(), 2, "no attempt after 4003");
    client.close().await;
}

async fn close_4001_is_retried_with_a_fresh_token(host: Host) {
    // proves S3, S1 on both hosts
    let server = HostedServer::start(vec![Plan::Serve, Plan::Close(4001), Plan::Close(4001)]).await;
    let (provider, fetched) = tokens();
    let (client, mut events) = AnyHosted::spawn(host, config(&server), provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connected().await.unwrap_or_else(|e| panic!("{e}"));
    client.reconnect().await.unwrap_or_else(|e| panic!("{e}"));
    // Each 4001 follows an open socket (open = connected): the third reconnect
    // is the one the server serves again.
    let mut closes = 0;
    wait_for(&mut events, "the reconnect after two 4001s", |e| match e {
        HostedEvent::Lifecycle(Notification::Disconnected { failure, .. })
            if failure.close_code() == 4001 =>
        {
            closes += 1;
            None
        }
        HostedEvent::Lifecycle(Notification::Connected { first: false, .. }) if closes == 2 => Some(()),
        _ => None,
    })
    .await;
    let seen = server.seen().authorizations.clone();
    assert_eq!(
        seen,
        ["Bearer tok-1", "Bearer tok-2", "Bearer tok-3", "Bearer tok-4"]
    );
    assert_eq!(fetched.load(Ordering::SeqCst), 4);
    client.close().await;
}

async fn a_failed_first_connect_leaves_nothing_running(host: Host) {
    // proves D1, S4 on both hosts
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = closed.local_addr().map(|a| a.port()).unwrap_or_default();
    drop(closed);
    let mut hosted = HostedConfig::new(&format!("http://127.0.0.1:{port}"), SESSION_ID, ORGANIZATION)
        .unwrap_or_else(|e| panic!("{e}"));
    hosted.lifecycle.jitter = Jitter::NONE;
    let (provider, _) = tokens();
    let (client, mut events) = AnyHosted::spawn(host, HostedClientConfig::new(hosted), provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let failed = client.connected().await;
    assert!(
        matches!(
            failed,
            Err(ConnectError::Failed(StopReason::FirstConnectFailed { .. }))
        ),
        "{failed:?}"
    );
    // Nothing keeps running: the event stream ends by itself.
    let ended = tokio::time::timeout(PATIENCE, async { while events.recv().await.is_some() {} }).await;
    assert!(ended.is_ok(), "something kept running after the failed connect");
    assert_eq!(client.status(), Status::Closed);
    client.close().await;
}

async fn control_messages_are_refused_while_not_connected(host: Host) {
    // proves S7 on both hosts
    let server = HostedServer::start(vec![]).await;
    let (provider, _) = tokens();
    let (client, _events) = AnyHosted::spawn(host, config(&server), provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connected().await.unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (client.status(), Status::Open);
    assert_eq!(a, b);
    let copy = client.clone();
    client.close().await;
    let refused = copy.send_control_request(json!({"subtype": "interrupt"})).await;
    assert!(
        matches!(
            refused,
            Err(HostedCallError::Shutdown | HostedCallError::Refused(_))
        ),
        "{refused:?}"
    );
}
