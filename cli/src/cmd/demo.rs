//! `tether demo`: the lifecycle earning its keep, in one command.
//!
//! An embedded broker on 127.0.0.1, two clients that talk (by name, resolved to
//! a key, and end-to-end encrypted) and make requests,
//! then an outage: the broker drops everyone and refuses hellos for a while, the
//! clients back off with jitter and come back, and what was sent during the
//! outage arrives exactly once. Finally a client with a revoked key is refused
//! and stops with the broker's reason instead of looping. Every claim is checked;
//! the exit code is 0 only if all checks hold.

use crate::stderr::out;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_broker::core::{MemberRecord, Refusal, Roster};
use tether_broker::{BrokerConfig, BrokerHandle, BrokerServer, Membership, ServerConfig};
use tether_proto::lifecycle::{FailureClass, FirstConnect, Notification, Status, StopReason};
use tether_proto::mesh::handshake::{Credentials, SessionCredentials, DEFAULT_ATTESTATION_TTL};
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::push::PushBody;
use tether_proto::mesh::target::resolve_name;
use tether_proto::mesh::wire::{HelloExtras, Priority};
use tether_proto::policy::Backoff;
use tether_tokio::{Client, ClientBuilder, ClientEvent, ConnectError};

use crate::cmd::client::push_text;
use crate::fail::Failure;

const MESH: &str = "demo-mesh";
const OUTAGE: Duration = Duration::from_secs(2);
const RETRY_AFTER_MS: u64 = 600;
const WHILE_AWAY: usize = 5;
/// A step that takes longer than this failed (the whole demo takes a few seconds).
const PATIENCE: Duration = Duration::from_secs(15);

/// The timeline, printed as it happens and kept for the summary.
struct Timeline {
    t0: Instant,
    json: bool,
    out: Mutex<()>,
}

impl Timeline {
    fn note(&self, who: &str, what: &str, detail: impl AsRef<str>) {
        let t = self.t0.elapsed().as_secs_f64();
        let _guard = self.out.lock();
        if self.json {
            let line = serde_json::json!({"t": (t * 1000.0).round() / 1000.0, "who": who, "what": what, "detail": detail.as_ref()});
            out!("{line}");
        } else {
            out!("{t:>7.3}s  {who:<7} {what:<22} {}", detail.as_ref());
        }
    }
}

struct Member {
    name: &'static str,
    identity: MemberIdentity,
    /// The member's one logical session (B17): people see and write to it.
    session: SecretKey,
}

fn member(n: u8, name: &'static str) -> Member {
    Member {
        name,
        identity: MemberIdentity {
            mesh_id: MESH.into(),
            member_id: format!("member-{name}"),
            secret: SecretKey::from_seed([n; 32]),
        },
        session: SecretKey::from_seed([n.wrapping_add(100); 32]),
    }
}

/// A demo client, built the way a user's program builds one: quick timeouts
/// and a short backoff so the outage and the recovery fit in a few seconds.
fn client_builder(url: &str, m: &Member, seed: u64) -> ClientBuilder {
    let presence = Presence {
        session_id: format!("demo-{}", m.name),
        pid: std::process::id(),
        cwd: "/demo".into(),
        extras: HelloExtras {
            display_name: Some(m.name.into()),
            peer_type: Some("ai".into()),
            ..HelloExtras::default()
        }
        .into(),
    };
    let credentials = Credentials::Session(Box::new(SessionCredentials {
        parent: m.identity.clone(),
        session_key: m.session.clone(),
        role: None,
        attestation_ttl: DEFAULT_ATTESTATION_TTL,
    }));
    let backoff = Backoff::new(
        [250, 500, 1000, 2000]
            .into_iter()
            .map(Duration::from_millis)
            .collect(),
    )
    .unwrap_or_default();
    Client::builder(url)
        .credentials(credentials)
        .presence(presence)
        .seed(seed)
        .with_config(move |c| {
            let lc = &mut c.session.lifecycle;
            lc.hello_ack_timeout = Duration::from_secs(1);
            lc.ping_interval = Duration::from_secs(1);
            lc.stale_after = Duration::from_secs(3);
            lc.stability_window = Duration::from_secs(1);
            lc.backoff = backoff;
        })
}

