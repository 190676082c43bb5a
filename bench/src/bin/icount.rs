//! One benchmark case in a loop, for instruction counts under callgrind.
//!
//! `valgrind --tool=callgrind --toggle-collect='icount::measured' \
//!     target/release/icount CASE N` counts only what runs inside [`measured`]:
//! `N` operations after a warm-up, inputs prepared beforehand. `bench/icount.sh`
//! runs every case and divides the totals by `N`. Without valgrind it just runs.

use tether_bench::cases::{case, warm_up, CASES};

/// The only function callgrind counts: `n` calls of `op`.
#[inline(never)]
fn measured(n: usize, op: &mut dyn FnMut(usize)) {
    for i in 0..n {
        op(i);
    }
}

/// Warm-up, then the measured run.
fn run(n: usize, op: &mut dyn FnMut(usize)) {
    warm_up(op);
    measured(n, op);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    if name == "list" {
        println!("{}", CASES.join("\n"));
        return;
    }
    match case(&name, n) {
        Some(mut op) => run(n, &mut *op),
        None => {
            eprintln!("unknown case {name:?}; cases: {}", CASES.join(", "));
            std::process::exit(2);
        }
    }
}
