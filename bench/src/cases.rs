//! The instruction-count cases, shared by `src/bin/icount.rs` (callgrind by hand,
//! `bench/icount.sh`) and `benches/instructions.rs` (gungraun, `bench/gungraun.sh`).
//!
//! A case is its operation as a closure that owns the case's state and inputs,
//! all prepared beforehand. Operation `i` of a case is called with `i`; each
//! result goes through [`black_box`] and is dropped inside the operation.

use std::hint::black_box;

use tether_proto::lifecycle::Handshake;

use crate::{
    ack_template, ack_text, bare_parse, hello_text, push_pool, replay_socket, send_id, typed_push_parse,
    ws_pong_frame, ws_read, ws_text_frame, OpenSession, POOL,
};

/// Every case, in report order.
pub const CASES: &[&str] = &[
    "tick",
    "ping_pong",
    "tungstenite_read_pong",
    "send_ack",
    "bare_parse_ack",
    "tungstenite_read_ack",
    "hello",
    "sign_alone",
    "bare_parse_hello",
    "push",
    "bare_parse_push",
    "typed_parse_push",
    "typed_parse_open_push",
    "tungstenite_read_push",
    "stack_session",
    "stack_bare_parse",
];

/// Operations run before the measured ones: enough to fill the dedupe window
/// (1 024) and the push history (500).
pub const WARMUP: usize = POOL / 2;

/// One case's operation with its state; call it with the operation's index.
pub type Op = Box<dyn FnMut(usize)>;

/// Case `name`, with inputs for [`WARMUP`] + `n` operations; `None` if there is
/// no such case.
///
/// `#[inline]` so that the closures are compiled in the calling crate, as when
/// they were written in icount's `main`.
#[inline]
pub fn case(name: &str, n: usize) -> Option<Op> {
    // Every case makes all three, in this order, whether it uses them or not, as
    // icount's `main` did: malloc's cost depends on the heap's history.
    let pool = push_pool(POOL);
    let ids: Vec<String> = (0..POOL).map(send_id).collect();
    let acks: Vec<String> = ids.iter().enumerate().map(|(i, id)| ack_text(id, i)).collect();
    let templates: Vec<String> = (0..POOL).map(ack_template).collect();
    let op: Op = match name {
        "tick" => {
            let mut s = OpenSession::new();
            Box::new(move |_| {
                black_box(s.idle_tick());
            })
        }
        "ping_pong" => {
            let mut s = OpenSession::new();
            Box::new(move |_| {
                black_box(s.ping_pong());
            })
        }
        "tungstenite_read_pong" => {
            let mut ws = replay_socket(ws_pong_frame());
            Box::new(move |_| {
                black_box(ws_read(&mut ws));
            })
        }
        "send_ack" => {
            let mut s = OpenSession::new();
            // Owned acks made beforehand (the host already owns the text it
            // reads); the session generates each send's id and nonce.
            let mut inputs: Vec<String> = (0..WARMUP + n).map(|i| templates[i % POOL].clone()).collect();
            let mut k = 0;
            Box::new(move |_| {
                let ack = std::mem::take(&mut inputs[k]);
                k += 1;
                black_box(s.send_ack(ack));
            })
        }
        "bare_parse_ack" => Box::new(move |i| {
            black_box(bare_parse(&acks[i % POOL]));
        }),
        "tungstenite_read_ack" => {
            let mut ws = replay_socket(acks.iter().flat_map(|t| ws_text_frame(t)).collect());
            Box::new(move |_| {
                black_box(ws_read(&mut ws));
            })
        }
        "hello" => {
            let mut hs = crate::handshake();
            Box::new(move |i| {
                black_box(hs.hello(1, crate::UNIX0 + i as u64).ok());
            })
        }
        "sign_alone" => {
            let me = crate::member("mesh-bench", 1);
            Box::new(move |i| {
                let t = crate::UNIX0 + i as u64;
                black_box(tether_proto::mesh::identity::sign_hello(
                    &me.secret,
                    &me.mesh_id,
                    &me.member_id,
                    t,
                ));
            })
        }
        "bare_parse_hello" => {
            let text = hello_text();
            Box::new(move |_| {
                black_box(bare_parse(&text));
            })
        }
        "push" => {
            let mut s = OpenSession::new();
            let mut inputs: Vec<String> = (0..WARMUP + n).map(|i| pool[i % POOL].clone()).collect();
            let mut k = 0;
            Box::new(move |_| {
                let text = std::mem::take(&mut inputs[k]);
                k += 1;
                black_box(s.push(text));
            })
        }
        "bare_parse_push" => Box::new(move |i| {
            black_box(bare_parse(&pool[i % POOL]));
        }),
        "typed_parse_push" => Box::new(move |i| {
            black_box(typed_push_parse(&pool[i % POOL]));
        }),
        "typed_parse_open_push" => {
            let peer = crate::peer_box();
            Box::new(move |i| {
                black_box(crate::typed_parse_open_push(&pool[i % POOL], &peer));
            })
        }
        "tungstenite_read_push" | "stack_session" | "stack_bare_parse" => {
            let mut ws = replay_socket(pool.iter().flat_map(|t| ws_text_frame(t)).collect());
            match name {
                "tungstenite_read_push" => Box::new(move |_| {
                    black_box(ws_read(&mut ws));
                }),
                "stack_session" => {
                    let mut s = OpenSession::new();
                    Box::new(move |_| {
                        black_box(s.push(text_of(ws_read(&mut ws))));
                    })
                }
                _ => Box::new(move |_| {
                    black_box(bare_parse(&text_of(ws_read(&mut ws))));
                }),
            }
        }
        _ => return None,
    };
    Some(op)
}

/// The [`WARMUP`] operations, `0..WARMUP`.
pub fn warm_up(op: &mut dyn FnMut(usize)) {
    for i in 0..WARMUP {
        op(i);
    }
}

/// Case `name` with inputs for `n` measured operations, warmed up; panics if
/// there is no such case.
pub fn warmed(name: &str, n: usize) -> Op {
    let Some(mut op) = case(name, n) else {
        panic!("unknown case {name:?}; cases: {}", CASES.join(", "));
    };
    warm_up(&mut *op);
    op
}

/// What the tokio host hands the session: the text, owned.
fn text_of(message: tungstenite::Message) -> String {
    match message {
        tungstenite::Message::Text(t) => t.as_str().to_owned(),
        other => panic!("a text frame: {other:?}"),
    }
}
