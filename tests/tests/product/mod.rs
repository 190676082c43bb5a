//! The real product's own clients as a test peer: `tests/node/product/driver.ts`
//! bundled by esbuild with their unmodified source (a copy of revision 213a6b3
//! kept in `tests/node/product/claudemesh-213a6b3`) and run on Node.
//!
//! The npm packages (esbuild, and the `ws` and `libsodium-wrappers` versions the
//! product pins) are installed from the registry by `npm ci` on first use into
//! this test's target directory, and reinstalled when `package-lock.json` changes,
//! so repeated runs are quick and CI (a cold target directory) installs them
//! fresh. Without node, npm, the registry or the reference source the tests fail
//! and say so: they never pass by skipping.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use tether_tests::e2e::{member, MESH, PATIENCE};

const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/node/product");
const LOCK: &str = include_str!("../../node/product/package-lock.json");

/// Where the product's source at the pinned revision lives: the unmodified copy
/// kept in this repository as a test fixture (`tests/node/product/claudemesh-213a6b3`,
/// MIT), so a clean checkout needs nothing beside it, unless
/// `TETHER_PRODUCT_SOURCE` says otherwise.
fn product_source() -> PathBuf {
    let dir = match std::env::var_os("TETHER_PRODUCT_SOURCE") {
        Some(d) => PathBuf::from(d),
        None => Path::new(NODE_DIR).join("claudemesh-213a6b3"),
    };
    let cli = dir.join("apps/cli/src");
    assert!(
        cli.join("services/broker/ws-client.ts").exists(),
        "the product's source is not at {} (set TETHER_PRODUCT_SOURCE to its claudemesh-213a6b3 directory)",
        dir.display()
    );
    cli
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("this test needs {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs the packages (once per lock file) and bundles the driver (once per
/// test process); returns the bundle's path.
fn bundle() -> &'static Path {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("product-interop");
        let installed = std::fs::read_to_string(dir.join("package-lock.json")).unwrap_or_default();
        if installed != LOCK || !dir.join("node_modules/.bin/esbuild").exists() {
            // Install beside, then swap in: a run stopped half-way leaves no
            // directory that looks installed.
            let fresh = dir.with_extension(format!("installing-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&fresh);
            std::fs::create_dir_all(&fresh).unwrap();
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(Path::new(NODE_DIR).join(file), fresh.join(file)).unwrap();
            }
            run(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&fresh),
                "npm (to install tests/node/product's packages from the registry)",
            );
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&fresh, &dir).unwrap();
        }
        let src = product_source();
        let out = dir.join(format!("driver-{}.cjs", std::process::id()));
        // CommonJS: the product's modules call `require` (bun allows it in ESM).
        // `~` is the product's own path alias (its tsconfig); the empty tsconfig
        // keeps esbuild from chasing the product's monorepo base config. One
        // per process, like the bundle: a second test process must not see it
        // half written.
        let tsconfig = dir.join(format!("tsconfig-{}.json", std::process::id()));
        std::fs::write(&tsconfig, "{}").unwrap();
        run(
            Command::new(dir.join("node_modules/.bin/esbuild"))
                .arg(Path::new(NODE_DIR).join("driver.ts"))
                .args([
                    "--bundle",
                    "--platform=node",
                    "--format=cjs",
                    "--target=node20",
                    "--external:ws",
                    "--external:libsodium-wrappers",
                    "--log-level=warning",
                ])
                .arg(format!("--alias:~={}", src.display()))
                .arg(format!("--tsconfig={}", tsconfig.display()))
                .arg(format!("--outfile={}", out.display())),
            "esbuild (bundling the product's clients)",
        );
        out
    })
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One Node process holding any number of the product's clients, by name.
pub struct Product {
    child: Child,
    stdin: Option<ChildStdin>,
    pending: Pending,
    next_id: AtomicU64,
    events: mpsc::UnboundedReceiver<Value>,
}

