//! S1 for the mesh protocol, end to end on both hosts: every attempt sends a
//! hello signed afresh (a new timestamp and signature; for a session, a
//! re-minted parent attestation), never the first attempt's copy (D8).

use std::time::Duration;

use tether_proto::lifecycle::Status;
use tether_proto::mesh::handshake::{Credentials, SessionCredentials};
use tether_proto::mesh::identity::{verify_hello, verify_session_hello, SecretKey};
use tether_proto::mesh::wire::ClientFrame;
use tether_tests::e2e::*;
use tether_tests::hello_recorder::HelloRecorder;
use tether_tests::hosts::{AnyClient, Host, Spec};
use tether_tests::on_both_hosts;

on_both_hosts!(
    every_attempt_sends_a_freshly_signed_hello,
    every_attempt_of_a_session_mints_a_fresh_attestation,
);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Three attempts: the stand-in restarts the first two connections after their ack.
const ATTEMPTS: usize = 3;

/// Connects member 1 (its spec adjusted by `adjust`) to a stand-in that restarts
/// the first attempts, and returns the client, open on the last one, with every
/// attempt's hello.
async fn three_attempts(host: Host, adjust: impl FnOnce(&mut Spec)) -> (AnyClient, Vec<ClientFrame>) {
    let server = HelloRecorder::start(ATTEMPTS - 1).await;
    let mut s = spec(&server.url(), 1, "s1");
    adjust(&mut s);
    let client = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|e| panic!("{}", e.text));
    let hellos = server.hellos(ATTEMPTS).await;
    client
        .wait_status("open on the last attempt", |s| s == Status::Open)
        .await;
    (client, hellos)
}

async fn every_attempt_sends_a_freshly_signed_hello(host: Host) {
    // proves S1, B12, D8 over both hosts
    let (client, hellos) = three_attempts(host, |_| {}).await;
    let mut previous: Option<(u64, String)> = None;
    for frame in hellos {
        let ClientFrame::Hello(hello) = frame else {
            panic!("a member connects with hello, not {frame:?}");
        };
        verify_hello(&hello, now_ms()).unwrap_or_else(|e| panic!("attempt's hello refused: {e}"));
        if let Some((timestamp, signature)) = previous {
            assert!(
                hello.timestamp > timestamp,
                "a reused timestamp: {}",
                hello.timestamp
            );
            assert_ne!(hello.signature, signature, "a reused signature");
        }
        previous = Some((hello.timestamp, hello.signature));
    }
    client.close().await;
}

async fn every_attempt_of_a_session_mints_a_fresh_attestation(host: Host) {
    // proves S1, B12, D8 over both hosts
    let (client, hellos) = three_attempts(host, |s| {
        s.credentials = Credentials::Session(Box::new(SessionCredentials {
            parent: member(1),
            session_key: SecretKey::from_seed([9; 32]),
            role: None,
            attestation_ttl: Duration::from_secs(3600),
        }));
    })
    .await;
    let mut previous: Option<(u64, u64)> = None;
    for frame in hellos {
        let ClientFrame::SessionHello(hello) = frame else {
            panic!("a session connects with session_hello, not {frame:?}");
        };
        verify_session_hello(&hello, now_ms()).unwrap_or_else(|e| panic!("attempt's hello refused: {e}"));
        let minted = (hello.timestamp, hello.parent_attestation.expires_at);
        if let Some((timestamp, expires_at)) = previous {
            assert!(minted.0 > timestamp, "a reused timestamp");
            assert!(minted.1 > expires_at, "a reused attestation");
        }
        previous = Some(minted);
    }
    client.close().await;
}
