//! tether's two hosts driven the way the benchmarks drive every client: `sends`
//! sends to `*`, at most `window` waiting for their ack, the clock of a send
//! started before the call that encodes and writes it.

use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt as _;
use tether_mio::{ConnConfig, ConnId, Reactor};
use tether_proto::lifecycle::{Config, Status};
use tether_proto::mesh::handshake::Credentials;
use tether_proto::mesh::session::{Outgoing, SessionConfig, SessionEvent};
use tether_proto::mesh::wire::Priority;
use tether_tokio::{Client, ClientConfig};

use crate::bare::BODY;
use crate::{member, presence};

/// Connects a tether-tokio client, connection `n` of mesh `mesh`.
pub async fn tokio_connect(url: &str, mesh: &str, n: u32) -> Client {
    let mut config = ClientConfig::new(url, Credentials::Member(member(mesh, n)), presence(n));
    config.session = SessionConfig::new(Config::new(url));
    config.seed = Some(u64::from(n));
    match Client::connect(config).await {
        Ok(c) => c,
        Err(e) => panic!("tether client connects: {e}"),
    }
}

/// `sends` sends through a tether-tokio client, at most `window` in flight; with
/// `rtts`, each send's round trip (from the `send` call to its ack).
pub async fn tokio_run(client: &Client, sends: usize, window: usize, mut rtts: Option<&mut Vec<Duration>>) {
    if window <= 1 {
        for _ in 0..sends {
            let start = Instant::now();
            if let Err(e) = client.send("*", BODY, Priority::Next).await {
                panic!("tether send acked: {e}");
            }
            if let Some(r) = rtts.as_deref_mut() {
                r.push(start.elapsed());
            }
        }
        return;
    }
    let mut pending = FuturesUnordered::new();
    let mut started = 0;
    while started < sends.min(window) {
        pending.push(client.send("*", BODY, Priority::Next));
        started += 1;
    }
    while let Some(result) = pending.next().await {
        if let Err(e) = result {
            panic!("tether send acked: {e}");
        }
        if started < sends {
            pending.push(client.send("*", BODY, Priority::Next));
            started += 1;
        }
    }
}

/// tether-mio's `Reactor` driven from the caller's own thread: the event-loop
/// API a mio program uses, which pipelines without threads.
pub struct ReactorClients {
    reactor: Reactor,
    conns: Vec<ConnId>,
}

impl ReactorClients {
    /// `count` connections (mesh `{mesh}-{n}`), all open.
    pub fn connect(url: &str, mesh: &str, count: u32) -> ReactorClients {
        let mut reactor = match Reactor::new() {
            Ok(r) => r,
            Err(e) => panic!("reactor: {e}"),
        };
        let conns: Vec<ConnId> = (1..=count)
            .map(|n| {
                let mesh = format!("{mesh}-{n}");
                let mut config = ConnConfig::new(url, Credentials::Member(member(&mesh, n)), presence(n));
                config.seed = Some(u64::from(n));
                match reactor.add(config) {
                    Ok(id) => id,
                    Err(e) => panic!("reactor connection: {e}"),
                }
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !conns.iter().all(|&c| reactor.status(c) == Some(Status::Open)) {
            assert!(Instant::now() < deadline, "reactor connections open within 30 s");
            if let Err(e) = reactor.run_once(Some(Duration::from_millis(100))) {
                panic!("reactor turn: {e}");
            }
            reactor.drain_events().for_each(drop);
        }
        ReactorClients { reactor, conns }
    }

    /// The reactor (for its statistics).
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    fn send(&mut self, conn: usize) {
        if let Err(e) = self.reactor.send(
            self.conns[conn],
            Outgoing::new("*", BODY).priority(Priority::Next),
        ) {
            panic!("reactor send: {e}");
        }
    }
}

impl crate::OneThread for ReactorClients {
    // The session matches each ack to its send; the harness only counts them
    // per connection (and, one at a time, keeps the one start time a connection has).
    fn run(&mut self, conns: usize, per_conn: usize, window: usize, mut rtts: Option<&mut Vec<Duration>>) {
        let window = window.max(1);
        let conns = conns.min(self.conns.len());
        let total = per_conn * conns;
        let mut left = vec![per_conn; conns];
        let mut started = vec![None; conns];
        let index: std::collections::HashMap<ConnId, usize> = self.conns[..conns]
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i))
            .collect();
        for conn in 0..conns {
            for _ in 0..window.min(left[conn]) {
                left[conn] -= 1;
                started[conn] = Some(Instant::now());
                self.send(conn);
            }
        }
        let mut done = 0;
        while done < total {
            if let Err(e) = self.reactor.run_once(Some(Duration::from_secs(5))) {
                panic!("reactor turn: {e}");
            }
            while let Some((from, event)) = self.reactor.poll_event() {
                let SessionEvent::Resolved { result, .. } = event else {
                    continue;
                };
                if let Err(e) = result {
                    panic!("reactor send acked: {e}");
                }
                let Some(&conn) = index.get(&from) else {
                    continue;
                };
                done += 1;
                if window == 1 {
                    if let (Some(r), Some(at)) = (rtts.as_deref_mut(), started[conn]) {
                        r.push(at.elapsed());
                    }
                }
                if left[conn] > 0 {
                    left[conn] -= 1;
                    started[conn] = Some(Instant::now());
                    self.send(conn);
                }
            }
        }
    }
}

impl ReactorClients {
    /// Closes every connection, waiting up to 2 s for the closes to finish.
    pub fn close(mut self) {
        self.reactor.close_all();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && self
                .conns
                .iter()
                .any(|&c| self.reactor.status(c).is_some_and(|s| s != Status::Closed))
        {
            let _ = self.reactor.run_once(Some(Duration::from_millis(50)));
            self.reactor.drain_events().for_each(drop);
        }
    }
}
