//! X15: the broker attacked by its own members. Each attack of issue 14 is a story
//! here, and each asserts its bound with the broker's own counters, not timings.

use std::time::Duration;

use serde_json::json;
use tether_proto::mesh::identity::SecretKey;
use tether_proto::mesh::wire::{
    BrokerFrame, GroupRef, ListPeersFrame, ListStateFrame, RememberFrame, SetStateFrame, SetSummaryFrame,
};

use super::*;
use crate::core::DEFAULT_PRESENCE_GRACE;

fn error_code(frames: &[BrokerFrame]) -> Option<String> {
    frames.iter().find_map(|f| match f {
        BrokerFrame::Error(e) => Some(e.code.clone()),
        _ => None,
    })
}

fn closed_with(h: &mut Harness, conn: ConnId) -> Option<(u16, String)> {
    h.take(conn).into_iter().find_map(|k| match k {
        OutputKind::Close { code, reason } => Some((code, reason)),
        _ => None,
    })
}

// proves X15: closing connections moves their unconfirmed pushes, it never copies them
// to the key's other connections (issue 14: 9.5 MB → 1.8 GB in 10 s).
#[test]
fn x15_closing_connections_never_multiply_copies() {
    let mut h = Harness::new(BrokerConfig {
        max_connections_per_member: 100,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    let bobs: Vec<ConnId> = (0..50).map(|i| h.join(&member(2), &format!("b{i}"))).collect();
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    h.frames(ada);
    let copies = |h: &Harness| {
        let s = h.broker.stats();
        s.unacked_pushes + s.lease_queued + s.offline_queued
    };
    assert_eq!(copies(&h), 50, "one push per connection of the key");
    for &bob in &bobs {
        h.closed(bob);
        assert!(copies(&h) <= 50, "copies grew to {}", copies(&h));
    }
    assert_eq!(copies(&h), 50);
    assert_eq!(h.broker.stats().lingering_presences, 50);
}

// proves X15: only the same member may take a session over; a sessionId seen in
// list_peers is not a key to someone else's presence.
#[test]
fn x15_session_takeover_needs_the_same_member() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    h.join(&member(2), "s1");
    assert!(h.broker.is_open(ada), "member 2 cannot kick member 1's session");
    assert_eq!(h.broker.stats().sessions_replaced, 0);
    h.join(&member(1), "s1");
    assert!(!h.broker.is_open(ada), "member 1 can take its own session over");
    assert_eq!(h.broker.stats().sessions_replaced, 1);
}

// proves X15: an unproven `sessionPubkey` in a member hello never receives what is
// addressed to another member's key, online or away, proven or merely claimed.
#[test]
fn x15_a_claimed_session_key_never_steals_another_members_messages() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    let bob_session = SecretKey::from_seed([77; 32]);
    let bob_s = h.open();
    let hello = member(2).session_hello(&bob_session, &presence("s2b", None), T0_MS, 3_600_000);
    h.client(bob_s, hello);
    h.frames(bob_s);

    let mut steal_member = presence("evil", None);
    let mut steal_session = presence("evil2", None);
    let mut fresh = presence("evil3", None);
    let own = SecretKey::from_seed([78; 32]).public_key().to_hex();
    let mallory = h.open();
    let hello = {
        let mut f = member(3).hello(&steal_member, T0_MS);
        f.session_pubkey = Some(pubkey(2));
        f
    };
    h.client(mallory, hello);
    h.frames(mallory);
    let mallory2 = h.open();
    let hello = {
        let mut f = member(3).hello(&steal_session, T0_MS);
        f.session_pubkey = Some(bob_session.public_key().to_hex());
        f
    };
    h.client(mallory2, hello);
    h.frames(mallory2);
    // Bob goes away: his member key stays his.
    h.closed(bob);
    h.run_for(DEFAULT_PRESENCE_GRACE / 2);
    h.pong(ada);
    for (id, target) in [("c1", pubkey(2)), ("c2", bob_session.public_key().to_hex())] {
        h.client(ada, send(id, &target, "eA=="));
        h.frames(ada);
    }
    assert!(h.frames(mallory).iter().all(|f| f.as_push().is_none()));
    assert!(h.frames(mallory2).iter().all(|f| f.as_push().is_none()));
    assert_eq!(
        h.frames(bob_s).iter().filter(|f| f.as_push().is_some()).count(),
        2
    );

    // An uncontested claim of its own is honoured (the real product's clients rely on it).
    let carol = h.open();
    let hello = {
        fresh.extras.display_name = Some("carol".into());
        let mut f = member(4).hello(&fresh, h.now().unix_ms);
        f.session_pubkey = Some(own.clone());
        f
    };
    h.client(carol, hello);
    h.frames(carol);
    h.client(ada, send("c3", &own, "eA=="));
    h.frames(ada);
    assert_eq!(
        h.frames(carol).iter().filter(|f| f.as_push().is_some()).count(),
        1
    );
    steal_member.session_id.clear();
    steal_session.session_id.clear();
}

