//! The one-import client builder of both hosts (`Client::builder(url)` on
//! tether-tokio, `BlockingClient::builder(url)` on tether-mio): an identity file
//! as `tether keygen` writes it, a handle at once while the first connect is
//! retried, and the queue deadline of sends made while away.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_broker::Membership;
use tether_proto::lifecycle::Status;
use tether_proto::mesh::session::{FailureKind, RequestError};
use tether_proto::mesh::wire::Priority;
use tether_tests::e2e::*;
use tether_tests::hosts::{AnyClient, CallError, Host};
use tether_tests::on_both_hosts;
use tether_tokio::IdentityFile;

on_both_hosts!(
    a_client_built_from_an_identity_file_connects_as_its_member,
    retry_on_initial_connect_hands_back_a_client_that_sends_once_the_broker_is_up,
    a_send_while_away_fails_under_the_builders_queue_deadline,
    a_builder_without_an_identity_is_refused,
    a_closed_client_refuses_every_call_in_the_same_words,
);

/// Builds a client on `host` from one builder expression over `$b`, the same
/// settings for both hosts, and hands back the connect's result.
macro_rules! build {
    ($host:expr, $url:expr, |$b:ident| $body:expr) => {
        match $host {
            Host::Tokio => {
                let $b = tether_tokio::Client::builder($url);
                let builder = $body;
                builder.connect().await.map(AnyClient::from_tokio)
            }
            Host::Mio => {
                let $b = tether_mio::BlockingClient::builder($url);
                let builder = $body;
                tokio::task::spawn_blocking(move || builder.connect())
                    .await
                    .expect("the blocking connect panicked")
                    .map(AnyClient::from_mio)
            }
        }
    };
}

/// A directory of its own under cargo's test tmpdir, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str, host: Host) -> Dir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("builder-{name}-{host:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes member `n`'s identity the way `tether keygen` does (mode 0600).
fn identity_file(dir: &Dir, n: u8) -> PathBuf {
    let path = dir.0.join(format!("member-{n}.json"));
    let m = member(n);
    IdentityFile::new(&m.mesh_id, &m.member_id, Some(format!("file-name-{n}")), m.secret)
        .save_new(&path)
        .expect("identity written");
    path
}

async fn a_client_built_from_an_identity_file_connects_as_its_member(host: Host) {
    // proves B17 (the library reads `tether keygen`'s file): the hello is the
    // file's member, announcing the file's display name.
    let dir = Dir::new("identity", host);
    let path = identity_file(&dir, 1);
    // Open membership: a roster would put its own display names on the peers.
    let broker = start_broker(broker_config(Membership::Open), None).await;
    let url = broker.url();
    let alice = build!(host, &url, |b| b
        .identity_file(&path)
        .expect("a valid identity file"))
    .expect("connects");
    let bob = connected_member(host, &url, 2).await;
    let peers = bob.list_peers().await.unwrap();
    let me = peers
        .iter()
        .find(|p| p.member_pubkey.as_deref() == Some(pubkey(1).as_str()) || p.pubkey == pubkey(1))
        .unwrap_or_else(|| panic!("alice is not among {peers:?}"));
    assert_eq!(me.display_name, "file-name-1", "{me:?}");
    assert!(alice.send(&pubkey(2), "hi", Priority::Next).await.is_ok());
    alice.close().await;
    bob.close().await;
    broker.stop().await;
}

async fn retry_on_initial_connect_hands_back_a_client_that_sends_once_the_broker_is_up(host: Host) {
    // proves L8 with async-nats' retry_on_initial_connect: the builder hands the
    // client back at once while no broker listens, its status shows it is not
    // open, a send made meanwhile waits in the queue (B3), and once the broker
    // is up the send is acked and `connected()` reports the first open.
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let url = broker.url();
    broker.stop().await;
    let lc = lifecycle(&url);
    let alice = build!(host, &url, |b| b
        .member(member(1))
        .with_config(move |c| c.session.lifecycle = lc)
        .retry_on_initial_connect())
    .expect("handed back while the broker is down");
    assert_ne!(alice.status(), Status::Open);
    alice
        .wait_status("a failed first attempt", |s| s == Status::Reconnecting)
        .await;
    let alice = std::sync::Arc::new(alice);
    let sender = std::sync::Arc::clone(&alice);
    let sent = tokio::spawn(async move { sender.send("*", "early", Priority::Next).await });
    let broker = broker.restart().await.expect("the broker restarts");
    alice.connected().await.expect("the first open");
    let sent = tokio::time::timeout(PATIENCE, sent)
        .await
        .expect("the send resolved")
        .expect("the send task");
    assert!(sent.is_ok(), "the queued send: {sent:?}");
    if let Ok(alice) = std::sync::Arc::try_unwrap(alice) {
        alice.close().await;
    }
    broker.stop().await;
}