/// Follows a client's lifecycle onto the timeline and records its reconnect delays.
fn watch(
    client: &Client,
    who: &'static str,
    timeline: Arc<Timeline>,
    delays: Arc<Mutex<Vec<(String, Duration)>>>,
) {
    let mut events = client.events();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let ClientEvent::Lifecycle(note) = event else {
                continue;
            };
            match note {
                Notification::StatusChanged { from, to } => {
                    timeline.note(who, "status", format!("{} → {}", from.name(), to.name()))
                }
                Notification::Connected { handshake, .. } => timeline.note(
                    who,
                    "hello acked",
                    format!("handshake {} ms", handshake.as_millis()),
                ),
                Notification::Disconnected { failure, .. } => {
                    timeline.note(who, "attempt ended", failure.to_string())
                }
                Notification::ReconnectScheduled { delay, attempt } => {
                    if let Ok(mut d) = delays.lock() {
                        d.push((who.to_owned(), delay));
                    }
                    timeline.note(
                        who,
                        "reconnect scheduled",
                        format!("attempt {attempt} in {} ms (jittered)", delay.as_millis()),
                    )
                }
                Notification::Closed { reason } => timeline.note(who, "closed for good", reason.to_string()),
                _ => {}
            }
        }
    });
}

/// Outcome of every claim the demo makes.
struct Checks(Vec<(String, bool, String)>);

impl Checks {
    fn check(&mut self, timeline: &Timeline, what: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        timeline.note(
            "check",
            if ok { "✓ holds" } else { "✗ FAILED" },
            format!("{what}: {detail}"),
        );
        self.0.push((what.to_owned(), ok, detail));
    }
}