impl Product {
    /// Starts the driver and waits until it is ready.
    pub async fn start() -> Product {
        let bundle = bundle();
        let dir = bundle.parent().unwrap();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new("node")
            .arg(bundle)
            .current_dir(dir)
            // The product reads these to name a session; a developer's own
            // values must not leak into the test.
            .env("HOME", &home)
            .env_remove("CLAUDEMESH_DISPLAY_NAME")
            .env_remove("CLAUDEMESH_SESSION_ID")
            .env_remove("CLAUDE_MODEL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("this test needs node: {e}"));
        let stdout = child.stdout.take().unwrap();
        let pending: Pending = Arc::default();
        let (tx, events) = mpsc::unbounded_channel();
        let p = Arc::clone(&pending);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("product (not a driver line): {line}");
                    continue;
                };
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    let answer = match v.get("err") {
                        Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
                        None => Ok(v.get("ok").cloned().unwrap_or(Value::Null)),
                    };
                    if let Some(reply) = p.lock().unwrap().remove(&id) {
                        let _ = reply.send(answer);
                    }
                } else if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut product = Product {
            stdin: child.stdin.take(),
            child,
            pending,
            next_id: AtomicU64::new(1),
            events,
        };
        product
            .event("the driver to start", |e| (e["event"] == "ready").then_some(()))
            .await;
        product
    }

    /// Runs one operation on the driver: its answer, or the product's error text.
    pub async fn call(&self, op: &str, mut args: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        args["id"] = json!(id);
        args["op"] = json!(op);
        let (reply, answer) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, reply);
        let stdin = self.stdin.as_ref().expect("driver open");
        let mut line = args.to_string();
        line.push('\n');
        // A pipe write of one short line; the driver reads continuously.
        (&*stdin).write_all(line.as_bytes()).expect("the driver's stdin");
        match tokio::time::timeout(PATIENCE, answer).await {
            Ok(Ok(answer)) => answer,
            _ => panic!("the product's driver never answered {op}"),
        }
    }

    /// [`Product::call`] that must succeed.
    pub async fn ok(&self, op: &str, args: Value) -> Value {
        match self.call(op, args).await {
            Ok(v) => v,
            Err(e) => panic!("the product's {op} failed: {e}"),
        }
    }

    /// Waits for the first event `pick` accepts; panics after [`PATIENCE`].
    pub async fn event<T>(&mut self, what: &str, mut pick: impl FnMut(&Value) -> Option<T>) -> T {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(e) = self.events.recv().await {
                if let Some(t) = pick(&e) {
                    return Some(t);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(t)) => t,
            _ => panic!("gave up waiting for {what}"),
        }
    }

    /// The next decoded message a client of the product received: for a
    /// `BrokerClient` its `InboundPush`, for the daemon's sockets the inbox
    /// event its inbound path published, with the push frame under `wire`.
    /// The daemon's sockets acknowledge and dedupe what they receive; for a
    /// `BrokerClient`, use [`Product::push_of`].
    pub async fn message(&mut self, client: &str) -> Value {
        self.event(&format!("a message to {client}"), |e| {
            let ours = e["client"] == client;
            match e["event"].as_str() {
                Some("push") if ours && e["push"]["subtype"].is_null() => Some(e["push"].clone()),
                Some("inbox") if ours && e["kind"] == "message" => {
                    let mut row = e["payload"].clone();
                    row["wire"] = e["wire"].clone();
                    Some(row)
                }
                _ => None,
            }
        })
        .await
    }

    /// The `InboundPush` of message `message_id` that the `BrokerClient`
    /// `client` received, passing over any other. That client never sends
    /// `client_ack`, so the broker pushes each message to it again once the
    /// message's lease (2 s in [`broker_config`](tether_tests::e2e::broker_config))
    /// runs out, and in a slow run an earlier message's second push comes
    /// before the one a test waits for.
    pub async fn push_of(&mut self, client: &str, message_id: &str) -> Value {
        self.event(&format!("message {message_id} to {client}"), |e| {
            let push = &e["push"];
            let ours = e["client"] == client && e["event"] == "push";
            (ours && push["messageId"] == message_id).then(|| push.clone())
        })
        .await
    }
}

impl Drop for Product {
    fn drop(&mut self) {
        // Closing stdin ends the driver (its clients keep reconnect timers).
        drop(self.stdin.take());
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}

/// The product's `JoinedMesh` for [`member`]`(n)` on the broker at `url`.
pub fn joined_mesh(n: u8, url: &str) -> Value {
    let m = member(n);
    json!({
        "meshId": MESH,
        "memberId": m.member_id,
        "slug": "e2e",
        "name": "e2e",
        "pubkey": m.secret.public_key().to_hex(),
        "secretKey": m.secret.to_hex(),
        "brokerUrl": url,
        "joinedAt": "2026-12-01T00:00:00.000Z",
    })
}
