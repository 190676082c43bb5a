//! The tokio server against raw WebSocket clients on loopback.

mod common;

use common::*;
use futures_util::SinkExt;
use tether_broker::{BrokerConfig, ConnSelector, Membership};
use tether_proto::mesh::wire::{BrokerFrame, ClientAckFrame, ListPeersFrame, SendFrame};
use tokio_tungstenite::tungstenite::Message;

fn send_to(target: &str, id: &str) -> SendFrame {
    SendFrame {
        id: id.into(),
        target_spec: target.into(),
        priority: Default::default(),
        nonce: "bm9uY2U=".into(),
        ciphertext: "aGVsbG8=".into(),
        client_message_id: Some(id.into()),
        request_fingerprint: None,
        mentions: None,
        reply_to_id: None,
        body_version: None,
    }
}

async fn expect_rejection(ws: &mut Ws) -> (String, Option<u64>, u16, String) {
    let error = match next_frame(ws).await {
        BrokerFrame::Error(e) => e,
        other => panic!("expected an error frame, got {other:?}"),
    };
    let (code, reason) = next_close(ws).await;
    (error.code, error.retry_after_ms, code, reason)
}

#[tokio::test]
async fn a_signed_hello_is_acked_and_listed() {
    let broker = start(BrokerConfig::default()).await;
    assert!(broker.url().starts_with("ws://127.0.0.1:"));
    let mut ada = join(&broker.url(), 1, "s1").await;
    let _bob = join(&broker.url(), 2, "s2").await;
    send(
        &mut ada,
        ListPeersFrame {
            req_id: Some("r1".into()),
        },
    )
    .await;
    match next_frame(&mut ada).await {
        BrokerFrame::PeersList(list) => {
            assert_eq!(list.req_id.as_deref(), Some("r1"));
            // The requester is listed too, as the real broker lists it.
            let keys: Vec<&str> = list.peers.iter().map(|p| p.pubkey.as_str()).collect();
            assert_eq!(keys, [pubkey(1), pubkey(2)]);
        }
        other => panic!("{other:?}"),
    }
    let stats = broker.stats().await;
    assert_eq!((stats.accepted, stats.core.hellos_accepted), (2, 2));
    broker.stop().await;
}