/// Runs the story; `Ok` only when every check held.
pub async fn run(json: bool) -> Result<(), Failure> {
    let timeline = Arc::new(Timeline {
        t0: Instant::now(),
        json,
        out: Mutex::new(()),
    });
    let mut checks = Checks(Vec::new());
    let alice = member(1, "alice");
    let bob = member(2, "bob");
    let carol = member(3, "carol");

    // The broker knows all three; carol's key has been revoked by the mesh admin.
    let roster = Roster::new(
        [(&alice, false), (&bob, false), (&carol, true)]
            .iter()
            .map(|(m, revoked)| MemberRecord {
                member_id: m.identity.member_id.clone(),
                pubkey: m.identity.secret.public_key().to_hex(),
                display_name: m.name.into(),
                revoked: *revoked,
                groups: Vec::new(),
            })
            .collect(),
    );
    let config = ServerConfig {
        broker: BrokerConfig {
            membership: Membership::Listed([(MESH.to_owned(), roster)].into_iter().collect()),
            ping_interval: Duration::from_secs(1),
            stale_after: Duration::from_secs(3),
            ..BrokerConfig::default()
        },
        close_linger: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let broker = BrokerServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .map_err(|e| {
            Failure::local(
                format!("cannot start the embedded broker: {e}"),
                "check loopback networking",
            )
        })?;
    let url = broker.url();
    timeline.note("broker", "listening", &url);

    let result = story(&broker, &url, &alice, &bob, &carol, &timeline, &mut checks).await;
    broker.stop().await;
    if let Err(e) = result {
        checks.check(&timeline, "story completed", false, e);
    }
    summary(&checks, &timeline);
    if checks.0.iter().all(|(_, ok, _)| *ok) {
        Ok(())
    } else {
        Err(Failure::local(
            "the demo's checks did not all hold",
            "see the ✗ lines above",
        ))
    }
}

#[allow(clippy::too_many_arguments)]
async fn story(
    broker: &BrokerHandle,
    url: &str,
    alice: &Member,
    bob: &Member,
    carol: &Member,
    timeline: &Arc<Timeline>,
    checks: &mut Checks,
) -> Result<(), String> {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let join = |m: &Member, seed: u64| {
        let (timeline, delays) = (Arc::clone(timeline), Arc::clone(&delays));
        let (connecting, who) = (client_builder(url, m, seed).connect(), m.name);
        async move {
            let client = connecting.await.map_err(|e| e.to_string())?;
            watch(&client, who, Arc::clone(&timeline), delays);
            timeline.note(who, "connected", "hello signed and acknowledged");
            Ok::<_, String>(client)
        }
    };
    let a = join(alice, 11).await?;
    let b = join(bob, 22).await?;
    let mut a_in = a.subscribe();
    let mut b_in = b.subscribe();
    let bob_key = bob.session.public_key().to_hex();

    // Talk both ways, by name: each name is resolved to its session key through
    // list_peers (B15), and the message is sealed end to end for it (B14).
    let roster = a.list_peers().await.map_err(|e| e.to_string())?;
    let resolved = resolve_name("bob", &roster).map_err(|e| e.to_string())?;
    timeline.note(
        "alice",
        "name resolved",
        format!("\"bob\" is {}…", &resolved.to_hex()[..16]),
    );
    let sent = a
        .send("bob", "hi bob, build is green", Priority::Next)
        .await
        .map_err(|e| e.to_string())?;
    timeline.note("alice", "send acked", format!("message {}", sent.message_id));
    let got = recv(&mut b_in).await?;
    let sealed = matches!(got.body, PushBody::Text { encrypted: true, .. });
    timeline.note(
        "bob",
        "received",
        format!(
            "{:?} from {} (on the wire: {}…, {})",
            push_text(&got),
            got.sender_name.clone().unwrap_or_default(),
            got.ciphertext.chars().take(16).collect::<String>(),
            if sealed {
                "sealed for bob's key"
            } else {
                "NOT encrypted"
            }
        ),
    );
    checks.check(
        timeline,
        "a name resolves to one key",
        resolved.to_hex() == bob_key,
        format!("\"bob\" -> {}…", &resolved.to_hex()[..16]),
    );
    checks.check(
        timeline,
        "direct messages sealed end to end",
        sealed && got.ciphertext != "aGkgYm9iLCBidWlsZCBpcyBncmVlbg==",
        "crypto_box between the two session keys; the broker saw only ciphertext",
    );
    b.send("alice", "thanks alice", Priority::Now)
        .await
        .map_err(|e| e.to_string())?;
    let got = recv(&mut a_in).await?;
    timeline.note("alice", "received", format!("{:?}", push_text(&got)));
    checks.check(
        timeline,
        "messages flow both ways",
        true,
        "each send acked and pushed once",
    );

    // Requests, each correlated by its _reqId.
    let peers = b.list_peers().await.map_err(|e| e.to_string())?;
    let names: Vec<String> = peers.iter().map(|p| p.display_name.clone()).collect();
    timeline.note("bob", "list_peers", names.join(", "));
    a.set_state("build", serde_json::json!("green"))
        .await
        .map_err(|e| e.to_string())?;
    let state = loop {
        if let Some(row) = b.get_state("build").await.map_err(|e| e.to_string())? {
            break row;
        }
    };
    timeline.note(
        "bob",
        "get_state",
        format!("build = {} (set by alice)", state.value),
    );
    a.remember("deploys happen on tuesdays", Some(vec!["ops".into()]))
        .await
        .map_err(|e| e.to_string())?;
    let memories = b.recall("tuesday").await.map_err(|e| e.to_string())?;
    timeline.note("bob", "recall", format!("{} memory found", memories.len()));
    checks.check(
        timeline,
        "requests answered",
        names.iter().any(|n| n == "alice")
            && state.value == serde_json::json!("green")
            && memories.len() == 1,
        "list_peers, set/get_state, remember/recall",
    );

    // The outage.
    timeline.note(
        "broker",
        "outage",
        format!(
            "drops every connection and refuses hellos for {} s (capacity, retry after {RETRY_AFTER_MS} ms)",
            OUTAGE.as_secs()
        ),
    );
    broker
        .refuse_hellos_with(Refusal::capacity("demo outage", RETRY_AFTER_MS), Some(OUTAGE))
        .await;
    broker.drop_all(1001, "shutting down").await;
    let mut a_status = a.status();
    wait(a_status.wait_for(|s| *s != Status::Open)).await?;
    timeline.note(
        "alice",
        "sends while away",
        format!("{WHILE_AWAY} messages, queued until the broker is back"),
    );
    let pending: Vec<_> = (0..WHILE_AWAY)
        .map(|i| {
            let a = a.clone();
            let key = bob_key.clone();
            tokio::spawn(async move { a.send(&key, &format!("while away #{i}"), Priority::Next).await })
        })
        .collect();
    wait(a_status.wait_for(|s| *s == Status::Open)).await?;
    wait(b.status().wait_for(|s| *s == Status::Open)).await?;
    let mut acked = 0;
    for p in pending {
        if matches!(p.await, Ok(Ok(_))) {
            acked += 1;
        }
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    while counts.len() < WHILE_AWAY {
        let push = recv(&mut b_in).await?;
        *counts.entry(push_text(&push)).or_default() += 1;
    }
    // One more round trip: anything duplicated would have arrived before it.
    a.send(&bob_key, "after the outage", Priority::Next)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let push = recv(&mut b_in).await?;
        let text = push_text(&push);
        if text == "after the outage" {
            break;
        }
        *counts.entry(text).or_default() += 1;
    }
    timeline.note(
        "bob",
        "received",
        format!("{} distinct messages sent while away", counts.len()),
    );
    let delays = delays.lock().map(|d| d.clone()).unwrap_or_default();
    let jittered = delays
        .iter()
        .map(|(_, d)| *d)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let honoured = delays
        .iter()
        .any(|(_, d)| d.as_millis() >= u128::from(RETRY_AFTER_MS));
    checks.check(
        timeline,
        "backoff with jitter",
        jittered && delays.len() >= 4,
        format!("{} reconnect delays, all different: {}", delays.len(), jittered),
    );
    checks.check(
        timeline,
        "retry-after honoured",
        honoured,
        format!("a delay ≥ {RETRY_AFTER_MS} ms after capacity"),
    );
    checks.check(
        timeline,
        "sent while away: exactly once",
        acked == WHILE_AWAY && counts.len() == WHILE_AWAY && counts.values().all(|n| *n == 1),
        format!(
            "{acked}/{WHILE_AWAY} acked, each delivered {:?} time(s)",
            counts.values().collect::<Vec<_>>()
        ),
    );

    // The revoked key: refused, and it stops instead of looping.
    let carol_client = client_builder(url, carol, 33)
        .with_config(|c| c.session.lifecycle.first_connect = FirstConnect::Retry);
    timeline.note(
        "carol",
        "connecting",
        "with a key the mesh admin revoked (configured to keep retrying)",
    );
    let before = rejected(broker).await;
    let outcome = tokio::time::timeout(PATIENCE, carol_client.connect()).await;
    let after = rejected(broker).await;
    match outcome {
        Ok(Err(ConnectError::Failed(reason @ StopReason::Permanent { .. }))) => {
            timeline.note("carol", "stopped", reason.to_string());
            checks.check(
                timeline,
                "revoked key stops, no loop",
                after == before + 1,
                format!("{} attempt, broker's reason reported", after - before),
            );
        }
        Ok(Err(e)) => checks.check(timeline, "revoked key stops, no loop", false, e.to_string()),
        Ok(Ok(_)) => checks.check(
            timeline,
            "revoked key stops, no loop",
            false,
            "carol was admitted",
        ),
        Err(_) => checks.check(timeline, "revoked key stops, no loop", false, "carol kept trying"),
    }

    for (who, client) in [("alice", &a), ("bob", &b)] {
        if let Ok(stats) = client.stats().await {
            let l = &stats.lifecycle;
            let detail = format!(
                "attempts {}, connects {}, refused {}, closed by peer {}, open {:.1} s, last handshake {} ms, sends acked {}, pushes {}",
                l.attempts,
                l.connects,
                l.failures_of(FailureClass::Rejected),
                l.failures_of(FailureClass::PeerClosed),
                l.time_in(Status::Open).as_secs_f64(),
                l.last_handshake.map_or(0, |d| d.as_millis()),
                stats.sends_acked,
                stats.pushes,
            );
            timeline.note(who, "stats", detail);
        }
    }
    a.close().await;
    b.close().await;
    Ok(())
}

async fn rejected(broker: &BrokerHandle) -> u64 {
    broker
        .stats()
        .await
        .core
        .hellos_rejected
        .get("revoked")
        .copied()
        .unwrap_or(0)
}

async fn recv(sub: &mut tether_tokio::Subscription) -> Result<Arc<tether_proto::mesh::push::Push>, String> {
    match tokio::time::timeout(PATIENCE, sub.recv()).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err("the client shut down".into()),
        Err(_) => Err("a message did not arrive in time".into()),
    }
}

async fn wait<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(PATIENCE, f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out waiting for a status".into()),
    }
}

fn summary(checks: &Checks, timeline: &Timeline) {
    let passed = checks.0.iter().filter(|(_, ok, _)| *ok).count();
    if timeline.json {
        let line = serde_json::json!({
            "summary": checks.0.iter().map(|(what, ok, detail)| serde_json::json!({"check": what, "ok": ok, "detail": detail})).collect::<Vec<_>>(),
            "passed": passed,
            "total": checks.0.len(),
            "seconds": timeline.t0.elapsed().as_secs_f64(),
        });
        out!("{line}");
        return;
    }
    out!();
    out!("{:<34} {:<6} detail", "check", "result");
    out!("{}", "-".repeat(90));
    for (what, ok, detail) in &checks.0 {
        out!("{what:<34} {:<6} {detail}", if *ok { "ok" } else { "FAILED" });
    }
    out!("{}", "-".repeat(90));
    out!(
        "{passed}/{} checks held in {:.1} s",
        checks.0.len(),
        timeline.t0.elapsed().as_secs_f64()
    );
}
