//! The blocking facade against the in-test broker.

mod common;

use std::sync::atomic::Ordering;

use common::{config, Behaviour, Server, PATIENCE};
use tether_mio::{BlockingClient, ClientError, ClientEvent, Sent};
use tether_proto::lifecycle::{Notification, Status};
use tether_proto::mesh::session::Outgoing;
use tether_proto::mesh::wire::Priority;

#[test]
fn connect_send_ack_and_close() {
    let server = Server::start(Behaviour::Ack);
    let client = BlockingClient::connect(config(&server.url())).unwrap();
    assert_eq!(client.status(), Status::Open);

    let sent = client.send("@alice", "hello", Priority::Next).unwrap();
    assert_eq!(
        sent,
        Sent {
            message_id: "m1".into(),
            queued: false
        }
    );
    client.set_summary("testing").unwrap();

    // Calls from other threads reach the reactor through its waker.
    let other = client.clone();
    std::thread::spawn(move || other.send("@bob", "from afar", Priority::Low))
        .join()
        .unwrap()
        .unwrap();

    let stats = client.stats().unwrap();
    assert_eq!(stats.sends_acked, 2);
    let io = client.io_stats().unwrap();
    assert!(io.messages_out >= 4, "{io:?}");
    assert_eq!(io.queued, 0);

    client.close();
    assert_eq!(client.status(), Status::Closed);
    assert!(matches!(
        client.send("@alice", "late", Priority::Next),
        Err(ClientError::Shutdown)
    ));
    client.close();
}

#[test]
fn reconnect_is_reported_on_events() {
    let server = Server::start(Behaviour::Ack);
    let client = BlockingClient::connect(config(&server.url())).unwrap();
    let events = client.events();
    client.reconnect().unwrap();
    loop {
        match events.recv_timeout(PATIENCE).unwrap() {
            ClientEvent::Lifecycle(Notification::Connected { first: false, .. }) => break,
            _ => continue,
        }
    }
    assert_eq!(
        client.wait_status(|s| s == Status::Open, PATIENCE),
        Some(Status::Open)
    );
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    drop(client);
    // The last handle gone, the thread closed the session and ended the channel.
    while events.recv_timeout(PATIENCE).is_some() {}
    assert_eq!(events.try_recv().err(), Some(tether_mio::TryRecvError::Closed));
}

/// The broker closes the connection right after its ack: a send made meanwhile
/// goes out on the next connection (resend with the same id, B6).
#[test]
fn a_send_survives_the_broker_closing() {
    let server = Server::start(Behaviour::CloseFirst);
    let client = BlockingClient::connect(config(&server.url())).unwrap();
    let mut outgoing = Outgoing::new("@alice", "hello");
    outgoing.resend_if_unknown = true;
    let sent = client.send_message(outgoing).unwrap();
    assert_eq!(sent.message_id, "m1");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

/// The same through a host name: resolved on a helper thread, the IPv6 answer
/// (if any) refused, the IPv4 one taken.
#[test]
fn a_host_name_resolves_off_the_loop() {
    let server = Server::start(Behaviour::Ack);
    let url = format!("ws://localhost:{}/ws", server.addr.port());
    let client = BlockingClient::connect(config(&url)).unwrap();
    client.send("@alice", "hello", Priority::Now).unwrap();
}