async fn a_send_while_away_fails_under_the_builders_queue_deadline(host: Host) {
    // proves B3, X9 on both hosts: a send that names no deadline waits the
    // client's queue deadline, then fails as never sent (safe to retry).
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let url = broker.url();
    let lc = lifecycle(&url);
    let alice = build!(host, &url, |b| b
        .member(member(1))
        .with_config(move |c| c.session.lifecycle = lc)
        .queue_deadline(Some(Duration::from_millis(300))))
    .expect("connects");
    broker.stop().await;
    alice.wait_status("not open", |s| s != Status::Open).await;
    // Within PATIENCE (15 s), well under the 60 s default it must not fall back to.
    let sent = tokio::time::timeout(PATIENCE, alice.send(&pubkey(2), "while away", Priority::Next)).await;
    match sent.expect("resolved under the builder's deadline, not the default") {
        Err(CallError::Failed(f)) => {
            assert_eq!(
                (f.kind, f.reason.as_str()),
                (FailureKind::NeverSent, "queue_deadline")
            );
            assert!(!f.may_have_been_delivered());
        }
        other => panic!("a send while away resolved {other:?}"),
    }
    // Requests are refused at once while away, the same on both hosts (the
    // session's one rule, "While the connection is away").
    match alice.list_peers().await {
        Err(CallError::NotAccepted(RequestError::NotOpen(status))) => assert_ne!(status, Status::Open),
        other => panic!("a request while away: {other:?}"),
    }
    alice.close().await;
}

async fn a_builder_without_an_identity_is_refused(host: Host) {
    // proves the builder's typed refusal: no identity, no connection attempt.
    let err = build!(host, "ws://127.0.0.1:9/ws", |b| b.name("nobody"))
        .err()
        .expect("refused");
    assert!(
        matches!(err, tether_tokio::ConnectError::NoCredentials),
        "{err:?}"
    );
    assert!(err.is_permanent());
}

async fn connected_member(host: Host, url: &str, n: u8) -> AnyClient {
    match AnyClient::connect(host, spec(url, n, &format!("s{n}"))).await {
        Ok(c) => c,
        Err(e) => panic!("member {n} could not connect on {host:?}: {}", e.text),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_print_apart_on_both_hosts() {
    // Issue 17: two BlockingClients both printed `ConnId { index: 0, generation: 0 }`.
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let url = broker.url();
    let (t1, t2) = (
        tether_tokio::Client::builder(&url)
            .member(member(1))
            .spawn()
            .await
            .unwrap(),
        tether_tokio::Client::builder(&url)
            .member(member(2))
            .spawn()
            .await
            .unwrap(),
    );
    assert_ne!(format!("{t1:?}"), format!("{t2:?}"));
    let u = url.clone();
    let (m1, m2) = tokio::task::spawn_blocking(move || {
        (
            tether_mio::BlockingClient::builder(&u)
                .member(member(1))
                .spawn()
                .unwrap(),
            tether_mio::BlockingClient::builder(&u)
                .member(member(2))
                .spawn()
                .unwrap(),
        )
    })
    .await
    .unwrap();
    assert_ne!(format!("{m1:?}"), format!("{m2:?}"));
    assert_ne!(m1.connection().id(), m2.connection().id());
    t1.close().await;
    t2.close().await;
    tokio::task::spawn_blocking(move || {
        m1.close();
        m2.close();
    })
    .await
    .unwrap();
    broker.stop().await;
}

/// The three calls' refusals of a client closed for good, as displayed.
async fn refusals_of(client: &AnyClient) -> Vec<String> {
    let send = client.send("*", "late", Priority::Next).await.err();
    let request = client.list_peers().await.err();
    let command = client.set_presence("late", "idle").await.err();
    [send, request, command]
        .into_iter()
        .map(|e| match e.expect("refused") {
            CallError::Refused(_, text) => text,
            CallError::NotAccepted(e) => tether_tokio::ClientError::NotAccepted(e).to_string(),
            CallError::Other(text) => text,
            CallError::Failed(f) => panic!("accepted, then failed: {f}"),
        })
        .collect()
}

async fn a_closed_client_refuses_every_call_in_the_same_words(host: Host) {
    // Issue 17: the same refusal read "the client has shut down" on one host
    // and "send refused: the session is closed" on the other, depending on
    // whether the host's task had ended yet. Both ways of being closed, on both
    // hosts, now read tether-host's CLOSED.
    let broker = start_broker(broker_config(membership(2, &[1])), None).await;
    let url = broker.url();
    let lc = lifecycle(&url);
    // Revoked: its first attempt is refused for good, while the handle lives.
    let revoked = build!(host, &url, |b| b
        .member(member(1))
        .with_config(move |c| c.session.lifecycle = lc)
        .retry_on_initial_connect())
    .expect("handed back at once");
    revoked
        .wait_status("closed by the broker", |s| s == Status::Closed)
        .await;
    assert!(revoked.connected().await.is_err());
    let closed_by_broker = refusals_of(&revoked).await;
    let bob = connected_member(host, &url, 2).await;
    bob.close_keeping_handle().await;
    let closed_by_us = refusals_of(&bob).await;
    for text in closed_by_broker.iter().chain(&closed_by_us) {
        assert_eq!(text, tether_tokio::CLOSED, "{host:?}");
    }
    broker.stop().await;
}