// proves X15: with a members file, names and groups are the file's; a hello can take
// neither another member's name nor a group it was not given.
#[test]
fn x15_names_and_groups_come_from_the_members_file() {
    let mut h = Harness::new(listed(3, &[]));
    let ada = h.join(&member(1), "s1");
    let mut liar = presence("s2", Some("Member 1"));
    liar.extras.groups = Some(vec![GroupRef {
        name: "ops".into(),
        role: Some("admin".into()),
    }]);
    let bob = h.join_with(&member(2), liar);
    let cy = h.join(&member(3), "s3");
    h.client(cy, send("c1", "@ops", "eA=="));
    h.frames(cy);
    assert_eq!(h.frames(ada).len(), 1, "member 1 is in ops by the file");
    assert!(
        h.frames(bob).is_empty(),
        "member 2 declared ops; the file says no"
    );
    h.client(cy, send("c2", "Member 1", "eA=="));
    h.frames(cy);
    assert_eq!(h.frames(ada).len(), 1);
    assert!(h.frames(bob).is_empty(), "the name is member 1's");
    h.client(cy, ListPeersFrame { req_id: None });
    let BrokerFrame::PeersList(list) = h.frames(cy).remove(0) else {
        panic!()
    };
    let bob_row = list.peers.iter().find(|p| p.pubkey == pubkey(2)).unwrap();
    assert_eq!(bob_row.display_name, "Member 2");
    assert!(bob_row.groups.is_empty());
}

// proves X15: roles come from the hello kind; no hello declares itself control-plane.
#[test]
fn x15_a_session_cannot_declare_itself_control_plane() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let key = SecretKey::from_seed([90; 32]);
    let mut p = presence("s2", None);
    p.extras.peer_type = Some("control-plane".into());
    p.extras.channel = Some("claudemesh-daemon".into());
    let conn = h.open();
    let mut hello = member(2).session_hello(&key, &p, T0_MS, 3_600_000);
    hello.role = Some("control-plane".into());
    h.client(conn, hello);
    h.frames(conn);
    h.client(ada, ListPeersFrame { req_id: None });
    let BrokerFrame::PeersList(list) = h.frames(ada).remove(0) else {
        panic!()
    };
    let row = list
        .peers
        .iter()
        .find(|p| p.member_pubkey.as_deref() == Some(pubkey(2).as_str()))
        .unwrap();
    assert_eq!(row.peer_role.as_deref(), Some("session"));
}

// proves X15: every member-chosen field is bounded; a breach is a clear error.
#[test]
fn x15_oversized_fields_are_refused_with_a_clear_error() {
    let mut h = Harness::open_broker();
    let conn = h.open();
    // Each within the frame limit (a bigger frame is closed with 1009), each over its own cap.
    let long_name = "x".repeat(1_000);
    let hello = member(1).hello(&presence("s1", Some(&long_name)), T0_MS);
    h.client(conn, hello);
    let frames = h.frames_and_close(conn);
    assert_eq!(error_code(&frames.0).as_deref(), Some("malformed"));
    assert_eq!(frames.1, Some((1008, "malformed".to_owned())));

    let ada = h.join(&member(1), "s1");
    h.client(
        ada,
        SetStateFrame {
            key: "k".into(),
            value: json!("v".repeat(20 * 1024)),
        },
    );
    h.client(
        ada,
        RememberFrame {
            content: "m".repeat(20 * 1024),
            tags: None,
            req_id: Some("r1".into()),
        },
    );
    h.client(
        ada,
        SetSummaryFrame {
            summary: "s".repeat(5_000),
        },
    );
    let frames = h.frames(ada);
    assert_eq!(frames.len(), 3, "{frames:?}");
    for f in &frames {
        assert!(
            matches!(f, BrokerFrame::Error(e) if e.code == "payload_too_large"),
            "{f:?}"
        );
    }
    assert!(matches!(&frames[1], BrokerFrame::Error(e) if e.req_id.as_deref() == Some("r1")));
    assert_eq!(h.broker.stats().fields_too_large, 4);
    assert!(h.broker.is_open(ada));
}

