//! Sends: acks, pushes, targets, exactly-once, offline queues and leases.

use std::time::Duration;

use tether_proto::mesh::identity::SecretKey;
use tether_proto::mesh::wire::{
    AckFrame, BrokerFrame, ClientAckFrame, GroupRef, ListPeersFrame, PushFrame, SetVisibleFrame,
};

use crate::core::DEFAULT_PRESENCE_GRACE;

use super::*;

fn ack_of(frames: &[BrokerFrame]) -> AckFrame {
    match frames {
        [BrokerFrame::Ack(ack)] => ack.clone(),
        other => panic!("expected one ack, got {other:?}"),
    }
}

fn push_of(frames: &[BrokerFrame]) -> PushFrame {
    match frames {
        [BrokerFrame::Push(push)] => (**push).clone(),
        other => panic!("expected one push, got {other:?}"),
    }
}

// proves B1, B6 (broker side): a send is acked and pushed with every field the client needs.
#[test]
fn a_send_is_acked_and_pushed() {
    let mut h = Harness::open_broker();
    let ada = h.join_with(&member(1), presence("s1", Some("Ada")));
    let bob = h.join_with(&member(2), presence("s2", Some("Bob")));
    h.client(ada, send("c1", "Bob", "aGk="));
    let ack = ack_of(&h.frames(ada));
    // The real broker acks every accepted send `queued: true`.
    assert_eq!((ack.id.as_str(), ack.queued, ack.error), ("c1", true, None));
    let push = push_of(&h.frames(bob));
    assert_eq!(push.message_id, ack.message_id);
    assert_eq!(push.mesh_id, MESH);
    assert_eq!(push.sender_pubkey, pubkey(1));
    assert_eq!(push.sender_member_pubkey, Some(pubkey(1)));
    assert_eq!(push.sender_name.as_deref(), Some("Ada"));
    assert_eq!(push.ciphertext, "aGk=");
    assert_eq!(push.created_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(push.client_message_id.as_deref(), Some("c1"));
    assert_eq!(push.request_fingerprint.as_deref(), Some("ab12"));
    // By pubkey too.
    h.client(bob, send("c2", &pubkey(1), "eW8="));
    ack_of(&h.frames(bob));
    assert_eq!(push_of(&h.frames(ada)).ciphertext, "eW8=");
}

// proves X3 (broker side): a resend with the same client_message_id gets the same ack, no second push.
#[test]
fn a_resent_message_is_delivered_once() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.client(ada, send("c1", &pubkey(2), "aGk="));
    let first = ack_of(&h.frames(ada));
    assert_eq!(h.frames(bob).len(), 1);
    h.client(ada, send("c1", &pubkey(2), "aGk="));
    assert_eq!(ack_of(&h.frames(ada)), first);
    assert!(h.frames(bob).is_empty());
    assert_eq!(h.broker.stats().duplicate_sends, 1);
}

