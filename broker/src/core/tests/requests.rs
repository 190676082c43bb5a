//! Requests and presence updates.

use serde_json::json;
use tether_proto::mesh::wire::{
    BrokerFrame, ForgetFrame, GetSkillFrame, GetStateFrame, ListPeersFrame, ListSkillsFrame, ListStateFrame,
    RecallFrame, RememberFrame, SetProfileFrame, SetStateFrame, SetStatusFrame, SetSummaryFrame,
    SetVisibleFrame, Skill,
};

use super::*;
use crate::core::SkillBook;

fn req(id: &str) -> Option<String> {
    Some(id.to_owned())
}

fn one(h: &mut Harness, conn: ConnId) -> BrokerFrame {
    let mut frames = h.frames(conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    frames.remove(0)
}

// proves B8, B11 (broker side): peers carry presence, role by hello kind and profile,
// the requester is listed too, and hidden peers only to their own member.
#[test]
fn list_peers_shows_presence_and_hides_the_invisible() {
    let mut h = Harness::open_broker();
    let ada = h.join_with(&member(1), presence("s1", Some("Ada")));
    // What a member hello says of itself never makes it a session (issue 14).
    let mut daemon = presence("d", Some("daemon"));
    daemon.extras.peer_type = Some("session".into());
    let d = h.join_with(&member(2), daemon);
    let cy = h.join_with(&member(3), presence("s3", Some("Cy")));
    let session_key = SecretKey::from_seed([43; 32]);
    let conn = h.open();
    let hello = member(4).session_hello(&session_key, &presence("s4", Some("Dee")), T0_MS, 3_600_000);
    h.client(conn, hello);
    h.frames(conn);

    h.client(
        d,
        SetStatusFrame {
            status: "working".into(),
        },
    );
    h.client(
        d,
        SetSummaryFrame {
            summary: "indexing".into(),
        },
    );
    h.client(
        d,
        SetProfileFrame {
            title: Some("ops bot".into()),
            ..SetProfileFrame::default()
        },
    );
    h.client(cy, SetVisibleFrame { visible: false });
    h.client(ada, ListPeersFrame { req_id: req("r1") });
    let BrokerFrame::PeersList(list) = one(&mut h, ada) else {
        panic!("not a peers_list")
    };
    assert_eq!(list.req_id.as_deref(), Some("r1"));
    let names: Vec<&str> = list.peers.iter().map(|p| p.display_name.as_str()).collect();
    assert_eq!(
        names,
        ["Ada", "daemon", "Dee"],
        "the requester is listed, the hidden peer is not"
    );
    let peer = &list.peers[1];
    assert_eq!(peer.pubkey, pubkey(2));
    assert_eq!(peer.member_pubkey.as_deref(), Some(pubkey(2).as_str()));
    assert_eq!(
        (peer.status.as_str(), peer.summary.as_deref()),
        ("working", Some("indexing"))
    );
    assert_eq!(peer.peer_role.as_deref(), Some("control-plane"));
    assert!(!peer.is_user_facing());
    assert_eq!(peer.session_id, "d");
    assert_eq!(peer.connected_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(peer.cwd.as_deref(), Some("/work"));
    assert_eq!(peer.profile, Some(json!({"title": "ops bot"})));
    let session = &list.peers[2];
    assert_eq!(
        session.pubkey,
        session_key.public_key().to_hex(),
        "pubkey is the session key"
    );
    assert_eq!(session.member_pubkey.as_deref(), Some(pubkey(4).as_str()));
    assert_eq!(session.peer_role.as_deref(), Some("session"));

    // Cy still sees itself.
    h.client(cy, ListPeersFrame { req_id: None });
    let BrokerFrame::PeersList(list) = one(&mut h, cy) else {
        panic!("not a peers_list")
    };
    assert!(list.peers.iter().any(|p| p.display_name == "Cy"));
}

#[test]
fn state_is_shared_and_changes_are_told_to_the_others() {
    let mut h = Harness::open_broker();
    let ada = h.join_with(&member(1), presence("s1", Some("Ada")));
    let bob = h.join(&member(2), "s2");

    h.client(
        ada,
        GetStateFrame {
            key: "k".into(),
            req_id: req("r1"),
        },
    );
    let BrokerFrame::StateResult(absent) = one(&mut h, ada) else {
        panic!()
    };
    assert_eq!(absent.row(), None);
    assert_eq!((absent.key.as_str(), absent.req_id.as_deref()), ("k", Some("r1")));

    h.client(
        ada,
        SetStateFrame {
            key: "k".into(),
            value: json!({"n": 1}),
        },
    );
    assert!(h.frames(ada).is_empty(), "the setter is not told");
    let BrokerFrame::StateChange(change) = one(&mut h, bob) else {
        panic!()
    };
    assert_eq!((change.key.as_str(), change.updated_by.as_str()), ("k", "Ada"));
    assert_eq!(change.value, json!({"n": 1}));

    h.client(
        bob,
        GetStateFrame {
            key: "k".into(),
            req_id: req("r2"),
        },
    );
    let BrokerFrame::StateResult(present) = one(&mut h, bob) else {
        panic!()
    };
    let row = present.row().unwrap();
    assert_eq!((row.value, row.updated_by.as_str()), (json!({"n": 1}), "Ada"));
    h.client(bob, ListStateFrame { req_id: req("r3") });
    let BrokerFrame::StateList(list) = one(&mut h, bob) else {
        panic!()
    };
    assert_eq!(list.entries.len(), 1);
}

#[test]
fn state_keys_are_capped() {
    let mut h = Harness::new(BrokerConfig {
        max_state_keys_per_mesh: 1,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    for key in ["a", "b"] {
        h.client(
            ada,
            SetStateFrame {
                key: key.into(),
                value: json!(1),
            },
        );
    }
    assert!(matches!(one(&mut h, ada), BrokerFrame::Error(e) if e.code == "state_full"));
    assert_eq!(h.broker.stats().state_refused, 1);
}

#[test]
fn memories_are_stored_recalled_forgotten_and_capped() {
    let mut h = Harness::new(BrokerConfig {
        max_memories_per_mesh: 2,
        ..BrokerConfig::default()
    });
    let ada = h.join_with(&member(1), presence("s1", Some("Ada")));
    let mut ids = Vec::new();
    for (content, tag) in [
        ("old news", "x"),
        ("Deploy on Friday", "ops"),
        ("lunch", "Deploy"),
    ] {
        h.client(
            ada,
            RememberFrame {
                content: content.into(),
                tags: Some(vec![tag.into()]),
                req_id: req("r"),
            },
        );
        let BrokerFrame::MemoryStored(stored) = one(&mut h, ada) else {
            panic!()
        };
        ids.push(stored.stored_id().unwrap().to_owned());
    }
    assert_eq!(h.broker.stats().memories_evicted, 1);
    h.client(
        ada,
        RecallFrame {
            query: "deploy".into(),
            req_id: req("r2"),
        },
    );
    let BrokerFrame::MemoryResults(found) = one(&mut h, ada) else {
        panic!()
    };
    assert_eq!(
        found.memories.len(),
        2,
        "content and tag match, case-insensitively"
    );
    assert_eq!(found.memories[0].remembered_by, "Ada");
    // forget is answered as the real broker answers it: an ack naming the memory.
    let forget = ClientFrame::from(ForgetFrame {
        memory_id: ids[1].clone(),
    });
    let mut forget: serde_json::Value = serde_json::from_str(&forget.encode()).unwrap();
    forget["_reqId"] = json!("r3");
    h.frame(ada, &forget.to_string());
    let BrokerFrame::Ack(ack) = one(&mut h, ada) else {
        panic!("forget is not acked")
    };
    assert_eq!(
        (
            ack.id.as_str(),
            ack.message_id.as_str(),
            ack.queued,
            ack.req_id.as_deref()
        ),
        (ids[1].as_str(), ids[1].as_str(), false, Some("r3"))
    );
    h.client(
        ada,
        RecallFrame {
            query: String::new(),
            req_id: None,
        },
    );
    let BrokerFrame::MemoryResults(rest) = one(&mut h, ada) else {
        panic!()
    };
    assert_eq!(rest.memories.len(), 1);
    assert_eq!(rest.memories[0].id, ids[2]);
}

#[test]
fn skills_are_listed_and_fetched() {
    let skills = SkillBook::from_json_str(
        r#"[{"name":"deploy","description":"Ship it","instructions":"run make","tags":["ops"],
            "author":"ada","createdAt":"2024-01-01T00:00:00Z"},
           {"name":"lint","description":"Check style","instructions":"cargo clippy","tags":[],
            "author":"bob","createdAt":"2024-01-02T00:00:00Z"}]"#,
    )
    .unwrap();
    let mut h = Harness::new(BrokerConfig {
        skills,
        ..BrokerConfig::default()
    });
    let ada = h.join(&member(1), "s1");
    h.client(
        ada,
        ListSkillsFrame {
            query: Some("OPS".into()),
            req_id: req("r1"),
        },
    );
    let BrokerFrame::SkillList(list) = one(&mut h, ada) else {
        panic!()
    };
    assert_eq!(list.skills.len(), 1);
    assert_eq!(list.skills[0].name, "deploy");
    h.client(
        ada,
        GetSkillFrame {
            name: "lint".into(),
            req_id: req("r2"),
        },
    );
    let BrokerFrame::SkillData(data) = one(&mut h, ada) else {
        panic!()
    };
    let expected = Skill {
        name: "lint".into(),
        description: "Check style".into(),
        instructions: "cargo clippy".into(),
        tags: vec![],
        author: "bob".into(),
        created_at: "2024-01-02T00:00:00Z".into(),
        manifest: None,
    };
    assert_eq!(data.skill, Some(expected));
    h.client(
        ada,
        GetSkillFrame {
            name: "nope".into(),
            req_id: req("r3"),
        },
    );
    assert!(matches!(one(&mut h, ada), BrokerFrame::SkillData(d) if d.skill.is_none()));
}

// proves L5 (broker side): bad frames after the hello are answered, counted, and survived.
#[test]
fn unknown_and_malformed_frames_keep_the_connection() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    h.frame(ada, r#"{"type":"topic_create","name":"x","_reqId":"r9"}"#);
    assert!(matches!(one(&mut h, ada), BrokerFrame::Error(e)
        if e.code == "unknown_message_type" && e.req_id.as_deref() == Some("r9")));
    h.frame(ada, "not json");
    assert!(matches!(one(&mut h, ada), BrokerFrame::Error(e) if e.code == "malformed"));
    h.frame(ada, r#"{"type":"get_state","key":5,"_reqId":"r10"}"#);
    assert!(
        matches!(one(&mut h, ada), BrokerFrame::Error(e)
        if e.code == "malformed" && e.req_id.as_deref() == Some("r10")),
        "errors echo _reqId"
    );
    assert!(h.broker.is_open(ada));
    let stats = h.broker.stats();
    assert_eq!((stats.unknown_types, stats.malformed_frames), (1, 2));
}
