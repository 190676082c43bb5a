//! The reactor against the in-test broker: many connections on one thread,
//! reconnects, handles from other threads, a peer that stops reading.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use common::{config, Behaviour, Server, PATIENCE};
use tether_mio::{ConnId, Reactor};
use tether_proto::lifecycle::{Failure, Notification, Status};
use tether_proto::mesh::session::{Outcome, Outgoing, SessionEvent};

fn connected(event: &SessionEvent) -> Option<bool> {
    match event {
        SessionEvent::Lifecycle(Notification::Connected { first, .. }) => Some(*first),
        _ => None,
    }
}

fn wait_open(reactor: &mut Reactor, want: usize) -> HashSet<ConnId> {
    let mut open = HashSet::new();
    let done = reactor
        .run_until(Some(PATIENCE), |r| {
            while let Some((id, event)) = r.poll_event() {
                if connected(&event).is_some() {
                    open.insert(id);
                }
            }
            open.len() == want
        })
        .unwrap();
    assert!(done, "only {} of {want} connections opened", open.len());
    open
}

/// X6: fifty sessions on one thread, each acked.
#[test]
fn fifty_connections_share_one_reactor() {
    let server = Server::start(Behaviour::Ack);
    let mut reactor = Reactor::new().unwrap();
    let ids: Vec<ConnId> = (0..50)
        .map(|i| {
            let mut c = config(&server.url());
            c.seed = Some(i);
            reactor.add(c).unwrap()
        })
        .collect();
    assert_eq!(wait_open(&mut reactor, 50).len(), 50);

    let mut pending = HashSet::new();
    for &id in &ids {
        let op = reactor.send(id, Outgoing::new("@alice", "hi")).unwrap();
        pending.insert((id, op));
    }
    let done = reactor
        .run_until(Some(PATIENCE), |r| {
            while let Some((id, event)) = r.poll_event() {
                if let SessionEvent::Resolved { id: op, result } = event {
                    assert!(pending.remove(&(id, op)), "resolved twice or unknown");
                    assert!(matches!(result, Ok(Outcome::Sent { .. })), "{result:?}");
                }
            }
            pending.is_empty()
        })
        .unwrap();
    assert!(done, "{} sends unresolved", pending.len());
    assert_eq!(reactor.len(), 50);
    assert!(ids.iter().all(|&id| reactor.status(id) == Some(Status::Open)));
    for id in ids {
        assert!(reactor.remove(id));
        assert_eq!(reactor.status(id), None);
    }
    assert!(reactor.is_empty());
}

/// The broker closes an open connection: the session reports its code and reason
/// and reconnects on its own schedule.
#[test]
fn a_connection_the_broker_closes_reconnects() {
    let server = Server::start(Behaviour::CloseFirst);
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.add(config(&server.url())).unwrap();
    let mut seen = Vec::new();
    let done = reactor
        .run_until(Some(PATIENCE), |r| {
            for (_, event) in r.drain_events() {
                if let SessionEvent::Lifecycle(note) = event {
                    seen.push(note);
                }
            }
            seen.iter()
                .any(|n| matches!(n, Notification::Connected { first: false, .. }))
        })
        .unwrap();
    assert!(done, "no reconnect: {seen:?}");
    assert!(
        seen.iter().any(|n| matches!(
            n,
            Notification::Disconnected { failure: Failure::Closed(c), was_open: true, .. }
                if c.code == 1012 && c.reason == "restarting"
        )),
        "{seen:?}"
    );
    assert_eq!(reactor.status(id), Some(Status::Open));
    assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A handle on another thread queues a send through the waker; its callback
/// gets the ack.
#[test]
fn a_handle_sends_from_another_thread() {
    let server = Server::start(Behaviour::Ack);
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.add(config(&server.url())).unwrap();
    wait_open(&mut reactor, 1);

    let handle = reactor.handle();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        handle
            .send(id, Outgoing::new("@bob", "from afar"), move |result| {
                let _ = tx.send(result);
            })
            .unwrap();
    });
    let mut result = None;
    let done = reactor
        .run_until(Some(PATIENCE), |_| {
            result = result.take().or_else(|| rx.try_recv().ok());
            result.is_some()
        })
        .unwrap();
    assert!(done);
    assert!(matches!(result, Some(Ok(Ok(Outcome::Sent { .. })))), "{result:?}");
}