#[test]
fn the_dedupe_window_is_bounded() {
    let mut h = Harness::new(BrokerConfig {
        dedupe_window: 2,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    h.join(&member(2), "s2");
    for id in ["c1", "c2", "c3"] {
        h.client(ada, send(id, &pubkey(2), "eA=="));
    }
    let stats = h.broker.stats();
    assert_eq!((stats.dedupe_entries, stats.dedupe_evicted), (2, 1));
}

// proves B16 (broker side): an unknown or offline direct target is an error ack, as
// the real broker sends it, never an `error` frame; multicasts to nobody are accepted.
#[test]
fn an_unknown_direct_target_is_an_error_ack() {
    let mut h = Harness::new(listed(3, &[]));
    let ada = h.join(&member(1), "s1");
    // Member 2 is on the roster but offline; member 9 is nobody; the sender's own key
    // reaches no other session of its own.
    for (id, target) in [
        ("c1", pubkey(2)),
        ("c2", pubkey(9)),
        ("c3", pubkey(1)),
        ("c4", "nobody".into()),
    ] {
        h.client(ada, send(id, &target, "eA=="));
        let ack = ack_of(&h.frames(ada));
        assert_eq!(
            (ack.id.as_str(), ack.message_id.as_str(), ack.queued),
            (id, "", false)
        );
        assert_eq!(ack.error.as_deref(), Some(crate::core::NO_CONNECTED_PEER));
        assert!(!ack.is_permanent_failure(), "the peer may come back");
    }
    for (id, target) in [("c5", "@nogroup"), ("c6", "*"), ("c7", "#news")] {
        h.client(ada, send(id, target, "eA=="));
        let ack = ack_of(&h.frames(ada));
        assert_eq!((ack.queued, ack.error), (true, None), "{target}");
    }
    assert_eq!(h.broker.stats().targets_not_found, 4);
}

#[test]
fn a_too_large_payload_is_a_failed_ack() {
    let mut h = Harness::new(BrokerConfig {
        max_payload: 8,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.client(ada, send("c1", "*", "0123456789"));
    let ack = ack_of(&h.frames(ada));
    assert_eq!((ack.message_id.as_str(), ack.queued), ("", false));
    // The real broker counts ciphertext, nonce and target: 10 + 8 + 1.
    assert_eq!(
        ack.error.as_deref(),
        Some("payload too large: 19 bytes > MAX_MESSAGE_BYTES=8")
    );
    assert!(ack.is_permanent_failure());
    assert!(h.frames(bob).is_empty());
}

// Multicasts reach the visible connections of the other members, as the real broker's.
#[test]
fn broadcast_group_and_topic_targets() {
    let mut h = Harness::open_broker();
    let mut ops = presence("s1", Some("Ada"));
    ops.extras.groups = Some(vec![GroupRef {
        name: "ops".into(),
        role: None,
    }]);
    let ada = h.join_with(&member(1), ops);
    let ada2 = h.join(&member(1), "s1b");
    let bob = h.join(&member(2), "s2");
    let cy = h.join(&member(3), "s3");

    h.client(cy, send("c1", "*", "eA=="));
    ack_of(&h.frames(cy));
    assert_eq!((h.frames(ada).len(), h.frames(bob).len()), (1, 1));
    h.frames(ada2);

    h.client(bob, send("c2", "@ops", "eA=="));
    ack_of(&h.frames(bob));
    assert_eq!((h.frames(ada).len(), h.frames(cy).len()), (1, 0));

    h.client(ada, send("c3", "#news", "eA=="));
    ack_of(&h.frames(ada));
    assert_eq!(push_of(&h.frames(bob)).topic.as_deref(), Some("news"));
    assert_eq!(h.frames(cy).len(), 1);
    assert!(h.frames(ada2).is_empty(), "the sender's own sessions are skipped");

    h.client(cy, SetVisibleFrame { visible: false });
    h.client(bob, send("c4", "@all", "eA=="));
    ack_of(&h.frames(bob));
    assert!(h.frames(cy).is_empty(), "hidden peers get no multicast");
    assert_eq!(h.frames(ada).len(), 1);
}

// The real broker's presence grace: a closed connection's presence lingers 90 s, still
// listed; what is sent to it meanwhile (and what it had not confirmed) is delivered when
// the same session says hello again, silently.
#[test]
fn a_lingering_presence_gets_its_messages_on_reattach() {
    let mut h = Harness::new(BrokerConfig {
        offline_queue_per_key: 3,
        ..BrokerConfig::default()
    });
    let session = SecretKey::from_seed([60; 32]);
    let hello =
        |h: &Harness| member(2).session_hello(&session, &presence("s2", None), h.now().unix_ms, 3_600_000);
    let ada = h.join(&member(1), "s1");
    let bob = h.open();
    let first = hello(&h);
    h.client(bob, first);
    h.frames(bob);
    h.client(ada, send("c0", &session.public_key().to_hex(), "eA=="));
    ack_of(&h.frames(ada));
    assert_eq!(h.frames(bob).len(), 1, "pushed, never confirmed");
    h.closed(bob);
    assert_eq!(h.broker.stats().lingering_presences, 1);
    for id in ["c1", "c2", "c3"] {
        h.client(ada, send(id, &session.public_key().to_hex(), "eA=="));
        assert!(
            ack_of(&h.frames(ada)).queued,
            "accepted for the lingering presence"
        );
    }
    h.client(ada, ListPeersFrame { req_id: None });
    let BrokerFrame::PeersList(list) = h.frames(ada).remove(0) else {
        panic!()
    };
    assert_eq!(list.peers.len(), 2, "the lingering presence is still listed");
    assert_eq!(
        h.broker.stats().offline_dropped,
        1,
        "c0 dropped beyond the cap of 3"
    );

    h.advance(Duration::from_secs(70));
    let bob = h.open();
    let again = hello(&h);
    h.client(bob, again);
    let frames = h.frames(bob);
    assert!(matches!(frames[0], BrokerFrame::HelloAck(_)));
    let ids: Vec<_> = frames[1..]
        .iter()
        .filter_map(|f| f.as_push()?.client_message_id.clone())
        .collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);
    let stats = h.broker.stats();
    assert_eq!((stats.presences_reattached, stats.lingering_presences), (1, 0));
    assert!(h.frames(ada).is_empty(), "nobody hears of the reattach");
}

#[test]
fn a_presence_whose_grace_ran_out_is_gone() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.closed(bob);
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    assert!(ack_of(&h.frames(ada)).queued);
    h.run_for(Duration::from_secs(60));
    h.pong(ada);
    h.run_for(DEFAULT_PRESENCE_GRACE - Duration::from_secs(59));
    assert_eq!(h.broker.stats().presences_expired, 1);
    h.client(ada, send("c2", &pubkey(2), "eA=="));
    assert!(ack_of(&h.frames(ada)).error.is_some(), "no longer addressable");
    // What waited for it is kept for the member's next connection.
    let bob = h.open();
    let hello = member(2).hello(&presence("s2-new", None), h.now().unix_ms);
    h.client(bob, hello);
    let frames = h.frames(bob);
    assert_eq!(
        frames[1].as_push().unwrap().client_message_id.as_deref(),
        Some("c1")
    );
}

#[test]
fn unconfirmed_pushes_are_repushed_until_acked() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    h.client(ada, send("c2", &pubkey(2), "eQ=="));
    let first = h.frames(bob);
    assert_eq!(first.len(), 2);
    h.pong(bob);
    h.pong(ada);
    h.advance(Duration::from_secs(30));
    assert_eq!(h.frames(bob), first, "both re-pushed after the lease");

    let by_broker_id = first[0].as_push().unwrap().message_id.clone();
    h.client(
        bob,
        ClientAckFrame {
            broker_message_id: Some(by_broker_id),
            client_message_id: None,
        },
    );
    h.client(
        bob,
        ClientAckFrame {
            broker_message_id: None,
            client_message_id: Some("c2".into()),
        },
    );
    h.advance(Duration::from_secs(30));
    assert!(h.frames(bob).is_empty());
    let stats = h.broker.stats();
    assert_eq!(
        (stats.client_acks, stats.repushes, stats.unacked_pushes),
        (2, 2, 0)
    );
}

#[test]
fn pushes_are_given_up_after_the_cap() {
    let mut h = Harness::new(BrokerConfig {
        max_pushes_per_message: 2,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    for _ in 0..3 {
        h.advance(Duration::from_secs(30));
        h.pong(bob);
        h.pong(ada);
    }
    assert_eq!(h.frames(bob).len(), 2);
    assert_eq!(h.broker.stats().pushes_given_up, 1);
}

#[test]
fn the_unacked_table_is_bounded() {
    let mut h = Harness::new(BrokerConfig {
        max_unacked_per_conn: 1,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    h.join(&member(2), "s2");
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    h.client(ada, send("c2", &pubkey(2), "eA=="));
    let stats = h.broker.stats();
    assert_eq!((stats.unacked_pushes, stats.unacked_dropped), (1, 1));
}

#[test]
fn a_lost_connections_unconfirmed_pushes_go_to_its_successor() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    assert_eq!(h.frames(bob).len(), 1);
    h.closed(bob);
    let bob2 = h.open();
    h.client(bob2, member(2).hello(&presence("s2", None), T0_MS));
    let frames = h.frames(bob2);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(
        frames[1].as_push().unwrap().client_message_id.as_deref(),
        Some("c1")
    );
}

#[test]
fn a_session_key_pushes_name_its_member() {
    let mut h = Harness::open_broker();
    let session = tether_proto::mesh::identity::SecretKey::from_seed([50; 32]);
    let conn = h.open();
    let hello = member(1).session_hello(&session, &presence("s1", None), T0_MS, 60_000);
    h.client(conn, hello);
    h.frames(conn);
    let bob = h.join(&member(2), "s2");
    h.client(conn, send("c1", &pubkey(2), "eA=="));
    assert!(matches!(h.frames(conn).as_slice(), [BrokerFrame::Ack(_)]));
    let push = push_of(&h.frames(bob));
    assert_eq!(push.sender_pubkey, session.public_key().to_hex());
    assert_eq!(push.sender_member_pubkey, Some(pubkey(1)));
    // The member key reaches the session connection.
    h.client(bob, send("c2", &pubkey(1), "eA=="));
    assert!(h.frames(conn)[0].as_push().is_some());
}
