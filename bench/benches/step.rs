//! Step costs of the pure session beside the bare cost of the same bytes.
//!
//! `cargo bench -p tether-bench --bench step`. Every group holds the tether case
//! and its baselines, measured in the same run:
//!
//! - `bare_parse`: `serde_json::from_str::<serde_json::Value>` of the same text
//!   (what the seeds' clients do with every frame: `JSON.parse`);
//! - `typed_parse`: `serde_json::from_str::<PushFrame>`, the typed struct alone;
//! - `tungstenite_read`: tungstenite's client codec reading the same frame from an
//!   in-memory socket (`WebSocket::from_raw_socket` over a replaying reader).

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tether_bench::{
    ack_template, ack_text, bare_parse, hello_text, push_pool, replay_socket, send_id, typed_push_parse,
    ws_pong_frame, ws_read, ws_text_frame, OpenSession, POOL,
};
use tether_proto::lifecycle::Handshake;
use tether_proto::mesh::identity::sign_hello;

fn tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("tick");
    let mut s = OpenSession::new();
    g.bench_function("tether_idle_tick", |b| b.iter(|| black_box(s.idle_tick())));
    g.finish();
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    let mut s = OpenSession::new();
    g.bench_function("tether_watchdog_ping_and_pong", |b| {
        b.iter(|| black_box(s.ping_pong()))
    });
    let mut ws = replay_socket(ws_pong_frame());
    g.bench_function("tungstenite_read_pong", |b| {
        b.iter(|| black_box(ws_read(&mut ws)))
    });
    g.finish();
}

fn send_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_ack");
    let ids: Vec<String> = (0..POOL).map(send_id).collect();
    let acks: Vec<String> = ids.iter().enumerate().map(|(i, id)| ack_text(id, i)).collect();
    let mut s = OpenSession::new();
    let mut i = 0;
    g.bench_function("tether_send_then_ack", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % POOL;
                ack_template(i)
            },
            |ack| black_box(s.send_ack(ack)),
            BatchSize::SmallInput,
        )
    });
    let ack = acks[0].clone();
    g.bench_function("bare_parse_ack", |b| {
        b.iter(|| black_box(bare_parse(black_box(&ack))))
    });
    let mut ws = replay_socket(ws_text_frame(&ack));
    g.bench_function("tungstenite_read_ack", |b| b.iter(|| black_box(ws_read(&mut ws))));
    g.finish();
}

fn hello(c: &mut Criterion) {
    let mut g = c.benchmark_group("hello");
    let mut hs = tether_bench::handshake();
    let mut t = tether_bench::UNIX0;
    g.bench_function("tether_hello_sign_and_encode", |b| {
        b.iter(|| {
            t += 1;
            black_box(hs.hello(1, t))
        })
    });
    let me = tether_bench::member("mesh-bench", 1);
    g.bench_function("ed25519_sign_alone", |b| {
        b.iter(|| black_box(sign_hello(&me.secret, &me.mesh_id, &me.member_id, black_box(t))))
    });
    let text = hello_text();
    g.bench_function("bare_parse_hello", |b| {
        b.iter(|| black_box(bare_parse(black_box(&text))))
    });
    let mut ws = replay_socket(ws_text_frame(&text));
    g.bench_function("tungstenite_read_hello", |b| {
        b.iter(|| black_box(ws_read(&mut ws)))
    });
    g.finish();
}

fn push(c: &mut Criterion) {
    let mut g = c.benchmark_group("push");
    let pool = push_pool(POOL);
    let mut s = OpenSession::new();
    let mut i = 0;
    // The frame's `String` is made outside the timing (the host owns it already).
    g.bench_function("tether_session_handle_and_drain", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % POOL;
                pool[i].clone()
            },
            |text| black_box(s.push(text)),
            BatchSize::SmallInput,
        )
    });
    let mut j = 0;
    g.bench_function("bare_parse_value", |b| {
        b.iter(|| {
            j = (j + 1) % POOL;
            black_box(bare_parse(black_box(&pool[j])))
        })
    });
    g.bench_function("typed_parse_push_frame", |b| {
        b.iter(|| {
            j = (j + 1) % POOL;
            black_box(typed_push_parse(black_box(&pool[j])))
        })
    });
    let peer = tether_bench::peer_box();
    g.bench_function("typed_parse_and_open", |b| {
        b.iter(|| {
            j = (j + 1) % POOL;
            black_box(tether_bench::typed_parse_open_push(black_box(&pool[j]), &peer))
        })
    });
    // Every pool frame back to back: the codec reads distinct pushes in turn.
    let mut ws = replay_socket(pool.iter().flat_map(|t| ws_text_frame(t)).collect());
    g.bench_function("tungstenite_read_push", |b| {
        b.iter(|| black_box(ws_read(&mut ws)))
    });
    // The host's whole path: codec, owned text, then the session or the bare parse.
    g.bench_function("stack_tungstenite_then_session", |b| {
        b.iter(|| black_box(s.push(text_of(ws_read(&mut ws)))))
    });
    g.bench_function("stack_tungstenite_then_bare_parse", |b| {
        b.iter(|| black_box(bare_parse(&text_of(ws_read(&mut ws)))))
    });
    g.finish();
}

/// What the tokio host hands the session: the text, owned.
fn text_of(message: tungstenite::Message) -> String {
    match message {
        tungstenite::Message::Text(t) => t.as_str().to_owned(),
        other => panic!("a text frame: {other:?}"),
    }
}

criterion_group!(benches, tick, ping_pong, send_ack, hello, push);
criterion_main!(benches);