/// X4: frames behind a socket the peer no longer reads queue up to the cap; one
/// more and the socket is reported dead, in the session's own terms.
#[test]
fn a_peer_that_stops_reading_overflows_the_write_queue() {
    let server = Server::start(Behaviour::StopReading);
    let mut reactor = Reactor::new().unwrap();
    let mut c = config(&server.url());
    c.transport.write_queue = 4;
    // Large frames fill the socket's buffers in few sends.
    c.session.max_send_len = 1 << 20;
    let id = reactor.add(c).unwrap();
    wait_open(&mut reactor, 1);

    let body = "x".repeat(256 * 1024);
    let mut ops = HashMap::new();
    for _ in 0..400 {
        if reactor.io_stats(id).unwrap().queue_overflows > 0 {
            break;
        }
        if let Ok(op) = reactor.send(id, Outgoing::new("@alice", body.clone())) {
            ops.insert(op, ());
        }
    }
    assert_eq!(reactor.io_stats(id).unwrap().queue_overflows, 1);
    let events: Vec<_> = reactor.drain_events().collect();
    assert!(
        events.iter().any(|(_, e)| matches!(
            e,
            SessionEvent::Lifecycle(Notification::Disconnected { failure: Failure::Closed(c), .. })
                if c.code == 1006 && c.reason == "write queue full"
        )),
        "no overflow close"
    );
    // Written sends lost with the socket resolve at once as outcome unknown (X8).
    assert!(events
        .iter()
        .any(|(_, e)| matches!(e, SessionEvent::Resolved { result: Err(_), .. })));
}

/// No busy loop: with every session idle the reactor sleeps in one poll until
/// its timeout (or the earliest deadline, seconds away).
#[test]
fn an_idle_reactor_sleeps() {
    let server = Server::start(Behaviour::Ack);
    let mut reactor = Reactor::new().unwrap();
    reactor.add(config(&server.url())).unwrap();
    wait_open(&mut reactor, 1);
    let mut turns = 0;
    let done = reactor
        .run_until(Some(Duration::from_millis(300)), |r| {
            r.drain_events().for_each(drop);
            turns += 1;
            false
        })
        .unwrap();
    assert!(!done);
    assert!(turns <= 3, "{turns} turns while idle");
}

/// Issue 17: the first connection of two reactors used to be `ConnId { index:
/// 0, generation: 0 }` in both, so two clients' logs could not be told apart,
/// and one reactor took the other's id for its own connection.
#[test]
fn ids_of_two_reactors_print_apart_and_are_not_mixed_up() {
    let server = Server::start(Behaviour::Ack);
    let mut a = Reactor::new().unwrap();
    let mut b = Reactor::new().unwrap();
    let in_a = a.add(config(&server.url())).unwrap();
    let in_b = b.add(config(&server.url())).unwrap();
    assert_ne!(format!("{in_a:?}"), format!("{in_b:?}"));
    assert_ne!(in_a.to_string(), in_b.to_string());
    assert_ne!(in_a, in_b);
    // Each reactor knows its own connection only.
    assert!(a.status(in_a).is_some() && b.status(in_b).is_some());
    assert_eq!(b.status(in_a), None);
    assert!(b.send(in_a, Outgoing::new("@alice", "hi")).is_err());
    assert!(!b.remove(in_a));
    assert!(a.remove(in_a) && b.remove(in_b));
}

/// A server that answers the upgrade and, in the same write, its first frame:
/// the client must read that frame though it arrived with the handshake. The
/// host rebuilds the socket after the upgrade (to give it the configured read
/// buffer, not the handshake's 4 KiB), so this is the frame that could be lost.
#[test]
fn a_frame_that_arrives_with_the_upgrade_response_is_read() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            request.push(byte[0]);
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|l| {
                l.strip_prefix("Sec-WebSocket-Key: ")
                    .or_else(|| l.strip_prefix("sec-websocket-key: "))
            })
            .unwrap()
            .trim();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let ack = br#"{"type":"hello_ack","presenceId":"p","memberDisplayName":"m"}"#;
        let mut reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        // An unmasked text frame, in the same write as the response.
        reply.extend_from_slice(&[0x81, ack.len() as u8]);
        reply.extend_from_slice(ack);
        tcp.write_all(&reply).unwrap();
        // Hold the socket until the client goes away.
        let _ = tcp.read_to_end(&mut Vec::new());
    });
    let mut c = config(&url);
    c.session.lifecycle.hello_ack_timeout = Duration::from_secs(2);
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.add(c).unwrap();
    let mut outcome = None;
    let done = reactor
        .run_until(Some(PATIENCE), |r| {
            while let Some((_, event)) = r.poll_event() {
                match event {
                    SessionEvent::Lifecycle(Notification::Connected { .. }) => outcome = Some(Ok(())),
                    SessionEvent::Lifecycle(Notification::Disconnected { failure, .. }) => {
                        outcome = Some(Err(format!("{failure:?}")))
                    }
                    _ => {}
                }
            }
            outcome.is_some()
        })
        .unwrap();
    assert!(done, "neither open nor failed");
    assert_eq!(
        outcome,
        Some(Ok(())),
        "the hello_ack sent with the upgrade response was lost"
    );
    assert_eq!(reactor.status(id), Some(Status::Open));
    assert!(reactor.remove(id));
    drop(reactor);
    server.join().unwrap();
}
