//! D1 for the mesh protocol, end to end on both hosts: a first connect that
//! fails leaves nothing running — no task (tokio: the runtime's own count of
//! live tasks), no thread (mio: the process's `tether-` threads), and so no
//! socket and no timer, which live only inside those. Alone in its binary, so
//! no other test's tasks or threads are counted.

use std::time::{Duration, Instant};

use tether_proto::lifecycle::{Status, StopReason};
use tether_tests::e2e::*;
use tether_tests::hosts::{AnyClient, Host};
use tether_tests::on_both_hosts;

on_both_hosts!(a_failed_first_connect_leaves_nothing_running);

/// A URL on which nothing listens.
fn dead_url() -> String {
    let port = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener.local_addr().map(|a| a.port()).unwrap_or_default(),
        Err(e) => panic!("cannot bind: {e}"),
    };
    format!("ws://127.0.0.1:{port}/ws")
}

/// What the host keeps running: tokio's live tasks, or mio's threads.
fn running(host: Host) -> usize {
    match host {
        Host::Tokio => tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        Host::Mio => tether_threads(),
    }
}

#[cfg(target_os = "linux")]
fn tether_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tether-"))
        .count()
}

#[cfg(not(target_os = "linux"))]
fn tether_threads() -> usize {
    0
}

/// Waits until the host runs no more than `before`; panics after [`PATIENCE`].
/// There is no event for "the task was freed" or "the kernel unlisted the
/// joined thread" (both trail the end they follow by a moment), so this looks
/// again until then: a bound, not a timed assertion.
async fn nothing_left(host: Host, before: usize, after: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = running(host);
        if now <= before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now} still running (was {before}) after {after}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn a_failed_first_connect_leaves_nothing_running(host: Host) {
    // proves D1 over both hosts
    let url = dead_url();
    let before = running(host);
    // `connect`: the error is all that is left.
    // A host that kept something running would keep `connect` waiting for
    // it: bounded, so that fails instead of hanging.
    let failed = tokio::time::timeout(PATIENCE, AnyClient::connect(host, spec(&url, 1, "s1"))).await;
    let Ok(failed) = failed else {
        panic!("the failed connect never came back: something kept running");
    };
    match failed {
        Err(f) => assert!(
            matches!(f.reason, Some(StopReason::FirstConnectFailed { .. })),
            "{f:?}"
        ),
        Ok(_) => panic!("connected to a dead port"),
    }
    nothing_left(host, before, "a failed connect").await;
    // `spawn`: the handle learns the failure, and everything ends by itself,
    // without a `close`, while the handle is still held.
    let client = AnyClient::spawn(host, spec(&url, 1, "s1"))
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    assert!(client.connected().await.is_err());
    // A receiver ends only once the host has closed the client's events.
    let mut events = client.events();
    let ended = tokio::time::timeout(PATIENCE, async { while events.recv().await.is_some() {} }).await;
    assert!(
        ended.is_ok(),
        "the event stream kept going after the failed connect"
    );
    assert_eq!(client.status(), Status::Closed);
    nothing_left(host, before, "a failed spawned connect, handle held").await;
    drop(client);
}
