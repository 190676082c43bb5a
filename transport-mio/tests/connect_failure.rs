//! D1: a connect that fails leaves no thread behind. Alone in its binary, so no
//! other test's threads are counted.

mod common;

use std::net::TcpListener;

use common::config;
use tether_mio::{BlockingClient, ConnectError};
use tether_proto::lifecycle::StopReason;

#[cfg(target_os = "linux")]
fn tether_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("tether-"))
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn tether_threads() -> Vec<String> {
    Vec::new()
}

/// The tether threads still listed, allowing the kernel a moment: a thread that
/// `join` has already waited for can stay in /proc/self/task briefly (the kernel
/// wakes the joiner before it unlists the task), and there is no event to wait
/// on for that. Anything still listed after two seconds really is alive.
fn lingering_tether_threads() -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let threads = tether_threads();
        if threads.is_empty() || std::time::Instant::now() > deadline {
            return threads;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn a_closed_port_fails_the_connect_and_leaves_no_thread() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // A literal address, then a name that goes through the resolver threads.
    for url in [
        format!("ws://127.0.0.1:{port}/ws"),
        format!("ws://localhost:{port}/ws"),
    ] {
        let err = BlockingClient::connect(config(&url)).unwrap_err();
        assert!(
            matches!(err, ConnectError::Failed(StopReason::FirstConnectFailed { .. })),
            "{err:?}"
        );
        assert!(!err.is_permanent());
        assert_eq!(lingering_tether_threads(), Vec::<String>::new(), "after {url}");
    }
}
