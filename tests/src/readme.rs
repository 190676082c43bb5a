//! The README's library examples, run as doc tests: [`examples`] includes
//! `tests/readme/*.md`, whose Rust blocks are the README's own with hidden `#`
//! lines around them (a broker on 127.0.0.1 port 0, an identity file written
//! as `tether keygen` writes it, and "bob" to write to), and the test
//! `the_readme_shows_the_examples_that_run` checks the README shows exactly
//! those blocks without the hidden lines.

use std::net::SocketAddr;
use std::path::PathBuf;

use tether_broker::{BrokerHandle, BrokerServer, Membership, ServerConfig};
use tether_tokio::{Client, IdentityFile, PushBody, SessionFile, Subscription};

use crate::e2e::PATIENCE;

/// The README's library section: the async and the blocking mesh client.
#[doc = include_str!("../readme/async.md")]
#[doc = include_str!("../readme/blocking.md")]
pub mod examples {}

/// What the examples' hidden lines start: a broker, alice's identity file, and
/// bob, a session peer named "bob" that alice's message should reach. It sets
/// `TETHER_URL` and `TETHER_IDENTITY` as a user would, and removes its
/// directory when dropped.
pub struct Setup {
    broker: BrokerHandle,
    bob: Client,
    inbox: Subscription,
    dir: PathBuf,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// Starts everything on the current tokio runtime.
    pub async fn start(name: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("tether-readme-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = ServerConfig {
            broker: tether_broker::BrokerConfig {
                membership: Membership::Open,
                ..Default::default()
            },
            ..ServerConfig::default()
        };
        let broker = BrokerServer::start(config, addr, None)
            .await
            .expect("the broker starts");
        let url = broker.url();
        // Written with the code `tether keygen` runs.
        let alice = dir.join("alice.json");
        IdentityFile::generate("demo", "alice", Some("alice".into()))
            .and_then(|id| id.save_new(&alice))
            .expect("alice's identity");
        let bob_file = dir.join("bob.json");
        let bob_id = IdentityFile::generate("demo", "bob", Some("bob".into())).expect("bob's identity");
        bob_id.save_new(&bob_file).expect("bob's identity written");
        let bob = Client::builder(&url)
            .identity(bob_id)
            .session_file(SessionFile::path_for(&bob_file))
            .expect("bob's session")
            .connect()
            .await
            .expect("bob connects");
        let inbox = bob.subscribe();
        std::env::set_var("TETHER_URL", &url);
        std::env::set_var("TETHER_IDENTITY", &alice);
        Setup {
            broker,
            bob,
            inbox,
            dir,
        }
    }

    /// Waits for bob to receive `text`, sealed end to end for him.
    pub async fn bob_received(&mut self, text: &str) -> bool {
        let wait = async {
            while let Some(push) = self.inbox.recv().await {
                if let PushBody::Text { text: got, encrypted } = &push.body {
                    if got == text {
                        return *encrypted;
                    }
                }
            }
            false
        };
        tokio::time::timeout(PATIENCE, wait).await.unwrap_or(false)
    }

    /// Closes bob and the broker, and removes the files.
    pub async fn stop(self) {
        self.bob.close().await;
        self.broker.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// [`Setup`] for a blocking program: on a tokio runtime of its own.
pub struct BlockingSetup {
    rt: tokio::runtime::Runtime,
    setup: Option<Setup>,
}

impl std::fmt::Debug for BlockingSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingSetup")
            .field("setup", &self.setup)
            .finish_non_exhaustive()
    }
}

impl BlockingSetup {
    /// Starts everything on a runtime of its own.
    pub fn start(name: &str) -> BlockingSetup {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let setup = Some(rt.block_on(Setup::start(name)));
        BlockingSetup { rt, setup }
    }

    /// Waits for bob to receive `text`, sealed end to end for him.
    pub fn bob_received(&mut self, text: &str) -> bool {
        match self.setup.as_mut() {
            Some(setup) => self.rt.block_on(setup.bob_received(text)),
            None => false,
        }
    }
}

impl Drop for BlockingSetup {
    fn drop(&mut self) {
        if let Some(setup) = self.setup.take() {
            self.rt.block_on(setup.stop());
        }
    }
}

#[cfg(test)]
mod tests {
    /// The Rust blocks of a markdown text, as written (fences excluded).
    fn rust_blocks(text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            match (&mut current, line.trim_start().starts_with("```")) {
                (None, true) if line.trim() == "```rust" => current = Some(String::new()),
                (Some(block), true) => {
                    blocks.push(std::mem::take(block));
                    current = None;
                }
                (Some(block), false) => {
                    block.push_str(line);
                    block.push('\n');
                }
                _ => {}
            }
        }
        blocks
    }

    fn without_hidden_lines(block: &str) -> String {
        block
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                !(t == "#" || t.starts_with("# "))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn the_readme_shows_the_examples_that_run() {
        // The doc tests run tests/readme/*.md; the README must show the same
        // code, so what a reader copies is what CI ran.
        let readme = include_str!("../../README.md");
        let shown = rust_blocks(readme);
        for tested in [
            include_str!("../readme/async.md"),
            include_str!("../readme/blocking.md"),
        ] {
            let blocks = rust_blocks(tested);
            assert_eq!(blocks.len(), 1, "one example per file");
            let visible = without_hidden_lines(&blocks[0]);
            assert!(
                shown.contains(&visible),
                "README.md does not show this example as it runs:\n{visible}"
            );
            let lines = visible.lines().count();
            assert!(lines < 20, "{lines} lines: the README promises under 20");
        }
    }
}
