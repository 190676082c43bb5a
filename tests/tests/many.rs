//! X6: one mio reactor thread drives 200 connections through the reference
//! broker, and a broker restart under them: all reconnect, nothing is lost.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tether_mio::{ConnId, Reactor};
use tether_proto::lifecycle::Status;
use tether_proto::mesh::session::{OpId, Outgoing, SessionEvent};
use tether_tests::e2e::*;

const CONNS: u8 = 200;
/// Safety net for each phase; phases end on events.
const PHASE: Duration = Duration::from_secs(60);

fn body(push: &tether_proto::mesh::push::Push) -> String {
    push.body.text().unwrap_or_default().to_owned()
}

struct Run {
    reactor: Reactor,
    ids: Vec<ConnId>,
    pending: BTreeMap<(ConnId, OpId), Outgoing>,
    received: BTreeMap<String, u32>,
}

impl Run {
    /// Turns the reactor until `done` holds, recording results and pushes.
    fn until(&mut self, what: &str, done: impl Fn(&Run) -> bool) {
        let deadline = Instant::now() + PHASE;
        while !done(self) {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            self.reactor.run_once(Some(Duration::from_millis(200))).unwrap();
            while let Some((conn, event)) = self.reactor.poll_event() {
                match event {
                    SessionEvent::Resolved { id, result } => {
                        let out = self.pending.remove(&(conn, id)).expect("resolved twice");
                        match result {
                            // Flushed before its target was back: refused as the real
                            // broker refuses it (never delivered, transient), so resend.
                            Err(f) if !f.permanent && f.reason.contains("no connected peer") => {
                                let op = self.reactor.send(conn, out.clone()).unwrap();
                                self.pending.insert((conn, op), out);
                            }
                            other => assert!(other.is_ok(), "{conn}: {other:?}"),
                        }
                    }
                    SessionEvent::Push(push) => *self.received.entry(body(&push)).or_insert(0) += 1,
                    _ => {}
                }
            }
        }
    }

    fn all(&self, status: Status) -> bool {
        self.ids.iter().all(|id| self.reactor.status(*id) == Some(status))
    }

    fn none_open(&self) -> bool {
        self.ids
            .iter()
            .all(|id| self.reactor.status(*id) != Some(Status::Open))
    }

    /// Every connection i sends one message to connection i + 1.
    fn round(&mut self, round: u32) {
        for (i, id) in self.ids.clone().into_iter().enumerate() {
            let to = pubkey((i as u8 + 1) % CONNS + 1);
            let mut out = Outgoing::new(to, format!("round {round} from {i}"));
            out.client_message_id = Some(format!("r{round}-{i}"));
            let op = self.reactor.send(id, out.clone()).unwrap();
            self.pending.insert((id, op), out);
        }
    }

    fn delivered(&self, round: u32) -> bool {
        self.pending.is_empty()
            && (0..CONNS as usize).all(|i| self.received.contains_key(&format!("round {round} from {i}")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_on_one_reactor_survive_a_broker_restart() {
    // proves X6, X1, X3, B3
    let mut config = broker_config(membership(CONNS, &[]));
    // More than the real broker's default of 100 per mesh.
    config.broker.max_connections_per_mesh = usize::from(CONNS);
    let broker = start_broker(config, None).await;
    let url = broker.url();
    let (to_test, from_reactor) = mpsc::channel::<&'static str>();
    let (to_reactor, from_test) = mpsc::channel::<()>();
    let reactor = std::thread::spawn(move || {
        let mut run = Run {
            reactor: Reactor::new().unwrap(),
            ids: Vec::new(),
            pending: BTreeMap::new(),
            received: BTreeMap::new(),
        };
        for n in 1..=CONNS {
            run.ids
                .push(run.reactor.add(spec(&url, n, &format!("many-{n}"))).unwrap());
        }
        run.until("every connection to open", |r| r.all(Status::Open));
        run.round(1);
        run.until("round 1 to be acked and delivered", |r| r.delivered(1));
        // The broker goes away; sends made meanwhile wait in the queues.
        to_test.send("stop the broker").unwrap();
        from_test.recv().unwrap();
        run.until("every connection to notice", Run::none_open);
        run.round(2);
        to_test.send("restart the broker").unwrap();
        from_test.recv().unwrap();
        run.until("every connection to reopen", |r| r.all(Status::Open));
        run.until("round 2 to be acked and delivered", |r| r.delivered(2));
        run.reactor.close_all();
        run.received
    });
    let next = |rx: &mpsc::Receiver<&'static str>| rx.recv_timeout(PHASE * 3).unwrap();
    assert_eq!(next(&from_reactor), "stop the broker");
    broker.stop().await;
    to_reactor.send(()).unwrap();
    assert_eq!(next(&from_reactor), "restart the broker");
    let broker = broker.restart().await.unwrap();
    to_reactor.send(()).unwrap();
    let received = tokio::task::spawn_blocking(move || reactor.join().unwrap())
        .await
        .unwrap();
    assert_eq!(received.len(), 2 * CONNS as usize);
    assert!(received.values().all(|n| *n == 1), "a message arrived twice");
    broker.stop().await;
}
