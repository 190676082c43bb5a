//! Instructions of every icount case, counted by gungraun.
//!
//! `bench/gungraun.sh` (installs the matching `gungraun-runner`, then runs
//! `cargo bench -p tether-bench --features gungraun --bench instructions`).
//!
//! The cases are those of [`tether_bench::cases`], the same closures
//! `src/bin/icount.rs` runs in a loop. gungraun counts only the benchmark
//! function: its `setup` function ([`warmed`]) builds the state and the inputs and
//! runs the warm-up before the count starts, and the function hands the state
//! back, so that it is dropped after the count stops.
//!
//! - `one_op`: operation 0 after the warm-up, alone: the cost of one step.
//! - `ops_200`: operations `0..200` after the warm-up, what `bench/icount.sh 200`
//!   divides by 200; it includes the costs a single operation may not show
//!   (tungstenite refilling its read buffer once every few frames).

// main! and library_benchmark_group! generate undocumented public items.
#![allow(missing_docs)]

use gungraun::{library_benchmark, library_benchmark_group, main};
use tether_bench::cases::{warmed, Op};

/// Operations of `ops_200`.
const OPS: usize = 200;

// Only `bench` attributes may follow `library_benchmark`, hence no doc comments.
// The arguments go to `warmed`: the case, and how many operations it needs inputs for.

// Operation 0 after the warm-up, the first of icount's measured operations.
#[library_benchmark(setup = warmed)]
#[bench::tick(args = ("tick", 1))]
#[bench::ping_pong(args = ("ping_pong", 1))]
#[bench::tungstenite_read_pong(args = ("tungstenite_read_pong", 1))]
#[bench::send_ack(args = ("send_ack", 1))]
#[bench::bare_parse_ack(args = ("bare_parse_ack", 1))]
#[bench::tungstenite_read_ack(args = ("tungstenite_read_ack", 1))]
#[bench::hello(args = ("hello", 1))]
#[bench::sign_alone(args = ("sign_alone", 1))]
#[bench::bare_parse_hello(args = ("bare_parse_hello", 1))]
#[bench::push(args = ("push", 1))]
#[bench::bare_parse_push(args = ("bare_parse_push", 1))]
#[bench::typed_parse_push(args = ("typed_parse_push", 1))]
#[bench::tungstenite_read_push(args = ("tungstenite_read_push", 1))]
#[bench::stack_session(args = ("stack_session", 1))]
#[bench::stack_bare_parse(args = ("stack_bare_parse", 1))]
fn one_op(mut op: Op) -> Op {
    op(0);
    op
}

// Operations 0..OPS after the warm-up, as icount's measured loop.
#[library_benchmark(setup = warmed)]
#[bench::tick(args = ("tick", OPS))]
#[bench::ping_pong(args = ("ping_pong", OPS))]
#[bench::tungstenite_read_pong(args = ("tungstenite_read_pong", OPS))]
#[bench::send_ack(args = ("send_ack", OPS))]
#[bench::bare_parse_ack(args = ("bare_parse_ack", OPS))]
#[bench::tungstenite_read_ack(args = ("tungstenite_read_ack", OPS))]
#[bench::hello(args = ("hello", OPS))]
#[bench::sign_alone(args = ("sign_alone", OPS))]
#[bench::bare_parse_hello(args = ("bare_parse_hello", OPS))]
#[bench::push(args = ("push", OPS))]
#[bench::bare_parse_push(args = ("bare_parse_push", OPS))]
#[bench::typed_parse_push(args = ("typed_parse_push", OPS))]
#[bench::tungstenite_read_push(args = ("tungstenite_read_push", OPS))]
#[bench::stack_session(args = ("stack_session", OPS))]
#[bench::stack_bare_parse(args = ("stack_bare_parse", OPS))]
fn ops_200(mut op: Op) -> Op {
    for i in 0..OPS {
        op(i);
    }
    op
}

library_benchmark_group!(name = cases, benchmarks = [one_op, ops_200]);

main!(library_benchmark_groups = cases);
