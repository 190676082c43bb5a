//! Admission: accepted hellos, every rejection row of PROTOCOL.md, capacity, replacement.

use std::time::Duration;

use tether_proto::mesh::identity::SecretKey;
use tether_proto::mesh::wire::{BrokerFrame, ErrorFrame, ListPeersFrame};

use super::*;
use crate::core::{Notice, OutputKind};

/// The error frame then the close a rejection is made of.
fn rejection(h: &mut Harness, conn: ConnId) -> (ErrorFrame, u16, String) {
    let out = h.take(conn);
    assert_eq!(out.len(), 2, "{out:?}");
    let error = match &out[0] {
        OutputKind::Send(text) => match decode(text) {
            BrokerFrame::Error(e) => e,
            other => panic!("not an error: {other:?}"),
        },
        other => panic!("not a frame: {other:?}"),
    };
    match &out[1] {
        OutputKind::Close { code, reason } => (error, *code, reason.clone()),
        other => panic!("not a close: {other:?}"),
    }
}

fn hello_on_new_conn(h: &mut Harness, frame: impl Into<ClientFrame>) -> ConnId {
    let conn = h.open();
    h.client(conn, frame);
    conn
}

// proves B12: a freshly signed hello is acked with a presence id and the member's name.
#[test]
fn a_signed_hello_is_acked() {
    let mut h = Harness::open_broker();
    let conn = h.open();
    let hello = member(1).hello(&presence("s1", Some("Ada")), T0_MS);
    h.client(conn, hello);
    match h.frames(conn).as_slice() {
        [BrokerFrame::HelloAck(ack)] => {
            assert!(ack.presence_id.starts_with("presence-"));
            assert_eq!(ack.member_display_name, "Ada");
        }
        other => panic!("{other:?}"),
    }
    assert!(h.broker.is_open(conn));
    assert!(h
        .outbox
        .iter()
        .any(|o| matches!(o.kind, OutputKind::Notice(Notice::HelloAccepted { .. }))));
    assert_eq!(h.broker.stats().hellos_accepted, 1);
}

#[test]
fn a_bad_signature_is_refused_then_closed_1008() {
    let mut h = Harness::open_broker();
    let mut hello = member(1).hello(&presence("s1", None), T0_MS);
    hello.member_id = "someone-else".into();
    let conn = hello_on_new_conn(&mut h, hello);
    let (error, code, reason) = rejection(&mut h, conn);
    assert_eq!(
        (error.code.as_str(), code, reason.as_str()),
        ("bad_signature", 1008, "bad_signature")
    );
    assert!(!h.broker.is_open(conn));
    assert_eq!(h.broker.stats().hellos_rejected.get("bad_signature"), Some(&1));
    // The core forgot the connection: later frames are ignored.
    h.frame(conn, "{}");
    assert!(h.take(conn).is_empty());
}

