//! `cargo run --release -p tether-tests --example storm [CLIENTS]`
//!
//! 10 000 clients see their broker restart (down for 2 s); prints connection
//! attempts per 100 ms with the default jitter and with none (the seeds' herd).

use std::time::{Duration, Instant};

use tether_proto::policy::{Jitter, DEFAULT_JITTER};
use tether_tests::storm;

fn main() {
    let clients = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    for (name, jitter) in [
        ("default jitter ±20 %", DEFAULT_JITTER),
        ("no jitter (the seeds)", Jitter::NONE),
    ] {
        let started = Instant::now();
        let s = storm::run(clients, jitter, Duration::from_secs(2));
        println!("## {name}: {clients} clients, broker down for 2 s");
        println!(
            "peak {} attempts in one 100 ms window; uniform ideal {:.0}; ratio {:.2}",
            s.peak,
            s.uniform_ideal,
            s.peak as f64 / s.uniform_ideal
        );
        println!("| window (ms after restart) | attempts |");
        println!("|---|---|");
        for (w, n) in &s.histogram {
            println!(
                "| {}–{} | {} {} |",
                w * 100,
                w * 100 + 100,
                n,
                "#".repeat((*n as f64 / clients as f64 * 100.0).ceil() as usize)
            );
        }
        println!(
            "(simulated in {:.2} s of wall time)\n",
            started.elapsed().as_secs_f64()
        );
    }
}