// proves D3, D6 over a socket: the error frame comes first, then close 1008 with the code.
#[tokio::test]
async fn a_bad_signature_gets_an_error_then_close_1008() {
    let broker = start(BrokerConfig::default()).await;
    let mut ws = connect(&broker.url()).await;
    let mut hello = member(1).hello(&presence("s1"), unix_ms());
    hello.mesh_id = "tampered".into();
    send(&mut ws, hello).await;
    let (code, _, close, reason) = expect_rejection(&mut ws).await;
    assert_eq!(
        (code.as_str(), close, reason.as_str()),
        ("bad_signature", 1008, "bad_signature")
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_revoked_member_is_closed_4002_banned() {
    let roster = format!(
        r#"{{"meshes":{{"{MESH}":{{"members":[{{"memberId":"member-1","pubkey":"{}","displayName":"Ada","revoked":true}}]}}}}}}"#,
        pubkey(1)
    );
    let broker = start(BrokerConfig {
        membership: Membership::from_json_str(&roster).unwrap(),
        ..BrokerConfig::default()
    })
    .await;
    let mut ws = connect(&broker.url()).await;
    send(&mut ws, member(1).hello(&presence("s1"), unix_ms())).await;
    let (code, _, close, reason) = expect_rejection(&mut ws).await;
    assert_eq!(
        (code.as_str(), close, reason.as_str()),
        ("revoked", 4002, "banned")
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_frame_before_hello_is_no_hello() {
    let broker = start(BrokerConfig::default()).await;
    let mut ws = connect(&broker.url()).await;
    send(&mut ws, ListPeersFrame::default()).await;
    let (code, _, close, reason) = expect_rejection(&mut ws).await;
    assert_eq!(
        (code.as_str(), close, reason.as_str()),
        ("no_hello", 1008, "no_hello")
    );
    broker.stop().await;
}

// proves B1, X3 over a socket: ack to the sender, push to the target, a resend is not pushed again.
#[tokio::test]
async fn a_send_is_acked_and_pushed_exactly_once() {
    let broker = start(BrokerConfig::default()).await;
    let mut ada = join(&broker.url(), 1, "s1").await;
    let mut bob = join(&broker.url(), 2, "s2").await;
    send(&mut ada, send_to(&pubkey(2), "c1")).await;
    let ack = match next_frame(&mut ada).await {
        BrokerFrame::Ack(ack) => ack,
        other => panic!("{other:?}"),
    };
    assert_eq!((ack.id.as_str(), ack.queued), ("c1", true));
    let push = match next_frame(&mut bob).await {
        BrokerFrame::Push(push) => push,
        other => panic!("{other:?}"),
    };
    assert_eq!(push.message_id, ack.message_id);
    assert_eq!(push.sender_pubkey, pubkey(1));
    assert_eq!(push.ciphertext, "aGVsbG8=");
    send(
        &mut bob,
        ClientAckFrame {
            broker_message_id: Some(push.message_id.clone()),
            client_message_id: None,
        },
    )
    .await;

    // The resend is acked the same; then a fresh message is the next thing bob sees.
    send(&mut ada, send_to(&pubkey(2), "c1")).await;
    assert!(matches!(next_frame(&mut ada).await, BrokerFrame::Ack(a) if a.message_id == ack.message_id));
    send(&mut ada, send_to(&pubkey(2), "c2")).await;
    assert!(matches!(next_frame(&mut ada).await, BrokerFrame::Ack(a) if a.id == "c2"));
    let next = next_frame(&mut bob).await;
    assert_eq!(
        next.as_push().and_then(|p| p.client_message_id.as_deref()),
        Some("c2")
    );
    let stats = broker.stats().await;
    assert_eq!((stats.core.duplicate_sends, stats.core.client_acks), (1, 1));
    broker.stop().await;
}

// proves D4 (broker side) over a socket.
#[tokio::test]
async fn a_second_connection_of_a_session_replaces_the_first() {
    let broker = start(BrokerConfig::default()).await;
    let mut old = join(&broker.url(), 1, "s1").await;
    let _new = join(&broker.url(), 1, "s1").await;
    assert_eq!(next_close(&mut old).await, (1000, "session_replaced".to_owned()));
    broker.stop().await;
}

// proves X10 over a socket: retryAfterMs in the error frame and in a JSON close reason.
#[tokio::test]
async fn a_full_mesh_says_when_to_retry() {
    let broker = start(BrokerConfig {
        max_connections_per_mesh: 1,
        capacity_retry_after_ms: 1_234,
        ..BrokerConfig::default()
    })
    .await;
    let _ada = join(&broker.url(), 1, "s1").await;
    let mut bob = connect(&broker.url()).await;
    send(&mut bob, member(2).hello(&presence("s2"), unix_ms())).await;
    let (code, retry, close, reason) = expect_rejection(&mut bob).await;
    assert_eq!((code.as_str(), retry, close), ("capacity", Some(1_234), 1008));
    let (reason_code, retry_after) = tether_proto::policy::parse_reason(&reason);
    assert_eq!(reason_code, "capacity");
    assert_eq!(retry_after, Some(std::time::Duration::from_millis(1_234)));
    broker.stop().await;
}

#[tokio::test]
async fn fault_switches_reach_the_wire() {
    let broker = start(BrokerConfig::default()).await;
    broker
        .refuse_hellos("timestamp_skew", std::time::Duration::from_secs(60))
        .await;
    let mut ws = connect(&broker.url()).await;
    send(&mut ws, member(1).hello(&presence("s1"), unix_ms())).await;
    let (code, _, close, _) = expect_rejection(&mut ws).await;
    assert_eq!((code.as_str(), close), ("timestamp_skew", 1008));
    broker.allow_hellos().await;

    let mut ada = join(&broker.url(), 1, "s1").await;
    broker.send_garbage(ConnSelector::All, "}{ not json").await;
    assert_eq!(next_message(&mut ada).await, Message::text("}{ not json"));
    broker.drop_all(4000, "test drop").await;
    assert_eq!(next_close(&mut ada).await, (4000, "test drop".to_owned()));
    broker.stop().await;
}

// A broker restart: 1001 to everyone, the port is free again, and clients come back.
#[tokio::test]
async fn stop_closes_everyone_and_restart_reuses_the_port() {
    let broker = start(BrokerConfig::default()).await;
    let url = broker.url();
    let mut ada = join(&url, 1, "s1").await;
    let broker = broker.restart().await.unwrap();
    assert_eq!(next_close(&mut ada).await, (1001, "shutting down".to_owned()));
    assert_eq!(broker.url(), url);
    let _ada = join(&url, 1, "s1").await;
    broker.stop().await;
    broker.stop().await;
    assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_err());
}

// proves X15 over a socket: a frame over the limit is refused with an error that says
// so and close 1009, never a silent 1006; the broker counts it.
#[tokio::test]
async fn an_oversized_frame_gets_an_error_then_close_1009() {
    let broker = start(BrokerConfig::default()).await;
    for joined in [false, true] {
        let mut ws = if joined {
            join(&broker.url(), 1, "s1").await
        } else {
            connect(&broker.url()).await
        };
        let big = format!(r#"{{"type":"list_peers","pad":"{}"}}"#, "x".repeat(200 * 1024));
        ws.send(Message::text(big)).await.unwrap();
        match next_frame(&mut ws).await {
            BrokerFrame::Error(e) => {
                assert_eq!(e.code, "payload_too_large");
                assert!(e.message.contains("bytes >"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        let (code, reason) = next_close(&mut ws).await;
        assert_eq!(code, 1009);
        assert!(reason.starts_with("message too big"), "{reason}");
    }
    assert_eq!(broker.stats().await.core.frames_too_large, 2);
    broker.stop().await;
}

// proves X15 over a socket: a text frame that is not UTF-8 is closed with 1007 and a reason.
#[tokio::test]
async fn invalid_utf8_gets_close_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let broker = start(BrokerConfig::default()).await;
    let mut ws = join(&broker.url(), 1, "s1").await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    assert!(matches!(next_frame(&mut ws).await, BrokerFrame::Error(e) if e.code == "malformed"));
    let (code, reason) = next_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1007, "invalid UTF-8"));
    assert_eq!(broker.stats().await.core.frames_not_utf8, 1);
    broker.stop().await;
}

// proves X15 over a socket: a member that never reads pins neither the task nor more
// than `max_outbound_bytes` of queue; it is dropped and its queue freed at once.
#[tokio::test]
async fn a_reader_that_never_reads_is_dropped_within_its_byte_bound() {
    let max_outbound_bytes = 256 * 1024;
    let config = tether_broker::ServerConfig {
        max_outbound_bytes,
        write_timeout: std::time::Duration::from_millis(500),
        close_linger: std::time::Duration::from_millis(100),
        ..tether_broker::ServerConfig::default()
    };
    let broker = tether_broker::BrokerServer::start(config, loopback(), None)
        .await
        .unwrap();
    let mut ada = join(&broker.url(), 1, "s1").await;
    // Bob joins, then never reads again.
    let _bob = join(&broker.url(), 2, "s2").await;
    let body = "A".repeat(60 * 1024);
    let mut dropped = false;
    for i in 0..400 {
        let mut frame = send_to(&pubkey(2), &format!("c{i}"));
        frame.ciphertext = body.clone();
        send(&mut ada, frame).await;
        let BrokerFrame::Ack(ack) = next_frame(&mut ada).await else {
            panic!("no ack")
        };
        let stats = broker.stats().await;
        assert!(
            stats.peak_outbound_bytes <= max_outbound_bytes as u64,
            "{stats:?}"
        );
        if ack.error.is_some() {
            // Bob is gone and his presence lingers: the broker refuses nothing yet.
            panic!("{ack:?}");
        }
        if stats.slow_consumers + stats.write_timeouts > 0 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the reader that never reads was never dropped");
    let stats = broker.stats().await;
    eprintln!(
        "peak queued for the non-reader: {} bytes (bound {max_outbound_bytes}); slow consumers {}, write timeouts {}",
        stats.peak_outbound_bytes, stats.slow_consumers, stats.write_timeouts
    );
    assert!(
        stats.outbound_queued_bytes < max_outbound_bytes as u64,
        "{stats:?}"
    );
    assert_eq!(
        stats.core.lingering_presences, 1,
        "bob's presence lingers, his socket is gone"
    );
    broker.stop().await;
}