#[test]
fn a_skewed_or_malformed_hello_is_refused() {
    let mut h = Harness::open_broker();
    let stale = member(1).hello(&presence("s1", None), T0_MS - 61_000);
    let conn = hello_on_new_conn(&mut h, stale);
    let (error, code, reason) = rejection(&mut h, conn);
    assert_eq!(
        (error.code.as_str(), code, reason.as_str()),
        ("timestamp_skew", 1008, "timestamp_skew")
    );

    let conn = h.open();
    h.frame(conn, r#"{"type":"hello","meshId":"m"}"#);
    let (error, code, reason) = rejection(&mut h, conn);
    assert_eq!(
        (error.code.as_str(), code, reason.as_str()),
        ("malformed", 1008, "malformed")
    );

    let mut bad_key = member(1).hello(&presence("s1", None), T0_MS);
    bad_key.pubkey = "xyz".into();
    let conn = hello_on_new_conn(&mut h, bad_key);
    assert_eq!(rejection(&mut h, conn).0.code, "malformed");
}

#[test]
fn anything_before_hello_is_no_hello() {
    let mut h = Harness::open_broker();
    let conn = hello_on_new_conn(&mut h, ListPeersFrame::default());
    let (error, code, reason) = rejection(&mut h, conn);
    assert_eq!(
        (error.code.as_str(), code, reason.as_str()),
        ("no_hello", 1008, "no_hello")
    );
    let conn = h.open();
    h.frame(conn, "garbage");
    assert_eq!(rejection(&mut h, conn).0.code, "no_hello");
}

#[test]
fn listed_membership_admits_members_only() {
    let mut h = Harness::new(listed(2, &[2]));
    let conn = h.join(&member(1), "s1");
    assert!(h.broker.is_open(conn));

    let stranger = hello_on_new_conn(&mut h, member(9).hello(&presence("s9", None), T0_MS));
    let (error, code, reason) = rejection(&mut h, stranger);
    assert_eq!(
        (error.code.as_str(), code, reason.as_str()),
        ("unauthorized", 1008, "unauthorized")
    );

    let elsewhere = hello_on_new_conn(&mut h, member_in(1, "other").hello(&presence("s", None), T0_MS));
    assert_eq!(rejection(&mut h, elsewhere).0.code, "unauthorized");

    let mut impostor = member(1);
    impostor.member_id = "member-2".into();
    let conn = hello_on_new_conn(&mut h, impostor.hello(&presence("s", None), T0_MS));
    assert_eq!(rejection(&mut h, conn).0.code, "unauthorized");
}

// proves D3: a revoked member is told `revoked` and closed 4002 `banned`.
#[test]
fn a_revoked_member_is_banned() {
    let mut h = Harness::new(listed(2, &[2]));
    let conn = hello_on_new_conn(&mut h, member(2).hello(&presence("s2", None), T0_MS));
    let (error, code, reason) = rejection(&mut h, conn);
    assert_eq!(
        (error.code.as_str(), code, reason.as_str()),
        ("revoked", 4002, "banned")
    );
    assert!(error.message.contains("member-2"));
}

#[test]
fn session_hellos_are_verified_and_need_a_listed_parent() {
    let mut h = Harness::new(listed(1, &[]));
    let session_key = SecretKey::from_seed([42; 32]);
    let hello = member(1).session_hello(&session_key, &presence("s1", None), T0_MS, 3_600_000);
    let conn = hello_on_new_conn(&mut h, hello);
    assert!(matches!(h.frames(conn).as_slice(), [BrokerFrame::HelloAck(_)]));

    let hello = member(7).session_hello(&session_key, &presence("s7", None), T0_MS, 3_600_000);
    let conn = hello_on_new_conn(&mut h, hello);
    assert_eq!(rejection(&mut h, conn).0.code, "unauthorized");

    let mut expired = member(1).session_hello(&session_key, &presence("s1b", None), T0_MS, 3_600_000);
    expired.parent_attestation.expires_at = T0_MS - 1;
    let conn = hello_on_new_conn(&mut h, expired);
    let (error, code, reason) = rejection(&mut h, conn);
    assert_eq!(
        (error.code.as_str(), code, reason.as_str()),
        ("expired", 1008, "expired")
    );
}

// proves X10: a full mesh refuses with `capacity` and says when to come back.
#[test]
fn a_full_mesh_refuses_with_retry_after() {
    let mut h = Harness::new(BrokerConfig {
        max_connections_per_mesh: 1,
        capacity_retry_after_ms: 2_500,
        ..BrokerConfig::default()
    });
    h.join(&member(1), "s1");
    let conn = hello_on_new_conn(&mut h, member(2).hello(&presence("s2", None), T0_MS));
    let (error, code, reason) = rejection(&mut h, conn);
    assert_eq!(
        (error.code.as_str(), error.retry_after_ms, code),
        ("capacity", Some(2_500), 1008)
    );
    let reason: serde_json::Value = serde_json::from_str(&reason).unwrap();
    assert_eq!(
        reason,
        serde_json::json!({"code": "capacity", "retryAfterMs": 2500})
    );
    // Another mesh has room of its own; a replacement of the same session fits too.
    h.join(&member_in(2, "mesh-2"), "s2");
    h.join(&member(1), "s1");
}

// proves D4 (broker side): a second connection of a session replaces the first.
#[test]
fn the_same_session_replaces_the_old_connection() {
    let mut h = Harness::open_broker();
    let old = h.join(&member(1), "s1");
    let other_session = h.join(&member(1), "s2");
    let new = h.join(&member(1), "s1");
    assert_eq!(
        h.take(old),
        vec![OutputKind::Close {
            code: 1000,
            reason: "session_replaced".into()
        }]
    );
    assert!(h.broker.is_open(new) && h.broker.is_open(other_session) && !h.broker.is_open(old));
    assert_eq!(h.broker.stats().sessions_replaced, 1);
}

#[test]
fn a_second_hello_on_an_open_connection_is_an_error_not_a_close() {
    let mut h = Harness::open_broker();
    let conn = h.join(&member(1), "s1");
    h.client(conn, member(1).hello(&presence("s1", None), T0_MS));
    assert!(matches!(h.frames(conn).as_slice(), [BrokerFrame::Error(e)] if e.code == "duplicate_hello"));
    assert!(h.broker.is_open(conn));
}

#[test]
fn a_hello_must_come_within_the_hello_timeout() {
    let mut h = Harness::open_broker();
    let conn = h.open();
    h.advance(Duration::from_secs(9));
    assert!(h.take(conn).is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take(conn),
        vec![OutputKind::Close {
            code: 1008,
            reason: "hello_timeout".into()
        }]
    );
    assert_eq!(h.broker.stats().hello_timeouts, 1);
}

// proves X10 (issue 16): hellos beyond the broker's rate are refused with
// `capacity` before their signature is checked, each told its own turn.
#[test]
fn hellos_beyond_the_rate_are_refused_each_with_its_turn() {
    let mut h = Harness::new(BrokerConfig {
        hello_rate: Some(crate::core::HelloRate {
            per_second: 10,
            burst: 1,
            max_wait: Duration::from_secs(300),
        }),
        ..BrokerConfig::default()
    });
    h.join(&member(1), "s1");
    let mut turns = Vec::new();
    for n in 2..=4 {
        let conn = hello_on_new_conn(&mut h, member(n).hello(&presence("s", None), T0_MS));
        let (error, code, _) = rejection(&mut h, conn);
        assert_eq!((error.code.as_str(), code), ("capacity", 1008));
        turns.push(error.retry_after_ms);
    }
    assert_eq!(turns, vec![Some(100), Some(200), Some(300)]);
    assert_eq!(h.broker.stats().hellos_rate_limited, 3);
    // A bad signature refused by rate costs no verification: still `capacity`.
    let mut forged = member(5).hello(&presence("s5", None), T0_MS);
    forged.member_id = "someone-else".into();
    let conn = hello_on_new_conn(&mut h, forged);
    assert_eq!(rejection(&mut h, conn).0.code, "capacity");
    // At its turn the first refused client is admitted.
    h.advance(Duration::from_millis(100));
    h.join(&member(2), "s");
}