// proves X15: no reply grows past the clients' frame limit: lists are cut and marked.
#[test]
fn x15_replies_are_cut_to_the_reply_limit_with_a_marker() {
    let mut h = Harness::new(BrokerConfig {
        max_reply_len: 2_000,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    for i in 0..100 {
        h.client(
            ada,
            SetStateFrame {
                key: format!("key-{i}"),
                value: json!("some value"),
            },
        );
    }
    h.client(
        ada,
        ListStateFrame {
            req_id: Some("r".into()),
        },
    );
    let texts: Vec<String> = h
        .take(ada)
        .into_iter()
        .filter_map(|k| match k {
            OutputKind::Send(t) => Some(t),
            _ => None,
        })
        .collect();
    let reply = texts.last().unwrap();
    assert!(reply.len() <= 2_000, "{} bytes", reply.len());
    let value: serde_json::Value = serde_json::from_str(reply).unwrap();
    assert_eq!(value["truncated"], json!(true));
    let shown = value["entries"].as_array().unwrap().len();
    assert_eq!(value["omitted"], json!(100 - shown));
    assert_eq!(value["_reqId"], json!("r"));
    assert_eq!(h.broker.stats().replies_truncated, 1);
}

// proves X15: one member cannot hold a mesh's every slot.
#[test]
fn x15_connections_per_member_are_capped() {
    let mut h = Harness::new(BrokerConfig {
        max_connections_per_member: 2,
        ..BrokerConfig::default()
    });
    h.join(&member(1), "a");
    h.join(&member(1), "b");
    let third = h.open();
    h.client(third, member(1).hello(&presence("c", None), T0_MS));
    let (frames, close) = h.frames_and_close(third);
    assert_eq!(error_code(&frames).as_deref(), Some("capacity"));
    assert_eq!(close.map(|c| c.0), Some(1008));
    h.join(&member(2), "d");
    assert_eq!(h.broker.stats().open_connections, 3);
}

// proves X15: connections that never say hello have a cap of their own.
#[test]
fn x15_pre_hello_connections_are_capped() {
    let mut h = Harness::new(BrokerConfig {
        max_pending_hellos: 3,
        ..BrokerConfig::default()
    });
    let idle: Vec<ConnId> = (0..3).map(|_| h.open()).collect();
    let fourth = h.open();
    assert!(matches!(closed_with(&mut h, fourth), Some((1008, _))));
    let stats = h.broker.stats();
    assert_eq!((stats.pending_hellos, stats.connections_refused), (3, 1));
    // A hello frees its slot.
    h.client(idle[0], member(1).hello(&presence("s1", None), T0_MS));
    assert_eq!(h.broker.stats().pending_hellos, 2);
    h.open();
    assert_eq!(h.broker.stats().connections_refused, 1);
}

// proves X15: in an open broker, throwaway meshes are freed once empty, so they
// cannot lock new meshes out until a restart.
#[test]
fn x15_empty_meshes_are_freed() {
    let mut h = Harness::new(BrokerConfig {
        max_meshes: 2,
        ..BrokerConfig::default()
    });
    let a = h.join_with(&member_in(1, "m-a"), presence("s", None));
    h.join_with(&member_in(2, "m-b"), presence("s", None));
    let conn = h.open();
    h.client(conn, member_in(3, "m-c").hello(&presence("s", None), T0_MS));
    assert_eq!(
        error_code(&h.frames_and_close(conn).0).as_deref(),
        Some("capacity")
    );
    h.closed(a);
    h.run_for(DEFAULT_PRESENCE_GRACE / 2);
    assert_eq!(h.broker.stats().meshes, 2, "m-a lingers through the grace");
    h.run_for(DEFAULT_PRESENCE_GRACE);
    assert_eq!(h.broker.stats().meshes_freed, 1, "m-a is forgotten");
    let conn = h.open();
    let hello = member_in(3, "m-c").hello(&presence("s", None), h.now().unix_ms);
    h.client(conn, hello);
    assert!(h.broker.is_open(conn));
}

// proves X15: a duplicate `type` key is refused like every other duplicate key.
#[test]
fn x15_a_duplicate_type_key_is_refused() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    h.frame(ada, r#"{"type":"list_peers","type":"send","id":"x"}"#);
    assert_eq!(error_code(&h.frames(ada)).as_deref(), Some("malformed"));
    let conn = h.open();
    h.frame(conn, r#"{"type":"list_peers","\u0074ype":"hello"}"#);
    assert!(matches!(closed_with(&mut h, conn), Some((1008, r)) if r == "malformed"));
    assert_eq!(h.broker.stats().duplicate_type_keys, 2);
}

// proves X15: what the broker keeps for absent presences has one byte budget, and each
// connection's unconfirmed pushes another.
#[test]
fn x15_kept_and_unconfirmed_bytes_are_bounded() {
    let mut h = Harness::new(BrokerConfig {
        max_kept_bytes: 4_000,
        max_unacked_bytes_per_conn: 3_000,
        offline_queue_per_key: 1_000,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    let body = "A".repeat(500);
    for i in 0..20 {
        h.client(ada, send(&format!("c{i}"), &pubkey(2), &body));
        assert!(h.broker.stats().unacked_bytes <= 3_000);
    }
    assert!(h.broker.stats().unacked_dropped > 0);
    h.closed(bob);
    for i in 20..40 {
        h.client(ada, send(&format!("c{i}"), &pubkey(2), &body));
        assert!(h.broker.stats().kept_bytes <= 4_000);
    }
    assert!(h.broker.stats().offline_dropped > 0);
    h.frames(ada);
    let _ = Duration::ZERO;
}
