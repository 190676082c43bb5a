//! Every fault switch, as the simulator and the server use them.

use std::time::Duration;

use tether_proto::mesh::wire::BrokerFrame;

use super::*;
use crate::core::{ConnSelector, Refusal};

#[test]
fn refused_hellos_until_a_time_then_accepted() {
    let mut h = Harness::open_broker();
    let until = h.instant_in(Duration::from_secs(5));
    h.fault(Fault::RefuseHellos {
        refusal: Refusal::for_code("revoked", "go away"),
        until: Some(until),
    });
    let conn = h.open();
    h.client(conn, member(1).hello(&presence("s1", None), T0_MS));
    let out = h.take(conn);
    assert!(matches!(&out[0], OutputKind::Send(t) if t.contains(r#""code":"revoked""#)));
    assert_eq!(
        out[1],
        OutputKind::Close {
            code: 4002,
            reason: "banned".into()
        }
    );
    h.advance(Duration::from_secs(5));
    h.join(&member(1), "s1");
}

#[test]
fn stalled_hellos_get_no_answer_and_time_out() {
    let mut h = Harness::open_broker();
    h.fault(Fault::StallHellos(true));
    let conn = h.open();
    h.client(conn, member(1).hello(&presence("s1", None), T0_MS));
    assert!(h.take(conn).is_empty());
    assert_eq!(h.broker.stats().hellos_stalled, 1);
    h.run_for(Duration::from_secs(10));
    assert!(matches!(
        h.take(conn).as_slice(),
        [OutputKind::Close { code: 1008, .. }]
    ));
    h.fault(Fault::StallHellos(false));
    h.join(&member(1), "s1");
}

#[test]
fn delayed_acks_arrive_late_but_pushes_do_not_wait() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.fault(Fault::DelayAcks(Duration::from_secs(3)));
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    assert!(h.frames(ada).is_empty());
    assert_eq!(h.frames(bob).len(), 1);
    assert_eq!(
        h.broker.next_deadline(),
        Some(h.instant_in(Duration::from_secs(3)))
    );
    h.advance(Duration::from_secs(3));
    assert!(matches!(h.frames(ada).as_slice(), [BrokerFrame::Ack(a)] if a.id == "c1"));
    h.fault(Fault::DelayAcks(Duration::ZERO));
    h.client(ada, send("c2", &pubkey(2), "eA=="));
    assert_eq!(h.frames(ada).len(), 1);
}

// A half-open socket: the broker stops talking and listening, and drops it after stale_after.
#[test]
fn a_silenced_connection_hears_nothing_and_is_dropped_later() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.fault(Fault::GoSilent(ConnSelector::Pubkey(pubkey(2))));
    assert_eq!(h.take(bob), vec![OutputKind::Silence]);
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    assert_eq!(h.frames(ada).len(), 1, "the sender still gets its ack");
    h.pong(bob);
    h.client(bob, send("c2", &pubkey(1), "eA=="));
    assert!(h.take(bob).is_empty());
    h.run_for(Duration::from_secs(74));
    assert!(h.take(bob).is_empty(), "no pings to a silenced connection");
    h.run_for(Duration::from_secs(1));
    assert_eq!(h.take(bob), vec![OutputKind::Abort]);
    assert!(h.broker.stats().silenced_outputs >= 1);
}

#[test]
fn drop_all_closes_everyone_with_the_code() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let pending = h.open();
    h.fault(Fault::shutting_down());
    for conn in [ada, pending] {
        assert_eq!(
            h.take(conn),
            vec![OutputKind::Close {
                code: 1001,
                reason: "shutting down".into()
            }]
        );
    }
    assert_eq!(h.broker.stats().live_connections, 0);
    let bob = h.join(&member(2), "s2");
    h.fault(Fault::DropAll {
        code: 1006,
        reason: String::new(),
    });
    assert_eq!(
        h.take(bob),
        vec![OutputKind::Abort],
        "1006 is never sent: a bare drop"
    );
}

#[test]
fn drop_all_keeps_unconfirmed_pushes_for_the_next_connection() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    let bob = h.join(&member(2), "s2");
    h.client(ada, send("c1", &pubkey(2), "eA=="));
    h.fault(Fault::shutting_down());
    // Nobody gets a push after its close: the push waits for bob's next connection.
    for conn in [ada, bob] {
        assert!(matches!(
            h.take(conn).last(),
            Some(OutputKind::Close { code: 1001, .. })
        ));
    }
    let bob = h.open();
    h.client(bob, member(2).hello(&presence("s2", None), T0_MS));
    assert_eq!(h.frames(bob).len(), 2, "hello_ack, then the requeued push");
}

#[test]
fn garbage_is_sent_as_is() {
    let mut h = Harness::open_broker();
    let ada = h.join(&member(1), "s1");
    h.fault(Fault::SendGarbage {
        to: ConnSelector::Conn(ada),
        text: "\u{1}not json".into(),
    });
    assert_eq!(h.take(ada), vec![OutputKind::Send("\u{1}not json".into())]);
    assert_eq!(h.broker.stats().garbage_sent, 1);
}
