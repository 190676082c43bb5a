//! N pipelined sends on one connection, on tether-mio's `Reactor` or on
//! tether-tokio, against a broker given by URL: the workload whose write system
//! calls `bench/syscalls.sh` counts with strace (issue 12, point 8).
//!
//! `pipelined mio|tokio URL [SENDS] [WINDOW]` keeps WINDOW sends in flight until
//! SENDS are acked, then prints one line (the only write besides the socket's).
//! Every send goes to `*` in a mesh of its own, so the broker acks at once and
//! pushes to nobody.

use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tether_bench::{member, presence};
use tether_mio::{ConnConfig, Reactor};
use tether_proto::lifecycle::Status;
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::session::{Outgoing, SessionEvent};
use tether_proto::mesh::wire::Priority;
use tether_tokio::{Client, ClientConfig};

const BODY: &str = "hello from the pipelined bench";

fn main() {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_default();
    let Some(url) = args.next() else {
        eprintln!("usage: pipelined mio|tokio URL [SENDS] [WINDOW]");
        std::process::exit(2);
    };
    let sends: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let window: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64).max(1);
    let started = Instant::now();
    let note = match host.as_str() {
        "mio" => mio(&url, sends, window),
        "tokio" => tokio_host(&url, sends, window),
        other => {
            eprintln!("unknown host {other:?}: mio or tokio");
            std::process::exit(2);
        }
    };
    println!(
        "{host}: {sends} sends acked, {window} in flight, {:.2} s{note}",
        started.elapsed().as_secs_f64()
    );
}

fn mio(url: &str, sends: usize, window: usize) -> String {
    let mut reactor = Reactor::new().expect("a reactor");
    let mut config = ConnConfig::new(url, Credentials::Member(member("pipelined-mio", 1)), presence(1));
    config.seed = Some(1);
    let id = reactor.add(config).expect("a connection");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reactor.status(id) != Some(Status::Open) {
        assert!(Instant::now() < deadline, "the connection opens within 30 s");
        reactor
            .run_once(Some(Duration::from_millis(100)))
            .expect("a turn");
        reactor.drain_events().for_each(drop);
    }
    let send = |reactor: &mut Reactor| {
        reactor
            .send(id, Outgoing::new("*", BODY).priority(Priority::Next))
            .expect("a send is accepted")
    };
    let mut started = 0;
    while started < sends.min(window) {
        send(&mut reactor);
        started += 1;
    }
    let mut acked = 0;
    while acked < sends {
        reactor.run_once(Some(Duration::from_secs(5))).expect("a turn");
        while let Some((_, event)) = reactor.poll_event() {
            if let SessionEvent::Resolved { result, .. } = event {
                result.expect("every send is acked");
                acked += 1;
                if started < sends {
                    send(&mut reactor);
                    started += 1;
                }
            }
        }
    }
    let stats = reactor.io_stats(id).expect("the connection's counters");
    reactor.close_all();
    format!(
        ", {} messages out in {} flushes",
        stats.messages_out, stats.flushes
    )
}

fn tokio_host(url: &str, sends: usize, window: usize) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let url = url.to_owned();
    rt.block_on(async move {
        // In a task of its own, as application code runs (see loopback.rs).
        tokio::spawn(async move {
            let mut config = ClientConfig::new(
                url.as_str(),
                Credentials::Member(member("pipelined-tokio", 2)),
                presence(2),
            );
            config.seed = Some(2);
            let client = Client::connect(config).await.expect("the client connects");
            let mut pending = FuturesUnordered::new();
            let mut started = 0;
            while started < sends.min(window) {
                pending.push(client.send("*", BODY, Priority::Next));
                started += 1;
            }
            while let Some(result) = pending.next().await {
                result.expect("every send is acked");
                if started < sends {
                    pending.push(client.send("*", BODY, Priority::Next));
                    started += 1;
                }
            }
            drop(pending);
            client.close().await;
        })
        .await
        .expect("the run");
    });
    String::new()
}
