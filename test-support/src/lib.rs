//! What the memory tests of tether-mio and tether-tests share, written once:
//! a counting global allocator ([`live_heap`], and [`resident`] for what the OS
//! sees) and the broker child process that keeps the broker's own heap out of
//! the count ([`BrokerChild`]).
//!
//! Linking this crate installs the counting allocator in the test binary.

mod counting;

pub use counting::{live_heap, resident};

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A broker served by a child process: this test binary again, running only
/// `test_name` with `env` set, which prints `PORT <port>` once it listens and
/// serves until its stdin closes. Only the parent's clients are then counted.
pub struct BrokerChild {
    child: Child,
    /// The port the child's broker listens on, on 127.0.0.1.
    pub port: u16,
}

impl BrokerChild {
    /// Starts the child and waits for its port.
    ///
    /// # Panics
    ///
    /// When the child cannot be started or never prints its port: the test
    /// cannot measure anything then.
    pub fn start(test_name: &str, env: &str) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(env, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the broker child starts");
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let port = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                // The harness may print the test's name on the same line first.
                let (_, port) = line.split_once("PORT ")?;
                port.trim().parse().ok()
            })
            .expect("the broker child prints its port");
        BrokerChild { child, port }
    }

    /// `ws://127.0.0.1:<port>/ws`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

impl Drop for BrokerChild {
    fn drop(&mut self) {
        // Closing stdin ends the child's serving; the kill is for a child stuck.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
