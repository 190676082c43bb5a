//! One benchmark case in a loop, for instruction counts under callgrind.
//!
//! `valgrind --tool=callgrind --toggle-collect='icount::measured' \
//!     target/release/icount CASE N` counts only what runs inside [`measured`]:
//! `N` operations after a warm-up, inputs prepared beforehand. `bench/icount.sh`
//! runs every case and divides the totals by `N`. Without valgrind it just runs.

use std::hint::black_box;

use tether_bench::{
    ack_text, bare_parse, hello_text, push_pool, replay_socket, send_id, typed_push_parse, ws_pong_frame,
    ws_read, ws_text_frame, OpenSession, POOL,
};
use tether_proto::lifecycle::Handshake;

/// Every case, in report order.
const CASES: &[&str] = &[
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
    "tungstenite_read_push",
    "stack_session",
    "stack_bare_parse",
];

/// The only function callgrind counts: `n` calls of `op`.
#[inline(never)]
fn measured(n: usize, op: &mut dyn FnMut(usize)) {
    for i in 0..n {
        op(i);
    }
}

/// Warm-up, then the measured run.
fn run(n: usize, op: &mut dyn FnMut(usize)) {
    for i in 0..WARMUP {
        op(i);
    }
    measured(n, op);
}

/// Enough to fill the dedupe window (1 024) and the push history (500).
const WARMUP: usize = POOL / 2;

fn text_of(message: tungstenite::Message) -> String {
    match message {
        tungstenite::Message::Text(t) => t.as_str().to_owned(),
        other => panic!("a text frame: {other:?}"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let pool = push_pool(POOL);
    let ids: Vec<String> = (0..POOL).map(send_id).collect();
    let acks: Vec<String> = ids.iter().enumerate().map(|(i, id)| ack_text(id, i)).collect();
    match case.as_str() {
        "tick" => {
            let mut s = OpenSession::new();
            run(n, &mut |_| {
                black_box(s.idle_tick());
            })
        }
        "ping_pong" => {
            let mut s = OpenSession::new();
            run(n, &mut |_| {
                black_box(s.ping_pong());
            })
        }
        "tungstenite_read_pong" => {
            let mut ws = replay_socket(ws_pong_frame());
            run(n, &mut |_| {
                black_box(ws_read(&mut ws));
            })
        }
        "send_ack" => {
            let mut s = OpenSession::new();
            // Owned inputs made beforehand: the host already owns them.
            let mut inputs: Vec<Option<(String, String)>> = (0..WARMUP + n)
                .map(|i| Some((ids[i % POOL].clone(), acks[i % POOL].clone())))
                .collect();
            let mut k = 0;
            run(n, &mut |_| {
                let (id, ack) = inputs[k].take().unwrap_or_default();
                k += 1;
                black_box(s.send_ack(id, ack));
            })
        }
        "bare_parse_ack" => run(n, &mut |i| {
            black_box(bare_parse(&acks[i % POOL]));
        }),
        "tungstenite_read_ack" => {
            let mut ws = replay_socket(acks.iter().flat_map(|t| ws_text_frame(t)).collect());
            run(n, &mut |_| {
                black_box(ws_read(&mut ws));
            })
        }
        "hello" => {
            let mut hs = tether_bench::handshake();
            run(n, &mut |i| {
                black_box(hs.hello(1, tether_bench::UNIX0 + i as u64).ok());
            })
        }
        "sign_alone" => {
            let me = tether_bench::member("mesh-bench", 1);
            run(n, &mut |i| {
                let t = tether_bench::UNIX0 + i as u64;
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
            run(n, &mut |_| {
                black_box(bare_parse(&text));
            })
        }
        "push" => {
            let mut s = OpenSession::new();
            let mut inputs: Vec<String> = (0..WARMUP + n).map(|i| pool[i % POOL].clone()).collect();
            let mut k = 0;
            run(n, &mut |_| {
                let text = std::mem::take(&mut inputs[k]);
                k += 1;
                black_box(s.push(text));
            })
        }
        "bare_parse_push" => run(n, &mut |i| {
            black_box(bare_parse(&pool[i % POOL]));
        }),
        "typed_parse_push" => run(n, &mut |i| {
            black_box(typed_push_parse(&pool[i % POOL]));
        }),
        "tungstenite_read_push" | "stack_session" | "stack_bare_parse" => {
            let mut ws = replay_socket(pool.iter().flat_map(|t| ws_text_frame(t)).collect());
            match case.as_str() {
                "tungstenite_read_push" => run(n, &mut |_| {
                    black_box(ws_read(&mut ws));
                }),
                "stack_session" => {
                    let mut s = OpenSession::new();
                    run(n, &mut |_| {
                        black_box(s.push(text_of(ws_read(&mut ws))));
                    })
                }
                _ => run(n, &mut |_| {
                    black_box(bare_parse(&text_of(ws_read(&mut ws))));
                }),
            }
        }
        "list" => println!("{}", CASES.join("\n")),
        other => {
            eprintln!("unknown case {other:?}; cases: {}", CASES.join(", "));
            std::process::exit(2);
        }
    }
}
